/**
 * The OpenClaw client tests' harness (openclaw.test.ts, openclaw-faults.test.ts): fake OpenClaw gateways and
 * clients made for a test are closed after it, and after every test the client's log must not hold the token.
 */
import { afterEach, expect } from 'vitest';
import { OpenClawClient, type OpenClawClientOptions } from '../../src/acp/runtimes/openclaw/client.js';
import { createLogger } from '../../src/util/log.js';
import { GatewayError } from '../../src/wire/errors.js';
import { startFakeOpenClaw, type FakeOpenClaw, type FakeOpenClawOptions } from '../fakes/fake-openclaw.js';

export function openClawHarness(token: string) {
  const logLines: string[] = [];
  const log = createLogger({}, (l) => void logLines.push(l));
  const fakes: FakeOpenClaw[] = [];
  const clients: OpenClawClient[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await Promise.all(fakes.splice(0).map((f) => f.close()));
    // the token never shows up in anything the client logged, in any test
    expect(logLines.join('\n')).not.toContain(token);
    logLines.length = 0;
  });
  return {
    log,
    logLines,
    /** closed after the test (a test may take one out, or add one it made itself) */
    fakes,
    clients,
    async fake(o: FakeOpenClawOptions = {}): Promise<FakeOpenClaw> {
      const f = await startFakeOpenClaw({ token, ...o });
      fakes.push(f);
      return f;
    },
    client(f: FakeOpenClaw, o: Partial<OpenClawClientOptions> = {}): OpenClawClient {
      const c = new OpenClawClient({ url: f.url, token, log, requestTimeoutMs: 3000, handshakeTimeoutMs: 3000, ...o });
      clients.push(c);
      return c;
    },
  };
}

/** The GatewayError `p` rejects with (the test fails if it resolves or rejects with anything else). */
export async function rejection(p: Promise<unknown>): Promise<GatewayError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return err as GatewayError;
  }
  throw new Error('expected a rejection');
}

/** Resolves once `cond()` holds, polling every 10 ms; throws after `ms`. */
export async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
