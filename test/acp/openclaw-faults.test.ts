/**
 * The OpenClaw client against a broken or hostile OpenClaw gateway (the fake in test/fakes/fake-openclaw.ts,
 * misbehaving on purpose): malformed frames, handshakes that go wrong, connections that drop or never answer,
 * server text that echoes the token, events that arrive too late. Whatever the server does, a call ends with a
 * GatewayError (or a result), the connection recovers, and nothing waits longer than its bound.
 */
import { describe, expect, it } from 'vitest';
import type { FakeOpenClaw } from '../fakes/fake-openclaw.js';
import { openClawHarness, rejection, until } from '../helpers/openclaw-harness.js';

const TOKEN = 'oc-faults-token-5b2e8d';
const { logLines, fake, client } = openClawHarness(TOKEN);
/** the run the fake started for the client's latest chat.send */
const lastRunId = (f: FakeOpenClaw): string => f.runIdOf(f.chatSends.at(-1)!.params.idempotencyKey)!;

describe('OpenClaw: delays the server asks for are bounded', () => {
  it('a huge retryAfterMs on a refused connect does not stop reconnecting once the server is fine', async () => {
    const f = await fake();
    f.connectError = { code: 'INVALID_REQUEST', message: 'slow down', details: { code: 'AUTH_RATE_LIMITED' }, retryAfterMs: 1e15 };
    const c = client(f, { backoff: { initialMs: 20, maxMs: 100, jitter: 0 }, maxBackoffWaitMs: 1000 });
    const e = await rejection(c.connect());
    expect(e.code).toBe('UPSTREAM_CLIENT_ERROR');
    expect(e.details).toMatchObject({ openclawDetailCode: 'AUTH_RATE_LIMITED' });
    f.connectError = undefined;
    // the next request waits out the back-off (capped at 100 ms), not the server's 31 700 years
    const hello = await c.connect();
    expect(hello.protocol).toBe(4);
    expect(f.connects).toHaveLength(2);
  });

  it('UNAVAILABLE with a huge retryAfterMs is retried within the connect budget', async () => {
    const f = await fake({ unavailableConnects: 1, retryAfterMs: 1e15 });
    const c = client(f, { backoff: { initialMs: 20, maxMs: 100, jitter: 0 } });
    expect((await c.connect()).protocol).toBe(4);
    expect(f.connects).toHaveLength(2);
  });

  it('UNAVAILABLE with retryAfterMs 0 is retried on the back-off schedule, not in a tight loop', async () => {
    const f = await fake({ unavailableConnects: 1e9, retryAfterMs: 0 });
    const c = client(f, { connectBudgetMs: 1000, backoff: { initialMs: 100, maxMs: 400, jitter: 0 } });
    const t0 = Date.now();
    const e = await rejection(c.connect());
    expect(e.code).toBe('UPSTREAM_ERROR');
    expect(e.message).toMatch(/UNAVAILABLE/);
    // 100 + 200 + 400 + 400 ms of waiting fit in the 1 s budget: a handful of attempts, not hundreds
    expect(f.connections).toBeLessThanOrEqual(6);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(600);
  });
});

describe('OpenClaw: close() does not wait for a broken server', () => {
  it('ends a handshake the server never answers at once; a call waiting on it ends SHUTTING_DOWN', async () => {
    const f = await fake();
    f.handshake = 'no-answer';
    const c = client(f, { handshakeTimeoutMs: 10_000 });
    const send = rejection(c.chatSend('agent:main:t1', 'x'));
    await until(() => f.connects.length === 1);
    const t0 = Date.now();
    await c.close();
    expect(Date.now() - t0).toBeLessThan(1000);
    const e = await send;
    expect(e.code).toBe('SHUTTING_DOWN');
    await until(() => f.clientCloses.length === 1); // the socket was closed, not left open
  });

  it('ends the wait between UNAVAILABLE retries at once', async () => {
    const f = await fake({ unavailableConnects: 1e9, retryAfterMs: 5000 });
    const c = client(f, { backoff: { initialMs: 100, maxMs: 10_000, jitter: 0 } });
    const conn = rejection(c.connect());
    await until(() => logLines.some((l) => l.includes('retrying connect')));
    const t0 = Date.now();
    await c.close();
    expect(Date.now() - t0).toBeLessThan(1000);
    expect((await conn).code).toBe('SHUTTING_DOWN');
    expect(f.connects).toHaveLength(1);
  });
});

describe('OpenClaw: no server value reaches an error unscrubbed', () => {
  it('the token echoed in an error code or detail code is redacted, and long codes are cut', async () => {
    const f = await fake();
    f.connectError = { code: `E_${TOKEN}${'x'.repeat(5000)}`, message: `bad ${TOKEN}`, details: { code: `AUTH_${TOKEN}` } };
    const c = client(f);
    const e = await rejection(c.connect());
    expect(e.code).toBe('UPSTREAM_AUTH_FAILED');
    expect(e.message).not.toContain(TOKEN);
    expect(JSON.stringify(e.details)).not.toContain(TOKEN);
    expect(e.message.length).toBeLessThan(1000);
    expect(e.message).toContain('[redacted]');
  });

  it('the token echoed in a chat error kind is redacted', async () => {
    const f = await fake({ script: () => ({ end: 'error', error: { errorMessage: `failed for ${TOKEN}`, errorKind: `k_${TOKEN}` as 'unknown' } }) });
    const c = client(f);
    const e = await rejection(c.chatSend('agent:main:t1', 'x'));
    expect(e.code).toBe('UPSTREAM_ERROR');
    expect(e.message).not.toContain(TOKEN);
    expect(JSON.stringify(e.details)).not.toContain(TOKEN);
  });
});

// ----------------------------------------------------------------------------------------------------------------
// what a broken server does that the client already handled: kept as regression tests

describe('OpenClaw: malformed frames', () => {
  it('are ignored during a run, which then completes; nothing is left in flight', async () => {
    const f = await fake({ script: () => ({ chunks: ['so far'], end: 'hang' }) });
    const c = client(f);
    const key = 'agent:main:t1';
    const p = c.chatSend(key, 'x', { timeoutMs: 10_000 });
    await until(() => f.activeRuns === 1);
    const runId = lastRunId(f);
    const chat = (payload: unknown) => JSON.stringify({ type: 'event', event: 'chat', payload });
    for (const raw of [
      'not json',
      '[1,2]',
      '42',
      '"text"',
      'null',
      '{"type":"res","id":"no-such-request","ok":true,"payload":{}}',
      '{"type":"res","id":"x","ok":"yes"}',
      '{"type":"event"}',
      '{"type":"event","event":"shutdown","payload":"soon"}',
      '{"type":"event","event":"shutdown","payload":null}',
      chat({ runId: 42, sessionKey: key, state: 'delta', deltaText: 'bad type' }),
      chat({ runId, sessionKey: key, state: 'bogus', deltaText: 'bad state' }),
      chat({ runId, sessionKey: key, state: 'delta', deltaText: 7, message: { content: 9 } }),
      chat({ runId: 'another-run', sessionKey: key, state: 'final', message: 'not ours' }),
      chat({ runId: 'unknown-run', sessionKey: 'agent:main:nobody', state: 'final', message: 'no such session' }),
    ])
      f.sendRaw(raw);
    f.sendRaw(Buffer.from(chat({ runId, sessionKey: key, state: 'final', message: 'binary frame' })), true);
    f.broadcast({ runId, sessionKey: key, seq: 9, state: 'final', message: 'the end' });
    const r = await p;
    expect(r).toMatchObject({ status: 'completed', text: 'the end' });
    expect(c.connected).toBe(true);
    expect(c.inFlight).toEqual({ requests: 0, runs: 0 });
  });

  it('a response with payload and error follows `ok`; a wrong type or no error shape fails clearly; the session stays usable', async () => {
    const f = await fake();
    const c = client(f);
    f.answer = (req) =>
      req.method === 'chat.send'
        ? [
            { type: 'res', id: req.id, ok: true, payload: { runId: 'r-both', status: 'started' }, error: { code: 'X', message: 'ignored' } },
            { type: 'event', event: 'chat', payload: { runId: 'r-both', sessionKey: req.params.sessionKey, state: 'final', message: 'both' } },
          ]
        : undefined;
    expect((await c.chatSend('agent:main:t1', 'x')).text).toBe('both');
    f.answer = (req) => (req.method === 'chat.send' ? [{ type: 'res', id: req.id, ok: true, payload: { runId: 42 } }] : undefined);
    const e1 = await rejection(c.chatSend('agent:main:t1', 'x'));
    expect(e1).toMatchObject({ code: 'UPSTREAM_BAD_RESPONSE', message: 'OpenClaw chat.send answered without a runId' });
    f.answer = (req) => (req.method === 'chat.send' ? [{ type: 'res', id: req.id, ok: false, payload: { runId: 'r' } }] : undefined);
    const e2 = await rejection(c.chatSend('agent:main:t1', 'x'));
    expect(e2.code).toBe('UPSTREAM_ERROR');
    expect(e2.message).toMatch(/request failed without an error shape/);
    f.answer = undefined;
    expect((await c.chatSend('agent:main:t1', 'y')).text).toBe('Echo: y');
    expect(c.inFlight).toEqual({ requests: 0, runs: 0 });
  });

  it('a frame over the inbound limit ends the connection and fails the run, saying why; the next request reconnects', async () => {
    const f = await fake({ script: () => ({ chunks: ['a'], end: 'hang' }) });
    const c = client(f, { maxInboundBytes: 4096 });
    // the bad frame goes once the run has started here (its first chunk is in): before chat.send's ack, a lost
    // connection resends it on a new one, and that run would hang instead
    let streaming = false;
    const p = rejection(c.chatSend('agent:main:t1', 'x', { timeoutMs: 10_000, onDelta: () => (streaming = true) }));
    await until(() => streaming);
    f.sendRaw(JSON.stringify({ type: 'event', event: 'tick', payload: { pad: 'x'.repeat(10_000) } }));
    const e = await p;
    expect(e.code).toBe('UPSTREAM_CONNECTION_LOST');
    expect(e.message).toBe('connection to the OpenClaw gateway closed (Max payload size exceeded)');
    f.script = () => ({ chunks: ['back'] });
    expect((await c.chatSend('agent:main:t1', 'y')).text).toBe('back');
    expect(f.connections).toBe(2);
  });
});

describe('OpenClaw: frames ws refuses after hello-ok', () => {
  it('a text frame that is not UTF-8 mid-run fails the run at once, even from a server that never answers the close', async () => {
    const f = await fake({ script: () => ({ chunks: ['a'], end: 'hang' }) });
    const c = client(f);
    // once the run has started here (as above: before the ack a lost connection resends chat.send)
    let streaming = false;
    const p = rejection(c.chatSend('agent:main:t1', 'x', { timeoutMs: 20_000, onDelta: () => (streaming = true) }));
    await until(() => streaming);
    // ws closes with 1007 and waits for the server's close frame, which a server that stopped reading never sends
    f.stopReading();
    const t0 = Date.now();
    f.sendRaw(Buffer.from('{"type":"event","event":"tick","payload":{"note":"\xff\xfe"}}', 'latin1'));
    const e = await p;
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(e).toMatchObject({
      code: 'UPSTREAM_CONNECTION_LOST',
      message: 'connection to the OpenClaw gateway closed (Invalid WebSocket frame: invalid UTF-8 sequence)',
    });
    expect(c.connected).toBe(false);
    expect(c.inFlight).toEqual({ requests: 0, runs: 0 });
    // the next request reconnects
    f.script = () => ({ chunks: ['back'] });
    expect((await c.chatSend('agent:main:t1', 'y')).text).toBe('back');
    expect(f.connections).toBe(2);
  });
});

describe('OpenClaw: handshakes that go wrong', () => {
  const backoff = { initialMs: 20, maxMs: 50, jitter: 0 };
  it('no challenge, a challenge then silence: bounded by the handshake timeout, then a working server connects', async () => {
    const f = await fake();
    const c = client(f, { handshakeTimeoutMs: 300, backoff });
    f.handshake = 'silent';
    const e1 = await rejection(c.connect());
    expect(e1).toMatchObject({ code: 'UPSTREAM_TIMEOUT', message: expect.stringMatching(/no connect\.challenge/) });
    f.handshake = 'no-answer';
    const e2 = await rejection(c.connect());
    expect(e2).toMatchObject({ code: 'UPSTREAM_TIMEOUT', message: expect.stringMatching(/no hello-ok/) });
    f.handshake = 'normal';
    expect((await c.connect()).protocol).toBe(4);
    await until(() => f.clientCloses.length >= 2); // the two failed sockets were closed
  });

  // before the challenge: the pre-auth limit (64 KiB); in place of hello-ok: the inbound limit (here 1 MiB)
  for (const [before, message] of [
    ['challenge', 'OpenClaw handshake: a frame before the connect request is over the pre-auth limit (65536 bytes)'],
    ['hello', 'OpenClaw handshake: the answer to connect is over the inbound frame limit (1048576 bytes)'],
  ] as const) {
    it(`a huge frame before the ${before === 'challenge' ? 'challenge' : 'hello-ok'}: the connect fails at its header, before the client takes it in`, async () => {
      const f = await fake();
      const c = client(f, { backoff, maxInboundBytes: 1024 * 1024 });
      const bytes = 40 * 1024 * 1024;
      f.preAuthFrame = { bytes, before };
      const t0 = Date.now();
      const e = await rejection(c.connect());
      // the client closed the socket before the server could write the frame out: it never buffered all of it
      await until(() => f.preAuthFrameResult !== undefined);
      expect(f.preAuthFrameResult).toEqual({ flushed: false });
      expect(e).toMatchObject({ code: 'UPSTREAM_BAD_RESPONSE', message });
      expect(Date.now() - t0).toBeLessThan(2000);
      expect(c.connected).toBe(false);
      // after hello-ok the limit is the inbound one: a frame over 64 KiB passes
      f.preAuthFrame = undefined;
      f.script = () => ({ chunks: ['x'.repeat(200 * 1024)] });
      expect((await c.chatSend('agent:main:t1', 'y')).text).toHaveLength(200 * 1024);
    });
  }

  it('a hello-ok over 64 KiB (a large snapshot) connects; one over the inbound limit is refused, saying so', async () => {
    const f = await fake();
    f.helloBytes = 2 * 1024 * 1024; // a snapshot with ~2000 presence entries
    const c = client(f, { backoff });
    expect((await c.connect()).protocol).toBe(4);
    expect((await c.chatSend('agent:main:t1', 'y')).text).toBe('Echo: y');
    await c.close();
    // the same hello-ok to a client whose inbound limit is 1 MiB
    const small = client(f, { backoff, maxInboundBytes: 1024 * 1024 });
    const t0 = Date.now();
    const e = await rejection(small.connect());
    expect(e).toMatchObject({
      code: 'UPSTREAM_BAD_RESPONSE',
      message: 'OpenClaw handshake: the answer to connect is over the inbound frame limit (1048576 bytes)',
    });
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(small.connected).toBe(false);
    // it is not taken for an authentication refusal: once the server's answer fits, the client connects
    f.helloBytes = 512 * 1024;
    expect((await small.connect()).protocol).toBe(4);
  });

  it('a protocol this client does not speak: refused by the server or named in hello-ok', async () => {
    const f = await fake();
    const c = client(f, { backoff });
    f.protocol = 5 as 4;
    const e1 = await rejection(c.connect());
    expect(e1).toMatchObject({ code: 'UPSTREAM_CLIENT_ERROR', message: expect.stringMatching(/protocol mismatch/) });
    f.protocol = 4;
    f.helloProtocol = 5;
    const e2 = await rejection(c.connect());
    expect(e2).toMatchObject({ code: 'UPSTREAM_BAD_RESPONSE', message: expect.stringMatching(/protocol 5, outside 3–4/) });
    expect(c.connected).toBe(false);
  });
});

describe('OpenClaw: connections that drop or never answer', () => {
  it('every close code mid-run fails the run with the code, the reason scrubbed; each next run reconnects', async () => {
    const f = await fake({ script: () => ({ chunks: ['a'], end: 'hang' }) });
    const c = client(f);
    for (const code of [1001, 1011, 1012, 4000, 4999]) {
      const before = f.activeRuns;
      const p = rejection(c.chatSend('agent:main:t1', 'x', { timeoutMs: 10_000 }));
      await until(() => f.activeRuns > before);
      f.dropAll(code, `going away ${TOKEN}`);
      const e = await p;
      expect(e.code).toBe('UPSTREAM_CONNECTION_LOST');
      expect(e.message).toContain(`code ${code}`);
      expect(e.message).toContain('[redacted]');
      expect(e.message).not.toContain(TOKEN);
      expect(c.inFlight).toEqual({ requests: 0, runs: 0 });
    }
    expect(f.connections).toBe(5);
  });

  it('chat.send never answered: UPSTREAM_TIMEOUT after the request timeout; a run never finished: the turn deadline aborts it', async () => {
    const f = await fake({ script: () => ({ chunks: [], end: 'hang' }) });
    const c = client(f, { requestTimeoutMs: 200 });
    f.unanswered.add('chat.send');
    const e1 = await rejection(c.chatSend('agent:main:t1', 'x'));
    expect(e1).toMatchObject({ code: 'UPSTREAM_TIMEOUT', message: 'OpenClaw chat.send got no response within 200 ms' });
    // its run id is unknown: the session's current run is aborted (there is none here)
    await until(() => f.aborts.length === 1);
    expect(f.aborts[0]!.params).toEqual({ sessionKey: 'agent:main:t1' });
    f.unanswered.delete('chat.send');
    const e2 = await rejection(c.chatSend('agent:main:t1', 'x', { timeoutMs: 300 }));
    expect(e2.code).toBe('UPSTREAM_TIMEOUT');
    await until(() => f.aborts.length === 2 && f.activeRuns === 0);
    expect(f.aborts[1]!.params).toEqual({ sessionKey: 'agent:main:t1', runId: lastRunId(f) });
    expect(c.inFlight.runs).toBe(0);
  });

  it('a chat.send whose ack never comes while the server runs it anyway: chat.abort for the session key stops that run', async () => {
    const f = await fake({ script: () => ({ chunks: ['a'], end: 'hang' }) });
    const c = client(f, { requestTimeoutMs: 200 });
    f.ackLost = true;
    const e = await rejection(c.chatSend('agent:main:t1', 'x', { timeoutMs: 10_000 }));
    expect(e).toMatchObject({ code: 'UPSTREAM_TIMEOUT', message: 'OpenClaw chat.send got no response within 200 ms' });
    expect(f.activeRuns).toBe(1); // the server did start it
    await until(() => f.aborts.length === 1 && f.activeRuns === 0);
    expect(f.aborts[0]!.params).toEqual({ sessionKey: 'agent:main:t1' });
    expect(f.aborts[0]!.connId).toBe(f.chatSends[0]!.connId);
    // its `aborted` event reaches no run; the session's next run is not disturbed
    f.ackLost = false;
    f.script = () => ({ chunks: ['next'] });
    expect((await c.chatSend('agent:main:t1', 'y')).text).toBe('next');
    expect(f.aborts).toHaveLength(1);
    expect(c.inFlight).toEqual({ requests: 0, runs: 0 });
  });

  it('a cancel before an ack that never comes: chat.abort for the session key once chat.send times out', async () => {
    const f = await fake({ script: () => ({ chunks: ['a'], end: 'hang' }) });
    const c = client(f, { requestTimeoutMs: 300, abortGraceMs: 50 });
    f.ackLost = true;
    const ac = new AbortController();
    const p = c.chatSend('agent:main:t1', 'x', { signal: ac.signal, timeoutMs: 10_000 });
    await until(() => f.activeRuns === 1);
    ac.abort();
    expect((await p).status).toBe('cancelled');
    await until(() => f.aborts.length === 1 && f.activeRuns === 0);
    expect(f.aborts[0]!.params).toEqual({ sessionKey: 'agent:main:t1' });
  });
});

describe('OpenClaw: cancel and late events', () => {
  it('events of a run that ended (after a cancel the server never confirmed) do not reach the next run of the session', async () => {
    const f = await fake({ script: () => ({ chunks: ['first'], end: 'hang' }) });
    const c = client(f, { abortGraceMs: 200 });
    f.unanswered.add('chat.abort'); // and so no `aborted` event either
    const key = 'agent:main:t1';
    const ac = new AbortController();
    const r1 = await c.chatSend(key, 'x', { signal: ac.signal, timeoutMs: 10_000, onDelta: () => ac.abort() });
    expect(r1).toMatchObject({ status: 'cancelled', text: 'first' });
    const run1 = r1.runId;
    f.script = () => ({ chunks: ['second'], end: 'hang' });
    const changes: string[] = [];
    const p2 = c.chatSend(key, 'y', { timeoutMs: 10_000, onDelta: (ch) => changes.push(ch.text) });
    await until(() => changes.length === 1);
    const run2 = lastRunId(f);
    f.broadcast({ runId: run1, sessionKey: key, seq: 5, state: 'delta', deltaText: ' LATE' });
    f.broadcast({ runId: run1, sessionKey: key, seq: 6, state: 'final', message: 'LATE final' });
    f.broadcast({ runId: run2, sessionKey: key, seq: 2, state: 'final', message: 'second' });
    const r2 = await p2;
    expect(r2).toMatchObject({ status: 'completed', text: 'second' });
    expect(changes).toEqual(['second']);
    // and after that run ended too: nothing to deliver to, nothing breaks
    f.broadcast({ runId: run2, sessionKey: key, seq: 3, state: 'error', errorMessage: 'too late' });
    await new Promise((r) => setImmediate(r));
    expect(c.connected).toBe(true);
    expect(c.inFlight.runs).toBe(0);
  });

  it('a cancel while the connection is down (connecting) ends the call at once and sends nothing', async () => {
    const f = await fake();
    f.handshake = 'no-answer';
    const c = client(f, { handshakeTimeoutMs: 10_000 });
    const ac = new AbortController();
    const p = c.chatSend('agent:main:t1', 'x', { signal: ac.signal });
    await until(() => f.connects.length === 1);
    const t0 = Date.now();
    ac.abort();
    expect((await p).status).toBe('cancelled');
    expect(Date.now() - t0).toBeLessThan(500);
    expect(f.chatSends).toHaveLength(0);
  });

  it('a cancel pending when the connection drops ends the run cancelled', async () => {
    const f = await fake({ script: () => ({ chunks: ['a'], end: 'hang' }) });
    const c = client(f, { abortGraceMs: 10_000 });
    f.unanswered.add('chat.abort');
    const ac = new AbortController();
    const p = c.chatSend('agent:main:t1', 'x', { signal: ac.signal, timeoutMs: 20_000, onDelta: () => ac.abort() });
    await until(() => f.aborts.length === 1);
    f.dropAll(1012, 'restart');
    expect(await p).toMatchObject({ status: 'cancelled', text: 'a' });
    expect(c.inFlight).toEqual({ requests: 0, runs: 0 });
  });
});
