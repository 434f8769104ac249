/**
 * Request and error counts over the last minute in one-second buckets, for the status page's charts and
 * `switchyard status` (Prometheus has the long-term series). Fixed memory; recording is two additions.
 */
const SECONDS = 60;

export interface RatePoint {
  /** seconds since epoch of the bucket */
  t: number;
  requests: number;
  errors: number;
}

export class RateWindow {
  private readonly requests = new Uint32Array(SECONDS);
  private readonly errors = new Uint32Array(SECONDS);
  private readonly stamp = new Float64Array(SECONDS);

  constructor(private readonly now: () => number = Date.now) {}

  record(error: boolean): void {
    const sec = Math.floor(this.now() / 1000);
    const i = sec % SECONDS;
    if (this.stamp[i] !== sec) {
      this.stamp[i] = sec;
      this.requests[i] = 0;
      this.errors[i] = 0;
    }
    this.requests[i]!++;
    if (error) this.errors[i]!++;
  }

  /** The last `SECONDS` complete and current seconds, oldest first (empty seconds as zeros). */
  series(): RatePoint[] {
    const now = Math.floor(this.now() / 1000);
    const out: RatePoint[] = [];
    for (let t = now - SECONDS + 1; t <= now; t++) {
      const i = t % SECONDS;
      const live = this.stamp[i] === t;
      out.push({ t, requests: live ? this.requests[i]! : 0, errors: live ? this.errors[i]! : 0 });
    }
    return out;
  }

  /** requests and errors per second, averaged over the last `window` seconds (default 10) */
  rate(window = 10): { requestsPerSec: number; errorsPerSec: number } {
    const s = this.series().slice(-window);
    let r = 0;
    let e = 0;
    for (const p of s) {
      r += p.requests;
      e += p.errors;
    }
    return { requestsPerSec: r / window, errorsPerSec: e / window };
  }
}
