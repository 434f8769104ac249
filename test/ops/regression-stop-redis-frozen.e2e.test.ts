/**
 * A graceful stop whose Redis is connected but does not answer (a redis-server stopped with SIGSTOP: what a
 * network that drops packets looks like, the TCP connection stays up and every reply is due for ever) finishes.
 * Before, the ACP layer's UNSUBSCRIBE (its cross-instance cancel channel) and the session and key stores' QUIT
 * waited for answers that never came: the process never exited (a second signal, or the service manager's
 * SIGKILL, ended it). A Redis that is down (connection refused) was handled already
 * (regression-stop-store-gone, keys/regression-shutdown-redis-down); now a connected one gets 1 s for its QUIT
 * (and UNSUBSCRIBE), then the client is disconnected. With a turn running, the ACP layer's close also waited for
 * the turn's last updates to be stored, for ever: now until the stop's deadline, at least 1 s, and what is not
 * stored by then is logged. The same holds for the waits a stop had left unbounded: a session transfer of the
 * drain (drainSessionsTo) whose store froze after the list, a retention run under way, and the ACP layer's startup
 * subscriptions and listing of the sessions a previous run left open. Real processes.
 */
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { acpRpc, cleanupDirs, freePort, startProcess, tmpDir, waitFor, waitForBridgeOpen, wsUrl } from '../helpers/env.js';
import { exitWithin } from '../helpers/sharing-pair.js';
import { redisOnPort } from '../keys/redis-on-port.js';
import { ENDED_BACKLOG, seedEnded, seedLeftRunning } from './ended-sessions.js';

const ACP = 'stop-redis-frozen-acp-3f9a1c';
const BRIDGE = 'stop-redis-frozen-bridge-7d20e4';
const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanupDirs();
});

/**
 * A redis-server, and a gateway process whose session store (and key store) it is; `graceMs`: shutdownGraceMs;
 * `gateway`: more of the config's `gateway` section, `acp` of its `acp` section; `seed` writes to the Redis before
 * the gateway starts.
 */
async function gatewayOnRedis(
  graceMs: number,
  gateway: Record<string, unknown> = {},
  more: { acp?: Record<string, unknown>; seed?: (redis: Redis) => Promise<unknown> } = {},
) {
  const dir = tmpDir();
  const port = await freePort();
  const redis = await redisOnPort(port, dir);
  cleanups.push(() => redis.stop());
  // the test's own client (it reads the store while the gateway runs, until the freeze)
  const client = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0 });
  cleanups.push(() => client.disconnect());
  if (more.seed) await more.seed(client);
  const g = await startProcess(
    {
      gateway: { id: `gw_frozen_${graceMs}`, shutdownGraceMs: graceMs, ...gateway },
      store: { kind: 'redis', url: `redis://127.0.0.1:${port}` },
      channels: [
        { name: 'slow', provider: 'mock', models: ['slow-1'], options: { delayMs: 1500 } },
        { name: 'slower', provider: 'mock', models: ['slower-1'], options: { delayMs: 8000 } },
      ],
      acp: {
        tokens: [ACP],
        gateways: [
          { id: 'slowgw', label: 'Slow', kind: 'channels', model: 'slow-1' },
          { id: 'slowergw', label: 'Slower', kind: 'channels', model: 'slower-1' },
        ],
        ...more.acp,
      },
    },
    {},
    dir,
  );
  cleanups.push(() => g.stop(1000));
  const freeze = () => {
    cleanups.push(redis.freeze());
  };
  return { g, freeze, redis: client };
}

/** one model request on `g` (with a virtual key's `secret` when given), answered 200: the gateway has used the store */
async function modelRequest(g: GatewayProcess, secret?: string): Promise<void> {
  const r = await fetch(`${g.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(secret ? { authorization: `Bearer ${secret}` } : {}) },
    body: JSON.stringify({ model: 'slow-1', messages: [{ role: 'user', content: 'hi' }] }),
  });
  expect(r.status).toBe(200);
}

/** starts a turn of session `sessionId` on the ACP gateway runtime `gatewayProviderId`; resolves once it runs */
async function startTurn(g: GatewayProcess, sessionId: string, gatewayProviderId: string): Promise<void> {
  const turn = acpRpc(g.url, ACP, 'session.start', { sessionId, taskPrompt: 'take your time', executionTarget: 'gateway', gatewayProviderId }, true).catch(
    () => undefined,
  );
  cleanups.push(() => turn);
  await waitFor(
    async () =>
      ((await (await fetch(`${g.url}/admin/sessions/${sessionId}`)).json()) as { session?: { history: Array<{ status: string }> } }).session?.history.some(
        (t) => t.status === 'running',
      ),
    'the turn running',
  );
}

describe('a graceful stop with the Redis store connected but not answering', () => {
  it('ends the process soon after the grace', { timeout: 60_000 }, async () => {
    const { g, freeze } = await gatewayOnRedis(1000);
    // the gateway has used the store (a model request, its usage record)
    await modelRequest(g);
    freeze();
    g.proc.kill('SIGTERM');
    // grace 1 s, then at most 1 s for each client's QUIT (and the ACP layer's UNSUBSCRIBE); before, never
    expect(await exitWithin(g, 15_000)).toBe(0);
  });

  it('closes the rate limiter and the key store together, each within its own bound', { timeout: 60_000 }, async () => {
    // the limiter's Redis commands (its QUIT too) bounded to 1 s, as the key store's QUIT is
    const { g, freeze } = await gatewayOnRedis(1000, { limits: { redisTimeoutMs: 1000 } });
    // keys and limits in use: a virtual key, a request with it
    const created = await fetch(`${g.url}/admin/keys`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'k1' }),
    });
    expect(created.status).toBe(201);
    const { secret } = (await created.json()) as { secret: string };
    await modelRequest(g, secret);
    freeze();
    g.proc.kill('SIGTERM');
    expect(await exitWithin(g, 15_000)).toBe(0);
    // each client given up on at its bound, read from the gateway's own log clock: the two closes ran together (they
    // end within a few ms of each other); before, one after the other, the second's bound (1 s) after the first's
    const line = (msg: string) => {
      const l = g
        .logs()
        .split('\n')
        .find((x) => x.includes(msg));
      expect(l, msg).toBeDefined();
      return JSON.parse(l!) as { t: string; waitedMs: number };
    };
    const limiter = line("closing: the rate limiter's Redis did not answer QUIT");
    const keyStore = line("closing: the key store's Redis did not answer QUIT");
    expect(limiter.waitedMs).toBeGreaterThanOrEqual(900);
    expect(keyStore.waitedMs).toBeGreaterThanOrEqual(900);
    expect(Math.abs(Date.parse(keyStore.t) - Date.parse(limiter.t))).toBeLessThan(500);
  });

  it("logs the session store's unanswered QUIT as the key store's and the limiter's are, and ends in bound", { timeout: 60_000 }, async () => {
    // Regression: the session store closed its clients through closeRedis without its `unanswered` callback, so a
    // stop held by the session store's Redis said nothing of it (the key store's and the limiter's did)
    const { g, freeze } = await gatewayOnRedis(1000);
    await modelRequest(g);
    freeze();
    const stoppedAt = Date.now();
    g.proc.kill('SIGTERM');
    // grace 1 s, the ACP layer's bounded waits, then 1 s for each client's QUIT
    expect(await exitWithin(g, 15_000)).toBe(0);
    expect(Date.now() - stoppedAt).toBeLessThan(15_000);
    const lines = g
      .logs()
      .split('\n')
      .filter((l) => l.includes("closing: the session store's Redis did not answer QUIT, disconnected"))
      .map((l) => JSON.parse(l) as { level: string; part: string; role: string; waitedMs: number });
    // the main connection and the subscriber (the ACP layer's cross-instance cancel subscribes at start), each
    // given up on at its bound, in the gateway's log with the gateway's bindings
    expect(lines.map((l) => l.role).sort()).toEqual(['main', 'subscriber']);
    for (const l of lines) {
      expect(l).toMatchObject({ level: 'warn', part: 'sessions' });
      expect(l.waitedMs).toBeGreaterThanOrEqual(900);
      expect(l.waitedMs).toBeLessThan(3000);
    }
  });

  it('with an ACP turn running when Redis stops answering', { timeout: 60_000 }, async () => {
    const { g, freeze } = await gatewayOnRedis(1000);
    await startTurn(g, 'frozen-s1', 'slowgw');
    freeze();
    g.proc.kill('SIGTERM');
    // grace 1 s, the cancelled turn's 5 s to end, at least 1 s for its last updates to be stored, 1 s for each
    // client's QUIT (and UNSUBSCRIBE); before, never
    expect(await exitWithin(g, 20_000)).toBe(0);
    // what could not be stored is said
    expect(g.logs()).toContain('graceful stop: session updates not stored: the store did not answer');
    // from the grace's end: 1 s for the ACP layer's two UNSUBSCRIBEs (the cross-instance cancel's and the permission
    // prompts', on the one subscriber connection), 5 s for the cancelled turn to end, 1 s for its last updates. The
    // UNSUBSCRIBEs, each bounded to 1 s, ran one after the other: 8 s. Read from the gateway's own log clock.
    const at = (msg: string) =>
      Date.parse(
        JSON.parse(
          g
            .logs()
            .split('\n')
            .find((l) => l.includes(msg))!,
        ).t as string,
      );
    expect(at('graceful stop: session updates not stored') - at('graceful stop: grace period over')).toBeLessThan(7_500);
  });

  it('with gateway.shutdown.drainSessionsTo: the sessions that cannot be listed stay, the stop goes on', { timeout: 60_000 }, async () => {
    const b = await startProcess({
      gateway: { id: 'gw_frozen_peer', name: 'datacenter', bridge: { enabled: true, allowedTokens: [BRIDGE], acceptSessions: true } },
      channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
    });
    cleanups.push(() => b.stop());
    const { g, freeze } = await gatewayOnRedis(1000, {
      shutdown: { drainSessionsTo: 'datacenter' },
      bridges: [{ name: 'datacenter', url: wsUrl(b.url), token: BRIDGE, shareChannels: false, reconnectInterval: 200 }],
    });
    await waitForBridgeOpen(g.url);
    freeze();
    g.proc.kill('SIGTERM');
    // the session list waits for the store until the deadline (1 s), not for ever
    expect(await exitWithin(g, 15_000)).toBe(0);
    expect(g.logs()).toContain('graceful stop: cannot drain sessions, the store did not list them');
  });

  it(
    'with gateway.shutdown.drainSessionsTo: a store that stops answering during a transfer holds the stop until the deadline, not for ever',
    { timeout: 60_000 },
    async () => {
      const b = await startProcess({
        gateway: { id: 'gw_frozen_peer2', name: 'datacenter', bridge: { enabled: true, allowedTokens: [BRIDGE], acceptSessions: true } },
        channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
      });
      cleanups.push(() => b.stop());
      const { g, freeze } = await gatewayOnRedis(3000, {
        shutdown: { drainSessionsTo: 'datacenter' },
        bridges: [{ name: 'datacenter', url: wsUrl(b.url), token: BRIDGE, shareChannels: false, reconnectInterval: 200 }],
      });
      await waitForBridgeOpen(g.url);
      // a turn of 8 s: the transfer waits for it (whenRunning: 'wait'), reading the session from the store
      await startTurn(g, 'frozen-moving', 'slowergw');
      g.proc.kill('SIGTERM');
      // the sessions are listed; the store stops answering while the transfer waits
      await waitFor(() => g.logs().includes('graceful stop: moving sessions'), 'the sessions listed');
      freeze();
      // the transfer is given up at the deadline (3 s); before, its next read of the session waited for ever
      expect(await exitWithin(g, 20_000)).toBe(0);
      expect(g.logs()).toContain('graceful stop: session transfer not finished by the deadline');
    },
  );

  it('with a retention run under way (acp.endedSessionRetentionDays)', { timeout: 90_000 }, async () => {
    const { g, freeze, redis } = await gatewayOnRedis(1000, {}, { acp: { endedSessionRetentionDays: 1 }, seed: seedEnded });
    // the run at startup has deleted some of them: under way. (The startup's listing of the sessions left open, read
    // 500 a round trip between the run's deletions, one a round trip, is over by then.)
    await waitFor(async () => (await redis.zcard('switchyard:sessions')) <= ENDED_BACKLOG - 20_000, 'the run under way', 30_000);
    expect(g.logs()).not.toContain('ended sessions pruned');
    freeze();
    g.proc.kill('SIGTERM');
    // grace 1 s, then the run is waited for until the deadline (at least 1 s); before, for ever
    expect(await exitWithin(g, 15_000)).toBe(0);
    expect(g.logs()).toContain(
      "graceful stop: ended sessions pruning left unfinished: the store did not answer within the stop's wait (the next start prunes the rest)",
    );
    expect(g.logs()).not.toContain('graceful stop: cross-instance cancel');
  });

  it('with the startup listing of the sessions a previous run left open under way', { timeout: 90_000 }, async () => {
    const { g, freeze } = await gatewayOnRedis(1000, {}, { seed: seedLeftRunning });
    // the process serves (a SIGTERM sent as soon as its "listening on" line was read killed it outright here)
    expect((await fetch(`${g.url}/healthz`)).status).toBe(200);
    freeze();
    g.proc.kill('SIGTERM');
    // the ACP layer's close waits for its subscriptions and that listing until the deadline (at least 1 s);
    // before, for ever
    expect(await exitWithin(g, 15_000)).toBe(0);
    expect(g.logs()).toContain(
      'graceful stop: cross-instance cancel and the settling of sessions a previous run left open unfinished: the store did not answer',
    );
  });
});
