/**
 * A `session.cancel` that comes while a `session.start` is still replacing its session (closing the old one,
 * storing the new record) is for that start's turn. It answered `cancelled: true` at once, also when the start
 * then failed: nothing ran and nothing was cancelled, yet the app was told a turn was. The cancel now waits for
 * the replacement's outcome and answers `cancelled: false` when the start failed.
 *
 * Real parts: a gateway process on a real redis-server, the fake ACP agent as a stubborn agent (it ignores
 * SIGTERM, so closing its session takes the 2 s stop grace, and it marks the SIGTERM in a file, so the test knows
 * the restart is closing it). Inside that window the redis-server starts refusing writes (`min-replicas-to-write`
 * with no replica: NOREPLICAS; reads still work, so the cancel itself is served): the restart cannot store the new
 * record, and the start fails after the cancel came.
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { acpRpc, startProcess, tmpDir, waitFor, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { startRedis, type RedisServer } from '../sessions/fixtures/redis-server.js';

const FAKE = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const ACP = 'cancel-failed-start-acp-token-7c21';
const STUBBORN = { routingMode: 'explicit', explicitExecutionTarget: 'agent', explicitProviderId: 'stubborn' };
const started = stopAfterAll();
const marks = tmpDir('sy-sigterm-');
let redis: RedisServer;
let gw: GatewayProcess;

beforeAll(async () => {
  redis = await startRedis();
  gw = started.trackGateway(
    await startProcess({
      gateway: { id: 'gw_cancel_failed_start' },
      acp: {
        tokens: [ACP],
        agents: [
          {
            id: 'stubborn',
            label: 'Stubborn',
            command: process.execPath,
            args: [FAKE],
            permissions: 'allow',
            env: { FAKE_ACP_IGNORE_SIGTERM: '1', FAKE_ACP_SIGTERM_MARK: marks },
          },
        ],
      },
      store: { kind: 'redis', url: redis.url },
    }),
  );
}, 60_000);

afterAll(async () => {
  await redis?.stop();
});

describe('session.cancel during a session.start that then fails', () => {
  it('answers cancelled false once the start failed: nothing ran, nothing was cancelled', async () => {
    const sessionId = 'cancel-failed-start';
    const first = acpRpc(gw.url, ACP, 'session.start', { sessionId, taskPrompt: 'slow', routing: STUBBORN });
    await waitFor(async () => {
      const t = await acpRpc(gw.url, ACP, 'xworkmate.tasks.get', { sessionId });
      return t.result?.status === 'running' && (t.result.progress?.outputChars ?? 0) > 0 ? true : undefined;
    }, 'the first turn to send text');
    const restart = acpRpc(gw.url, ACP, 'session.start', { sessionId, taskPrompt: 'hello', routing: STUBBORN });
    // the restart cancelled the first turn (its result is stored) and is now stopping its agent (2 s grace)
    expect((await first).result).toMatchObject({ status: 'cancelled' });
    await waitFor(() => (readdirSync(marks).some((f) => f.startsWith('sigterm-')) ? true : undefined), 'the old agent to be told to stop');
    // the new record cannot be stored: the restart fails after the cancel below came
    const admin = new Redis(redis.url);
    await admin.config('SET', 'min-replicas-to-write', '1');
    await admin.quit();
    const cancel = await acpRpc(gw.url, ACP, 'session.cancel', { sessionId });
    const s = await restart;
    expect(s.result).toBeUndefined();
    expect(s.error?.data?.code).toEqual(expect.any(String));
    // on the old code: { accepted: true, cancelled: true, runCancelled: true }
    expect(cancel.error).toBeUndefined();
    expect(cancel.result).toEqual({ accepted: true, cancelled: false, runCancelled: false });
  }, 60_000);
});
