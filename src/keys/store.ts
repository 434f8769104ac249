/**
 * Where keys and usage records live: SQLite (the default, same file as sessions, own tables and own
 * migration list) or Redis (shared by several instances). Kept apart from the session store on purpose:
 * the two evolve independently.
 *
 * `version()` is a counter bumped by every key change; instances poll it (`gateway.keys.refreshMs`) and
 * reload their key cache when it moved, which bounds how long a disable/rotate takes to reach them.
 */
import type { VirtualKey } from './model.js';
import type { UsageRecord } from '../usage/record.js';
import type { Logger } from '../util/log.js';

export interface UsageQuery {
  /** epoch ms, inclusive */
  since?: number | undefined;
  key?: string | undefined;
}

export interface KeyPage {
  keys: VirtualKey[];
  next?: string | undefined;
}

/**
 * The one order of keys, by name, in both stores: by UTF-16 code unit here, which for the names a key can have
 * (ASCII: createKeySchema) is SQLite's BINARY collation of the `name` column. Not localeCompare: Redis listed `B`
 * after `a`, SQLite before it, and a page cursor must compare as its store sorts.
 */
export const byteOrder = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export interface KeyStore {
  readonly kind: 'sqlite' | 'redis';
  /** Throws KEY_EXISTS (409) when the name is taken. */
  create(k: VirtualKey): Promise<void>;
  /**
   * Changes one key atomically and returns the record written: `change` gets the stored record and returns the new
   * one (same id); the hash index follows a rotation. A change another caller or instance wrote in between is never
   * overwritten: the record is read again and `change` applied to it (a disable and a rotation at once both hold).
   * NOT_FOUND when there is no such key (or its record is no key).
   */
  modify(id: string, change: (k: VirtualKey) => VirtualKey): Promise<VirtualKey>;
  /**
   * A stored record that is no key (`storedKey`: not JSON, or missing what a key needs) is never returned: `get`
   * and `byHash` answer undefined for it (it authenticates nothing), `list` leaves it out; each logs it by id.
   */
  get(id: string): Promise<VirtualKey | undefined>;
  byHash(hash: string): Promise<VirtualKey | undefined>;
  /** Every key, by name (byteOrder). */
  list(): Promise<VirtualKey[]>;
  /**
   * One page of `list` (`GET /admin/keys`): the keys among the first `limit` records whose name sorts after `after`
   * (byteOrder; from the first when undefined). `next`: the name of the page's last record, present only when a
   * record follows it: the `after` of the next page. A name is unique and never changes, so a key created or changed
   * between two pages neither repeats nor hides another. A record that is no key takes its place in the page and is
   * left out (a page may hold fewer keys than `limit`, even none, and still have a `next`).
   */
  listPage(after: string | undefined, limit: number): Promise<KeyPage>;
  version(): Promise<number>;

  appendUsage(records: readonly UsageRecord[]): Promise<void>;
  queryUsage(q: UsageQuery): Promise<UsageRecord[]>;
  /** tokens and cost per key since `since` (budget seeding at startup) */
  spendSince(since: number): Promise<Map<string, { tokens: number; cost: number }>>;
  /**
   * Deletes the usage records written before `before` (ms since epoch) and returns how many. Works in slices so
   * a large backlog never holds the event loop (SQLite) or the server (Redis) for long.
   */
  pruneUsage(before: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * A stored key record that is no key: logged by its id only, never its content (it holds the secret's hash), so
 * an operator can fix or remove it.
 */
export function logUnreadableKey(logger: Logger | undefined, store: KeyStore['kind'], keyId: string): void {
  logger?.warn('keys: a stored key record is not a readable key; it is left out of listings and authenticates nothing: fix or remove it in the store', {
    store,
    keyId: keyId.slice(0, 80),
  });
}
