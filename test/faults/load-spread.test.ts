/**
 * Fault suite, load sharing: two equal local channels behind one real gateway process.
 * - 1,000 requests at concurrency 50: least-loaded (power of two choices) keeps each channel at ≤ 65 %
 *   (a "load balancer" that sends bursts to one channel fails this), and nothing fails.
 * - X-Session-Id affinity: a conversation stays on its channel while it is healthy and moves when the
 *   channel is ejected, without a client-visible error.
 */
import { describe, expect, it } from 'vitest';
import { startProcess, waitFor, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { chat, channelRow, runConcurrent, startFaultUpstream, streamVerdict, summarize, type FaultUpstream } from '../fakes/fault-upstream.js';

const MODEL = 'spread-model';
const { procs, ups } = stopAfterAll({ graceMs: 2000 });

async function setup(id: string, delayMs: number): Promise<{ gw: GatewayProcess; ua: FaultUpstream; ub: FaultUpstream }> {
  const ua = await startFaultUpstream('up-a');
  const ub = await startFaultUpstream('up-b');
  ups.push(ua, ub);
  ua.setMode('ok', { responseDelayMs: delayMs, chunkDelayMs: 5, chunks: 2 });
  ub.setMode('ok', { responseDelayMs: delayMs, chunkDelayMs: 5, chunks: 2 });
  const gw = await startProcess(
    {
      gateway: {
        id,
        // generous first-byte timeout: this file is about spreading, not timeouts, on a shared 2-core box
        routing: {
          retries: 2,
          timeoutMs: 30_000,
          firstByteTimeoutMs: 10_000,
          streamIdleTimeoutMs: 10_000,
          health: { consecutiveFailures: 3, baseEjectionMs: 1000, maxEjectionMs: 4000 },
        },
      },
      channels: [
        { name: 'ch-a', provider: 'vllm', baseUrl: ua.baseUrl, models: [MODEL] },
        { name: 'ch-b', provider: 'vllm', baseUrl: ub.baseUrl, models: [MODEL] },
      ],
    },
    { SWITCHYARD_LOG: 'warn' },
  );
  procs.push(gw);
  return { gw, ua, ub };
}

describe('fault suite: load sharing', () => {
  it('two equal channels: neither gets more than 65% of 1,000 requests at concurrency 50; zero failures', { timeout: 120_000 }, async () => {
    // Expect: 1,000 requests (one in ten streamed) all succeed; each channel serves between 35 % and 65 %,
    // counted both by the upstreams' counters and by the x-switchyard-channel response header.
    const { gw, ua, ub } = await setup('gw_spread', 10);
    const rs = await runConcurrent(1000, 50, (i) => chat(gw.url, { model: MODEL, stream: i % 10 === 0, timeoutMs: 60_000 }));
    const bad = rs.filter((r) => r.status !== 200 || (r.events.length > 0 && (streamVerdict(r) !== 'completed' || r.contentChunks !== 2)));
    expect(bad, summarize(bad)).toHaveLength(0);
    const byHeader = { a: rs.filter((r) => r.channel === 'ch-a').length, b: rs.filter((r) => r.channel === 'ch-b').length };
    expect(byHeader.a + byHeader.b).toBe(1000);
    expect(ua.completed + ub.completed).toBe(1000);
    expect(ua.completed).toBe(byHeader.a);
    expect(ub.completed).toBe(byHeader.b);
    expect(Math.max(ua.completed, ub.completed), `ch-a ${ua.completed} / ch-b ${ub.completed}`).toBeLessThanOrEqual(650);
    console.log(`[load spread] 1000 requests @50: ch-a ${ua.completed}, ch-b ${ub.completed}, 0 failed`);
  });

  it('session affinity: a session sticks to its channel while healthy and moves when it is ejected', async () => {
    // Expect: sessions bound to ch-a / ch-b keep their channel across 10 requests each (interleaved with
    // session-less traffic); once ch-a is ejected, ch-a's session moves to ch-b with no error and ch-a gets
    // none of that session's requests; ch-b's session never moves.
    const { gw, ua, ub } = await setup('gw_affinity', 2);
    const home = new Map<string, string>();
    for (let k = 0; k < 40 && !([...home.values()].includes('ch-a') && [...home.values()].includes('ch-b')); k++) {
      const r = await chat(gw.url, { model: MODEL, sessionId: `conv-${k}` });
      expect(r.status).toBe(200);
      if (![...home.values()].includes(r.channel!)) home.set(`conv-${k}`, r.channel!);
    }
    const sA = [...home].find(([, c]) => c === 'ch-a')?.[0];
    const sB = [...home].find(([, c]) => c === 'ch-b')?.[0];
    expect(sA && sB, 'found one session on each channel').toBeTruthy();
    for (let i = 0; i < 10; i++) {
      const [ra, rb] = await Promise.all([chat(gw.url, { model: MODEL, sessionId: sA! }), chat(gw.url, { model: MODEL, sessionId: sB! })]);
      await runConcurrent(4, 4, () => chat(gw.url, { model: MODEL }));
      expect(ra.channel, 'session A stays on ch-a').toBe('ch-a');
      expect(rb.channel, 'session B stays on ch-b').toBe('ch-b');
    }

    ua.setMode('fail500');
    // session-less traffic under concurrency (at equal load the faster channel wins ties, so sequential
    // requests might never try ch-a); bounded to 10 rounds
    const noSession = [];
    for (let i = 0; i < 10 && (await channelRow(gw.url, 'local/ch-a'))?.health.state !== 'ejected'; i++)
      noSession.push(...(await runConcurrent(8, 8, () => chat(gw.url, { model: MODEL }))));
    expect(
      noSession.filter((r) => r.status !== 200),
      summarize(noSession),
    ).toHaveLength(0);
    await waitFor(async () => (await channelRow(gw.url, 'local/ch-a'))?.health.state === 'ejected', 'ch-a ejected', 2000);
    const aBefore = ua.received;
    for (let i = 0; i < 5; i++) {
      const r = await chat(gw.url, { model: MODEL, sessionId: sA! });
      expect(r.status).toBe(200);
      expect(r.channel, 'session A moved to ch-b').toBe('ch-b');
      const rb = await chat(gw.url, { model: MODEL, sessionId: sB! });
      expect(rb.channel).toBe('ch-b');
    }
    expect(ua.received, 'no request of the moved session reached the ejected channel').toBe(aBefore);
    console.log(
      `[affinity] ${sA}→ch-a and ${sB}→ch-b sticky for 10 rounds; after ch-a's ejection ${sA} moved to ch-b with 0 failures (ch-b served ${ub.completed} in all)`,
    );
  });
});
