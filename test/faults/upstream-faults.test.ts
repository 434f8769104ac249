/**
 * Fault suite, upstream side: one real gateway process with two equal local channels (ch-a, ch-b) for one
 * model, each on its own fault upstream. ch-a misbehaves; ch-b stays healthy. Every scenario asserts how
 * many client requests failed and why, that no stream ended with a fake [DONE], that traffic moved to ch-b,
 * and that ch-a came back (ejected → cooldown → half-open probe → healthy) once its upstream recovered.
 *
 * Routing knobs are small so the suite stays fast: first byte 500 ms, stream idle 500 ms, eject after 3
 * consecutive failures for 800 ms × (number of ejections).
 */
import { describe, expect, it } from 'vitest';
import { startProcess, waitFor, sleep, type GatewayProcess } from '../helpers/env.js';
import { stopAfterEach } from '../helpers/stop-after.js';
import {
  chat,
  channelRow,
  runConcurrent,
  startFaultUpstream,
  streamVerdict,
  summarize,
  type ChatResult,
  type FaultMode,
  type FaultUpstream,
  endlessWritten,
} from '../fakes/fault-upstream.js';

const MODEL = 'fault-model';
const A = 'local/ch-a';
const HEALTH = { consecutiveFailures: 3, failureRatio: 0.5, windowMs: 10_000, minRequests: 10, baseEjectionMs: 800, maxEjectionMs: 4_000 };

const { procs, ups } = stopAfterEach();

async function setup(): Promise<{ gw: GatewayProcess; ua: FaultUpstream; ub: FaultUpstream }> {
  const ua = await startFaultUpstream('up-a');
  const ub = await startFaultUpstream('up-b');
  ups.push(ua, ub);
  const gw = await startProcess({
    gateway: {
      id: 'gw_faults_up',
      routing: { retries: 2, timeoutMs: 15_000, firstByteTimeoutMs: 500, streamIdleTimeoutMs: 500, health: HEALTH },
    },
    channels: [
      // 1 MiB: an `endless` answer is cut there (channels[].maxResponseBytes); every other answer is far smaller
      { name: 'ch-a', provider: 'vllm', baseUrl: ua.baseUrl, models: [MODEL], maxResponseBytes: 1_048_576 },
      { name: 'ch-b', provider: 'vllm', baseUrl: ub.baseUrl, models: [MODEL] },
    ],
  });
  procs.push(gw);
  return { gw, ua, ub };
}

/**
 * Recovery: with ch-a's upstream healthy again, wait out the cooldown; the next request is the half-open
 * probe; it reaches ch-a and ch-a is healthy in /admin/channels again.
 */
async function expectRecovery(gw: GatewayProcess, ua: FaultUpstream): Promise<void> {
  ua.setMode('ok');
  const row = await channelRow(gw.url, A);
  expect(row?.health.state, 'ch-a should still be ejected before the probe').toBe('ejected');
  const wait = row!.health.ejectedUntil - Date.now();
  if (wait > 0) await sleep(wait + 30);
  const before = ua.completed;
  let sent = 0;
  await waitFor(
    async () => {
      sent++;
      const r = await chat(gw.url, { model: MODEL });
      expect(r.status).toBe(200);
      return ua.completed > before;
    },
    'traffic to reach ch-a again after its cooldown (the probe)',
    6000,
    20,
  );
  expect(sent, 'the probe should be among the first requests after the cooldown').toBeLessThanOrEqual(5);
  await waitFor(async () => (await channelRow(gw.url, A))?.health.state === 'healthy', 'ch-a healthy in /admin/channels', 3000);
}

describe('fault suite: upstream faults on one of two local channels', () => {
  it('5xx burst: zero client failures (streams too), no retry back to the failing channel, ejection, recovery', async () => {
    // Expect: ch-a answers 500 to everything. 30 requests (half streamed) at concurrency 3: ALL succeed on
    // ch-b (nothing had been streamed when ch-a failed, and ch-b is healthy); no request id reaches ch-a twice;
    // ch-a is ejected after 3 consecutive failures, so it sees only a handful of the 30.
    const { gw, ua, ub } = await setup();
    ua.setMode('fail500');
    const rs = await runConcurrent(30, 3, (i) => chat(gw.url, { model: MODEL, stream: i % 2 === 0 }));
    const failed = rs.filter((r) => r.status !== 200 || (r.events.length > 0 && streamVerdict(r) !== 'completed'));
    expect(failed, summarize(rs)).toHaveLength(0);
    expect(
      rs.every((r) => r.channel === 'ch-b'),
      summarize(rs),
    ).toBe(true);
    expect(ub.completed).toBe(30);
    expect(ua.byMode.fail500, 'the burst reached ch-a').toBeGreaterThanOrEqual(1);
    expect(ua.byMode.fail500, 'ch-a should be ejected after 3 consecutive failures, not keep taking traffic').toBeLessThanOrEqual(8);
    expect(ua.repeatedRequestIds(), 'a retry went back to the failing channel').toEqual([]);
    const row = await channelRow(gw.url, A);
    expect(row?.health.state).toBe('ejected');
    // ejected for 3 consecutive failures; on a slow run the burst outlasts the 800 ms cooldown and a failed probe re-ejects it
    expect(row?.health.reason).toMatch(/consecutive failures|failed in the last|probe failed/);
    console.log(`[5xx burst] 30 requests, 0 failed; ch-a got ${ua.byMode.fail500} (500s), ch-b served ${ub.completed}`);
    await expectRecovery(gw, ua);
  });

  it('429 with Retry-After: one 429 ejects for Retry-After, no request in the cooldown, probe then recovery', async () => {
    // Expect: ch-a answers 429 + Retry-After: 1. The first 429 ejects ch-a for 1 s (not the 800 ms base);
    // during that second ch-a gets nothing; after it exactly one probe goes (still 429: ejected again);
    // every client request succeeds on ch-b. Then ch-a recovers and takes traffic again.
    const { gw, ua, ub } = await setup();
    ua.setMode('fail429', { retryAfterSec: 1 });
    const results: ChatResult[] = [];
    const t0 = Date.now();
    let checked = false;
    // bounded: sequential requests for ~1.6 s, at most 60
    for (let i = 0; i < 60 && Date.now() - t0 < 1600; i++) {
      results.push(await chat(gw.url, { model: MODEL, stream: i % 3 === 0 }));
      if (!checked && ua.arrivals.length === 1) {
        checked = true;
        const row = await channelRow(gw.url, A);
        expect(row?.health.state).toBe('ejected');
        expect(row?.health.reason).toMatch(/retry after 1s/);
        // cooldown from Retry-After (1000 ms), not from baseEjectionMs (800 ms)
        expect(row!.health.ejectedUntil - ua.arrivals[0]!.at).toBeGreaterThanOrEqual(950);
      }
      await sleep(20);
    }
    expect(checked, 'the first 429 reached ch-a').toBe(true);
    expect(
      results.filter((r) => r.status !== 200 || (r.events.length > 0 && streamVerdict(r) !== 'completed')),
      summarize(results),
    ).toHaveLength(0);
    const a429 = ua.arrivals.filter((x) => x.mode === 'fail429');
    expect(a429.length, 'one 429, then one probe after the cooldown').toBeGreaterThanOrEqual(1);
    expect(a429.length).toBeLessThanOrEqual(2);
    if (a429.length === 2) expect(a429[1]!.at - a429[0]!.at, 'a request reached ch-a during its Retry-After cooldown').toBeGreaterThanOrEqual(950);
    expect(ub.completed).toBe(results.length);
    expect(ua.repeatedRequestIds()).toEqual([]);
    console.log(
      `[429] ${results.length} requests, 0 failed; ch-a got ${a429.length} (429s, 2nd = probe after ${a429.length === 2 ? a429[1]!.at - a429[0]!.at : '-'} ms)`,
    );
    await expectRecovery(gw, ua);
  });

  it('upstream stall: the first-byte timeout fails over with zero client failures; ejection; recovery', async () => {
    // Expect: ch-a accepts and never answers. Each attempt on it ends after firstByteTimeoutMs (500 ms) with
    // UPSTREAM_TIMEOUT and is retried on ch-b; no client sees an error; after 3 such timeouts ch-a is ejected.
    const { gw, ua, ub } = await setup();
    ua.setMode('stall', { faultAfterChunks: 0 });
    const rs: ChatResult[] = [];
    for (let i = 0; i < 8; i++) rs.push(await chat(gw.url, { model: MODEL, stream: i % 2 === 1 }));
    expect(
      rs.filter((r) => r.status !== 200 || (r.events.length > 0 && streamVerdict(r) !== 'completed')),
      summarize(rs),
    ).toHaveLength(0);
    expect(rs.every((r) => r.channel === 'ch-b')).toBe(true);
    expect(ub.completed).toBe(8);
    expect(ua.byMode.stall).toBeGreaterThanOrEqual(1);
    expect(ua.byMode.stall).toBeLessThanOrEqual(4);
    expect(ua.repeatedRequestIds()).toEqual([]);
    const row = await channelRow(gw.url, A);
    expect(row?.health.state).toBe('ejected');
    expect(row?.health.lastError).toMatch(/UPSTREAM_TIMEOUT.*no first byte/);
    console.log(`[stall] 8 requests, 0 failed; ch-a stalled ${ua.byMode.stall} attempt(s), ch-b served ${ub.completed}`);
    await expectRecovery(gw, ua);
  });

  it('endless answer: past maxResponseBytes it is cut (not held until a timeout) and fails over with zero client failures', async () => {
    // Expect: ch-a answers 200 and a body that never ends. The gateway holds at most ch-a's maxResponseBytes
    // (1 MiB) of it, then aborts it with UPSTREAM_BAD_RESPONSE and retries on ch-b; no client sees an error.
    // A stream whose first event never ends is cut the same way before its first chunk, and retried too.
    const { gw, ua, ub } = await setup();
    ua.setMode('endless', { faultAfterChunks: 0 });
    endlessWritten.length = 0;
    const rs: ChatResult[] = [];
    for (let i = 0; i < 6; i++) rs.push(await chat(gw.url, { model: MODEL, stream: i % 2 === 1 }));
    expect(
      rs.filter((r) => r.status !== 200 || (r.events.length > 0 && streamVerdict(r) !== 'completed')),
      summarize(rs),
    ).toHaveLength(0);
    expect(rs.every((r) => r.channel === 'ch-b')).toBe(true);
    expect(ub.completed).toBe(6);
    expect(ua.byMode.endless).toBeGreaterThanOrEqual(1);
    const row = await channelRow(gw.url, A);
    expect(row?.health.lastError).toMatch(/UPSTREAM_BAD_RESPONSE.*upstream (answer|stream event) exceeds maxResponseBytes \(1048576\)/);
    // the gateway let go of each endless answer: what the upstream wrote is the 1 MiB it held plus what the two
    // sockets' buffers took, not an unbounded amount
    await waitFor(() => endlessWritten.length === ua.byMode.endless, 'every endless answer closed by the gateway', 5000);
    for (const w of endlessWritten) expect(w).toBeLessThan(32 * 1024 * 1024);
    console.log(`[endless] 6 requests, 0 failed; ch-a cut ${ua.byMode.endless} endless answer(s) after ${endlessWritten.join(', ')} bytes written`);
    await expectRecovery(gw, ua);
  });

  const midStream: Array<{ mode: FaultMode; what: string; code: RegExp }> = [
    { mode: 'cutMidStream', what: 'stream cut mid-way (socket destroyed)', code: /upstream_stream_error|upstream_error/ },
    { mode: 'malformedChunk', what: 'malformed SSE JSON', code: /upstream_bad_response/ },
    // a server_error: the error of the 500 it names
    { mode: 'inbandError', what: 'in-band error chunk', code: /^upstream_error$/ },
    { mode: 'endless', what: 'an event that never ends (past maxResponseBytes)', code: /upstream_bad_response/ },
    { mode: 'stall', what: 'stream goes silent (stream idle timeout)', code: /upstream_timeout/ },
  ];

  for (const s of midStream) {
    it(`${s.what}: started streams end with an error event and no [DONE]; the same fault before the first byte is retried`, async () => {
      // Expect, phase 1 (fault after the role chunk + one content chunk): each stream routed to ch-a has
      // started, so it FAILS, with an error event and without [DONE] (never a fake success); streams on ch-b
      // complete. ch-a is ejected after 3 such failures, so exactly 3 client streams fail.
      // Phase 2 (same fault before any byte): the half-open probe fails before the commit point, is retried
      // on ch-b, and the client sees no failure at all. Phase 3: ch-a recovers.
      const { gw, ua, ub } = await setup();
      ua.setMode(s.mode, { faultAfterChunks: 2, chunkDelayMs: 5 });
      const rs: ChatResult[] = [];
      for (let i = 0; i < 20 && rs.filter((r) => r.channel === 'ch-a').length < 3; i++) rs.push(await chat(gw.url, { model: MODEL, stream: true }));
      const onA = rs.filter((r) => r.channel === 'ch-a');
      const onB = rs.filter((r) => r.channel === 'ch-b');
      expect(onA.length, summarize(rs)).toBe(3);
      for (const r of onA) {
        expect(streamVerdict(r), `stream on ch-a: ${r.raw.slice(-300)}`).toBe('error-event');
        expect(r.contentChunks, 'the failed stream had started (one content chunk relayed)').toBe(1);
        expect(r.errorEvent!.code).toMatch(s.code);
        expect(r.raw).not.toContain('[DONE]');
      }
      for (const r of onB) {
        expect(streamVerdict(r)).toBe('completed');
        expect(r.contentChunks, 'a completed stream carries every chunk').toBe(3);
      }
      expect(rs.filter((r) => streamVerdict(r) === 'fake-success')).toHaveLength(0);
      const row = await channelRow(gw.url, A);
      expect(row?.health.state).toBe('ejected');
      expect(row?.health.ejections).toBe(1);

      // phase 2: the fault now hits before the first byte; the probe fails and is retried on ch-b
      ua.setMode(s.mode, { faultAfterChunks: 0 });
      const wait = row!.health.ejectedUntil - Date.now();
      if (wait > 0) await sleep(wait + 30);
      const beforeA = ua.received;
      const probeAt = Date.now();
      const probe = await chat(gw.url, { model: MODEL, stream: true });
      expect(streamVerdict(probe), summarize([probe])).toBe('completed');
      expect(probe.channel).toBe('ch-b');
      // The probe went to ch-a and failed there (ejection count 2). Its upstream normally sees it; on a very busy
      // machine the 500 ms first-byte budget can run out before the fake even reads the request.
      expect(ua.received - beforeA, 'at most the probe reached ch-a').toBeLessThanOrEqual(1);
      expect(ub.completed, 'ch-b served every other stream, and the retried probe').toBe(onB.length + 1);
      const again = await channelRow(gw.url, A);
      expect(again?.health.state).toBe('ejected');
      expect(again?.health.ejections, 'the probe was sent to ch-a, failed, and the ejection count grew').toBe(2);
      expect(again?.health.reason).toBe('probe failed');
      expect(again!.health.ejectedUntil - probeAt, 'second ejection lasts 2 × base (1600 ms)').toBeGreaterThanOrEqual(1590);
      console.log(
        `[${s.mode}] ${rs.length + 1} streams: ${onA.length} failed with an error event (all had started), 0 fake [DONE], ${onB.length + 1} completed on ch-b; probe before first byte retried`,
      );
      await expectRecovery(gw, ua);
    });
  }
});
