/**
 * Regression: the half-open probe and the requests around an ejection, with a real gateway process and fault
 * upstreams. ch-a (priority 0) is preferred over ch-b (priority 1), so every request goes to ch-a while it is
 * in service, and an ejection or a probe shows directly in which channel answers.
 *
 * - A probe that ends without a verdict (the client went away while it waited) must not leave the channel in
 *   `probing` for good: before the fix its probe slot stayed taken, ch-a was never eligible again and ch-b took
 *   all traffic forever, although ch-a's upstream was fine.
 * - A request that was sent before the ejection and succeeds after it is not the probe: it must not end the
 *   ejection (before the fix it did, at once, so one slow success undid a 429's Retry-After cooldown).
 */
import { describe, expect, it } from 'vitest';
import { startProcess, waitFor, type GatewayProcess } from '../helpers/env.js';
import { stopAfterEach } from '../helpers/stop-after.js';
import { chat, channelRow, startFaultUpstream, type FaultUpstream } from '../fakes/fault-upstream.js';

const MODEL = 'fault-model';
const A = 'local/ch-a';
const HEALTH = { consecutiveFailures: 3, failureRatio: 0.5, windowMs: 10_000, minRequests: 10, baseEjectionMs: 300, maxEjectionMs: 60_000 };

const { procs, ups } = stopAfterEach();

async function setup(): Promise<{ gw: GatewayProcess; ua: FaultUpstream; ub: FaultUpstream }> {
  const ua = await startFaultUpstream('up-a');
  const ub = await startFaultUpstream('up-b');
  ups.push(ua, ub);
  const gw = await startProcess({
    gateway: { id: 'gw_probe', routing: { retries: 2, timeoutMs: 15_000, firstByteTimeoutMs: 10_000, streamIdleTimeoutMs: 5_000, health: HEALTH } },
    channels: [
      { name: 'ch-a', provider: 'vllm', baseUrl: ua.baseUrl, models: [MODEL], priority: 0 },
      { name: 'ch-b', provider: 'vllm', baseUrl: ub.baseUrl, models: [MODEL], priority: 1 },
    ],
  });
  procs.push(gw);
  return { gw, ua, ub };
}

/** ch-a answers 500 until it is ejected (3 consecutive failures; every request is retried on ch-b). */
async function ejectA(gw: GatewayProcess, ua: FaultUpstream): Promise<void> {
  ua.setMode('fail500');
  for (let i = 0; i < 3; i++) expect((await chat(gw.url, { model: MODEL })).channel).toBe('ch-b');
  expect((await channelRow(gw.url, A))?.health.state).toBe('ejected');
}

describe('half-open probe outcomes', () => {
  it('a probe the client abandons gives its slot back: the next request probes again and ch-a returns to service', async () => {
    const { gw, ua } = await setup();
    await ejectA(gw, ua);
    // the probe will wait at ch-a's upstream (healthy, just slow) until its client leaves
    ua.setMode('ok', { responseDelayMs: 5_000 });
    const row = await channelRow(gw.url, A);
    await waitFor(() => Date.now() >= row!.health.ejectedUntil, 'ch-a cooldown over', 5_000, 20);
    const before = ua.received;
    const client = new AbortController();
    const probe = fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'probe' }] }),
      signal: client.signal,
    }).catch((err: Error) => err);
    await waitFor(() => ua.received > before, 'the probe to reach ch-a', 5_000, 10);
    expect((await channelRow(gw.url, A))?.health.state).toBe('probing');
    client.abort();
    expect(await probe).toBeInstanceOf(Error);
    // the gateway saw the client go: the probe's attempt ended (nothing in flight on ch-a any more)
    await waitFor(async () => (await channelRow(gw.url, A))?.inflight === 0, 'the abandoned probe to end in the gateway', 5_000, 20);

    ua.setMode('ok', { responseDelayMs: 0 });
    const next = await chat(gw.url, { model: MODEL });
    expect(next.status).toBe(200);
    expect(next.channel, 'the next request should be the new probe, on ch-a').toBe('ch-a');
    const after = await channelRow(gw.url, A);
    expect(after?.health.state).toBe('healthy');
    expect(after?.health.ejections, 'an abandoned probe is no failure: ch-a was ejected once').toBe(1);
  });

  it('a request sent before the ejection that succeeds after it does not end the ejection early', async () => {
    const { gw, ua, ub } = await setup();
    // one slow request in flight on ch-a…
    ua.setMode('ok', { responseDelayMs: 1_500 });
    const slow = chat(gw.url, { model: MODEL, text: 'slow' });
    // the upstream reads its mode when a request arrives: switch only once this one has arrived
    await waitFor(() => ua.received === 1, 'the slow request to reach ch-a', 5_000, 10);
    // …then ch-a's upstream asks for 30 s of quiet: the next request ejects ch-a for that long and is served by ch-b
    ua.setMode('fail429', { responseDelayMs: 0, retryAfterSec: 30 });
    const limited = await chat(gw.url, { model: MODEL });
    expect(limited.channel).toBe('ch-b');
    const ejected = await channelRow(gw.url, A);
    expect(ejected?.health.state).toBe('ejected');
    // the slow request, sent before the 429, now succeeds on ch-a
    const r = await slow;
    expect(r.status).toBe(200);
    expect(r.channel).toBe('ch-a');
    const row = await channelRow(gw.url, A);
    expect(row?.health.state, 'a success of a request older than the ejection is not a probe').toBe('ejected');
    expect(row?.health.ejectedUntil).toBe(ejected?.health.ejectedUntil);
    // and traffic keeps away from ch-a for the Retry-After
    const received = ua.received;
    for (let i = 0; i < 3; i++) expect((await chat(gw.url, { model: MODEL })).channel).toBe('ch-b');
    expect(ua.received).toBe(received);
    expect(ub.completed).toBe(4);
  });
});
