/**
 * The OpenClaw client against a broken or hostile OpenClaw gateway (the fake in test/fakes/fake-openclaw.ts,
 * misbehaving on purpose): malformed frames, handshakes that go wrong, connections that drop or never answer,
 * server text that echoes the token, events that arrive too late. Whatever the server does, a call ends with a
 * GatewayError (or a result), the connection recovers, and nothing waits longer than its bound.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { OpenClawClient, type OpenClawClientOptions } from '../../src/acp/runtimes/openclaw/client.js';
import { createLogger } from '../../src/util/log.js';
import { GatewayError } from '../../src/wire/errors.js';
import { FakeOpenClaw, startFakeOpenClaw, type FakeOpenClawOptions } from '../fakes/fake-openclaw.js';

const TOKEN = 'oc-faults-token-5b2e8d';
const logLines: string[] = [];
const log = createLogger({}, (l) => void logLines.push(l));
const fakes: FakeOpenClaw[] = [];
const clients: OpenClawClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(fakes.splice(0).map((f) => f.close()));
  expect(logLines.join('\n')).not.toContain(TOKEN);
  logLines.length = 0;
});

async function fake(o: FakeOpenClawOptions = {}): Promise<FakeOpenClaw> {
  const f = await startFakeOpenClaw({ token: TOKEN, ...o });
  fakes.push(f);
  return f;
}
function client(f: FakeOpenClaw, o: Partial<OpenClawClientOptions> = {}): OpenClawClient {
  const c = new OpenClawClient({ url: f.url, token: TOKEN, log, requestTimeoutMs: 3000, handshakeTimeoutMs: 3000, ...o });
  clients.push(c);
  return c;
}
async function rejection(p: Promise<unknown>): Promise<GatewayError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return err as GatewayError;
  }
  throw new Error('expected a rejection');
}
async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
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
