/**
 * What the two stores share about turns stored apart from their session record (docs/sessions.md "Storage"):
 * each stored turn is an entry at (session id, index) with a store-wide revision, assigned when the entry is
 * written and never reused, so (store, session, index, revision) names one content for good.
 *
 * - `TurnCache`: parsed turns by that name, least recently used dropped first, bounded by the JSON bytes they
 *   were parsed from. A reader gets the cached object itself, shared with every other reader, so it is
 *   deep-frozen: a caller's mutation throws instead of changing another reader's view (model.ts's helpers
 *   copy, they never mutate).
 * - `storedAt`: which stored entry a frozen turn object is, so that an update writes only the turns that are not
 *   already stored unchanged at their index (the helpers keep an unchanged Turn object by reference).
 * - Turn lists: per session, the last (stamp, revisions, turns) a store read or wrote, where the stamp names that
 *   list in the store (a new one whenever the list changes): a read that finds the same stamp takes the list as it
 *   is instead of looking its turns up one by one, and a write knows the stored revisions without reading them.
 *   A list is kept only while all its turns are cached (evicting a turn drops its session's list), so the lists
 *   hold no turn beyond the cache's bound.
 */
import type { Turn } from './model.js';

/** the default bound of the process's turn cache, in bytes of the cached turns' JSON */
export const TURN_CACHE_MAX_BYTES = 32 * 1024 * 1024;

/** Where a frozen turn object is stored. `scope` names the store (its data, not the connection). */
export interface StoredAt {
  scope: string;
  sessionId: string;
  index: number;
  rev: number;
}

/** A session's turn list as a store last read or wrote it. Treat as read-only: hand out `turns.slice()`. */
export interface TurnList {
  /** names this list in the store: the same stamp, the same revisions at the same indexes */
  stamp: string;
  revs: readonly number[];
  turns: readonly Turn[];
}

/** lists kept at most (each is a few pointers a turn; the turns themselves count against the cache's bound) */
const MAX_LISTS = 100_000;

const storedAtMap = new WeakMap<Turn, StoredAt & { cached: boolean }>();

/** Which stored entry `turn` is, if it is one the store handed out or wrote (frozen, so unchanged since). */
export function storedAt(turn: Turn): StoredAt | undefined {
  return storedAtMap.get(turn);
}

/** Whether `turn` is held by the store `scope` at `sessionId`/`index` with revision `rev`. */
export function isStoredAs(turn: Turn, scope: string, sessionId: string, index: number, rev: number | undefined): boolean {
  const at = storedAtMap.get(turn);
  return at !== undefined && rev !== undefined && at.rev === rev && at.index === index && at.sessionId === sessionId && at.scope === scope;
}

/** Freezes `v` and everything it holds; returns it. */
export function deepFreeze<T>(v: T): T {
  if (typeof v !== 'object' || v === null || Object.isFrozen(v)) return v;
  Object.freeze(v);
  for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
  return v;
}

export interface TurnCacheStats {
  /** turns parsed from their JSON (not found in the cache) */
  parsed: number;
  hits: number;
  /** bytes of JSON the cached turns were parsed from */
  bytes: number;
  entries: number;
}

export class TurnCache {
  private readonly entries = new Map<string, { turn: Turn; bytes: number }>();
  private readonly lists = new Map<string, TurnList>();
  private bytes = 0;
  private parsed = 0;
  private hits = 0;

  constructor(readonly maxBytes: number = TURN_CACHE_MAX_BYTES) {}

  /** The cached turn, or undefined (then the store reads its text and calls `remember`). */
  cached(scope: string, sessionId: string, index: number, rev: number): Turn | undefined {
    const key = `${scope}\u0000${sessionId}\u0000${index}\u0000${rev}`;
    const hit = this.entries.get(key);
    if (!hit) return undefined;
    this.hits++;
    this.entries.delete(key);
    this.entries.set(key, hit);
    return hit.turn;
  }

  /**
   * Parses `json` (the entry's text, as read or as just written: never a caller's object), freezes the turn,
   * records where it is stored and caches it. Returns it.
   */
  remember(at: StoredAt, json: string): Turn {
    this.parsed++;
    const turn = deepFreeze(JSON.parse(json) as Turn);
    const where = { scope: at.scope, sessionId: at.sessionId, index: at.index, rev: at.rev, cached: false };
    storedAtMap.set(turn, where);
    const bytes = Buffer.byteLength(json);
    if (bytes > this.maxBytes) return turn;
    where.cached = true;
    const key = `${at.scope}\u0000${at.sessionId}\u0000${at.index}\u0000${at.rev}`;
    const old = this.entries.get(key);
    if (old) this.evict(key, old);
    this.entries.set(key, { turn, bytes });
    this.bytes += bytes;
    for (const [k, e] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.evict(k, e);
    }
    return turn;
  }

  private evict(key: string, e: { turn: Turn; bytes: number }): void {
    this.entries.delete(key);
    this.bytes -= e.bytes;
    const at = storedAtMap.get(e.turn);
    if (!at) return;
    at.cached = false;
    this.lists.delete(`${at.scope}\u0000${at.sessionId}`);
  }

  /** The turn list of the session as last read or written in this process, if it is still kept. */
  list(scope: string, sessionId: string): TurnList | undefined {
    return this.lists.get(`${scope}\u0000${sessionId}`);
  }

  /** Keeps `turns` (stored under `stamp`, with `revs`) as the session's list, if every one of them is cached. */
  setList(scope: string, sessionId: string, stamp: string, revs: readonly number[], turns: readonly Turn[]): void {
    const key = `${scope}\u0000${sessionId}`;
    this.lists.delete(key);
    if (!turns.every((t) => storedAtMap.get(t)?.cached === true)) return;
    if (this.lists.size >= MAX_LISTS) this.lists.delete(this.lists.keys().next().value as string);
    this.lists.set(key, { stamp, revs, turns });
  }

  dropList(scope: string, sessionId: string): void {
    this.lists.delete(`${scope}\u0000${sessionId}`);
  }

  stats(): TurnCacheStats {
    return { parsed: this.parsed, hits: this.hits, bytes: this.bytes, entries: this.entries.size };
  }
}

/** The process's turn cache, shared by every store opened in it: one bound for the process. */
export const turnCache = new TurnCache();
