/**
 * The store lease a turn holds while it runs: one instance at a time runs a turn of a session, across every
 * instance sharing the SessionStore. Acquired (waiting a bounded time for another holder), renewed every ttl/3
 * while held, released when the turn's result is stored.
 */
import { GatewayError } from '../wire/errors.js';
import { liveLease, type SessionStore } from '../sessions/store.js';

export interface LeaseOptions {
  /** lease ttl (renewed every ttl/3); default 30 s */
  ttlMs?: number;
  /** how long to wait for a lease held by another instance; default `defaultLeaseWaitMs(ttlMs)` */
  waitMs?: number;
  /** called once, when the first try finds the lease held by another holder, or by a live take in `own` (the wait begins) */
  onBusy?: () => void;
  /**
   * this process's takes (OwnTakes): a take waits while an earlier one of them on the session is live, as it waits for
   * another holder's, instead of taking the lease over from it
   */
  own?: OwnTakes;
}

/**
 * How long a turn waits by default for its session's lease held by another holder: the ttl and 5 s more (a dead
 * holder's lease expires at most a ttl after its last renewal; the margin covers the 100 ms polls and a slow
 * store), and at least 30 s. A shorter wait would fail a turn with OVERLOADED while a crashed instance's lease
 * could still be running out (`acp.turnLeaseWaitMs`, docs/config.md).
 */
export function defaultLeaseWaitMs(ttlMs: number): number {
  return Math.max(30_000, ttlMs + 5_000);
}

/**
 * The lease holder id of this process. A SQLite store serves one gateway process, so every lease in it that
 * names this gateway is this process's (or its previous life's): a fixed id lets the restarted process take
 * them over at once instead of waiting out their ttl. Instances sharing a Redis store are told apart by
 * `store.instanceId` when it is set (stable across restarts, so a restarted instance owns its old leases);
 * without it, each process gets a fresh id and a dead one's leases expire after their ttl. Taking such a lease
 * over gives it a new take token (lease-token.ts): a previous life that still runs (paused, say) can then neither
 * renew it (its turn stops) nor land the updates it had numbered under it.
 */
export function leaseHolderId(gatewayId: string, store: { kind: 'sqlite' } | { kind: 'redis'; instanceId?: string | undefined }): string | undefined {
  if (store.kind === 'sqlite') return `${gatewayId}/sqlite`;
  return store.instanceId ? `${gatewayId}/${store.instanceId}` : undefined;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The live takes of one process's session leases (one TurnRunner's: every take it makes goes through here), by
 * session. A take by the holder id that holds the lease succeeds at once and ends the earlier take (lease-token.ts):
 * right for this process's restart, wrong for this process's own earlier take of the session, which may still have
 * updates to land and its release to make. That happens when a session's live state here is dropped while a turn
 * of it still ends: the session closed (or moved away) while its turn is being aborted, the id then reused by a
 * session.start (or the session back), whose turn takes the lease, or a brief take (withLease, a revival) for it.
 * So a take through here waits while an earlier one of the session here is live (from before its store try until
 * it is released, lost, or lapsed: SessionLease.stopRenewing), as it waits for another holder's; a take that does
 * not wait (`waitMs: 0`) finds the lease busy. A lost take is not waited for: its turn writes nothing more, and the
 * store has the lease elsewhere.
 */
export class OwnTakes {
  /** per session with a live take here: settles when it ends */
  private readonly live = new Map<string, Promise<void>>();

  /**
   * Reserves `sessionId` for a take about to be tried; undefined while an earlier take here is live. Returns its end,
   * called once the try fails, or the take is released, lost or lapsed.
   */
  reserve(sessionId: string): (() => void) | undefined {
    if (this.live.has(sessionId)) return undefined;
    let end = () => {};
    const ended = new Promise<void>((r) => (end = r));
    this.live.set(sessionId, ended);
    return () => {
      if (this.live.get(sessionId) === ended) this.live.delete(sessionId);
      end();
    };
  }

  /** Settles when the live take of `sessionId` here ends (at once when there is none). */
  ended(sessionId: string): Promise<void> {
    return this.live.get(sessionId) ?? Promise.resolve();
  }
}

/** The lease holder's id of another instance with a live lease on the session, if any. */
export async function otherHolder(store: SessionStore, sessionId: string, holder: string): Promise<string | undefined> {
  const lease = await liveLease(store, sessionId);
  return lease && lease.holderId !== holder ? lease.holderId : undefined;
}

export class SessionLease {
  private renew: NodeJS.Timeout | undefined;
  /**
   * Called once when a renewal finds the lease held by someone else (this instance was held up past the lease's
   * ttl, say a pause or a partition, and another instance took the session; or this process's restart, or another
   * process with its holder id, took it over): the turn must stop, or two would run.
   * A renewal that fails for another reason (the store unreachable) is not a loss: the next one tries again.
   */
  onLost: (() => void) | undefined;
  /** a renewal found the lease held by someone else (`onLost` was called, if it was set by then) */
  lost = false;
  /**
   * Until when (epoch ms) this holder surely still holds the lease: the ttl after the last take or renewal that
   * succeeded was sent (the store's expiry counts from when it got it, later). Past it, another holder may have
   * taken the lease although no renewal said so yet (this process was paused, or the store did not answer):
   * `held()` is false until a renewal succeeds again.
   */
  private validUntil: number;
  /** set once renewals stopped: ends the OwnTakes reservation once the take surely lapsed, if nothing ended it before (`stopRenewing`) */
  private lapse: NodeJS.Timeout | undefined;
  private ownEnded = false;

  private constructor(
    private readonly store: SessionStore,
    readonly sessionId: string,
    /** this take's token (its holder id is in it: lease-token.ts): what renewals and the release name, and what the store fences the update log's writes by (appendEvents) */
    readonly token: string,
    private readonly ttlMs: number,
    takenAt: number,
    /** ends its reservation in OwnTakes (`endOwn`) */
    private readonly ownEnd: () => void = () => {},
  ) {
    this.validUntil = takenAt + ttlMs;
    this.renew = setInterval(
      () => {
        const sent = Date.now();
        void store.renewLease(sessionId, token, ttlMs).then(
          (held) => {
            if (held && !this.lost) this.validUntil = Math.max(this.validUntil, sent + ttlMs);
            if (held || this.renew === undefined) return;
            this.stopRenewing();
            this.lost = true;
            this.endOwn();
            this.onLost?.();
          },
          () => undefined,
        );
      },
      Math.max(50, Math.floor(ttlMs / 3)),
    );
    this.renew.unref();
  }

  /**
   * Takes the session's lease, polling while another instance holds it (or, with `o.own`, while an earlier take of
   * this process is live). Rejects with CANCELLED when `signal` aborts while waiting, OVERLOADED (retryable) when
   * the wait runs out.
   */
  static async acquire(store: SessionStore, sessionId: string, holder: string, signal: AbortSignal, o: LeaseOptions = {}): Promise<SessionLease> {
    const ttl = o.ttlMs ?? 30_000;
    const until = Date.now() + (o.waitMs ?? defaultLeaseWaitMs(ttl));
    let busy = o.onBusy;
    for (;;) {
      // reserved before the store is asked: two takes here must not both ask (the second would end the first)
      const ownEnd = o.own ? o.own.reserve(sessionId) : () => {};
      if (ownEnd) {
        const sent = Date.now();
        const token = await store.acquireLease(sessionId, holder, ttl).catch((err: unknown) => {
          ownEnd();
          throw err;
        });
        if (token !== undefined) return new SessionLease(store, sessionId, token, ttl, sent, ownEnd);
        ownEnd();
      }
      busy?.();
      busy = undefined;
      if (signal.aborted) throw new GatewayError('CANCELLED', 'turn cancelled while waiting for the session');
      // an earlier take here: woken as soon as it ends
      const earlier = ownEnd ? undefined : o.own?.ended(sessionId);
      const where = earlier ? 'with an earlier turn of it here that has not ended' : 'on another gateway instance';
      if (Date.now() >= until) throw new GatewayError('OVERLOADED', `session ${sessionId} is busy ${where}`, { retryAfterSec: 1 });
      await (earlier ? Promise.race([earlier, sleep(100)]) : sleep(100));
    }
  }

  /** Whether this holder surely holds the lease now: not lost, nor possibly lapsed (see `validUntil`). */
  held(): boolean {
    return !this.lost && Date.now() < this.validUntil;
  }

  /**
   * One renewal now, for a holder that may have let the lease lapse (`held()` false, not lost): true when it still
   * holds it (`held()` is true again), false when it does not or the store did not answer.
   */
  async confirm(): Promise<boolean> {
    // past its lapse another take here may have gone on (OwnTakes): never held again
    if (this.lost || this.ownEnded) return false;
    const sent = Date.now();
    const held = await this.store.renewLease(this.sessionId, this.token, this.ttlMs).catch(() => false);
    if (held) this.validUntil = Math.max(this.validUntil, sent + this.ttlMs);
    return held && !this.lost;
  }

  /** Stops renewing (the lease then lapses at its ttl unless released). */
  stopRenewing(): void {
    clearInterval(this.renew);
    this.renew = undefined;
    // a take never given back (its holder failed on the way) is not waited for past its ttl without renewals: its
    // lease runs out in the store, and nothing of it lands after that (the fence checks the expiry)
    const lapsed = () => {
      const left = this.validUntil - Date.now();
      if (left > 0) this.lapse = setTimeout(lapsed, left).unref();
      else this.endOwn();
    };
    this.lapse ??= setTimeout(lapsed, this.ttlMs).unref();
  }

  /** Stops renewing and gives the lease back; never throws. */
  async release(): Promise<void> {
    this.stopRenewing();
    this.validUntil = 0;
    await this.store.releaseLease(this.sessionId, this.token).catch(() => undefined);
    this.endOwn();
  }

  /** Its reservation in OwnTakes ends (once, when it is released, lost, or lapsed): a take waiting there goes on. */
  private endOwn(): void {
    if (this.ownEnded) return;
    this.ownEnded = true;
    clearTimeout(this.lapse);
    this.ownEnd();
  }
}
