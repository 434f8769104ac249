/** Outlier detection semantics with an injected clock (no sleeping). */
import { describe, expect, it } from 'vitest';
import { HealthTracker, RollingWindow, type HealthConfig } from '../../src/router/health.js';

const cfg: HealthConfig = { consecutiveFailures: 3, failureRatio: 0.5, windowMs: 10_000, minRequests: 6, baseEjectionMs: 1000, maxEjectionMs: 4000 };

function tracker() {
  let t = 1_000_000;
  const changes: string[] = [];
  const h = new HealthTracker(
    cfg,
    () => t,
    (id, from, to) => changes.push(`${id}:${from}->${to}`),
  );
  return { h, changes, advance: (ms: number) => (t += ms), now: () => t };
}

describe('HealthTracker', () => {
  it('ejects after N consecutive failures, not before', () => {
    const { h } = tracker();
    h.failed('a', 'x');
    h.failed('a', 'x');
    expect(h.state('a')).toBe('healthy');
    expect(h.eligible('a')).toBe(true);
    h.failed('a', 'x');
    expect(h.state('a')).toBe('ejected');
    expect(h.eligible('a')).toBe(false);
  });

  it('a success resets the consecutive count', () => {
    const { h } = tracker();
    h.failed('a', 'x');
    h.failed('a', 'x');
    h.succeeded('a');
    h.failed('a', 'x');
    h.failed('a', 'x');
    expect(h.state('a')).toBe('healthy');
  });

  it('ejects on the failure ratio over the window once minRequests is reached', () => {
    const { h } = tracker();
    for (let i = 0; i < 3; i++) {
      h.succeeded('a');
      h.failed('a', 'x');
    }
    expect(h.snapshot('a')).toMatchObject({ windowRequests: 6, windowFailures: 3 });
    expect(h.state('a')).toBe('ejected');
    expect(h.snapshot('a').reason).toMatch(/3\/6 failed/);
  });

  it('old events leave the sliding window', () => {
    const { h, advance } = tracker();
    h.failed('a', 'x');
    h.failed('a', 'x');
    h.succeeded('a');
    advance(11_000);
    for (let i = 0; i < 5; i++) h.succeeded('a');
    h.failed('a', 'x');
    expect(h.snapshot('a')).toMatchObject({ windowRequests: 6, windowFailures: 1 });
    expect(h.state('a')).toBe('healthy');
  });

  it('half-open: one probe after the cooldown; success returns it to service', () => {
    const { h, advance, changes } = tracker();
    for (let i = 0; i < 3; i++) h.failed('a', 'x');
    advance(999);
    expect(h.eligible('a')).toBe(false);
    advance(1);
    expect(h.eligible('a')).toBe(true);
    expect(h.started('a'), 'this request is the probe').toBe(true);
    expect(h.state('a')).toBe('probing');
    expect(h.eligible('a')).toBe(false); // only one probe at a time
    h.succeeded('a', true);
    expect(h.state('a')).toBe('healthy');
    expect(changes).toEqual(['a:healthy->ejected', 'a:ejected->probing', 'a:probing->healthy']);
  });

  it('a failed probe ejects again, for longer each time, up to the cap', () => {
    const { h, advance, now } = tracker();
    for (let i = 0; i < 3; i++) h.failed('a', 'x');
    const durations: number[] = [h.snapshot('a').ejectedUntil - now()];
    for (let k = 0; k < 5; k++) {
      advance(h.snapshot('a').ejectedUntil - now());
      expect(h.started('a')).toBe(true);
      h.failed('a', 'still down', undefined, true);
      durations.push(h.snapshot('a').ejectedUntil - now());
    }
    expect(durations).toEqual([1000, 2000, 3000, 4000, 4000, 4000]);
  });

  it('a Retry-After longer than maxEjectionMs is capped at it', () => {
    const { h, now } = tracker();
    h.failed('a', 'RATE_LIMITED', 3600);
    expect(h.snapshot('a').ejectedUntil - now()).toBe(4000);
  });

  it('Retry-After drives the cooldown', () => {
    const { h, now } = tracker();
    h.failed('a', 'RATE_LIMITED', 3);
    expect(h.state('a')).toBe('ejected');
    expect(h.snapshot('a').ejectedUntil - now()).toBe(3000);
  });

  it('the ejection multiplier is forgotten after a long healthy spell', () => {
    const { h, advance, now } = tracker();
    for (let i = 0; i < 3; i++) h.failed('a', 'x');
    advance(1000);
    h.succeeded('a', h.started('a'));
    advance(5000);
    h.succeeded('a');
    for (let i = 0; i < 3; i++) h.failed('a', 'x');
    expect(h.snapshot('a').ejectedUntil - now()).toBe(1000);
  });

  it('a probe that ends without a verdict frees the probe slot: the next request is the probe', () => {
    const { h, advance, changes } = tracker();
    for (let i = 0; i < 3; i++) h.failed('a', 'x');
    advance(1000);
    const probe = h.started('a');
    expect(probe).toBe(true);
    expect(h.eligible('a')).toBe(false);
    h.released('a', probe);
    expect(h.state('a')).toBe('ejected');
    expect(h.probeDue('a')).toBe(true);
    expect(h.eligible('a')).toBe(true);
    expect(h.snapshot('a').ejections, 'no verdict is no failure').toBe(1);
    h.succeeded('a', h.started('a'));
    expect(h.state('a')).toBe('healthy');
    expect(changes).toEqual(['a:healthy->ejected', 'a:ejected->probing', 'a:probing->ejected', 'a:ejected->probing', 'a:probing->healthy']);
  });

  it('only the probe decides: requests sent before the ejection neither end it nor stack it', () => {
    const { h, advance, now } = tracker();
    // five requests in flight (none is a probe: the candidate is healthy when they start)
    const started = Array.from({ length: 5 }, () => h.started('a'));
    expect(started).toEqual([false, false, false, false, false]);
    for (let i = 0; i < 3; i++) h.failed('a', 'x', undefined, started[i]);
    const until = h.snapshot('a').ejectedUntil;
    expect(until - now()).toBe(1000);
    // the fourth fails after the ejection: no second ejection, same cooldown
    h.failed('a', 'x', undefined, started[3]);
    expect(h.snapshot('a')).toMatchObject({ state: 'ejected', ejections: 1, ejectedUntil: until });
    // the fifth succeeds: still ejected
    h.succeeded('a', started[4]);
    expect(h.state('a')).toBe('ejected');
    // an older request's Retry-After extends the cooldown without counting an ejection
    h.failed('a', 'RATE_LIMITED', 3);
    expect(h.snapshot('a')).toMatchObject({ state: 'ejected', ejections: 1, ejectedUntil: now() + 3000 });
    advance(3000);
    // while the probe is out, another request (panic) finishing changes nothing either
    const probe = h.started('a');
    expect(probe).toBe(true);
    expect(h.started('a'), 'one probe at a time').toBe(false);
    h.succeeded('a', false);
    expect(h.state('a')).toBe('probing');
    h.succeeded('a', probe);
    expect(h.state('a')).toBe('healthy');
  });

  it('candidates are independent', () => {
    const { h } = tracker();
    for (let i = 0; i < 3; i++) h.failed('a', 'x');
    expect(h.state('b')).toBe('healthy');
    expect(h.eligible('b')).toBe(true);
  });
});

describe('probeDue', () => {
  it('is true only for an ejected candidate whose cooldown is over, until the probe is sent', () => {
    let t = 0;
    const h = new HealthTracker(cfg, () => t);
    expect(h.probeDue('a')).toBe(false);
    for (let i = 0; i < 3; i++) h.failed('a', 'x');
    expect(h.probeDue('a')).toBe(false);
    t += 1000;
    expect(h.probeDue('a')).toBe(true);
    h.started('a');
    expect(h.probeDue('a')).toBe(false);
  });
});

describe('RollingWindow', () => {
  it('counts exactly within the window and forgets an event within one slot of its age reaching windowMs', () => {
    const w = new RollingWindow(10_000); // slots of 500 ms
    const t0 = 1_000_000;
    w.add(t0, true);
    w.add(t0 + 1, false);
    w.add(t0 + 9_000, false);
    expect([w.requests(t0 + 9_000), w.failures(t0 + 9_000)]).toEqual([3, 2]);
    // at 9.5 s the first two are still in; by windowMs + one slot they are gone, the third stays
    expect(w.requests(t0 + 9_499)).toBe(3);
    expect([w.requests(t0 + 10_500), w.failures(t0 + 10_500)]).toEqual([1, 1]);
    expect(w.requests(t0 + 19_500)).toBe(0);
  });

  it('a slot reused a window later starts from zero, and reads far in the future see nothing', () => {
    const w = new RollingWindow(1_000); // 20 slots of 50 ms
    for (let t = 0; t < 100_000; t += 7) w.add(t, t % 2 === 0);
    // the last second holds the events of the last 20 slots only
    const inWindow = (lo: number, hi: number) => {
      let n = 0;
      for (let t = 0; t < 100_000; t += 7) if (t >= lo && t <= hi) n++;
      return n;
    };
    const now = 99_999;
    const r = w.requests(now);
    expect(r).toBeGreaterThanOrEqual(inWindow(now - 950, now));
    expect(r).toBeLessThanOrEqual(inWindow(now - 1_000, now));
    expect(w.requests(now + 5_000)).toBe(0);
    w.add(now + 5_000, false);
    expect([w.requests(now + 5_000), w.failures(now + 5_000)]).toEqual([1, 1]);
  });

  it('clear() empties it', () => {
    const w = new RollingWindow(1_000);
    w.add(10, false);
    w.clear();
    expect(w.requests(10)).toBe(0);
  });
});
