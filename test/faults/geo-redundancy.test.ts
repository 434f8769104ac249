/**
 * Fault suite, the seed's scenario 2 (geographic redundancy): two gateways, "west" (A) and "east" (B),
 * bridged BOTH ways (each has a `bridges[]` entry to the other and `bridge.enabled`), each with its own
 * local channel for the same model on its own fault upstream, both sharing it with `loadBalance: true`.
 * `routing.retries` is 1, so every success below happened within one retry.
 *
 * 1. west's upstream fails (500): west's clients see no error; their requests go to east's channel over
 *    the bridge; west's channel is ejected and, once its upstream is back, returns after the probe.
 * 2. east's upstream stalls: east's clients see no error (first-byte timeout, then west's channel).
 * 3. the whole east gateway is SIGKILLed under west's load: no non-streamed request of west's clients
 *    fails; only streams already relaying east's chunks end with an error event (no [DONE]).
 * 4. east restarts: the link is re-established and west's traffic returns to east after the probe.
 */
import { describe, expect, it, onTestFailed } from 'vitest';
import { adminGet, startProcess, tmpDir, waitFor, freePort, sleep, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { chat, channelRow, runConcurrent, startFaultUpstream, streamVerdict, summarize, type ChatResult, type FaultUpstream } from '../fakes/fault-upstream.js';

const MODEL = 'geo-model';
const TOKEN = 'geo-redundancy-token';
const WEST = 'gw_geo_west';
const EAST = 'gw_geo_east';
const LOCAL_W = 'local/ch-west';
const LOCAL_E = 'local/ch-east';
const PEER_E_ON_W = `peer/${EAST}/ch-east`;
const PEER_W_ON_E = `peer/${WEST}/ch-west`;

const { procs, ups } = stopAfterAll({ graceMs: 2000 });

function config(id: string, name: string, port: number, channel: string, upstream: FaultUpstream, other: { name: string; port: number }) {
  return {
    gateway: {
      id,
      name,
      port,
      routing: {
        retries: 1,
        timeoutMs: 15_000,
        // generous for a loaded 2-core box: with one retry, a slow (not dead) peer must not look dead
        firstByteTimeoutMs: 1000,
        streamIdleTimeoutMs: 1000,
        health: { consecutiveFailures: 3, failureRatio: 0.5, windowMs: 10_000, minRequests: 10, baseEjectionMs: 600, maxEjectionMs: 3000 },
      },
      // A dead east is seen by its socket closing (SIGKILL), not by the heartbeat; the heartbeat's tolerance
      // (2 s) is only wide enough that a loaded 2-core box starving a process does not drop a live link.
      bridge: {
        enabled: true,
        allowedTokens: [TOKEN],
        shareChannels: [channel],
        loadBalance: true,
        limits: { heartbeatIntervalMs: 200, deadPeerMisses: 10, handshakeTimeoutMs: 3000 },
      },
      // named after the other gateway, so x-switchyard-peer reads the same whichever side's dial won
      bridges: [{ name: other.name, url: `ws://127.0.0.1:${other.port}/bridge`, token: TOKEN, reconnectInterval: 100, maxReconnectInterval: 400 }],
    },
    channels: [{ name: channel, provider: 'vllm', baseUrl: upstream.baseUrl, models: [MODEL] }],
  };
}

/** failed requests; a stream counts as failed unless it ended with [DONE] AND carried all 4 content chunks */
const failures = (rs: ChatResult[]) =>
  rs.filter((r) => r.status !== 200 || (r.events.length > 0 && (streamVerdict(r) !== 'completed' || r.contentChunks !== 4)));

interface PeerRow {
  id: string;
  direction: 'inbound' | 'outbound';
  state: string;
}

/**
 * The two gateways agree on one link: each has exactly one open link to the other, and one side holds it as
 * dialled, the other as accepted. Seeing the peer's channel is not enough while the two diallers are still
 * settling which link to keep (docs/bridge-protocol.md, Peer identity): a link seen in that moment may close.
 */
async function oneLink(a: string, b: string): Promise<boolean> {
  const open = async (url: string) => (await adminGet<{ peers: PeerRow[] }>(url, '/admin/bridges')).peers.filter((p) => p.state === 'open');
  const [oa, ob] = [await open(a), await open(b)];
  return oa.length === 1 && ob.length === 1 && oa[0]!.direction !== ob[0]!.direction;
}

/** the bridge lines of both gateways' logs (links opening and closing, refusals, silent peers) */
function bridgeLogs(gws: Record<string, GatewayProcess>): string {
  return Object.entries(gws)
    .map(
      ([name, p]) =>
        `--- ${name}\n${p
          .logs()
          .split('\n')
          .filter((l) => /"part":"bridge"|peer/.test(l))
          .slice(-40)
          .join('\n')}`,
    )
    .join('\n');
}

async function waitOutCooldown(url: string, id: string): Promise<void> {
  const row = await channelRow(url, id);
  const wait = (row?.health.ejectedUntil ?? 0) - Date.now();
  if (wait > 0) await sleep(wait + 30);
}

describe("fault suite: the seed's scenario 2 — geographic redundancy", () => {
  it(
    'two gateways bridged both ways: upstream loss, then gateway loss, with no client error; traffic returns after the probe',
    { timeout: 60_000 },
    async () => {
      const uw = await startFaultUpstream('up-west');
      const ue = await startFaultUpstream('up-east');
      ups.push(uw, ue);
      for (const u of [uw, ue]) u.setMode('ok', { chunks: 4, chunkDelayMs: 25, responseDelayMs: 30 });
      const [pw, pe] = [await freePort(), await freePort()];
      const dir = tmpDir();
      const eastCfg = config(EAST, 'east', pe, 'ch-east', ue, { name: 'west', port: pw });
      const west = await startProcess(config(WEST, 'west', pw, 'ch-west', uw, { name: 'east', port: pe }));
      procs.push(west);
      let east = await startProcess(eastCfg, {}, dir);
      procs.push(east);
      // a failure here names its cause: whether a link closed, and why, is in the gateways' logs
      onTestFailed(() => console.log(bridgeLogs({ west, east })));
      await waitFor(() => oneLink(west.url, east.url), 'the two gateways to settle on one link', 10_000);
      await waitFor(
        async () => (await channelRow(west.url, PEER_E_ON_W)) && (await channelRow(east.url, PEER_W_ON_E)),
        "each side to see the other side's channel",
        10_000,
      );

      // 1. west's upstream fails: every request of west's clients still succeeds, via east, within one retry
      uw.setMode('fail500');
      const p1 = await runConcurrent(40, 4, () => chat(west.url, { model: MODEL }));
      expect(failures(p1), summarize(p1)).toHaveLength(0);
      expect(
        p1.every((r) => r.peer === 'east' && r.channel === 'ch-east'),
        summarize(p1),
      ).toBe(true);
      expect(uw.repeatedRequestIds(), "a retry went back to west's failing channel").toEqual([]);
      expect((await channelRow(west.url, LOCAL_W))?.health.state).toBe('ejected');
      const eastClients = await runConcurrent(10, 2, () => chat(east.url, { model: MODEL }));
      expect(failures(eastClients), summarize(eastClients)).toHaveLength(0);
      const p1Fails = uw.byMode.fail500;

      // west's upstream comes back: after the cooldown the probe goes to it and west's traffic returns home
      uw.setMode('ok');
      await waitOutCooldown(west.url, LOCAL_W);
      const before = uw.completed;
      await waitFor(
        async () => {
          const rs = await runConcurrent(4, 4, () => chat(west.url, { model: MODEL }));
          expect(failures(rs), summarize(rs)).toHaveLength(0);
          return uw.completed > before;
        },
        "west's traffic to return to west's channel",
        5000,
        20,
      );
      await waitFor(async () => (await channelRow(west.url, LOCAL_W))?.health.state === 'healthy', "west's channel healthy", 3000);

      // 2. east's upstream stalls: east's clients see no error (first-byte timeout, then west's channel)
      ue.setMode('stall', { faultAfterChunks: 0 });
      const p2: ChatResult[] = [];
      for (let i = 0; i < 8; i++) p2.push(await chat(east.url, { model: MODEL, stream: i % 2 === 1 }));
      expect(failures(p2), summarize(p2)).toHaveLength(0);
      expect(
        p2.every((r) => r.peer === 'west'),
        summarize(p2),
      ).toBe(true);
      expect((await channelRow(east.url, LOCAL_E))?.health.lastError).toMatch(/no first byte/);
      const p2Stalls = ue.byMode.stall;
      ue.setMode('ok', { faultAfterChunks: 2 });
      await waitOutCooldown(east.url, LOCAL_E);
      await waitFor(
        async () => {
          const r = await chat(east.url, { model: MODEL });
          return r.status === 200 && (await channelRow(east.url, LOCAL_E))?.health.state === 'healthy';
        },
        "east's channel healthy again",
        5000,
        20,
      );
      await waitFor(async () => (await channelRow(west.url, PEER_E_ON_W))?.health.state === 'healthy', "east's channel eligible on west", 5000, 50);

      // 3. the whole east gateway dies under west's load (half the requests streamed)
      let stop = false;
      const load: ChatResult[] = [];
      let n = 0;
      const workers = Promise.all(
        Array.from({ length: 8 }, async () => {
          while (!stop && n < 1500) {
            const i = n++;
            load.push(await chat(west.url, { model: MODEL, stream: i % 2 === 0 }));
          }
        }),
      );
      const eastBefore = ue.completed;
      await waitFor(() => ue.completed >= eastBefore + 5, "east serving some of west's load", 10_000, 10);
      east.kill('SIGKILL');
      await waitFor(async () => (await channelRow(west.url, PEER_E_ON_W)) === undefined, "east's channel gone from west's table", 3000, 20);
      const westServed = uw.completed;
      await waitFor(() => uw.completed >= westServed + 5, "the load running on west's channel after east died", 10_000, 10);
      stop = true;
      await workers;
      const nonStreamFailed = load.filter((r) => r.status !== 200);
      const streamFailed = load.filter((r) => r.status === 200 && r.events.length > 0 && (streamVerdict(r) !== 'completed' || r.contentChunks !== 4));
      expect(nonStreamFailed, summarize(nonStreamFailed)).toHaveLength(0);
      for (const r of streamFailed) {
        expect(streamVerdict(r), 'a broken stream must end with an error event, never [DONE]').toBe('error-event');
        expect(r.peer, 'only streams already relaying from east may fail').toBe('east');
      }
      const after = await runConcurrent(10, 5, () => chat(west.url, { model: MODEL }));
      expect(
        after.every((r) => r.status === 200 && r.channel === 'ch-west' && !r.peer),
        summarize(after),
      ).toBe(true);

      // 4. east comes back: the link is re-established (either side's dial) and west's traffic returns to it
      east = await startProcess(eastCfg, {}, dir);
      procs.push(east);
      await waitFor(async () => (await channelRow(west.url, PEER_E_ON_W)) !== undefined, "east's channel back on west", 10_000);
      await waitOutCooldown(west.url, PEER_E_ON_W);
      const eastAgain = ue.completed;
      await waitFor(
        async () => {
          const rs = await runConcurrent(8, 8, () => chat(west.url, { model: MODEL }));
          expect(failures(rs), summarize(rs)).toHaveLength(0);
          return rs.some((r) => r.peer === 'east') && ue.completed > eastAgain;
        },
        "west's traffic to reach east again",
        8000,
        50,
      );
      await waitFor(async () => (await channelRow(west.url, PEER_E_ON_W))?.health.state === 'healthy', "east's channel healthy on west", 4000);
      console.log(
        `[geo] west upstream down: 40/40 ok via east (west's channel failed ${p1Fails}×, never twice per request); ` +
          `east upstream stalled: 8/8 ok via west (${p2Stalls} stalled attempts); ` +
          `east SIGKILL under load: ${load.length} requests, 0 non-stream failures, ${streamFailed.length} started streams ended with an error event, 0 fake [DONE]; ` +
          'after restart traffic returned to east',
      );
    },
  );
});
