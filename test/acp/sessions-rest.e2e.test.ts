/**
 * The task-session REST routes (addendum 2026-10 §6) on real gateway processes: a session's events after a seq,
 * a message posted once per clientRequestId (a repeat, sequential or concurrent, answers with the original and
 * never runs it again), every bad input refused in the gateway's JSON error format, the access rules of
 * /acp/rpc (tokens, a virtual key reaches only its own sessions, acp.allowedOrigins), and a session that lives
 * on a bridge peer served through the gateway that holds its pointer.
 *
 *   A (acp, keys) ──dials──▶ B (acceptSessions)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../helpers/env.js';
import { acpRpc, adminGet, cleanupDirs, startProcess, waitFor, wsUrl } from '../helpers/env.js';
import { createKey } from '../keys/helpers.js';

const BRIDGE = 'rest-bridge-token-2718';
const ACP = 'rest-acp-token-3141';
const ORIGIN = 'https://app.example.com';
let a: GatewayProcess;
let b: GatewayProcess;

const channels = { id: 'chat', label: 'Chat', kind: 'channels', model: 'mock-1' };
const mock = [{ name: 'm', provider: 'mock', models: ['mock-1'] }];

beforeAll(async () => {
  b = await startProcess({
    gateway: { id: 'gw_rest_b', name: 'remote', bridge: { enabled: true, allowedTokens: [BRIDGE], shareAgents: [], acceptSessions: true } },
    channels: mock,
    acp: { tokens: [ACP], gateways: [channels] },
  });
  a = await startProcess({
    gateway: {
      id: 'gw_rest_a',
      name: 'front',
      maxBodyBytes: 2 * 1024 * 1024,
      bridges: [{ name: 'remote', url: wsUrl(b.url), token: BRIDGE, shareChannels: false, reconnectInterval: 100 }],
    },
    channels: mock,
    acp: { tokens: [ACP], gateways: [channels], allowedOrigins: [ORIGIN] },
  });
  await waitFor(async () => (await adminGet(a.url, '/admin/bridges')).peers.some((p: any) => p.state === 'open'), 'A→B link');
}, 30_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  cleanupDirs();
});

const start = (sessionId: string, prompt: string, token = ACP, gw = a) =>
  acpRpc(gw.url, token, 'session.start', { sessionId, taskPrompt: prompt, requestedExecutionTarget: 'gateway', gatewayProviderId: 'chat' });

async function api(
  path: string,
  init: { method?: string; body?: unknown; rawBody?: string; token?: string | null; headers?: Record<string, string>; gw?: GatewayProcess } = {},
): Promise<{ status: number; json: any; headers: Headers }> {
  const token = init.token === undefined ? ACP : init.token;
  const res = await fetch(`${(init.gw ?? a).url}${path}`, {
    method: init.method ?? (init.body !== undefined || init.rawBody !== undefined ? 'POST' : 'GET'),
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(init.body !== undefined || init.rawBody !== undefined ? { 'content-type': 'application/json' } : {}),
      ...init.headers,
    },
    body: init.rawBody ?? (init.body === undefined ? undefined : JSON.stringify(init.body)),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined, headers: res.headers };
}

const post = (sessionId: string, body: unknown, extra: Parameters<typeof api>[1] = {}) =>
  api(`/api/v1/sessions/${encodeURIComponent(sessionId)}/messages`, { body, ...extra });
const events = (sessionId: string, query = '', extra: Parameters<typeof api>[1] = {}) =>
  api(`/api/v1/sessions/${encodeURIComponent(sessionId)}/events${query}`, extra);

/** waits until the run's final status event is in the session's events; returns every event of the session */
async function settled(sessionId: string, runId: string, gw = a): Promise<any[]> {
  return waitFor(async () => {
    const r = await events(sessionId, '?limit=500', { gw });
    const done = r.json.events.some((e: any) => e.payload.runId === runId && ['run.completed', 'run.failed', 'run.cancelled'].includes(e.type));
    return done ? r.json.events : undefined;
  }, `run ${runId} settled`);
}

const expectError = (r: { status: number; json: any }, status: number, code: string, param?: string) => {
  expect(r.status, JSON.stringify(r.json)).toBe(status);
  expect(r.json.error).toMatchObject({ code: code.toLowerCase(), ...(param ? { param } : {}) });
  expect(typeof r.json.error.message).toBe('string');
};

describe('POST /api/v1/sessions/{id}/messages', () => {
  it('queues the message and answers at once with its queued event and run; the run completes; events tell it in seq order', async () => {
    expect((await start('rest-1', 'first turn')).result).toMatchObject({ success: true });
    const r = await post('rest-1', { clientRequestId: 'req-1', text: 'second turn via REST' });
    expect(r.status, JSON.stringify(r.json)).toBe(201);
    expect(r.headers.get('cache-control')).toBe('no-store');
    const { event, run } = r.json;
    expect(event).toMatchObject({ type: 'run.queued', payload: { clientRequestId: 'req-1', status: 'queued', runId: run.runId, turnId: run.turnId } });
    expect(event.seq).toBeGreaterThan(0);
    expect(Date.parse(event.createdAt)).toBeGreaterThan(Date.now() - 60_000);
    expect(run).toMatchObject({ sessionId: 'rest-1', threadId: 'rest-1', status: 'queued' });
    expect(run.runId).toMatch(/^run_/);

    const all = await settled('rest-1', run.runId);
    const mine = all.filter((e) => e.payload.runId === run.runId).map((e) => e.type);
    expect(mine[0]).toBe('run.queued');
    expect(mine).toContain('run.started');
    expect(mine).toContain('task.started');
    expect(mine).toContain('message.delta');
    expect(mine.slice(-2)).toEqual(['task.completed', 'run.completed']);
    const seqs = all.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(new Set(seqs).size).toBe(seqs.length);
    for (const e of all) {
      expect(Object.keys(e).sort()).toEqual(['createdAt', 'payload', 'seq', 'type']);
      expect(e.payload).not.toHaveProperty('seq');
      expect(typeof e.createdAt).toBe('string');
    }
    const text = all
      .filter((e) => e.type === 'message.delta' && e.payload.runId === run.runId)
      .map((e) => e.payload.delta)
      .join('');
    expect(text).toContain('second turn via REST');
    // the same turn through /acp/rpc: the REST message is the session's second turn, stored once
    const task = await acpRpc(a.url, ACP, 'xworkmate.tasks.get', { sessionId: 'rest-1' });
    expect(task.result).toMatchObject({ runId: run.runId, status: 'completed' });
    expect((await adminGet(a.url, '/admin/sessions/rest-1')).session.history.map((t: any) => t.prompt)).toEqual(['first turn', 'second turn via REST']);
  });

  it('a repeated clientRequestId answers 200 with the original event and the run as it is now, and runs nothing again', async () => {
    expect((await start('rest-2', 'first')).result).toMatchObject({ success: true });
    const first = await post('rest-2', { clientRequestId: 'again', text: 'only once' });
    expect(first.status).toBe(201);
    await settled('rest-2', first.json.run.runId);
    const repeat = await post('rest-2', { clientRequestId: 'again', text: 'only once' });
    expect(repeat.status, JSON.stringify(repeat.json)).toBe(200);
    expect(repeat.json.event).toEqual(first.json.event);
    expect(repeat.json.run).toEqual({ ...first.json.run, status: 'completed' });
    // even with another text: the id names the message
    expect((await post('rest-2', { clientRequestId: 'again', text: 'something else' })).status).toBe(200);
    expect((await adminGet(a.url, '/admin/sessions/rest-2')).session.history.map((t: any) => t.prompt)).toEqual(['first', 'only once']);
    // another id is another message
    const other = await post('rest-2', { clientRequestId: 'again-2', text: 'a third' });
    expect(other.status).toBe(201);
    expect(other.json.run.runId).not.toBe(first.json.run.runId);
    await settled('rest-2', other.json.run.runId);
  });

  it('eight concurrent posts of one clientRequestId run it once: one 201, the others 200 with the same run or 409 request_in_progress', async () => {
    expect((await start('rest-3', 'first')).result).toMatchObject({ success: true });
    const all = await Promise.all(Array.from({ length: 8 }, () => post('rest-3', { clientRequestId: 'burst', text: 'burst message' })));
    const statuses = all.map((r) => r.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.every((s) => s === 201 || s === 200 || s === 409)).toBe(true);
    const created = all.find((r) => r.status === 201)!;
    for (const r of all.filter((x) => x.status === 200)) expect(r.json.run.runId).toBe(created.json.run.runId);
    for (const r of all.filter((x) => x.status === 409)) {
      expectError(r, 409, 'REQUEST_IN_PROGRESS');
      expect(r.headers.get('retry-after')).toBe('1');
    }
    await settled('rest-3', created.json.run.runId);
    expect((await adminGet(a.url, '/admin/sessions/rest-3')).session.history.map((t: any) => t.prompt)).toEqual(['first', 'burst message']);
  });

  it('a message that cannot be queued leaves its clientRequestId free; a closed or unknown session is refused', async () => {
    expect((await start('rest-4', 'first')).result).toMatchObject({ success: true });
    expect((await acpRpc(a.url, ACP, 'session.close', { sessionId: 'rest-4' })).result).toEqual({ accepted: true, closed: true });
    const closed = await post('rest-4', { clientRequestId: 'after-close', text: 'too late' });
    expectError(closed, 409, 'SESSION_CONTINUATION_UNAVAILABLE');
    // the id was released: the same refusal again, never request_in_progress
    expectError(await post('rest-4', { clientRequestId: 'after-close', text: 'too late' }), 409, 'SESSION_CONTINUATION_UNAVAILABLE');
    expect((await adminGet(a.url, '/admin/sessions/rest-4')).session.metadata.clientRequests ?? {}).toEqual({});
    expectError(await post('no-such-session', { clientRequestId: 'x', text: 'hello' }), 404, 'SESSION_NOT_FOUND');
    expectError(await events('no-such-session'), 404, 'SESSION_NOT_FOUND');
  });
});

describe('GET /api/v1/sessions/{id}/events', () => {
  it('pages by after_seq and limit; lastEventSeq is the session’s highest seq', async () => {
    const s = await acpRpc(
      a.url,
      ACP,
      'session.start',
      { sessionId: 'rest-5', taskPrompt: 'page me', requestedExecutionTarget: 'gateway', gatewayProviderId: 'chat' },
      true,
    );
    expect(s.result).toMatchObject({ success: true });
    const seqs = s.updates.map((u) => u.seq);
    // every session.update now says when it was sent
    for (const u of s.updates) expect(Date.parse(u.at)).toBeGreaterThan(0);
    const all = await events('rest-5');
    expect(all.status).toBe(200);
    expect(all.json.events.map((e: any) => e.seq)).toEqual(seqs);
    expect(all.json.lastEventSeq).toBe(seqs[seqs.length - 1]);
    expect(all.json.events.map((e: any) => e.type)).toEqual(
      s.updates.map((u) => (u.type === 'status' ? `run.${u.event}` : u.type === 'delta' ? 'message.delta' : u.type === 'step' ? `step.${u.event}` : u.event)),
    );
    expect(all.json.events[0].createdAt).toBe(s.updates[0].at);
    const two = await events('rest-5', `?after_seq=${seqs[0]}&limit=2`);
    expect(two.json.events.map((e: any) => e.seq)).toEqual(seqs.slice(1, 3));
    expect(two.json.lastEventSeq).toBe(seqs[seqs.length - 1]);
    const none = await events('rest-5', `?after_seq=${seqs[seqs.length - 1]}`);
    expect(none.json).toEqual({ events: [], lastEventSeq: seqs[seqs.length - 1] });
  });

  it('bad input gets a 4xx in the gateway error format, and the gateway serves on', async () => {
    expect((await start('rest-6', 'first')).result).toMatchObject({ success: true });
    for (const q of ['?limit=0', '?limit=501', '?limit=abc', '?limit=1.5', '?limit=-1'])
      expectError(await events('rest-6', q), 400, 'INVALID_REQUEST', 'limit');
    for (const q of ['?after_seq=-1', '?after_seq=x', '?after_seq=99999999999999999999'])
      expectError(await events('rest-6', q), 400, 'INVALID_REQUEST', 'after_seq');
    expectError(await post('rest-6', { text: 'no id' }), 400, 'INVALID_PARAMS', 'clientRequestId');
    expectError(await post('rest-6', { clientRequestId: 'has space', text: 'x' }), 400, 'INVALID_PARAMS', 'clientRequestId');
    expectError(await post('rest-6', { clientRequestId: 'x'.repeat(129), text: 'x' }), 400, 'INVALID_PARAMS', 'clientRequestId');
    expectError(await post('rest-6', { clientRequestId: 'ok', text: 42 }), 400, 'INVALID_PARAMS', 'text');
    expectError(await post('rest-6', { clientRequestId: 'ok-blank', text: '   ' }), 400, 'INVALID_PARAMS', 'text');
    expectError(await post('rest-6', { clientRequestId: 'ok-big', text: 'x'.repeat(1024 * 1024 + 1) }), 400, 'INVALID_PARAMS', 'text');
    expectError(await post('rest-6', ['not', 'an', 'object']), 400, 'INVALID_REQUEST');
    // a body over gateway.maxBodyBytes (2 MiB here): 413, and the connection is not kept
    const big = await post('rest-6', { clientRequestId: 'too-big', text: 'x'.repeat(3 * 1024 * 1024) });
    expectError(big, 413, 'PAYLOAD_TOO_LARGE');
    expect(big.headers.get('connection')).toBe('close');
    expectError(await post('rest-6', undefined, { rawBody: '{"clientRequestId":' }), 400, 'INVALID_JSON');
    expectError(await post('rest-6', undefined, { rawBody: 'x=1', headers: { 'content-type': 'text/plain' } }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    expectError(await api('/api/v1/sessions/%E0%A4%A/events'), 400, 'INVALID_REQUEST', 'sessionId');
    expectError(await api(`/api/v1/sessions/${'s'.repeat(300)}/events`), 400, 'INVALID_PARAMS', 'sessionId');
    expectError(await api('/api/v1/sessions/rest-6'), 404, 'NOT_FOUND');
    expectError(await api('/api/v1/sessions/rest-6/events/more'), 404, 'NOT_FOUND');
    const wrongMethod = await api('/api/v1/sessions/rest-6/events', { method: 'POST', body: {} });
    expectError(wrongMethod, 405, 'METHOD_NOT_ALLOWED');
    expect(wrongMethod.headers.get('allow')).toBe('GET, OPTIONS');
    expectError(await api('/api/v1/sessions/rest-6/messages'), 405, 'METHOD_NOT_ALLOWED');
    // nothing of this reached the session: its one turn, and the ids refused were never claimed
    const rec = (await adminGet(a.url, '/admin/sessions/rest-6')).session;
    expect(rec.history).toHaveLength(1);
    expect(rec.metadata.clientRequests ?? {}).toEqual({});
    expect((await events('rest-6')).status).toBe(200);
  });
});

describe('access: the rules of /acp/rpc', () => {
  it('no token and a wrong token get 401; an origin not in acp.allowedOrigins 403; an allowed one CORS and a preflight', async () => {
    expect((await start('rest-7', 'first')).result).toMatchObject({ success: true });
    expectError(await events('rest-7', '', { token: null }), 401, 'UNAUTHORIZED');
    expectError(await post('rest-7', { clientRequestId: 'x', text: 'y' }, { token: 'wrong-token' }), 401, 'UNAUTHORIZED');
    expectError(await events('rest-7', '', { headers: { origin: 'https://evil.example' } }), 403, 'ORIGIN_NOT_ALLOWED');
    const ok = await events('rest-7', '', { headers: { origin: ORIGIN } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    const pre = await api('/api/v1/sessions/rest-7/messages', {
      method: 'OPTIONS',
      token: null,
      headers: { origin: ORIGIN, 'access-control-request-method': 'POST' },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-methods')).toBe('POST, OPTIONS');
    expect(pre.headers.get('access-control-allow-headers')).toContain('authorization');
    expect((await adminGet(a.url, '/admin/sessions/rest-7')).session.history).toHaveLength(1);
  });

  it("a virtual key reaches only the sessions it started: another key's gets 403 and nothing of it is read or run", async () => {
    const mine = await createKey(a.url, { name: 'rest-app-1', acp: true });
    const theirs = await createKey(a.url, { name: 'rest-app-2', acp: true });
    expect((await start('rest-key', 'owned by key 1', mine.secret)).result).toMatchObject({ success: true });
    const own = await post('rest-key', { clientRequestId: 'k1', text: 'mine' }, { token: mine.secret });
    expect(own.status).toBe(201);
    await settled('rest-key', own.json.run.runId);
    expect((await events('rest-key', '', { token: mine.secret })).status).toBe(200);
    const denied = await events('rest-key', '', { token: theirs.secret });
    expectError(denied, 403, 'FORBIDDEN');
    expect(JSON.stringify(denied.json)).not.toContain('owned by key 1');
    expectError(await post('rest-key', { clientRequestId: 'k2', text: 'not yours' }, { token: theirs.secret }), 403, 'FORBIDDEN');
    const rec = (await adminGet(a.url, '/admin/sessions/rest-key')).session;
    expect(rec.history.map((t: any) => t.prompt)).toEqual(['owned by key 1', 'mine']);
    expect(Object.keys(rec.metadata.clientRequests)).toEqual(['k1']);
  });
});

describe('federation: a session that lives on a bridge peer', () => {
  it('is served through the gateway that holds its pointer: the message runs on the peer, events are read there, a repeat is still once', async () => {
    expect((await start('rest-moved', 'born on A')).result).toMatchObject({ success: true });
    const tr = await fetch(`${a.url}/admin/sessions/rest-moved/transfer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ to: 'remote' }),
    });
    expect(tr.status, await tr.clone().text()).toBe(200);
    const r = await post('rest-moved', { clientRequestId: 'fed-1', text: 'continued on B via REST' });
    expect(r.status, JSON.stringify(r.json)).toBe(201);
    expect(r.json.run.runId).toMatch(/^run_/);
    // the peer that runs it was told the id: its first update is the `queued` one carrying it, as on A
    expect(r.json.event).toMatchObject({ type: 'run.queued', payload: { clientRequestId: 'fed-1', runId: r.json.run.runId } });
    const all = await settled('rest-moved', r.json.run.runId);
    expect(all.filter((e) => e.payload.clientRequestId === 'fed-1').map((e) => e.type)).toEqual(['run.queued']);
    expect(all.some((e) => e.type === 'run.completed' && e.payload.runId === r.json.run.runId)).toBe(true);
    const onB = (await adminGet(b.url, '/admin/sessions/rest-moved')).session;
    expect(onB.ownerGatewayId).toBe('gw_rest_b');
    expect(onB.history.map((t: any) => t.prompt)).toEqual(['born on A', 'continued on B via REST']);
    // B's events, read on B directly, are the ones A served
    const direct = await events('rest-moved', '?limit=500', { gw: b });
    expect(direct.json.events.map((e: any) => e.seq)).toEqual(all.map((e) => e.seq));
    const repeat = await post('rest-moved', { clientRequestId: 'fed-1', text: 'continued on B via REST' });
    expect(repeat.status).toBe(200);
    expect(repeat.json.run).toMatchObject({ runId: r.json.run.runId, status: 'completed' });
    expect((await adminGet(b.url, '/admin/sessions/rest-moved')).session.history).toHaveLength(2);

    // over /acp/rpc a clientRequestId is not a param of session.message: it is not read, on A nor on the peer
    const plain = await acpRpc(a.url, ACP, 'session.message', { sessionId: 'rest-moved', taskPrompt: 'plain', clientRequestId: 'fed-1' });
    expect(plain.result).toMatchObject({ success: true });
    const after = await events('rest-moved', '?limit=500', { gw: b });
    expect(after.json.events.filter((e: any) => e.payload.clientRequestId === 'fed-1')).toHaveLength(1);
  });
});
