/**
 * The in-memory view of the virtual keys, indexed by secret hash: a request's key check is one SHA-256 and
 * one Map lookup. A hash not in the cache is looked up in the store once (a key created on another instance
 * a moment ago); a hash the store does not know either is remembered as unknown until the next reload
 * (a fresh secret cannot be in that set: nobody could have sent it before it was created). Every
 * `refreshMs` the store's change counter is read (one small query); when it moved, the whole cache is
 * reloaded. So a disable, enable or rotation on any instance reaches every other instance
 * within `refreshMs` plus one store round trip; on the instance that made it, at once. If the store cannot
 * be read (an error, or no answer within STORE_READ_TIMEOUT_MS), the last loaded keys stay in force (logged once)
 * and refresh resumes when it answers; a secret not among them, which only the store could vouch for, is refused
 * with KEY_STORE_UNAVAILABLE (503, retryable), never taken for a wrong key: until a refresh reads the store again
 * at once, without asking it.
 */
import type { Logger } from '../util/log.js';
import { GatewayError } from '../wire/errors.js';
import type { VirtualKey } from './model.js';
import type { KeyStore } from './store.js';

/**
 * How long a read of the store may take before it counts as failed. A stalled Redis (paused, swapping) keeps its
 * connection and answers nothing: without a bound, a request with a secret not loaded here waited as long as the
 * stall lasted, and so did the refresh, which never said that the store could not be read.
 */
export const STORE_READ_TIMEOUT_MS = 5000;

/**
 * How long a failure of the store (a read that failed or timed out, here or in an admin call) keeps it known to
 * fail: a store call the admin API would make meanwhile is answered KEY_STORE_UNAVAILABLE at once (`failFast`)
 * instead of waiting out STORE_READ_TIMEOUT_MS again. Longer than nothing, shorter than a read's bound: a probe (the
 * refresh) is under way or starts at once, and its failure renews the state, its success ends it.
 */
export const KNOWN_FAILING_MS = 3000;

export class KeyCache {
  private byHash = new Map<string, VirtualKey>();
  private byId = new Map<string, VirtualKey>();
  /** secrets the store did not know, until the next reload: wrong keys cannot make every request a store call */
  private unknown = new Set<string>();
  private version = -1;
  private timer: NodeJS.Timeout | undefined;
  private failing = false;
  /** Date.now() of the store's last failure (a read that failed or timed out) */
  private failedAt = 0;
  private refreshing: Promise<void> | undefined;

  constructor(
    private readonly store: KeyStore,
    private readonly refreshMs: number,
    private readonly logger: Logger,
    private readonly readTimeoutMs = STORE_READ_TIMEOUT_MS,
  ) {}

  /** `p`, or a rejection once the store has not answered within the bound */
  private bounded<T>(p: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the key store did not answer within ${this.readTimeoutMs} ms`)), this.readTimeoutMs);
    });
    return Promise.race([p, late]).finally(() => clearTimeout(timer));
  }

  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.refreshMs);
    this.timer.unref();
  }

  get size(): number {
    return this.byHash.size;
  }

  /**
   * Reloads when the store's change counter moved. A timer tick while a reload runs is skipped; a forced
   * reload (after a change made here) waits for the running one and then reads again, so it sees the change.
   */
  refresh(force = false): Promise<void> {
    if (this.refreshing && !force) return this.refreshing;
    const p = (this.refreshing ?? Promise.resolve()).then(() => this.load(force));
    this.refreshing = p;
    void p.finally(() => {
      if (this.refreshing === p) this.refreshing = undefined;
    });
    return p;
  }

  private async load(force: boolean): Promise<void> {
    try {
      const v = await this.bounded(this.store.version());
      if (v !== this.version || force) {
        const all = await this.bounded(this.store.list());
        this.byHash = new Map(all.map((k) => [k.hash, k]));
        this.byId = new Map(all.map((k) => [k.id, k]));
        this.unknown.clear();
        this.version = v;
      }
      if (this.failing) this.logger.info('keys: the store answers again; key changes are picked up');
      this.failing = false;
    } catch (err) {
      this.markFailing(err);
    }
  }

  /** The store could not be read: logged once (until it answers again), and the error a request gets. */
  private unavailable(err?: unknown): GatewayError {
    if (err !== undefined) this.markFailing(err);
    return new GatewayError('KEY_STORE_UNAVAILABLE', 'the key store cannot be read now, so this API key cannot be checked: retry shortly', {
      retryAfterSec: Math.max(1, Math.ceil(this.refreshMs / 1000)),
    });
  }

  private markFailing(err: unknown): void {
    if (!this.failing) this.logger.warn('keys: cannot read the key store; the keys loaded last stay in force', { err: String((err as Error)?.message ?? err) });
    this.failing = true;
    this.failedAt = Date.now();
  }

  /**
   * A call to the store outside the request path (the admin API's) failed or did not answer in time: the store is
   * known to fail from now on, as after a failed refresh (`failFast`).
   */
  storeFailed(err: unknown): void {
    this.markFailing(err);
  }

  /**
   * Whether a store call outside the request path should be refused at once: the store failed and no read has
   * succeeded since, and either that failure is recent (KNOWN_FAILING_MS) or a probe is under way. When so, a probe
   * (the refresh, one at a time: it reads the change counter, bounded) is started if none runs, so that the store's
   * recovery is seen within one round trip of the next call, whatever `refreshMs` is. Fail closed: while it is true
   * nothing is asked of the store but the probe; once it turns false a call goes to the store again, bounded.
   */
  failFast(): boolean {
    if (!this.failing) return false;
    const probing = this.refreshing !== undefined;
    if (!probing && Date.now() - this.failedAt >= KNOWN_FAILING_MS) return false;
    if (!probing) void this.refresh();
    return true;
  }

  /**
   * The key with this secret hash, or undefined when the store does not know it. Throws KEY_STORE_UNAVAILABLE when
   * the hash is not loaded and the store cannot be asked (it failed, or did not answer within the bound).
   */
  async lookup(hash: string): Promise<VirtualKey | undefined> {
    const hit = this.byHash.get(hash);
    if (hit) return hit;
    if (this.unknown.has(hash)) return undefined;
    if (this.failing) throw this.unavailable();
    let k: VirtualKey | undefined;
    try {
      k = await this.bounded(this.store.byHash(hash));
    } catch (err) {
      throw this.unavailable(err);
    }
    if (k) {
      this.byHash.set(hash, k);
      this.byId.set(k.id, k);
    } else if (this.unknown.size < 10_000) this.unknown.add(hash);
    return k;
  }

  /**
   * A key by its id, as last loaded (no store call): how an agent session's model requests find the key that
   * started the session. A key rotated since is found under its id with its new hash; a deleted one is not.
   */
  get(id: string): VirtualKey | undefined {
    return this.byId.get(id);
  }

  /**
   * A key by its id: as loaded, else from the store (a key created on another instance a moment ago), bounded as
   * every read; KEY_STORE_UNAVAILABLE when the store cannot be asked.
   */
  async byIdOrStore(id: string): Promise<VirtualKey | undefined> {
    const hit = this.byId.get(id);
    if (hit) return hit;
    if (this.failing) throw this.unavailable();
    try {
      return await this.bounded(this.store.get(id));
    } catch (err) {
      throw this.unavailable(err);
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
