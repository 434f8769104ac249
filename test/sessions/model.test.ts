import { describe, expect, it } from 'vitest';
import {
  adoptTransferred,
  appendTurn,
  chatMessages,
  closeSession,
  markMoved,
  newSession,
  newTurn,
  parseSession,
  runningTurn,
  updateTurn,
} from '../../src/sessions/model.js';
import { GatewayError } from '../../src/wire/errors.js';

const target = { executionTarget: 'agent' as const, providerId: 'codex', gatewayProviderId: '', model: '' };
const fresh = () => newSession({ id: 's1', kind: 'chat', ownerGatewayId: 'gw_a', target }, 1000);

describe('session model', () => {
  it('a new session is active, version 1, thread = id, empty history', () => {
    expect(fresh()).toEqual({
      id: 's1',
      kind: 'chat',
      ownerGatewayId: 'gw_a',
      status: 'active',
      target,
      threadId: 's1',
      history: [],
      metadata: {},
      createdAt: 1000,
      updatedAt: 1000,
      version: 1,
    });
  });

  it('a running turn makes the session running; finishing it makes it active again, with endedAt', () => {
    const t = newTurn('hi', [{ role: 'user', content: 'hi' }], 2000);
    const running = appendTurn(fresh(), t, 2000);
    expect(running.status).toBe('running');
    expect(runningTurn(running)?.turnId).toBe(t.turnId);
    const done = updateTurn(
      running,
      t.turnId,
      { status: 'completed', output: 'hello', messages: [...t.messages, { role: 'assistant', content: 'hello' }] },
      3000,
    );
    expect(done.status).toBe('active');
    expect(done.history[0]).toMatchObject({ status: 'completed', output: 'hello', endedAt: 3000 });
    expect(chatMessages(done).map((m) => m.role)).toEqual(['user', 'assistant']);
    expect(running.history[0]?.status).toBe('running'); // helpers never mutate their input
  });

  it('refuses a second running turn, turns on closed or moved sessions, and unknown turn ids', () => {
    const running = appendTurn(fresh(), newTurn('one'));
    expect(() => appendTurn(running, newTurn('two'))).toThrow(/already has turn/);
    expect(() => appendTurn(closeSession(fresh()), newTurn('x'))).toThrow(/is closed/);
    expect(() => appendTurn(markMoved(fresh(), 'gw_b'), newTurn('x'))).toThrow(GatewayError);
    expect(() => updateTurn(fresh(), 'turn_nope', { status: 'failed' })).toThrow(/not found/);
  });

  it('adoptTransferred gives the receiver ownership and fails a turn that cannot resume', () => {
    const sent = markMoved(appendTurn(fresh(), newTurn('mid-flight')), 'gw_b');
    const got = adoptTransferred(sent, 'gw_b', 5000);
    expect(got).toMatchObject({ ownerGatewayId: 'gw_b', status: 'active' });
    expect(got.movedTo).toBeUndefined();
    expect(got.history[0]).toMatchObject({ status: 'failed', error: 'interrupted by session transfer', errorCode: 'TURN_INTERRUPTED', endedAt: 5000 });
  });

  it('parseSession accepts a record as the store keeps it and names the bad key path otherwise', () => {
    const s = appendTurn(fresh(), { ...newTurn('q', [{ role: 'user', content: 'q', extra: 1 }]), status: 'completed' });
    expect(parseSession(JSON.parse(JSON.stringify(s)))).toEqual(s);
    // a failed turn's code is taken (no offer carries it yet: transfer.ts), when it is a catalogue code
    const failed = appendTurn(fresh(), { ...newTurn('q'), status: 'failed', error: 'boom', errorCode: 'UPSTREAM_CLIENT_ERROR' });
    expect(parseSession(JSON.parse(JSON.stringify(failed)))).toEqual(failed);
    for (const bad of [7, '', 'upstream_error', 'UPSTREAM ERROR', 'UPSTREAM_ERROR\nX', `E${'X'.repeat(64)}`])
      expect(() => parseSession({ ...failed, history: [{ ...failed.history[0], errorCode: bad }] })).toThrow(/at history\.0\.errorCode/);
    expect(() => parseSession({ ...s, status: 'weird' })).toThrow(/at status/);
    expect(() => parseSession({ ...s, history: [{ ...s.history[0], startedAt: 'now' }] })).toThrow(/at history\.0\.startedAt/);
    expect(() => parseSession({ ...s, extra: true })).toThrow(GatewayError);
    expect(() => parseSession('nope')).toThrow(/\(root\)/);
  });
});
