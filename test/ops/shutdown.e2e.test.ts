/**
 * Graceful stop with real processes: B serves a local stream, a stream bridged from A, and an ACP turn
 * (started as a notification, so no HTTP request holds it) when it gets SIGTERM. While it drains: /readyz
 * says draining, a new /v1 request gets 503 with Retry-After, A is told and routes away before B's
 * listener closes; then the streams complete in full, the turn completes (read back from B's store), the
 * link closes with 4000, and B exits 0.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { openStore } from '../../src/sessions/open-store.js';
import { adminGet, cleanupDirs, waitFor } from '../helpers/env.js';
import { exitCodeOf, startSharingPair } from '../helpers/sharing-pair.js';

const BRIDGE_TOKEN = 'stop-bridge-token-3f9b';
const ADMIN = 'stop-admin-token-7d2e';
const ACP = 'stop-acp-token-1c5a';
let a: GatewayProcess;
let b: GatewayProcess & { dir: string };

beforeAll(async () => {
  ({ a, b } = await startSharingPair({
    prefix: 's',
    token: BRIDGE_TOKEN,
    admin: ADMIN,
    shutdownGraceMs: 15_000,
    gpu: { chunkDelayMs: 60, chunks: 40 },
    bChannels: [{ name: 'slow', provider: 'mock', models: ['slow-1'], options: { chunkDelayMs: 60, chunks: 40 } }],
    bAcp: { tokens: [ACP], gateways: [{ id: 'slowgw', label: 'Slow', kind: 'channels', model: 'slow-1' }] },
  }));
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  cleanupDirs();
});

/** Waits for the first chunk; `rest` reads the remainder (wrapped, so awaiting this does not await the stream). */
async function firstThenRest(
  s: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>,
): Promise<{ rest: Promise<{ chunks: number; finish: string | null }> }> {
  const it = s[Symbol.asyncIterator]();
  const first = await it.next();
  const rest = (async () => {
    let chunks = first.done ? 0 : 1;
    let finish: string | null = null;
    for (let r = await it.next(); !r.done; r = await it.next()) {
      chunks++;
      finish = r.value.choices[0]?.finish_reason ?? finish;
    }
    return { chunks, finish };
  })();
  return { rest };
}

describe('graceful stop', () => {
  it('during a stream, a bridged stream and an ACP turn: peers route away first, everything in flight finishes', async () => {
    const onB = new OpenAI({ apiKey: 'unused', baseURL: `${b.url}/v1`, maxRetries: 0 });
    const onA = new OpenAI({ apiKey: 'unused', baseURL: `${a.url}/v1`, maxRetries: 0 });
    const { rest: local } = await firstThenRest(
      await onB.chat.completions.create({ model: 'slow-1', messages: [{ role: 'user', content: 'long local answer' }], stream: true }),
    );
    const { rest: bridged } = await firstThenRest(
      await onA.chat.completions.create({ model: 'llama-gpu', messages: [{ role: 'user', content: 'long bridged answer' }], stream: true }),
    );
    const running = { local: true, bridged: true };
    void local.then(() => (running.local = false));
    void bridged.then(() => (running.bridged = false));
    const sessionId = `s-stop-${Date.now()}`;
    const start = await fetch(`${b.url}/acp/rpc`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ACP}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        method: 'session.start',
        params: { sessionId, taskPrompt: 'a turn that must finish', routing: { explicitExecutionTarget: 'gateway', preferredGatewayProviderId: 'slowgw' } },
      }),
    });
    expect(start.status).toBe(204);
    await waitFor(
      async () => (await adminGet(b.url, '/admin/sessions?status=running', ADMIN)).sessions.some((s: any) => s.id === sessionId),
      'the turn running on B',
    );

    b.kill('SIGTERM');
    // draining: not ready, new requests refused with Retry-After, A routes away while B is still up
    await waitFor(async () => (await fetch(`${b.url}/readyz`)).status === 503, 'B not ready');
    const refused = await fetch(`${b.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'slow-1', messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(((await refused.json()) as any).error.code).toBe('shutting_down');
    await waitFor(async () => !(await adminGet(a.url, '/admin/status', ADMIN)).models.includes('llama-gpu'), "A dropped B's model");
    expect(b.proc.exitCode).toBeNull();
    // all of that happened while both streams were still running
    expect(running).toEqual({ local: true, bridged: true });
    const turnRunning = await fetch(`${b.url}/admin/sessions?status=running`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(((await turnRunning.json()) as any).sessions.map((s: any) => s.id)).toContain(sessionId);

    // everything in flight completes in full
    expect(await local).toEqual({ chunks: expect.any(Number), finish: 'stop' });
    expect((await local).chunks).toBeGreaterThanOrEqual(40);
    expect(await bridged).toMatchObject({ finish: 'stop' });
    expect((await bridged).chunks).toBeGreaterThanOrEqual(40);
    const code = await exitCodeOf(b);
    expect(code).toBe(0);
    // the link was closed with 4000 and a reason
    const closedWith4000 = () =>
      a
        .logs()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .some((l) => l.msg === 'bridge peer disconnected' && l.code === 4000 && l.reason === 'gateway shutting down');
    await waitFor(closedWith4000, 'A logged the 4000 close');
    // the turn finished (not cancelled): read B's store after it exited
    const store = await openStore({ kind: 'sqlite', path: join(b.dir, 'data', 'switchyard.db') });
    try {
      const s = await store.get(sessionId);
      const last = s!.history[s!.history.length - 1]!;
      expect(last.status).toBe('completed');
      expect(last.output).toContain('a turn that must finish');
    } finally {
      await store.close();
    }
  });
});
