/**
 * A reload asked for while the gateway stops (SIGHUP, or POST /admin/config/reload, which the admin API still
 * answers while it drains) is refused: the stop told every peer that it shares nothing, so that they route away,
 * and a reload applied then re-sent its share lists (peers routed to a gateway going away again), dialled the
 * bridges the file adds and made providers for a gateway about to close. Real processes: B shares a channel with
 * A, a stream bridged from A keeps B draining, and both reload paths are tried on B during the drain.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { adminGet, cleanupDirs, waitFor } from '../helpers/env.js';
import { exitCodeOf, startSharingPair } from '../helpers/sharing-pair.js';

const BRIDGE_TOKEN = 'stop-reload-bridge-5a1e';
const ADMIN = 'stop-reload-admin-9c3b';
let a: GatewayProcess;
let b: GatewayProcess;

beforeAll(async () => {
  ({ a, b } = await startSharingPair({
    prefix: 'rs',
    token: BRIDGE_TOKEN,
    admin: ADMIN,
    shutdownGraceMs: 30_000,
    gpu: { chunkDelayMs: 50, chunks: 80 },
  }));
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  cleanupDirs();
});

describe('a reload during a graceful stop', () => {
  it('is refused (admin API and SIGHUP): peers stay routed away, the stop finishes what is in flight and exits 0', async () => {
    const onA = new OpenAI({ apiKey: 'unused', baseURL: `${a.url}/v1`, maxRetries: 0 });
    const it = (await onA.chat.completions.create({ model: 'llama-gpu', messages: [{ role: 'user', content: 'a long bridged answer' }], stream: true }))[
      Symbol.asyncIterator
    ]();
    expect((await it.next()).done).toBe(false);
    const rest = (async () => {
      let finish: string | null = null;
      for (let r = await it.next(); !r.done; r = await it.next()) finish = r.value.choices[0]?.finish_reason ?? finish;
      return finish;
    })();
    // awaited below; a failure before then must not also surface as an unhandled rejection
    rest.catch(() => undefined);

    b.kill('SIGTERM');
    await waitFor(async () => !(await adminGet(a.url, '/admin/status', ADMIN)).models.includes('llama-gpu'), "A routed away from B's model");

    const res = await fetch(`${b.url}/admin/config/reload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: '{}',
    });
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(res.status).toBe(503);
    expect(body.error.code).toBe('shutting_down');
    expect(body.error.message).toMatch(/shutting down.*not reloaded/);

    b.kill('SIGHUP');
    await waitFor(() => /SIGHUP: config not reloaded[^\n]*\n {2}gateway is shutting down/.test(b.logs()), 'the SIGHUP refusal on stderr');
    // B is still draining (the stream runs) and A was not told B shares its channel again
    expect(b.proc.exitCode).toBeNull();
    expect((await adminGet(a.url, '/admin/status', ADMIN)).models).not.toContain('llama-gpu');

    expect(await rest).toBe('stop');
    const code = await exitCodeOf(b);
    expect(code).toBe(0);
  });
});
