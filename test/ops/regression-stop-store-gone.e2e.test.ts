/**
 * A graceful stop whose session drain cannot list the sessions (the Redis store is gone) still stops: before, the
 * drain's failure rejected `Gateway.close`, so the listener, the key store and the session store were never closed
 * and the CLI died of an unhandled rejection (exit 1, no "stopped") instead of finishing its stop. Real processes:
 * A (Redis store, `drainSessionsTo` B) bridged to B; A's redis-server is killed, then A gets SIGTERM.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { cleanupDirs, startProcess, waitForBridgeOpen, wsUrl } from '../helpers/env.js';
import { startRedis, type RedisServer } from '../sessions/fixtures/redis-server.js';

const BRIDGE_TOKEN = 'stop-store-gone-bridge-4e1a';
const ADMIN = 'stop-store-gone-admin-9d3c';
let a: GatewayProcess;
let b: GatewayProcess;
let redis: RedisServer;

beforeAll(async () => {
  redis = await startRedis();
  b = await startProcess({
    gateway: { id: 'gw_sg_b', name: 'datacenter', bridge: { enabled: true, allowedTokens: [BRIDGE_TOKEN], acceptSessions: true } },
    channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
  });
  a = await startProcess({
    gateway: {
      id: 'gw_sg_a',
      name: 'office',
      admin: { token: ADMIN },
      shutdownGraceMs: 5_000,
      shutdown: { drainSessionsTo: 'datacenter' },
      bridges: [{ name: 'datacenter', url: wsUrl(b.url), token: BRIDGE_TOKEN, shareChannels: false, reconnectInterval: 200 }],
    },
    channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
    store: { kind: 'redis', url: redis.url },
  });
  await waitForBridgeOpen(a.url, ADMIN);
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await redis?.stop();
  cleanupDirs();
});

describe('graceful stop with the session store out of reach', () => {
  it('logs that the sessions stay, closes every part and exits 0', async () => {
    await redis.kill();
    let out = '';
    a.proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    const code = await a.stop(20_000);
    expect(code).toBe(0);
    expect(out).toContain('switchyard: stopped');
    expect(a.logs()).toContain('graceful stop: cannot drain sessions, the store did not list them');
    // the listener was closed by the stop
    await expect(fetch(`${a.url}/healthz`)).rejects.toThrow();
  });
});
