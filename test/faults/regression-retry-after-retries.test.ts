/**
 * Regression: an upstream that answers 429 (or 503) with Retry-After is not asked again within the same
 * request. With a single channel for the model, the router's retries used to go straight back to it (every
 * candidate had failed, so failed ones were allowed again, and every one was ejected, so panic let it through):
 * one client request became 1 + `retries` requests to an upstream that had just asked for quiet, and the client
 * got the 429 only after them. Real gateway process, fault upstream.
 */
import { describe, expect, it } from 'vitest';
import { startProcess, type GatewayProcess } from '../helpers/env.js';
import { stopAfterEach } from '../helpers/stop-after.js';
import { chat, startFaultUpstream, type FaultUpstream } from '../fakes/fault-upstream.js';

const MODEL = 'fault-model';
const { procs, ups } = stopAfterEach();

async function gateway(channels: Array<{ name: string; up: FaultUpstream }>): Promise<GatewayProcess> {
  const gw = await startProcess({
    gateway: { id: 'gw_retry_after', routing: { retries: 2, timeoutMs: 15_000, firstByteTimeoutMs: 5_000 } },
    channels: channels.map((c, i) => ({ name: c.name, provider: 'vllm', baseUrl: c.up.baseUrl, models: [MODEL], priority: i })),
  });
  procs.push(gw);
  return gw;
}

describe('Retry-After within one request', () => {
  it('the only channel answers 429 + Retry-After: one upstream request, and the client gets the 429 with the Retry-After', async () => {
    const up = await startFaultUpstream('only');
    ups.push(up);
    const gw = await gateway([{ name: 'only', up }]);
    up.setMode('fail429', { retryAfterSec: 30 });
    for (const stream of [false, true]) {
      const before = up.received;
      const res = await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: MODEL, stream, messages: [{ role: 'user', content: 'hi' }] }),
      });
      const body = (await res.json()) as { error: { code: string } };
      expect(res.status).toBe(429);
      expect(body.error.code).toBe('rate_limited');
      expect(res.headers.get('retry-after')).toBe('30');
      expect(up.received - before, `stream=${stream}: the upstream that asked to wait 30 s was asked again at once`).toBe(1);
    }
  });

  it('a retry skips the channel that asked to wait but still goes to one that failed otherwise', async () => {
    const limited = await startFaultUpstream('limited');
    const broken = await startFaultUpstream('broken');
    ups.push(limited, broken);
    const gw = await gateway([
      { name: 'limited', up: limited },
      { name: 'broken', up: broken },
    ]);
    limited.setMode('fail429', { retryAfterSec: 30 });
    broken.setMode('fail500');
    const r = await chat(gw.url, { model: MODEL });
    // attempt 1: limited (priority 0) → 429; attempt 2: broken → 500; attempt 3: broken again (only failed
    // candidates are left, and limited asked to wait)
    expect(r.status).toBe(502);
    expect(limited.received).toBe(1);
    expect(broken.received).toBe(2);
  });
});
