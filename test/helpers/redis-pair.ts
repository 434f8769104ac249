/**
 * Two gateway processes with one config on one real redis-server (their session store, keys and limits), both
 * serving `gpt-4o-mini` on channel `oa` from one fake OpenAI upstream: the cluster set-up of the key tests.
 */
import { startRedis, type RedisServer } from '../sessions/fixtures/redis-server.js';
import { startOpenAiUpstream, type OpenAiFake, type OpenAiScenario } from '../fakes/openai-upstream.js';
import { channelOf, startProcess, type GatewayProcess } from './env.js';

export interface RedisPair {
  redis: RedisServer;
  up: OpenAiFake;
  g1: GatewayProcess;
  g2: GatewayProcess;
}

/**
 * Starts Redis, the upstream (`upstream`: its scenario) and the two gateways (`gateway`: the config's `gateway`
 * section; `channel`: more fields of channel `oa`, e.g. pricing). A start that fails stops what it had started.
 */
export async function startRedisPair(o: { upstream: OpenAiScenario; gateway: Record<string, unknown>; channel?: Record<string, unknown> }): Promise<RedisPair> {
  const started: Partial<RedisPair> = {};
  try {
    started.redis = await startRedis();
    const up = (started.up = await startOpenAiUpstream(o.upstream));
    const cfg = {
      gateway: o.gateway,
      channels: [channelOf(up, 'oa', ['gpt-4o-mini'], o.channel)],
      store: { kind: 'redis', url: started.redis.url },
    };
    const [g1, g2] = await Promise.allSettled([startProcess(cfg), startProcess(cfg)]);
    if (g1.status === 'fulfilled') started.g1 = g1.value;
    if (g2.status === 'fulfilled') started.g2 = g2.value;
    if (g1.status === 'rejected') throw g1.reason;
    if (g2.status === 'rejected') throw g2.reason;
    return started as RedisPair;
  } catch (err) {
    await stopRedisPair(started);
    throw err;
  }
}

/** Stops the gateways, then the upstream, then Redis (whichever of them were started). */
export async function stopRedisPair(p: Partial<RedisPair>): Promise<void> {
  await Promise.all([p.g1?.stop(), p.g2?.stop()]);
  await p.up?.close();
  await p.redis?.stop();
}
