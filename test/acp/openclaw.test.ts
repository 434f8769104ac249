import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { OpenClawClient, backoffDelay } from '../../src/acp/runtimes/openclaw/client.js';
import {
  ChatTextAccumulator,
  buildConnectParams,
  isAuthFailure,
  messageText,
  parseInboundFrame,
  type ChatEvent,
  type TextChange,
} from '../../src/acp/runtimes/openclaw/protocol.js';
import { OpenClawGateway, createOpenClawRuntime, sessionKeyFor } from '../../src/acp/runtimes/openclaw/runtime.js';
import { MAX_TURN_OUTPUT_CHARS, type UpdateEvent } from '../../src/acp/runtime.js';
import { GatewayError } from '../../src/wire/errors.js';
import type { FakeOpenClaw } from '../fakes/fake-openclaw.js';
import { openClawHarness, rejection, until } from '../helpers/openclaw-harness.js';

const TOKEN = 'oc-secret-token-7f3a9c';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const { log, logLines, fakes, clients, fake, client } = openClawHarness(TOKEN);
const noSecret = (e: GatewayError, f?: FakeOpenClaw) => {
  expect(e.message).not.toContain(TOKEN);
  expect(JSON.stringify(e.details ?? {})).not.toContain(TOKEN);
  if (f) expect(e.message).not.toContain(new URL(f.url).host);
};

// ----------------------------------------------------------------------------------------------------------------

describe('openclaw protocol helpers', () => {
  it('builds the documented operator connect params', () => {
    const p = buildConnectParams({ token: 't', displayName: 'Switchyard' });
    expect(p).toMatchObject({
      minProtocol: 3,
      maxProtocol: 4,
      client: { id: 'gateway-client', mode: 'backend', displayName: 'Switchyard' },
      role: 'operator',
      scopes: ['operator.read', 'operator.write'],
      caps: [],
      auth: { token: 't' },
    });
    expect(p.client.version).toMatch(/\S/);
    expect(p.client.platform).toMatch(/\S/);
    expect(p).not.toHaveProperty('device');
  });

  it('parses frames defensively', () => {
    expect(parseInboundFrame('not json')).toBeUndefined();
    expect(parseInboundFrame('[]')).toBeUndefined();
    expect(parseInboundFrame('{"type":"res","ok":true}')).toBeUndefined(); // no id
    expect(parseInboundFrame('{"type":"event"}')).toBeUndefined();
    expect(parseInboundFrame('{"type":"cancel","id":"x"}')).toBeUndefined();
    expect(parseInboundFrame('{"type":"res","id":"1","ok":false}')).toMatchObject({ ok: false, error: { code: 'UNKNOWN' } });
    expect(parseInboundFrame('{"type":"event","event":"tick","payload":{"ts":1},"seq":-1}')).toEqual({ type: 'event', event: 'tick', payload: { ts: 1 } });
  });

  it('reads message text from the shapes OpenClaw uses', () => {
    expect(messageText('plain')).toBe('plain');
    expect(
      messageText({
        role: 'assistant',
        content: [
          { type: 'thinking', thinking: 'x' },
          { type: 'text', text: 'a' },
          { type: 'text', text: 'b' },
        ],
      }),
    ).toBe('ab');
    expect(messageText({ content: 'c' })).toBe('c');
    expect(messageText({ text: 't' })).toBe('t');
    expect(messageText(42)).toBeUndefined();
  });

  const ev = (over: Partial<ChatEvent>): ChatEvent => ({ runId: 'r', sessionKey: 'k', state: 'delta', ...over });
  const msg = (text: string) => ({ role: 'assistant', content: [{ type: 'text', text }] });

  it('maps v4 deltas (deltaText, replace) to text changes', () => {
    const a = new ChatTextAccumulator(4);
    const out: Array<TextChange | undefined> = [
      a.apply(ev({ deltaText: 'Hel' })),
      a.apply(ev({ deltaText: 'lo' })),
      a.apply(ev({ deltaText: '' })),
      a.apply(ev({ deltaText: 'Hello there', replace: true })), // refresh that extends: just the new part
      a.apply(ev({ deltaText: 'Bye', replace: true })),
      a.apply(ev({ state: 'final', message: msg('Bye!') })),
    ];
    expect(out).toEqual([
      { kind: 'append', text: 'Hel' },
      { kind: 'append', text: 'lo' },
      undefined,
      { kind: 'append', text: ' there' },
      { kind: 'replace', text: 'Bye' },
      { kind: 'append', text: '!' },
    ]);
    expect(a.text).toBe('Bye!');
  });

  it('maps v3 cumulative messages to pieces, and rewrites to a replace', () => {
    const a = new ChatTextAccumulator(3);
    // a v3 server never sends deltaText; if one did, v3 mode ignores it in favour of the cumulative message
    expect(a.apply(ev({ message: msg('He'), deltaText: 'zzz' }))).toEqual({ kind: 'append', text: 'He' });
    expect(a.apply(ev({ message: msg('Hello') }))).toEqual({ kind: 'append', text: 'llo' });
    expect(a.apply(ev({ message: msg('Hello') }))).toBeUndefined();
    expect(a.apply(ev({ message: msg('Other') }))).toEqual({ kind: 'replace', text: 'Other' });
    expect(a.apply(ev({ state: 'final', message: { role: 'assistant', content: [] } }))).toBeUndefined(); // no text parts ≠ erase
    expect(a.text).toBe('Other');
  });

  it('classifies auth refusals by code, not message', () => {
    expect(isAuthFailure({ code: 'INVALID_REQUEST', message: 'x', details: { code: 'AUTH_TOKEN_MISMATCH' } })).toBe(true);
    expect(isAuthFailure({ code: 'INVALID_REQUEST', message: 'x', details: { code: 'PAIRING_REQUIRED' } })).toBe(true);
    expect(isAuthFailure({ code: 'INVALID_REQUEST', message: 'x', details: { code: 'AUTH_RATE_LIMITED' } })).toBe(false);
    expect(isAuthFailure({ code: 'INVALID_REQUEST', message: 'unauthorized' })).toBe(false);
    expect(isAuthFailure({ code: 'UNAVAILABLE', message: 'x', retryAfterMs: 5 })).toBe(false);
  });

  it('backs off from 1 s doubling to a 30 s cap, with bounded jitter', () => {
    const mid = () => 0.5;
    expect([1, 2, 3, 4, 5, 6, 7, 20].map((n) => backoffDelay(n, undefined, mid))).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    expect(backoffDelay(1, undefined, () => 0)).toBe(800);
    expect(backoffDelay(1, undefined, () => 1)).toBe(1200);
    expect(backoffDelay(10, undefined, () => 1)).toBe(30000);
  });
});

// ----------------------------------------------------------------------------------------------------------------

describe('OpenClawClient against the fake gateway', () => {
  it('v4: handshake as documented, deltaText pieces, final text', async () => {
    const f = await fake({ tickIntervalMs: 5000 });
    const c = client(f, { displayName: 'Switchyard' });
    const changes: TextChange[] = [];
    const acks: unknown[] = [];
    const r = await c.chatSend('agent:main:t1', 'hello', { onDelta: (ch) => changes.push(ch), onAck: (a) => acks.push(a) });
    expect(r).toMatchObject({ status: 'completed', text: 'Echo: hello', stopReason: 'end_turn' });
    expect(changes).toEqual([
      { kind: 'append', text: 'Echo' },
      { kind: 'append', text: ': he' },
      { kind: 'append', text: 'llo' },
    ]);
    expect(acks).toEqual([{ runId: r.runId, status: 'started' }]);
    expect(c.protocol).toBe(4);
    expect(c.tickIntervalMs).toBe(5000);
    expect(f.connects).toHaveLength(1);
    expect(f.connects[0]).toMatchObject({
      minProtocol: 3,
      maxProtocol: 4,
      client: { id: 'gateway-client', mode: 'backend', displayName: 'Switchyard' },
      role: 'operator',
      scopes: ['operator.read', 'operator.write'],
      caps: [],
      auth: { token: TOKEN },
    });
    expect(f.connects[0]).not.toHaveProperty('device');
    expect(f.chatSends[0]!.params).toEqual({ sessionKey: 'agent:main:t1', message: 'hello', idempotencyKey: expect.stringMatching(UUID) });
  });

  it('v3: computes pieces from the cumulative message', async () => {
    const f = await fake({ protocol: 3 });
    const c = client(f);
    const changes: TextChange[] = [];
    const r = await c.chatSend('agent:main:t1', 'hello', { onDelta: (ch) => changes.push(ch) });
    expect(c.protocol).toBe(3);
    expect(r.text).toBe('Echo: hello');
    expect(changes).toEqual([
      { kind: 'append', text: 'Echo' },
      { kind: 'append', text: ': he' },
      { kind: 'append', text: 'llo' },
    ]);
  });

  it('v4 replace refreshes the whole text', async () => {
    const f = await fake({ script: () => ({ chunks: ['Hello', { text: 'Goodbye', replace: true }, ' world'] }) });
    const c = client(f);
    const changes: TextChange[] = [];
    const r = await c.chatSend('agent:main:t1', 'x', { onDelta: (ch) => changes.push(ch) });
    expect(changes).toEqual([
      { kind: 'append', text: 'Hello' },
      { kind: 'replace', text: 'Goodbye' },
      { kind: 'append', text: ' world' },
    ]);
    expect(r.text).toBe('Goodbye world');
  });

  it('an error event rejects with a mapped GatewayError', async () => {
    const f = await fake({ script: () => ({ chunks: ['part'], end: 'error', error: { errorMessage: 'provider quota exhausted', errorKind: 'rate_limit' } }) });
    const c = client(f);
    const e = await rejection(c.chatSend('agent:main:t1', 'x'));
    expect(e.code).toBe('RATE_LIMITED');
    expect(e.message).toContain('provider quota exhausted');
    expect(e.details).toMatchObject({ errorKind: 'rate_limit' });
    // the session is free again after a failed run
    f.script = () => ({ chunks: ['ok'] });
    expect((await c.chatSend('agent:main:t1', 'y')).text).toBe('ok');
  });

  it('abort sends chat.abort with the run id and resolves cancelled with the partial text', async () => {
    const f = await fake({ script: () => ({ chunks: ['partial '], end: 'hang' }) });
    const c = client(f);
    const ac = new AbortController();
    let runId = '';
    const p = c.chatSend('agent:main:t1', 'x', {
      signal: ac.signal,
      timeoutMs: 5000,
      onAck: (a) => (runId = a.runId),
      onDelta: () => ac.abort(),
    });
    const r = await p;
    expect(r).toMatchObject({ status: 'cancelled', stopReason: 'cancelled', text: 'partial ' });
    expect(f.aborts).toHaveLength(1);
    expect(f.aborts[0]!.params).toEqual({ sessionKey: 'agent:main:t1', runId });
    expect(f.activeRuns).toBe(0);
    expect(r.terminal).toMatchObject({ state: 'aborted', runId });
  });

  it('an abort before the ack still stops the run once its id is known', async () => {
    const f = await fake({ script: () => ({ chunks: ['a'], end: 'hang', delayMs: 50 }) });
    f.ackDelayMs = 150;
    const c = client(f, { abortGraceMs: 2000 });
    const ac = new AbortController();
    const t0 = Date.now();
    const p = c.chatSend('agent:main:t1', 'x', { signal: ac.signal, timeoutMs: 5000 });
    await until(() => f.chatSends.length === 1);
    ac.abort(); // chat.send is on the wire, its ack is not back yet
    const r = await p;
    expect(r.status).toBe('cancelled');
    expect(Date.now() - t0).toBeLessThan(1500); // ended by the aborted event, not the grace timer
    expect(f.aborts).toHaveLength(1);
    expect(f.aborts[0]!.params).toEqual({ sessionKey: 'agent:main:t1', runId: expect.stringMatching(UUID) });
    await until(() => f.activeRuns === 0);
  });

  it('an abort before anything was sent sends nothing', async () => {
    const f = await fake();
    const c = client(f);
    const ac = new AbortController();
    const p = c.chatSend('agent:main:t1', 'x', { signal: ac.signal });
    ac.abort();
    expect((await p).status).toBe('cancelled');
    await new Promise((r) => setTimeout(r, 50));
    expect(f.chatSends).toHaveLength(0);
  });

  it('v3 rewrites count toward maxOutputChars with their whole text: past it the call fails and the run is aborted', async () => {
    const a = 'a'.repeat(400);
    const b = 'b'.repeat(400);
    const f = await fake({
      protocol: 3,
      script: () => ({ chunks: [a, { text: b, replace: true }, { text: a, replace: true }, { text: b, replace: true }], end: 'hang' }),
    });
    const c = client(f);
    const changes: TextChange[] = [];
    const e = await rejection(c.chatSend('agent:main:t1', 'x', { timeoutMs: 5000, maxOutputChars: 1000, onDelta: (ch) => changes.push(ch) }));
    expect(e).toMatchObject({
      code: 'UPSTREAM_BAD_RESPONSE',
      message: "the OpenClaw run's output passed 1000 characters (pieces and replacements counted): the run was stopped",
    });
    // 400 appended + 400 replaced; the next 400 would pass 1000
    expect(changes).toEqual([
      { kind: 'append', text: a },
      { kind: 'replace', text: b },
    ]);
    await until(() => f.aborts.length === 1 && f.activeRuns === 0);
    expect(f.aborts[0]!.params).toEqual({ sessionKey: 'agent:main:t1', runId: f.runIdOf(f.chatSends[0]!.params.idempotencyKey) });
    expect(c.inFlight).toEqual({ requests: 0, runs: 0 });
  });

  it('events kept before the ack are bounded by maxOutputChars of frames; later ones are dropped', async () => {
    const f = await fake({ script: () => ({ chunks: [], end: 'hang' }) });
    f.ackDelayMs = 300;
    const c = client(f);
    await c.connect();
    const events: ChatEvent[] = [];
    const p = c.chatSend('agent:main:t1', 'x', { timeoutMs: 5000, maxOutputChars: 5000, onEvent: (ev) => events.push(ev) });
    await until(() => f.chatSends.length === 1);
    const runId = f.runIdOf(f.chatSends[0]!.params.idempotencyKey)!;
    // 50 frames of ~1 150 characters before the ack: 4 fit in 5 000
    for (let i = 0; i < 50; i++) f.broadcast({ runId, sessionKey: 'agent:main:t1', seq: i, state: 'delta', deltaText: String(i % 10).repeat(1000) });
    await until(() => events.length === 4); // handled once the ack came
    f.broadcast({ runId, sessionKey: 'agent:main:t1', seq: 50, state: 'final', message: 'done' });
    expect(await p).toMatchObject({ status: 'completed', text: 'done' });
    expect(events.map((e) => e.seq)).toEqual([0, 1, 2, 3, 50]);
  });

  it('auth failure: clear error, no retry loop, token scrubbed', async () => {
    const f = await fake({ echoTokenInErrors: true, token: 'the-real-token' });
    const c = new OpenClawClient({ url: f.url, token: TOKEN, log, backoff: { initialMs: 10, maxMs: 10 } });
    clients.push(c);
    const e1 = await rejection(c.chatSend('agent:main:t1', 'x'));
    expect(e1.code).toBe('UPSTREAM_AUTH_FAILED');
    expect(e1.details).toMatchObject({ openclawDetailCode: 'AUTH_TOKEN_MISMATCH' });
    expect(e1.retryable).toBe(false);
    expect(e1.message).toMatch(/token/i);
    expect(e1.message).toContain('[redacted]'); // the fake echoed the token; the client scrubbed it
    noSecret(e1, f);
    const t0 = Date.now();
    const e2 = await rejection(c.chatSend('agent:main:t1', 'y'));
    expect(Date.now() - t0).toBeLessThan(200);
    expect(e2.code).toBe('UPSTREAM_AUTH_FAILED');
    await new Promise((r) => setTimeout(r, 100));
    expect(f.connections).toBe(1);
    expect(f.connects).toHaveLength(1);
    // it was logged (so the afterEach no-token check looks at real lines)
    expect(logLines.some((l) => l.includes('openclaw authentication failed') && l.includes('[redacted]'))).toBe(true);
  });

  it('UNAVAILABLE at connect is retried after retryAfterMs', async () => {
    const f = await fake({ unavailableConnects: 1, retryAfterMs: 300 });
    const c = client(f);
    const t0 = Date.now();
    const hello = await c.connect();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    expect(hello.protocol).toBe(4);
    expect(f.connects).toHaveLength(2);
  });

  it('a connection dropped mid-run fails that run; the next request reconnects', async () => {
    let n = 0;
    const f = await fake({ script: () => (++n === 1 ? { chunks: ['a', 'b'], end: 'drop' } : { chunks: ['fine'] }) });
    const c = client(f);
    const e = await rejection(c.chatSend('agent:main:t1', 'x'));
    expect(e.code).toBe('UPSTREAM_CONNECTION_LOST');
    expect(e.message).toMatch(/connection to the OpenClaw gateway closed/);
    expect(e.retryable).toBe(true);
    noSecret(e, f);
    const r = await c.chatSend('agent:main:t1', 'y');
    expect(r.text).toBe('fine');
    expect(f.connections).toBe(2);
  });

  it('a connection lost before the ack: resent once with the same idempotency key', async () => {
    const f = await fake();
    const c = client(f);
    await c.connect();
    f.dropOnChatSend = 1;
    const r = await c.chatSend('agent:main:t1', 'again');
    expect(r.text).toBe('Echo: again');
    expect(f.chatSends).toHaveLength(2);
    expect(f.chatSends[0]!.params.idempotencyKey).toBe(f.chatSends[1]!.params.idempotencyKey);
    expect(f.connections).toBe(2);
  });

  it('idempotency keys are UUIDs, one per send', async () => {
    const f = await fake();
    const c = client(f);
    for (let i = 0; i < 3; i++) await c.chatSend(`agent:main:t${i}`, 'x');
    const keys = f.chatSends.map((s) => s.params.idempotencyKey as string);
    expect(keys).toHaveLength(3);
    for (const k of keys) expect(k).toMatch(UUID);
    expect(new Set(keys).size).toBe(3);
  });

  it('tick watchdog: 2× tick silence closes with 4000 and fails the run; the next request reconnects', async () => {
    const f = await fake({ tickIntervalMs: 100, script: () => ({ chunks: [], end: 'hang' }) });
    const c = client(f);
    await c.connect();
    await new Promise((r) => setTimeout(r, 350)); // ticks keep an idle connection alive
    expect(c.connected).toBe(true);
    f.ticking = false;
    const t0 = Date.now();
    const e = await rejection(c.chatSend('agent:main:t1', 'x', { timeoutMs: 5000 }));
    expect(e.code).toBe('UPSTREAM_CONNECTION_LOST');
    expect(e.message).toMatch(/2× tick interval/);
    expect(Date.now() - t0).toBeLessThan(1500);
    await until(() => f.clientCloses.some((x) => x.code === 4000));
    f.ticking = true;
    f.script = () => ({ chunks: ['back'] });
    expect((await c.chatSend('agent:main:t1', 'y')).text).toBe('back');
    expect(f.connections).toBe(2);
  });

  it('an unreachable gateway: clear error without the address; back-off refuses an immediate retry', async () => {
    const f = await fake();
    const url = f.url;
    await f.close();
    fakes.splice(fakes.indexOf(f), 1);
    const c = new OpenClawClient({ url, token: TOKEN, log, maxBackoffWaitMs: 0 });
    clients.push(c);
    const e1 = await rejection(c.connect());
    expect(e1.code).toBe('UPSTREAM_UNREACHABLE');
    expect(e1.retryAfterSec).toBeUndefined();
    expect(e1.message).toContain('ECONNREFUSED');
    expect(e1.message).not.toContain(new URL(url).host);
    const e2 = await rejection(c.chatSend('agent:main:t1', 'x'));
    // refused by the back-off, not a new attempt: it says when the next one is
    expect(e2.code).toBe('UPSTREAM_UNREACHABLE');
    expect(e2.retryAfterSec).toBeGreaterThan(0);
    expect(e2.message).toMatch(/next connect attempt in/);
    expect(e2.retryable).toBe(true);
    expect(e2.retryAfterSec).toBeGreaterThanOrEqual(1);
    expect(c.connectAttempts).toBe(1);
  });

  it('a URL with a fragment is dialled without it (ws refuses one; it failed every connect as an internal error)', async () => {
    const f = await fake();
    f.script = () => ({ chunks: ['reached'] });
    const c = client(f, { url: `${f.url}#openclaw-fragment` });
    expect((await c.chatSend('agent:main:t1', 'x')).text).toBe('reached');
    expect(c.connectAttempts).toBe(1);
  });

  it('a URL that does not parse is refused when the client is made, without quoting it', () => {
    // a port out of range: `^wss?://` took it, and then ws's own error quoted it, credentials and all
    const url = 'ws://operator:unparsed-pass-4d2c@127.0.0.1:99999/';
    expect(() => new OpenClawClient({ url, token: TOKEN, log })).toThrow(/^OpenClaw url must be a ws:\/\/ or wss:\/\/ URL$/);
  });

  it('a request timeout is bounded and reported', async () => {
    const f = await fake();
    const c = client(f, { requestTimeoutMs: 150 });
    f.unanswered.add('health');
    const t0 = Date.now();
    const e = await rejection(c.request('health', {}));
    expect(e.code).toBe('UPSTREAM_TIMEOUT');
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(c.connected).toBe(true); // one slow request does not kill the connection
  });
});

describe('the fake follows the documented handshake', () => {
  it('rejects a first request that is not connect, and unknown connect fields', async () => {
    const f = await fake();
    const first = await new Promise<{ frames: any[]; code: number }>((resolve) => {
      const ws = new WebSocket(f.url);
      const frames: any[] = [];
      ws.on('message', (d) => {
        const m = JSON.parse(d.toString());
        frames.push(m);
        if (m.event === 'connect.challenge') ws.send(JSON.stringify({ type: 'req', id: '1', method: 'chat.send', params: {} }));
      });
      ws.on('close', (code) => resolve({ frames, code }));
    });
    expect(first.frames[0]).toMatchObject({ type: 'event', event: 'connect.challenge', payload: { nonce: expect.any(String), ts: expect.any(Number) } });
    expect(first.frames[1]).toMatchObject({ type: 'res', id: '1', ok: false, error: { code: 'INVALID_REQUEST' } });
    expect(first.code).toBe(1008);

    const params = { ...buildConnectParams({ token: TOKEN }), surprise: true };
    const second = await new Promise<any>((resolve) => {
      const ws = new WebSocket(f.url);
      ws.on('message', (d) => {
        const m = JSON.parse(d.toString());
        if (m.event === 'connect.challenge') ws.send(JSON.stringify({ type: 'req', id: 'c', method: 'connect', params }));
        if (m.type === 'res') resolve(m);
      });
    });
    expect(second).toMatchObject({ ok: false, error: { code: 'INVALID_REQUEST', message: expect.stringContaining('surprise') } });
  });
});

// ----------------------------------------------------------------------------------------------------------------

describe('OpenClaw runtime', () => {
  const turn = (text: string) => ({ turnId: 't1', text, history: [] });

  it('derives the session key from the session id only', () => {
    expect(sessionKeyFor('s1')).toBe('agent:main:switchyard-s1');
    expect(sessionKeyFor('abc_1.2-x', 'ops')).toBe('agent:ops:switchyard-abc_1.2-x');
    const weird = sessionKeyFor('Tenant/A:agent:main:main');
    expect(weird).toMatch(/^agent:main:switchyard-h[0-9a-f]{40}$/);
    expect(sessionKeyFor('Tenant/A:agent:main:main')).toBe(weird);
    expect(sessionKeyFor('S1')).not.toBe(sessionKeyFor('s1'));
  });

  it('runs a turn: running status, deltas with the chat event fields, output', async () => {
    const f = await fake();
    const c = client(f);
    const rt = createOpenClawRuntime({ client: c, sessionId: 's1' });
    const updates: UpdateEvent[] = [];
    const out = await rt.prompt(turn('hi there'), (u) => updates.push(u), new AbortController().signal);
    expect(out).toMatchObject({ output: 'Echo: hi there', stopReason: 'end_turn' });
    expect(out.messages).toEqual([
      { role: 'user', content: 'hi there' },
      { role: 'assistant', content: 'Echo: hi there' },
    ]);
    expect(updates[0]).toMatchObject({ type: 'status', event: 'running', structuredEvent: { runId: expect.any(String), status: 'started' } });
    const deltas = updates.filter((u) => u.type === 'delta');
    expect(deltas.map((d) => d.delta).join('')).toBe('Echo: hi there');
    for (const d of deltas) {
      expect(d).toMatchObject({ event: 'delta', text: d.delta, structuredEvent: { state: 'delta', sessionKey: 'agent:main:switchyard-s1' } });
    }
    expect(f.chatSends[0]!.params.sessionKey).toBe('agent:main:switchyard-s1');
    await rt.close();
  });

  it('a replace becomes a step with the whole text; output is the final text', async () => {
    const f = await fake({ script: () => ({ chunks: ['draft', { text: 'Final', replace: true }] }) });
    const rt = createOpenClawRuntime({ client: client(f), sessionId: 's2' });
    const updates: UpdateEvent[] = [];
    const out = await rt.prompt(turn('x'), (u) => updates.push(u), new AbortController().signal);
    expect(updates.filter((u) => u.type !== 'status').map((u) => [u.type, u.event, u.text])).toEqual([
      ['delta', 'delta', 'draft'],
      ['step', 'running', 'Final'],
    ]);
    expect(out.output).toBe('Final');
  });

  /** total size of the updates as JSON (what a client receives of them, before the runner's envelope) */
  const updateBytes = (us: UpdateEvent[]) => us.reduce((n, u) => n + Buffer.byteLength(JSON.stringify(u)), 0);
  const long = (n: number) => Array.from({ length: n }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');

  it('a long v4 answer in many deltas that carry the text so far: the updates grow with its length, not its square', async () => {
    const answer = long(100_000);
    const pieces = answer.match(/[\s\S]{1,400}/g)!; // 250 deltas, each (as real v4 servers send it) with `message` = the text so far
    for (const chunks of [pieces, pieces.map((_, i) => ({ text: pieces.slice(0, i + 1).join(''), replace: true }))]) {
      const f = await fake({ script: () => ({ chunks, delayMs: 1 }) });
      const rt = createOpenClawRuntime({ client: client(f), sessionId: 's-long' });
      const updates: UpdateEvent[] = [];
      const out = await rt.prompt(turn('x'), (u) => updates.push(u), new AbortController().signal);
      expect(out.output).toBe(answer);
      const deltas = updates.filter((u) => u.type === 'delta');
      expect(deltas.map((d) => d.delta).join('')).toBe(answer);
      expect(updates.filter((u) => u.type === 'step')).toEqual([]); // a full-text refresh that extends is a delta
      for (const d of deltas) {
        // the event's own fields, never its text (the piece is in `delta`/`text`)
        expect(d.structuredEvent).toEqual({
          runId: expect.any(String),
          sessionKey: 'agent:main:switchyard-s-long',
          state: 'delta',
          seq: expect.any(Number),
          ...(chunks === pieces ? {} : { replace: true }),
        });
      }
      // every piece goes out twice (`delta` and `text`), plus a small envelope: ~2.3× the answer (it was ~125× and ~250×)
      expect(updateBytes(updates)).toBeLessThan(3 * answer.length);
      await rt.close();
    }
  });

  it('unknown fields, usage and a huge message in a chat event do not reach the update', async () => {
    const f = await fake({ script: () => ({ chunks: ['hel'], end: 'hang' }) });
    const rt = createOpenClawRuntime({ client: client(f), sessionId: 's-junk', turnTimeoutMs: 5000 });
    const updates: UpdateEvent[] = [];
    const p = rt.prompt(turn('x'), (u) => updates.push(u), new AbortController().signal);
    await until(() => updates.some((u) => u.type === 'delta'));
    const runId = updates.find((u) => u.type === 'status')!.structuredEvent as { runId: string };
    f.broadcast({
      runId: runId.runId,
      sessionKey: 'agent:main:switchyard-s-junk',
      seq: 7,
      state: 'delta',
      deltaText: 'lo',
      message: { role: 'assistant', content: [{ type: 'text', text: 'hello' }], junk: 'j'.repeat(1_000_000) },
      usage: { input: 1, junk: 'u'.repeat(1_000_000) },
      junk: 'x'.repeat(1_000_000),
    });
    await until(() => updates.filter((u) => u.type === 'delta').length === 2);
    f.broadcast({ runId: runId.runId, sessionKey: 'agent:main:switchyard-s-junk', seq: 8, state: 'final', message: 'hello', junk: 'y'.repeat(1_000_000) });
    expect((await p).output).toBe('hello');
    const last = updates.filter((u) => u.type === 'delta')[1]!;
    expect(last).toEqual({
      type: 'delta',
      event: 'delta',
      delta: 'lo',
      text: 'lo',
      structuredEvent: { runId: runId.runId, sessionKey: 'agent:main:switchyard-s-junk', state: 'delta', seq: 7 },
    });
    expect(updateBytes(updates)).toBeLessThan(1000);
  });

  it('replacements count toward the turn output bound: a server that keeps replacing the text is stopped', async () => {
    const f = await fake();
    f.deltaMessage = false; // only the replacements themselves
    const size = 2 * 1024 * 1024;
    const a = 'a'.repeat(size);
    const b = 'b'.repeat(size);
    // 9 different whole texts of 2 Mi characters: 18 Mi characters of replacements, past the 16 Mi bound
    f.script = () => ({ chunks: Array.from({ length: 9 }, (_, i) => ({ text: i % 2 ? b : a, replace: true })), end: 'hang', delayMs: 2 });
    const rt = createOpenClawRuntime({ client: client(f), sessionId: 's-big', turnTimeoutMs: 20_000 });
    const updates: UpdateEvent[] = [];
    const e = await rejection(rt.prompt(turn('x'), (u) => updates.push(u), new AbortController().signal));
    expect(e.code).toBe('UPSTREAM_BAD_RESPONSE');
    expect(e.message).toMatch(new RegExp(`output passed ${MAX_TURN_OUTPUT_CHARS} characters`));
    const sent = updates.reduce((n, u) => n + (u.type === 'delta' ? u.delta!.length : (u.text?.length ?? 0)), 0);
    expect(sent).toBeLessThanOrEqual(MAX_TURN_OUTPUT_CHARS);
    expect(updates.filter((u) => u.type === 'delta' || u.type === 'step')).toHaveLength(8);
    // and the run on the server is stopped
    await until(() => f.aborts.length === 1 && f.activeRuns === 0);
    expect(f.aborts[0]!.params).toEqual({ sessionKey: 'agent:main:switchyard-s-big', runId: expect.stringMatching(UUID) });
  });

  it('cancel: chat.abort, stopReason cancelled', async () => {
    const f = await fake({ script: () => ({ chunks: ['so far'], end: 'hang' }) });
    const rt = createOpenClawRuntime({ client: client(f), sessionId: 's3', turnTimeoutMs: 5000 });
    const ac = new AbortController();
    const out = await rt.prompt(turn('x'), (u) => u.type === 'delta' && ac.abort(), ac.signal);
    expect(out).toMatchObject({ stopReason: 'cancelled', output: 'so far' });
    expect(f.aborts[0]!.params.sessionKey).toBe('agent:main:switchyard-s3');
  });

  it('close() during a turn cancels it and refuses later turns', async () => {
    const f = await fake({ script: () => ({ chunks: ['x'], end: 'hang' }) });
    const rt = createOpenClawRuntime({ client: client(f), sessionId: 's5', turnTimeoutMs: 5000 });
    const p = rt.prompt(turn('x'), () => undefined, new AbortController().signal);
    await until(() => f.activeRuns === 1);
    await rt.close();
    expect((await p).stopReason).toBe('cancelled');
    await until(() => f.activeRuns === 0);
    const e = await rejection(rt.prompt(turn('y'), () => undefined, new AbortController().signal));
    expect(e.code).toBe('SHUTTING_DOWN');
  });

  it('a failed run rejects with a GatewayError safe to show', async () => {
    const f = await fake({ script: () => ({ end: 'error', error: { errorMessage: 'context too long', errorKind: 'context_length' } }) });
    const rt = createOpenClawRuntime({ client: client(f), sessionId: 's4' });
    const e = await rejection(rt.prompt(turn('x'), () => undefined, new AbortController().signal));
    expect(e.code).toBe('UPSTREAM_CLIENT_ERROR');
    expect(e.message).toContain('context too long');
    noSecret(e, f);
  });

  it('OpenClawGateway: factory per session over one connection; probe enabled/disabled without addresses', async () => {
    const f = await fake();
    const gw = new OpenClawGateway({ id: 'openclaw', label: 'OpenClaw', kind: 'openclaw', url: f.url, token: TOKEN }, { log });
    try {
      expect(await gw.probe()).toEqual({ enabled: true });
      const ctx = (sessionId: string) =>
        ({
          sessionId,
          threadId: sessionId,
          target: { executionTarget: 'gateway', providerId: '', gatewayProviderId: 'openclaw', model: '' },
          workingDirectory: undefined,
        }) as any;
      const a = await gw.factory(ctx('a'));
      const b = await gw.factory(ctx('b'));
      const [ra, rb] = await Promise.all([
        a.prompt(turn('one'), () => undefined, new AbortController().signal),
        b.prompt(turn('two'), () => undefined, new AbortController().signal),
      ]);
      expect([ra.output, rb.output]).toEqual(['Echo: one', 'Echo: two']);
      await a.close(); // a session's close leaves the shared connection up
      expect(gw.client.connected).toBe(true);
      expect(f.connections).toBe(1);
    } finally {
      await gw.close();
    }
    const bad = new OpenClawGateway({ id: 'oc2', url: f.url, token: 'wrong-token-123' }, { log });
    try {
      const p = await bad.probe();
      expect(p.enabled).toBe(false);
      if (!p.enabled) {
        expect(p.reason).toMatch(/token/);
        expect(p.reason).not.toContain(new URL(f.url).host);
        expect(p.reason).not.toContain('wrong-token-123');
      }
    } finally {
      await bad.close();
    }
  });
});
