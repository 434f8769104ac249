/**
 * What the OpenClaw client keeps of a gateway's hello-ok policy: the tick interval it watches liveness by is the
 * announced one, the default when none (or a non-positive one) is announced, and at most 10 min: a larger value
 * would overflow the watchdog's timer, which Node then fires every millisecond.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_TICK_INTERVAL_MS, MAX_TICK_INTERVAL_MS, MIN_TICK_INTERVAL_MS, parseHelloOk } from '../../src/acp/runtimes/openclaw/protocol.js';

const hello = (policy: unknown) => parseHelloOk({ type: 'hello-ok', protocol: 3, policy });

describe('OpenClaw hello-ok policy', () => {
  it('takes the tick interval within bounds', () => {
    expect(hello({ tickIntervalMs: 5_000 })?.policy.tickIntervalMs).toBe(5_000);
    expect(hello({ tickIntervalMs: 2 ** 40 })?.policy.tickIntervalMs).toBe(MAX_TICK_INTERVAL_MS);
    // too short to watch anything with: every run would fail between two frames
    expect(hello({ tickIntervalMs: 0.001 })?.policy.tickIntervalMs).toBe(MIN_TICK_INTERVAL_MS);
    expect(MAX_TICK_INTERVAL_MS).toBe(600_000);
    for (const bad of [0, -1, '30000', null]) expect(hello({ tickIntervalMs: bad })?.policy.tickIntervalMs).toBe(DEFAULT_TICK_INTERVAL_MS);
    expect(hello(undefined)?.policy.tickIntervalMs).toBe(DEFAULT_TICK_INTERVAL_MS);
  });
});
