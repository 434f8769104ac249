/**
 * A session.start's runtime begins beside its first turn's lease and record writes (Runtime.prepare), not after
 * them: an agent's process taken, its `initialize` and `session/new` overlap the gateway's own work on the turn
 * (docs/acp.md, *Agent processes*). Only a start's first turn prepares: a later turn may wait for another instance's
 * lease, and would hold an agent meanwhile. A runtime begun for a turn that fails before its prompt is ended, not
 * left to its idle timeout; one that could not be made is that turn's error, and the next turn makes one anew.
 * A real store of each kind.
 */
import { describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/acp/runtime.js';
import { TurnRunner } from '../../src/acp/turn-runner.js';
import { GatewayError } from '../../src/wire/errors.js';
import { memoryLogger, waitFor } from '../helpers/env.js';
import { echoTarget } from '../helpers/echo-sessions.js';
import { runnerStores } from '../helpers/runner-stores.js';
import { wrapStore } from '../helpers/store-wrap.js';

const { open, runners } = runnerStores('prepared');

/** A runtime that says, in `log`, when it is prepared, prompted and closed; each turn echoes its prompt. */
function loggingRuntime(log: string[]): Runtime {
  return {
    prepare: () => void log.push('prepare'),
    async prompt(turn, emit) {
      log.push(`prompt ${turn.text}`);
      emit({ type: 'delta', event: 'delta', delta: `echo: ${turn.text}`, text: `echo: ${turn.text}` });
      return { output: `echo: ${turn.text}`, stopReason: 'end_turn' };
    },
    async close() {
      log.push('close');
    },
  };
}

const start = (r: TurnRunner, sid: string, prompt: string) =>
  r.start({ sessionId: sid, threadId: sid, prompt, workingDirectory: undefined, target: echoTarget }, () => undefined);

describe.each(['sqlite', 'redis'] as const)('a session.start prepares its runtime: %s', (kind) => {
  it('before its turn is in the record, and the turn prompts the runtime it prepared', async () => {
    const log: string[] = [];
    const raw = await open(kind);
    // a record write that stores a running turn (the turn's start) is logged as it is asked for
    const store = wrapStore(raw, {
      update: (s, v) => {
        if (s.history.some((t) => t.status === 'running')) log.push('turn stored');
        return raw.update(s, v);
      },
    });
    let made = 0;
    const r = new TurnRunner({
      store,
      gatewayId: 'gw_prep',
      holderId: `gw_prep/${kind}`,
      logger: memoryLogger().logger,
      runtimeFor: async () => (made++, loggingRuntime(log)),
    });
    runners.push(r);
    const sid = `prep-order-${kind}`;
    expect(await start(r, sid, 'one')).toMatchObject({ status: 'completed', output: 'echo: one' });
    expect(log.slice(0, 3)).toEqual(['prepare', 'turn stored', 'prompt one']);
    expect(made).toBe(1);
    // the next turn of the live session runs on the same runtime, and prepares nothing
    expect(await r.message(sid, 'two', () => undefined)).toMatchObject({ status: 'completed', output: 'echo: two' });
    expect(log.filter((l) => l === 'prepare')).toHaveLength(1);
    expect(made).toBe(1);
  });

  it('not for a message that revives the session: its runtime is made for its prompt', async () => {
    const log: string[] = [];
    const store = await open(kind);
    const runner = (n: number) =>
      new TurnRunner({
        store,
        gatewayId: 'gw_prep',
        holderId: `gw_prep/${kind}/${n}`,
        logger: memoryLogger().logger,
        runtimeFor: async () => loggingRuntime(log),
      });
    const first = runner(1);
    runners.push(first);
    const sid = `prep-revive-${kind}`;
    await start(first, sid, 'one');
    await first.shutdown(1_000);
    // another instance sharing the store (or this one restarted) continues the session
    const second = runner(2);
    runners.push(second);
    log.length = 0;
    expect(await second.message(sid, 'two', () => undefined)).toMatchObject({ status: 'completed', output: 'echo: two' });
    expect(log).toEqual(['prompt two']);
  });

  it('a start whose turn fails before its prompt ends the runtime it began', async () => {
    const log: string[] = [];
    const store = await open(kind);
    const sid = `prep-failed-${kind}`;
    const r = new TurnRunner({
      store,
      gatewayId: 'gw_prep',
      holderId: `gw_prep/${kind}`,
      logger: memoryLogger().logger,
      runtimeFor: async () => loggingRuntime(log),
      leaseWaitMs: 200,
    });
    runners.push(r);
    // another instance holds the session's lease (a turn of it runs there) past this turn's wait for it
    expect(await store.acquireLease(sid, 'gw_other/instance', 60_000)).toEqual(expect.any(String));
    expect(await start(r, sid, 'one')).toMatchObject({ status: 'failed' });
    await waitFor(() => log.includes('close'), 'the prepared runtime to be closed');
    expect(log).toEqual(['prepare', 'close']);
  });

  it('a runtime that could not be made fails the start, and the next turn makes one anew', async () => {
    const log: string[] = [];
    const store = await open(kind);
    let calls = 0;
    const r = new TurnRunner({
      store,
      gatewayId: 'gw_prep',
      holderId: `gw_prep/${kind}`,
      logger: memoryLogger().logger,
      runtimeFor: async () => {
        if (++calls === 1) throw new GatewayError('UNSUPPORTED', 'agent "x" runs on a model API this gateway does not serve');
        return loggingRuntime(log);
      },
    });
    runners.push(r);
    const sid = `prep-unmade-${kind}`;
    expect(await start(r, sid, 'one')).toMatchObject({ status: 'failed', errorCode: 'UNSUPPORTED' });
    expect(await r.message(sid, 'two', () => undefined)).toMatchObject({ status: 'completed', output: 'echo: two' });
    expect(calls).toBe(2);
    expect(log).toEqual(['prompt two']);
  });
});
