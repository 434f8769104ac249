/**
 * Passive health per candidate, after Envoy's outlier detection:
 * - eject after `consecutiveFailures` failures in a row, or when the failure ratio over a sliding window of
 *   `windowMs` reaches `failureRatio` with at least `minRequests` requests in it;
 * - ejection lasts `baseEjectionMs × (number of ejections)`, capped at `maxEjectionMs`; an upstream's
 *   Retry-After (429/503) sets the cooldown instead (capped the same way);
 * - when the time is up the candidate is half-open: exactly one request (the probe) may go; success returns
 *   it to service, failure ejects it again for longer, no verdict (a cancel) lets the next request probe;
 *   other requests' outcomes (sent before the ejection, or in panic) do not change an ejected candidate's state;
 * - the ejection multiplier is forgotten after a quiet `maxEjectionMs` of good service.
 * Never ejecting everything ("panic") is the router's decision: it sees all candidates of a model.
 * Pure apart from the injected clock.
 *
 * The window is counted in `WINDOW_BUCKETS` time slots (`RollingWindow`): a request costs two increments, not
 * an object kept for `windowMs` (at 8,000 req/s and the default 30 s that was 240,000 objects per candidate,
 * each promoted to the old generation), and a candidate's memory is fixed whatever its load. The price is
 * resolution: an event leaves the window within one slot (`windowMs / 20`) of its age reaching `windowMs`.
 */
export interface HealthConfig {
  consecutiveFailures: number;
  failureRatio: number;
  windowMs: number;
  minRequests: number;
  baseEjectionMs: number;
  maxEjectionMs: number;
}

export type HealthState = 'healthy' | 'ejected' | 'probing';

export interface HealthSnapshot {
  state: HealthState;
  consecutiveFailures: number;
  windowRequests: number;
  windowFailures: number;
  ejections: number;
  /** ms since epoch; 0 when not ejected */
  ejectedUntil: number;
  lastError: string | null;
  /** why it was last ejected */
  reason: string | null;
}

interface Entry {
  state: HealthState;
  consecutive: number;
  window: RollingWindow;
  ejections: number;
  ejectedUntil: number;
  lastEjectedAt: number;
  probeInFlight: boolean;
  lastError: string | null;
  reason: string | null;
}

export type HealthListener = (id: string, from: HealthState, to: HealthState, why: string) => void;

export class HealthTracker {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly cfg: HealthConfig,
    private readonly now: () => number = Date.now,
    private readonly onChange?: HealthListener,
  ) {}

  private entry(id: string): Entry {
    let e = this.entries.get(id);
    if (!e) {
      e = {
        state: 'healthy',
        consecutive: 0,
        window: new RollingWindow(this.cfg.windowMs),
        ejections: 0,
        ejectedUntil: 0,
        lastEjectedAt: 0,
        probeInFlight: false,
        lastError: null,
        reason: null,
      };
      this.entries.set(id, e);
    }
    return e;
  }

  private setState(id: string, e: Entry, to: HealthState, why: string): void {
    const from = e.state;
    e.state = to;
    if (from !== to) this.onChange?.(id, from, to, why);
  }

  /** May this candidate take a request now? Half-open candidates take one probe at a time. */
  eligible(id: string): boolean {
    const e = this.entries.get(id);
    if (!e || e.state === 'healthy') return true;
    if (e.state === 'ejected') return this.now() >= e.ejectedUntil;
    return !e.probeInFlight;
  }

  /** Ejected, cooldown over, no probe sent yet: the next request should be its probe. */
  probeDue(id: string): boolean {
    const e = this.entries.get(id);
    return !!e && e.state === 'ejected' && this.now() >= e.ejectedUntil;
  }

  /**
   * Call when a request is sent to the candidate: an ejected one past its cooldown becomes the probe. Returns
   * true when this request is that probe; the caller hands it back with its outcome (`succeeded`, `failed`,
   * `released`), because only the probe's outcome decides a half-open candidate's fate.
   */
  started(id: string): boolean {
    const e = this.entries.get(id);
    if (!e || e.state === 'healthy') return false;
    if (e.state === 'ejected') {
      if (this.now() < e.ejectedUntil) return false;
      this.setState(id, e, 'probing', 'cooldown over: sending a probe');
    }
    if (e.probeInFlight) return false;
    e.probeInFlight = true;
    return true;
  }

  /**
   * `probe`: the request was the half-open probe (`started` said so). A request that is not the probe (sent
   * before the ejection, or in panic) does not end an ejection by succeeding: it says nothing about the
   * candidate after the failures that ejected it.
   */
  succeeded(id: string, probe = false): void {
    const e = this.entry(id);
    const t = this.now();
    e.consecutive = 0;
    if (e.state !== 'healthy') {
      if (!probe) return;
      // back in service with a clean window: the failures that ejected it are not held against it again
      e.window.clear();
      e.window.add(t, true);
      e.probeInFlight = false;
      e.ejectedUntil = 0;
      this.setState(id, e, 'healthy', 'probe succeeded');
      return;
    }
    e.window.add(t, true);
    if (e.ejections > 0 && t - e.lastEjectedAt > this.cfg.maxEjectionMs) e.ejections = 0;
  }

  /**
   * The request ended with no verdict on the candidate (the client went away, a client error, backpressure).
   * When it was the probe, the probe slot is free again: the candidate is ejected with its cooldown over, so the
   * next request probes it. Without this an abandoned probe kept the candidate out of service for good.
   */
  released(id: string, probe: boolean): void {
    if (!probe) return;
    const e = this.entries.get(id);
    if (!e || e.state !== 'probing') return;
    e.probeInFlight = false;
    this.setState(id, e, 'ejected', 'probe ended without an answer: the next request probes again');
  }

  /**
   * A failure that says something about the candidate (not the client's fault, not a cancel). `probe` as in
   * `succeeded`: while the candidate is out of service only the probe's failure ejects it again (for longer);
   * an older request failing then does not stack ejections, though a Retry-After it carries still extends the
   * cooldown.
   */
  failed(id: string, error: string, retryAfterSec?: number, probe = false): void {
    const e = this.entry(id);
    const t = this.now();
    e.window.add(t, false);
    e.consecutive++;
    e.lastError = error;
    const cooldown = retryAfterSec === undefined ? undefined : Math.min(this.cfg.maxEjectionMs, Math.max(1, retryAfterSec) * 1000);
    if (e.state !== 'healthy' && !probe) {
      if (cooldown !== undefined && t + cooldown > e.ejectedUntil) {
        e.ejectedUntil = t + cooldown;
        e.reason = `upstream asked to retry after ${retryAfterSec}s`;
      }
      return;
    }
    e.probeInFlight = false;
    // Retry-After sets the cooldown, capped at maxEjectionMs: the probe then asks again.
    if (cooldown !== undefined) return this.eject(id, e, t, cooldown, `upstream asked to retry after ${retryAfterSec}s`);
    if (e.state !== 'healthy') return this.eject(id, e, t, undefined, 'probe failed');
    if (e.consecutive >= this.cfg.consecutiveFailures) return this.eject(id, e, t, undefined, `${e.consecutive} consecutive failures`);
    const requests = e.window.requests(t);
    const failures = e.window.failures(t);
    if (requests >= this.cfg.minRequests && failures / requests >= this.cfg.failureRatio) {
      this.eject(id, e, t, undefined, `${failures}/${requests} failed in the last ${this.cfg.windowMs} ms`);
    }
  }

  private eject(id: string, e: Entry, t: number, cooldownMs: number | undefined, why: string): void {
    e.ejections++;
    e.lastEjectedAt = t;
    e.ejectedUntil = t + (cooldownMs ?? Math.min(this.cfg.maxEjectionMs, this.cfg.baseEjectionMs * e.ejections));
    e.reason = why;
    this.setState(id, e, 'ejected', why);
  }

  state(id: string): HealthState {
    return this.entries.get(id)?.state ?? 'healthy';
  }

  snapshot(id: string): HealthSnapshot {
    const e = this.entries.get(id);
    if (!e)
      return { state: 'healthy', consecutiveFailures: 0, windowRequests: 0, windowFailures: 0, ejections: 0, ejectedUntil: 0, lastError: null, reason: null };
    const t = this.now();
    return {
      state: e.state,
      consecutiveFailures: e.consecutive,
      windowRequests: e.window.requests(t),
      windowFailures: e.window.failures(t),
      ejections: e.ejections,
      ejectedUntil: e.state === 'healthy' ? 0 : e.ejectedUntil,
      lastError: e.lastError,
      reason: e.reason,
    };
  }

  forget(id: string): void {
    this.entries.delete(id);
  }
}

export const WINDOW_BUCKETS = 20;

/**
 * Requests and failures over the last `windowMs`, kept as counts in `WINDOW_BUCKETS` slots of `windowMs / 20`
 * each (a ring: a slot is reused, and zeroed, when its time comes round again). Recording is O(1) and
 * allocates nothing; reading sums the slots that are still in the window. Written here rather than taken from
 * a circuit-breaker library (opossum's rolling stats, for one) because those bring their own breaker state
 * machine and event emitters; this is the counting part only, ~30 lines.
 */
export class RollingWindow {
  private readonly slotMs: number;
  /** the slot number (time ÷ slotMs) each slot holds counts for; -Infinity = none */
  private readonly epochs = new Float64Array(WINDOW_BUCKETS).fill(-Infinity);
  private readonly oks = new Uint32Array(WINDOW_BUCKETS);
  private readonly fails = new Uint32Array(WINDOW_BUCKETS);

  constructor(windowMs: number) {
    this.slotMs = Math.max(1, Math.ceil(windowMs / WINDOW_BUCKETS));
  }

  add(t: number, ok: boolean): void {
    const n = Math.floor(t / this.slotMs);
    const i = n % WINDOW_BUCKETS;
    if (this.epochs[i] !== n) {
      this.epochs[i] = n;
      this.oks[i] = 0;
      this.fails[i] = 0;
    }
    if (ok) this.oks[i]!++;
    else this.fails[i]!++;
  }

  requests(t: number): number {
    return this.sum(t, true);
  }

  failures(t: number): number {
    return this.sum(t, false);
  }

  clear(): void {
    this.epochs.fill(-Infinity);
    this.oks.fill(0);
    this.fails.fill(0);
  }

  private sum(t: number, all: boolean): number {
    const n = Math.floor(t / this.slotMs);
    let total = 0;
    for (let i = 0; i < WINDOW_BUCKETS; i++) {
      const e = this.epochs[i]!;
      if (e > n - WINDOW_BUCKETS && e <= n) total += this.fails[i]! + (all ? this.oks[i]! : 0);
    }
    return total;
  }
}
