/**
 * Every `session.update` of a session, kept so that a client that lost its stream gets what it missed and
 * nothing twice (issue 12 item 7): `xworkmate.tasks.get` with `afterSeq`, and the WebSocket resume.
 *
 * Updates are buffered per session and written to the store's event log in batches (at most every
 * FLUSH_MS, and before a turn's result is returned), keeping the newest UPDATE_LOG_KEEP per session and of those
 * no more than `maxBytes` (`acp.updateLogMaxBytes`) of JSON: the oldest go first. A read whose cursor is below
 * what the log still holds gets UPDATE_LOG_TRUNCATED (never a silent gap). What waits in memory for a store that
 * does not keep up is bounded by the same `maxBytes`: past it the turn sending it is stopped (`behind`). Readers
 * flush first, so a read never misses an update this process already sent. Followers (a resumed WebSocket) get live
 * updates of a session pushed as they happen.
 */
import { PerKeyQueue } from '../util/per-key-queue.js';
import { UPDATE_LOG_KEEP, type SessionEvent, type SessionStore } from '../sessions/store.js';
import type { Logger } from '../util/log.js';
import { GatewayError } from '../wire/errors.js';
import { updateJson } from './update-json.js';

/** at most this many updates per read */
export const UPDATE_LOG_READ_MAX = 1000;
/**
 * A read's JSON bytes at most (past its first update, which is always read: one larger update is a page by
 * itself), whatever its count: a quarter of `acp.maxStreamBacklogBytes` (the share at which a resume's replay waits
 * for its client), and no more than 4 MiB, well under a bridge frame (a peer answers a forwarded page in one).
 */
export const updateLogPageBytes = (maxStreamBacklogBytes: number): number => Math.min(Math.floor(maxStreamBacklogBytes / 4), 4 * 1024 * 1024);
const FLUSH_MS = 25;
/** `acp.updateLogMaxBytes`' default */
export const DEFAULT_UPDATE_LOG_MAX_BYTES = 64 * 1024 * 1024;

type Follower = (params: Record<string, unknown>) => void;
/** a resume's watch on the session's live updates: each with the length of its JSON (its weight in memory) */
type Live = (params: Record<string, unknown>, chars: number) => void;

/** Paces a resume's replay to its client (see `UpdateLog.follow`). */
export interface ReplayFlow {
  /** a promise to await before the next update (the client holds too much), or undefined: go on */
  wait(): Promise<void> | undefined;
  /** true once the client is gone: the replay stops */
  gone(): boolean;
}

/**
 * live updates held while a resume replays the log, and no more than a page's bytes of them (`pageBytes`): past
 * either they are read from the log instead
 */
const HOLD_MAX = UPDATE_LOG_READ_MAX;

/** The lease an update's `seq` was numbered under (a SessionLease, lease.ts). */
export interface NumberedUnder {
  /** whether it is still surely held (checked as the write goes out) */
  held(): boolean;
  /** its take's token: the store writes the update only while the session's lease is still that take (appendEvents' fence) */
  readonly token: string;
}

type Pending = SessionEvent & { json: string; lease?: NumberedUnder };

export class UpdateLog {
  private readonly pending = new Map<string, Pending[]>();
  /** per session, the JSON bytes of the updates pushed and not yet handed to the store (buffered, or queued behind a write) */
  private readonly waiting = new Map<string, number>();
  /**
   * per session, its log's writes under way (the store has not answered yet): one at most, counted so that the end of
   * one and the start of the next may come in either order
   */
  private readonly underWay = new Map<string, number>();
  private readonly writing = new PerKeyQueue();
  private readonly followers = new Map<string, Set<Live>>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: SessionStore,
    private readonly log: Logger,
    /** the JSON bytes kept per session (`acp.updateLogMaxBytes`) */
    private readonly maxBytes = DEFAULT_UPDATE_LOG_MAX_BYTES,
    /** the JSON bytes of one read at most (updateLogPageBytes) */
    private readonly pageBytes = updateLogPageBytes(8 * 1024 * 1024),
  ) {}

  /**
   * Records one update (params carry `seq`) and pushes it to the session's followers. `lease`: the lease its `seq`
   * was numbered under (the seq rule, docs/sessions.md). An update is written only while that lease is held: one
   * still buffered when it is no longer surely held is not written, and the store writes the batch only if the
   * session's lease is still that take as it writes (a process paused between the two, past the lease's ttl, finds
   * it taken over, by another holder or by its own restart, or lapsed). Else the next holder may have numbered that `seq` meanwhile, and the log keeps
   * one update per `seq`.
   */
  push(sessionId: string, params: Record<string, unknown>, lease?: NumberedUnder): void {
    const seq = typeof params.seq === 'number' ? params.seq : undefined;
    if (seq === undefined) return;
    let list = this.pending.get(sessionId);
    if (!list) this.pending.set(sessionId, (list = []));
    // serialised once: the store writes this text, and the streams that carry the update reuse it (update-json.ts)
    const json = updateJson(params);
    list.push({ seq, event: params, json, ...(lease ? { lease } : {}) });
    this.waiting.set(sessionId, (this.waiting.get(sessionId) ?? 0) + json.length);
    for (const f of this.followers.get(sessionId) ?? []) {
      try {
        f(params, json.length);
      } catch {
        // a follower that fails does not stop the turn
      }
    }
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.flushAll();
    }, FLUSH_MS);
    this.timer.unref?.();
  }

  /** Writes what is buffered for the session; resolves when everything pushed so far is in the store. */
  flush(sessionId: string): Promise<void> {
    const pushed = this.pending.get(sessionId);
    this.pending.delete(sessionId);
    if (!pushed || pushed.length === 0) return this.writing.idle(sessionId);
    const bytes = pushed.reduce((n, e) => n + e.json.length, 0);
    const write = this.writing.run(sessionId, async () => {
      const left = (this.waiting.get(sessionId) ?? 0) - bytes;
      if (left > 0) this.waiting.set(sessionId, left);
      else this.waiting.delete(sessionId);
      this.underWay.set(sessionId, (this.underWay.get(sessionId) ?? 0) + 1);
      // checked as the write goes out (it may have waited behind an earlier one), not when it was queued
      const kept = pushed.filter((e) => e.lease?.held() !== false);
      if (kept.length < pushed.length)
        this.log.warn('session updates not stored: the lease they were numbered under lapsed first', { sessionId, dropped: pushed.length - kept.length });
      let fenced = 0;
      for (const run of byTake(kept)) {
        const batch = run.map(({ seq, event, json }) => ({ seq, event, json }));
        const written = await this.store.appendEvents(sessionId, batch, UPDATE_LOG_KEEP, this.maxBytes, run[0]!.lease?.token).catch((err: unknown) => {
          this.log.warn('session updates could not be stored', { sessionId, error: String(err) });
          return true;
        });
        if (!written) fenced += run.length;
      }
      if (fenced > 0)
        this.log.warn('session updates not stored: the store found the lease they were numbered under taken over or lapsed', { sessionId, dropped: fenced });
    });
    return write.finally(() => {
      const n = (this.underWay.get(sessionId) ?? 1) - 1;
      if (n > 0) this.underWay.set(sessionId, n);
      else this.underWay.delete(sessionId);
    });
  }

  /**
   * Whether the store does not keep up with the session's updates (a loaded or stalled Redis): a write of its log is
   * under way, and the updates waiting behind it are past `maxBytes`, more than the log keeps of them once written.
   * Undefined while it keeps up; else the error that stops the turn sending them (turn-runner.ts): what waits is in
   * memory, and nothing else bounds it (a turn's output bound counts its deltas, not its tool calls or thoughts).
   * While no write is under way, what waits is handed to the store within FLUSH_MS: a turn is never stopped for the
   * size of one batch (the log keeps its newest update whatever its size).
   */
  behind(sessionId: string): GatewayError | undefined {
    const bytes = this.waiting.get(sessionId) ?? 0;
    if (bytes <= this.maxBytes || !this.underWay.has(sessionId)) return undefined;
    return new GatewayError(
      'SESSION_STORE_UNAVAILABLE',
      `the session store does not keep up with this session's updates: ${bytes} bytes of them wait to be stored (the limit is ${this.maxBytes}, acp.updateLogMaxBytes): the turn was stopped`,
    );
  }

  async flushAll(): Promise<void> {
    await Promise.all([...new Set([...this.pending.keys(), ...this.writing.keys()])].map((id) => this.flush(id)));
  }

  /**
   * Updates of the session with seq > afterSeq, oldest first (flushes first): a page of at most `limit` and of
   * `pageBytes` (past its first update); the session's `lastSeq` says whether there is more. UPDATE_LOG_TRUNCATED
   * when the log dropped any of them: its bounds drop the oldest first, so that is when it dropped a seq above
   * `afterSeq` (read after the page: a drop during the read is seen too).
   */
  async read(sessionId: string, afterSeq: number, limit = UPDATE_LOG_READ_MAX): Promise<Array<Record<string, unknown>>> {
    return (await this.page(sessionId, afterSeq, limit)).updates;
  }

  /** `read`, saying whether the log held more after the page */
  private async page(sessionId: string, afterSeq: number, limit: number): Promise<{ updates: Array<Record<string, unknown>>; more: boolean }> {
    await this.flush(sessionId);
    const page = await this.store.readEvents(sessionId, afterSeq, Math.min(limit, UPDATE_LOG_READ_MAX), this.pageBytes);
    const dropped = await this.store.droppedThrough(sessionId);
    if (dropped > afterSeq) throw truncated(sessionId, afterSeq, dropped, this.maxBytes);
    return { updates: page.events.map((e) => e.event), more: page.more };
  }

  /** The highest seq logged for the session, at least `from` (after a crash it can be above the stored seq). */
  async lastSeq(sessionId: string, from: number): Promise<number> {
    await this.flush(sessionId);
    return Math.max(from, await this.store.lastEventSeq(sessionId));
  }

  /**
   * Resume: pushes the session's updates after `afterSeq` from the log, then its live ones, each exactly once
   * and in seq order. Returns the function that stops following.
   *
   * `flow` paces the replay to its client: after each update replayed, a promise from `flow.wait()` is awaited
   * (the client holds too much), and `flow.gone()` ends the replay. Live updates that come meanwhile are held, at
   * most HOLD_MAX of them and `pageBytes` of their JSON: later ones are dropped from memory and read from the log
   * once the held ones are out (they are in it: `push` logs an update before it reaches a follower), so a slow
   * replay holds two pages' bytes at most, never the turn's whole output. (The held ones were once bounded by
   * their count only: a client that stopped reading a resume had a thousand updates of any size held for it, far
   * past the bytes its stream may hold.) A replay that falls behind what the log keeps rejects with
   * UPDATE_LOG_TRUNCATED (`read`), as a resume from a dropped seq does at once.
   */
  async follow(sessionId: string, afterSeq: number, push: Follower, flow?: ReplayFlow): Promise<() => void> {
    let last = afterSeq;
    let replaying = true;
    let held: Array<Record<string, unknown>> = [];
    /** the JSON characters of `held` */
    let heldChars = 0;
    let dropped = false;
    const deliver = (p: Record<string, unknown>) => {
      const seq = typeof p.seq === 'number' ? p.seq : 0;
      if (seq <= last) return;
      last = seq;
      push(p);
    };
    // once one is dropped every later one is too: the log is read again after the last one delivered, so a gap in
    // `held` would be skipped
    const live: Live = (p, chars) => {
      if (!replaying) deliver(p);
      else if (!dropped && held.length < HOLD_MAX && heldChars + chars <= this.pageBytes) {
        held.push(p);
        heldChars += chars;
      } else dropped = true;
    };
    let set = this.followers.get(sessionId);
    if (!set) this.followers.set(sessionId, (set = new Set()));
    set.add(live);
    const stop = () => {
      set.delete(live);
      if (set.size === 0 && this.followers.get(sessionId) === set) this.followers.delete(sessionId);
    };
    /** delivers `list` in order (held grows while it is delivered), paced by `flow`; false once the client left */
    const replay = async (list: Array<Record<string, unknown>>): Promise<boolean> => {
      for (let i = 0; i < list.length; i++) {
        deliver(list[i]!);
        const w = flow?.wait();
        if (w) await w;
        if (flow?.gone()) return false;
      }
      return true;
    };
    // each round: everything pushed before its read is in it (read flushes first); what comes after is held
    try {
      for (;;) {
        const { updates, more } = await this.page(sessionId, last, UPDATE_LOG_READ_MAX);
        if (!(await replay(updates))) break;
        if (!more) {
          if (!(await replay(held))) break;
          if (!dropped) break;
        }
        // more in the log (held included), or held was full: what it dropped (newer than all it kept) is in the log
        held = [];
        heldChars = 0;
        dropped = false;
      }
    } catch (err) {
      stop();
      throw err;
    }
    replaying = false;
    held = [];
    return stop;
  }
}

/**
 * `updates` cut into runs of one fence each (the same lease take, or none), in order: one write each. A take's
 * updates are in the log before its lease is given back (the seq rule), so a batch is almost always one run.
 */
function byTake(updates: readonly Pending[]): Pending[][] {
  const runs: Pending[][] = [];
  for (const u of updates) {
    const last = runs[runs.length - 1];
    if (last && last[0]!.lease?.token === u.lease?.token) last.push(u);
    else runs.push([u]);
  }
  return runs;
}

/** A cursor the log no longer reaches: what followed it was dropped (through `dropped`) to keep the log within its bounds. */
function truncated(sessionId: string, afterSeq: number, dropped: number, maxBytes: number): GatewayError {
  return new GatewayError(
    'UPDATE_LOG_TRUNCATED',
    `the update log of session "${sessionId}" no longer holds the updates after seq ${afterSeq}: it keeps the newest ${UPDATE_LOG_KEEP} updates and at most ${maxBytes} bytes of them (acp.updateLogMaxBytes), and dropped those through seq ${dropped}. Resume after seq ${dropped} (what came between is gone); the turn's result is in xworkmate.tasks.get { sessionId }`,
    { details: { sessionId, afterSeq, droppedThroughSeq: dropped } },
  );
}
