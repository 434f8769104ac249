/**
 * The fake ACP agent as Hermes (preset `hermes` + `llm`: its model traffic comes back to the gateway on a per-session
 * token), and two instances of one gateway id sharing one real Redis session store, as the cross-instance agent suites
 * run them.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll } from 'vitest';
import { startRedis, type RedisServer } from '../sessions/fixtures/redis-server.js';
import { cleanupDirs, startProcess } from '../helpers/env.js';

export type Gw = Awaited<ReturnType<typeof startProcess>>;

const FAKE = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));

/** `acp` of a gateway whose clients present `token` and whose one agent is the fake as Hermes on `model` */
export const hermesAcp = (token: string, model = 'mock-1') => ({
  tokens: [token],
  agents: [{ id: 'hermes', label: 'Hermes (fake)', preset: 'hermes', command: process.execPath, args: [FAKE], llm: { model }, permissions: 'allow' }],
});

/** A chat completion on `gw` with `token` (an agent's session token is taken while its session lives there). */
export const chatWith = (gw: Gw, token: string) =>
  fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'mock-1', messages: [{ role: 'user', content: 'still here?' }] }),
  });

/**
 * Two instances of gateway `gatewayId` (a mock channel serving mock-1, hermesAcp(acpToken)) on one real Redis store,
 * started before the file's tests and stopped after them; `g1`, `g2` and `redis` are set once started. `o.acp`: more
 * `acp` settings for both (lease timings); `o.instanceIds`: their `store.instanceId`s, so their lease holder ids are
 * `<gatewayId>/<instanceId>`.
 */
export function twoInstancesOnRedis(
  gatewayId: string,
  acpToken: string,
  o: { acp?: Record<string, unknown>; instanceIds?: [string, string] } = {},
): { g1: Gw; g2: Gw; redis: RedisServer } {
  const s = {} as { g1: Gw; g2: Gw; redis: RedisServer };
  beforeAll(async () => {
    s.redis = await startRedis();
    const instance = (i: number) => ({
      gateway: { id: gatewayId },
      channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
      store: { kind: 'redis', url: s.redis.url, ...(o.instanceIds ? { instanceId: o.instanceIds[i] } : {}) },
      acp: { ...hermesAcp(acpToken), ...o.acp },
    });
    [s.g1, s.g2] = await Promise.all([startProcess(instance(0)), startProcess(instance(1))]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([s.g1?.stop(10_000), s.g2?.stop(10_000)]);
    await s.redis?.stop();
    cleanupDirs();
  });
  return s;
}
