/**
 * Black-box contract of the streaming transports: SSE on POST /acp/rpc (notifications first, then the final
 * envelope, then [DONE]; keepalive on quiet streams; disconnect does not kill the task) and JSON-RPC over
 * WebSocket at /acp (auth and origin at the upgrade, concurrent requests on one socket, pushed updates).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startInProcess, cleanupDirs, waitFor } from '../helpers/env.js';
import type { Gateway } from '../../src/gateway.js';

const TOKEN = 'acp-stream-token';
const config = {
  channels: [
    { name: 'mock', provider: 'mock', models: ['mock-1'] },
    { name: 'slow', provider: 'mock', models: ['slow-1'], options: { chunkDelayMs: 60, chunks: 10 } },
    { name: 'quiet', provider: 'mock', models: ['quiet-1'], options: { delayMs: 900 } },
  ],
  acp: {
    tokens: [TOKEN],
    allowedOrigins: ['http://localhost:*'],
    gateways: [
      { id: 'switchyard', label: 'Switchyard', kind: 'channels', model: 'mock-1' },
      { id: 'slowgw', label: 'Slow', kind: 'channels', model: 'slow-1' },
      { id: 'quietgw', label: 'Quiet', kind: 'channels', model: 'quiet-1' },
    ],
  },
};

let gw: Gateway;
beforeAll(async () => {
  process.env.SWITCHYARD_ACP_KEEPALIVE_MS = '200';
  try {
    gw = await startInProcess(config);
  } finally {
    delete process.env.SWITCHYARD_ACP_KEEPALIVE_MS;
  }
});
afterAll(async () => {
  await gw?.close();
  cleanupDirs();
});

type Json = any;
interface SseEvent {
  at: number;
  data: Json | '[DONE]';
}

/** POSTs with Accept: text/event-stream and collects every `data:` message; `stopAfter` aborts early. */
async function sse(body: unknown, stopAfter?: (e: SseEvent) => boolean): Promise<{ status: number; contentType: string | null; events: SseEvent[] }> {
  const ac = new AbortController();
  const res = await fetch(`${gw.url}/acp/rpc`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify(body),
    signal: ac.signal,
  });
  const events: SseEvent[] = [];
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i: number;
      while ((i = buf.indexOf('\n\n')) !== -1) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const line = block.split('\n').find((l) => l.startsWith('data: '));
        if (!line) continue;
        const raw = line.slice(6);
        const e: SseEvent = { at: Date.now(), data: raw === '[DONE]' ? '[DONE]' : JSON.parse(raw) };
        events.push(e);
        if (stopAfter?.(e)) {
          ac.abort();
          return { status: res.status, contentType: res.headers.get('content-type'), events };
        }
      }
    }
  } catch (err) {
    if (!ac.signal.aborted) throw err;
  }
  return { status: res.status, contentType: res.headers.get('content-type'), events };
}

async function rpc(method: string, params: unknown): Promise<Json> {
  const res = await fetch(`${gw.url}/acp/rpc`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  return ((await res.json()) as Json).result;
}

const sid = () => `s-${Math.random().toString(36).slice(2, 10)}`;
const updates = (evs: SseEvent[]) => evs.filter((e) => e.data !== '[DONE]' && e.data.method === 'session.update').map((e) => e.data.params);

function checkUpdateIds(list: Json[], sessionId: string, threadId = sessionId) {
  let last = 0;
  for (const u of list) {
    expect(u.sessionId).toBe(sessionId);
    expect(u.threadId).toBe(threadId);
    expect(typeof u.turnId).toBe('string');
    expect(u.turnId.length).toBeGreaterThan(0);
    expect(Number.isInteger(u.seq)).toBe(true);
    expect(u.seq).toBeGreaterThan(last);
    last = u.seq;
    expect(['status', 'delta', 'step', 'task']).toContain(u.type); // task: addendum 2026-10 §4 task events
    expect(typeof u.event).toBe('string');
  }
}

describe('SSE on POST /acp/rpc', () => {
  it('notifications first, then the final envelope, then [DONE]; every update carries the ids and an increasing seq', async () => {
    const s = sid();
    const { status, contentType, events } = await sse({
      jsonrpc: '2.0',
      id: 'sse-1',
      method: 'session.start',
      params: { sessionId: s, threadId: 't-1', taskPrompt: 'stream me please', executionTarget: 'gateway' },
    });
    expect(status).toBe(200);
    expect(contentType).toContain('text/event-stream');
    expect(events.at(-1)!.data).toBe('[DONE]');
    const final = events.at(-2)!.data;
    expect(final).toMatchObject({
      jsonrpc: '2.0',
      id: 'sse-1',
      type: 'res',
      ok: true,
      result: { status: 'completed', output: '[mock mock-1] You said: stream me please' },
    });
    expect(final.payload).toEqual(final.result);
    const notes = events.slice(0, -2).map((e) => e.data);
    for (const n of notes) {
      expect(n).toMatchObject({ jsonrpc: '2.0', method: 'session.update', type: 'event', event: 'session.update' });
      expect(n.payload).toEqual(n.params);
      expect(n.id).toBeUndefined();
    }
    const ups = notes.map((n) => n.params);
    checkUpdateIds(ups, s, 't-1');
    expect(ups.every((u) => u.turnId === final.result.turnId)).toBe(true);
    expect(ups[0]).toMatchObject({ type: 'status', event: 'started' });
    expect(ups.at(-1)).toMatchObject({ type: 'status', event: 'completed', status: 'completed' });
    const deltas = ups.filter((u) => u.type === 'delta');
    expect(deltas.length).toBeGreaterThan(1);
    for (const d of deltas) {
      expect(d.event).toBe('delta');
      expect(d.delta).toBe(d.text);
    }
    expect(deltas.map((d) => d.delta).join('')).toBe(final.result.output);
  });

  it('seq keeps increasing across turns of the same session', async () => {
    const s = sid();
    const a = updates(
      (await sse({ jsonrpc: '2.0', id: 1, method: 'session.start', params: { sessionId: s, taskPrompt: 'one', executionTarget: 'gateway' } })).events,
    );
    const b = updates((await sse({ jsonrpc: '2.0', id: 2, method: 'session.message', params: { sessionId: s, taskPrompt: 'two' } })).events);
    checkUpdateIds([...a, ...b], s);
    expect(new Set(b.map((u) => u.turnId)).size).toBe(1);
    expect(b[0].turnId).not.toBe(a[0].turnId);
  });

  it('an error comes back as the final envelope, then [DONE]', async () => {
    const { events } = await sse({ jsonrpc: '2.0', id: 9, method: 'session.message', params: { sessionId: 'never-started', taskPrompt: 'x' } });
    expect(events).toHaveLength(2);
    expect(events[0]!.data).toMatchObject({ id: 9, ok: false, error: { code: -32002, data: { code: 'SESSION_CONTINUATION_UNAVAILABLE' } } });
    expect(events[1]!.data).toBe('[DONE]');
  });

  it('a quiet stream gets xworkmate.bridge.keepalive notifications', async () => {
    const { events } = await sse({
      jsonrpc: '2.0',
      id: 3,
      method: 'session.start',
      params: { sessionId: sid(), taskPrompt: 'take your time', executionTarget: 'gateway', gatewayProviderId: 'quietgw' },
    });
    const keep = events.filter((e) => e.data !== '[DONE]' && e.data.method === 'xworkmate.bridge.keepalive');
    expect(keep.length).toBeGreaterThanOrEqual(2);
    for (const k of keep)
      expect(k.data).toMatchObject({ type: 'event', event: 'xworkmate.bridge.keepalive', params: { intervalMs: 200 }, payload: { intervalMs: 200 } });
    expect(events.at(-2)!.data.result.status).toBe('completed');
  });

  it('a client that disconnects does not kill the task: it completes and is readable with xworkmate.tasks.get', async () => {
    const s = sid();
    const { events } = await sse(
      {
        jsonrpc: '2.0',
        id: 4,
        method: 'session.start',
        params: { sessionId: s, taskPrompt: 'one two three four five six seven eight', executionTarget: 'gateway', gatewayProviderId: 'slowgw' },
      },
      (e) => e.data !== '[DONE]' && e.data.params?.type === 'delta',
    );
    const runId = updates(events)[0].runId;
    expect(typeof runId).toBe('string');
    const mid = await rpc('xworkmate.tasks.get', { runId });
    expect(mid.status).toBe('running');
    const done = await waitFor(async () => {
      const t = await rpc('xworkmate.tasks.get', { runId });
      return t.status === 'completed' ? t : undefined;
    }, 'the abandoned task to complete');
    expect(done.output).toBe('[mock slow-1] You said: one two three four five six seven eight');
    expect(done.progress.updates).toBeGreaterThan(3);
    expect(done.result).toMatchObject({ success: true, status: 'completed', runId });
    const bySession = await rpc('xworkmate.tasks.get', { sessionId: s });
    expect(bySession.runId).toBe(runId);
  });
});

function connect(headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` }): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(gw.url.replace(/^http/, 'ws') + '/acp', { headers });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
    ws.once('error', reject);
  });
}

function collector(ws: WebSocket) {
  const msgs: Array<{ at: number; m: Json }> = [];
  ws.on('message', (d) => msgs.push({ at: Date.now(), m: JSON.parse(d.toString()) }));
  const reply = (id: unknown) => waitFor(() => msgs.find((x) => x.m.type === 'res' && x.m.id === id), `reply ${String(id)}`, 15_000, 10);
  return { msgs, reply };
}

describe('WebSocket at /acp', () => {
  it('refuses the upgrade without a valid token (401) or from a disallowed origin (403)', async () => {
    await expect(connect({})).rejects.toMatchObject({ status: 401 });
    await expect(connect({ authorization: 'Bearer wrong' })).rejects.toMatchObject({ status: 401 });
    await expect(connect({ authorization: `Bearer ${TOKEN}`, origin: 'https://evil.example' })).rejects.toMatchObject({ status: 403 });
    const ok = await connect({ authorization: `Bearer ${TOKEN}`, origin: 'http://localhost:8080' });
    ok.close();
  });

  it('same envelopes; requests on one socket run concurrently; updates are pushed with ids and seq', async () => {
    const ws = await connect();
    const { msgs, reply } = collector(ws);
    const s = sid();
    ws.send(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 'slow',
        method: 'session.start',
        params: { sessionId: s, taskPrompt: 'a b c d e f g h', executionTarget: 'gateway', gatewayProviderId: 'slowgw' },
      }),
    );
    ws.send(JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'health' }));
    const health = await reply(7);
    expect(health.m).toMatchObject({ jsonrpc: '2.0', id: 7, type: 'res', ok: true, result: { status: 'ok' } });
    const slow = await reply('slow');
    expect(health.at).toBeLessThan(slow.at); // health did not wait behind the slow turn
    expect(slow.m.result).toMatchObject({ status: 'completed', output: '[mock slow-1] You said: a b c d e f g h' });
    const ups = msgs.filter((x) => x.m.method === 'session.update').map((x) => x.m);
    for (const u of ups) expect(u).toMatchObject({ type: 'event', event: 'session.update' });
    checkUpdateIds(
      ups.map((u) => u.params),
      s,
    );
    expect(ups.some((u) => u.params.type === 'delta')).toBe(true);
    ws.close();
  });

  it('two sessions on one socket overlap in time', async () => {
    const ws = await connect();
    const { msgs, reply } = collector(ws);
    const [a, b] = [sid(), sid()];
    for (const [id, s] of [
      [1, a],
      [2, b],
    ] as const)
      ws.send(
        JSON.stringify({
          jsonrpc: '2.0',
          id,
          method: 'session.start',
          params: { sessionId: s, taskPrompt: 'x y z w v u', executionTarget: 'gateway', gatewayProviderId: 'slowgw' },
        }),
      );
    await reply(1);
    await reply(2);
    const span = (s: string) => {
      const u = msgs.filter((x) => x.m.method === 'session.update' && x.m.params.sessionId === s);
      return { start: u.find((x) => x.m.params.event === 'started')!.at, end: u.find((x) => x.m.params.event === 'completed')!.at };
    };
    const A = span(a);
    const B = span(b);
    expect(A.start).toBeLessThan(B.end);
    expect(B.start).toBeLessThan(A.end);
    ws.close();
  });

  it('malformed messages get error envelopes; notifications get no reply', async () => {
    const ws = await connect();
    const { msgs, reply } = collector(ws);
    ws.send('{not json');
    ws.send(JSON.stringify({ jsonrpc: '2.0', id: 'n1' }));
    ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'health' }));
    ws.send(JSON.stringify({ jsonrpc: '2.0', id: 'u', method: 'what.ever' }));
    await reply('u');
    await new Promise((r) => setTimeout(r, 100));
    const res = msgs.map((x) => x.m);
    expect(res.find((m) => m.id === null && m.error?.code === -32700)).toBeTruthy();
    expect(res.find((m) => m.id === 'n1')).toMatchObject({ ok: false, error: { code: -32600 } });
    expect(res.find((m) => m.id === 'u')).toMatchObject({ ok: false, error: { code: -32601, data: { code: 'METHOD_NOT_FOUND' } } });
    expect(res).toHaveLength(3);
    ws.close();
  });

  it('a socket that closes mid-turn does not kill the task', async () => {
    const ws = await connect();
    const { msgs } = collector(ws);
    const s = sid();
    ws.send(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'session.start',
        params: { sessionId: s, taskPrompt: 'keep going without me', executionTarget: 'gateway', gatewayProviderId: 'slowgw' },
      }),
    );
    await waitFor(() => msgs.find((x) => x.m.params?.type === 'delta'), 'first delta');
    ws.terminate();
    const done = await waitFor(async () => {
      const t = await rpc('xworkmate.tasks.get', { sessionId: s });
      return t.status === 'completed' ? t : undefined;
    }, 'task to complete after the socket closed');
    expect(done.output).toBe('[mock slow-1] You said: keep going without me');
  });
});
