/**
 * SQLite session store (better-sqlite3): the embedded default for a single gateway process.
 *
 * Durability: WAL journal, `synchronous=NORMAL` by default. In WAL mode every commit is written into the WAL
 * file (a write(2) to the kernel) before the statement returns, so once a method has resolved the data
 * survives SIGKILL or any other death of this process. NORMAL skips only the fsync at commit, which matters
 * for an OS crash or power loss (the last commits may roll back; the database is never corrupted).
 * better-sqlite3 is synchronous, so FULL would put one fsync on the event loop per write, stalling every
 * stream the gateway serves; `synchronous: 'FULL'` is available for hosts that need power-loss durability.
 */
import { EventEmitter } from 'node:events';
import { resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { Session, SessionStatus, Turn } from './model.js';
import { newLeaseToken } from './lease-token.js';
import { readySqlitePath } from './store-location.js';
import { isStoredAs, turnCache } from './turn-cache.js';
import {
  SessionExistsError,
  SessionNotFoundError,
  TransferConflictError,
  VersionConflictError,
  type ImportResult,
  type LeaseInfo,
  type EventPage,
  type NewestEvents,
  type SessionEvent,
  type ListOptions,
  type MessageHandler,
  type SessionStore,
  type SessionMark,
  type Unsubscribe,
} from './store.js';

interface EventSize {
  seq: number;
  bytes: number;
}

interface EventRow {
  seq: number;
  event: string;
}

const parseEvent = (r: EventRow): SessionEvent => ({ seq: r.seq, event: JSON.parse(r.event) as Record<string, unknown> });

/**
 * How many of the entries `sizes` (in reading order) make a page: at most `limit`, and past the first at most
 * `maxBytes` bytes of JSON together (readEvents, readNewestEvents).
 */
function pageLength(sizes: readonly EventSize[], limit: number, maxBytes: number): number {
  let n = 0;
  for (let total = 0; n < sizes.length && n < limit; n++) {
    total += sizes[n]!.bytes;
    if (n > 0 && total > maxBytes) break;
  }
  return n;
}

export const DEFAULT_SQLITE_PATH = './data/switchyard.db';

export interface SqliteStoreOptions {
  path?: string;
  synchronous?: 'NORMAL' | 'FULL';
  /** ms a writer waits for another process's write lock before failing (SQLITE_BUSY) */
  busyTimeoutMs?: number;
}

/** listMarked: each mark (SESSION_MARKS) as a condition on the metadata column, each the WHERE of a partial index
 * (migration 8): listMarked's query must name it exactly as it stands here for SQLite to use that index. Never edit
 * one: add a migration with the new index. */
const MARKED: Record<SessionMark, string> = {
  transfer: "json_type(metadata, '$.transfer') = 'object'",
  pendingPermissions: "json_array_length(metadata, '$.pendingPermissions') > 0",
};

/** Versioned, append-only: never edit a released migration, add a new one. */
const MIGRATIONS: ReadonlyArray<{ version: number; name: string; sql: string }> = [
  {
    version: 1,
    name: 'sessions',
    sql: `
      CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        owner_gateway_id TEXT NOT NULL,
        status TEXT NOT NULL,
        moved_to TEXT,
        target TEXT NOT NULL CHECK (json_valid(target)),
        thread_id TEXT NOT NULL,
        history TEXT NOT NULL CHECK (json_valid(history)),
        affinity TEXT,
        metadata TEXT NOT NULL CHECK (json_valid(metadata)),
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        version INTEGER NOT NULL
      );
      CREATE INDEX sessions_status ON sessions (status);
      CREATE INDEX sessions_owner ON sessions (owner_gateway_id);
      CREATE INDEX sessions_updated ON sessions (updated_at);
      CREATE TABLE transfers (transfer_id TEXT PRIMARY KEY, session_id TEXT NOT NULL, imported_at INTEGER NOT NULL);
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);`,
  },
  {
    version: 2,
    name: 'leases',
    sql: `CREATE TABLE leases (session_id TEXT PRIMARY KEY, holder_id TEXT NOT NULL, expires_at INTEGER NOT NULL);`,
  },
  {
    version: 3,
    name: 'expiring',
    sql: `CREATE TABLE expiring (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at INTEGER NOT NULL);
      CREATE INDEX expiring_expires ON expiring (expires_at);`,
  },
  {
    version: 4,
    name: 'session-events',
    sql: `CREATE TABLE session_events (session_id TEXT NOT NULL, seq INTEGER NOT NULL, event TEXT NOT NULL, PRIMARY KEY (session_id, seq)) WITHOUT ROWID;`,
  },
  {
    // the log's byte bound: each entry's size, read from an index that holds no entry's text (a large entry's
    // text spans overflow pages the trim must not walk), and the highest seq the bounds dropped per session
    version: 5,
    name: 'session-events-bytes',
    sql: `ALTER TABLE session_events ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
      UPDATE session_events SET bytes = length(CAST(event AS BLOB));
      CREATE INDEX session_events_bytes ON session_events (session_id, seq, bytes);
      CREATE TABLE session_event_floor (session_id TEXT PRIMARY KEY, dropped_through INTEGER NOT NULL) WITHOUT ROWID;`,
  },
  {
    // finished history apart from the record, one row a turn (a change writes only the turns that changed):
    // `rev` is the turn cache's revision, never reused (AUTOINCREMENT), and the unique index holds it beside
    // (session_id, idx), so a read lists a session's turns without walking their text. `sessions.history` stays
    // '[]'; `sessions.turns_stamp` names the session's turn list (0: empty; else a revision, new whenever the list
    // changes: the last one written, or one taken from the sequence). `turnStore` names this database's turns in
    // the process's cache (a replaced file gets a new one).
    version: 6,
    name: 'session-turns',
    sql: `CREATE TABLE session_turns (rev INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL, idx INTEGER NOT NULL, turn TEXT NOT NULL);
      CREATE UNIQUE INDEX session_turns_at ON session_turns (session_id, idx);
      INSERT INTO session_turns (session_id, idx, turn)
        SELECT s.id, CAST(j.key AS INTEGER), j.value FROM sessions s, json_each(s.history) j ORDER BY s.id, CAST(j.key AS INTEGER);
      ALTER TABLE sessions ADD COLUMN turns_stamp INTEGER NOT NULL DEFAULT 0;
      UPDATE sessions SET history = '[]', turns_stamp = (SELECT MAX(rev) FROM session_turns t WHERE t.session_id = sessions.id) WHERE history <> '[]';
      INSERT INTO meta (key, value) VALUES ('turnStore', lower(hex(randomblob(16)))) ON CONFLICT (key) DO NOTHING;`,
  },
  {
    // each take of a lease gets a token of its own (lease-token.ts), the update log's fence; a lease taken before
    // has its holder id as its token (what that version fenced by), as a Redis lease written before tokens reads
    version: 7,
    name: 'lease-tokens',
    sql: `ALTER TABLE leases ADD COLUMN token TEXT NOT NULL DEFAULT '';
      UPDATE leases SET token = holder_id;`,
  },
  {
    // the list's order (SessionPosition: updated_at, then id, both descending) read from an index, also within a
    // status, so that a page past a position starts there (keyset) with no sort of the table; these hold the old
    // (updated_at) and (status) indexes' columns first, which they replace. listMarked's marks as partial indexes:
    // a link coming up reads the few marked rows, not every row's metadata.
    version: 8,
    name: 'sessions-list-order',
    sql: `CREATE INDEX sessions_listed ON sessions (updated_at, id);
      CREATE INDEX sessions_status_listed ON sessions (status, updated_at, id);
      DROP INDEX sessions_updated;
      DROP INDEX sessions_status;
      CREATE INDEX sessions_marked_transfer ON sessions (id) WHERE json_type(metadata, '$.transfer') = 'object';
      CREATE INDEX sessions_marked_permissions ON sessions (id) WHERE json_array_length(metadata, '$.pendingPermissions') > 0;`,
  },
];

/** raises a session's `droppedThrough` (never lowers it) */
const RAISE_FLOOR =
  'INSERT INTO session_event_floor (session_id, dropped_through) VALUES (?, ?) ON CONFLICT (session_id) DO UPDATE SET dropped_through = MAX(dropped_through, excluded.dropped_through)';

interface Row {
  id: string;
  kind: string;
  owner_gateway_id: string;
  status: string;
  moved_to: string | null;
  target: string;
  thread_id: string;
  history: string;
  affinity: string | null;
  metadata: string;
  created_at: number;
  updated_at: number;
  version: number;
}

const COLS = 'id, kind, owner_gateway_id, status, moved_to, target, thread_id, history, affinity, metadata, created_at, updated_at, version';
const PARAMS = '@id, @kind, @owner_gateway_id, @status, @moved_to, @target, @thread_id, @history, @affinity, @metadata, @created_at, @updated_at, @version';

function toRow(s: Session, version: number, updatedAt: number): Row {
  return {
    id: s.id,
    kind: s.kind,
    owner_gateway_id: s.ownerGatewayId,
    status: s.status,
    moved_to: s.movedTo ?? null,
    target: JSON.stringify(s.target),
    thread_id: s.threadId,
    history: '[]',
    affinity: s.affinity ?? null,
    metadata: JSON.stringify(s.metadata),
    created_at: s.createdAt,
    updated_at: updatedAt,
    version,
  };
}

/** The record of row `r`, with `history` (stored apart, see `turnsOf`). */
function fromRow(r: Row, history: Turn[]): Session {
  const s: Session = {
    id: r.id,
    kind: r.kind as Session['kind'],
    ownerGatewayId: r.owner_gateway_id,
    status: r.status as Session['status'],
    target: JSON.parse(r.target) as Session['target'],
    threadId: r.thread_id,
    history,
    metadata: JSON.parse(r.metadata) as Session['metadata'],
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    version: r.version,
  };
  if (r.moved_to !== null) s.movedTo = r.moved_to;
  if (r.affinity !== null) s.affinity = r.affinity;
  return s;
}

/** A turn to be stored: kept as it is stored, or written (its text, and the revision the write got). */
type TurnWrite = { kept: Turn; rev: number } | { index: number; rev: number; json: string };

/** What a write did to a session's turns (writeTurns): each turn kept or written, and the list's stamp now. */
interface TurnWrites {
  writes: TurnWrite[];
  stamp: number;
}

/** In-process pub/sub, shared by every SqliteStore opened on the same file in this process. */
const buses = new Map<string, EventEmitter>();

export class SqliteStore implements SessionStore {
  readonly kind = 'sqlite' as const;
  readonly path: string;
  private readonly db: Database.Database;
  private readonly bus: EventEmitter;
  private readonly subscriptions = new Set<() => void>();
  private readonly stmts = new Map<string, Database.Statement>();
  /** names this database's turns in the process's turn cache (migration 6) */
  private readonly scope: string;

  constructor(opts: SqliteStoreOptions = {}) {
    this.path = resolve(opts.path ?? DEFAULT_SQLITE_PATH);
    readySqlitePath(this.path);
    this.db = new Database(this.path);
    try {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma(`synchronous = ${opts.synchronous ?? 'NORMAL'}`);
      this.db.pragma(`busy_timeout = ${Math.trunc(opts.busyTimeoutMs ?? 5000)}`);
      this.migrate();
      this.scope = `sqlite:${(this.stmt("SELECT value FROM meta WHERE key = 'turnStore'").get() as { value: string }).value}`;
    } catch (err) {
      this.db.close();
      throw err;
    }
    let bus = buses.get(this.path);
    if (!bus) buses.set(this.path, (bus = new EventEmitter().setMaxListeners(0)));
    this.bus = bus;
  }

  /** Applied migration versions, ascending. */
  migrations(): number[] {
    return (this.stmt('SELECT version FROM schema_migrations ORDER BY version').all() as { version: number }[]).map((r) => r.version);
  }

  private migrate(): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
    // IMMEDIATE: two processes opening a fresh file at once apply each migration exactly once.
    this.db
      .transaction(() => {
        const applied = new Set(this.migrations());
        const newest = Math.max(0, ...applied);
        const known = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;
        if (newest > known) throw new Error(`${this.path} has schema version ${newest}, newer than this Switchyard (${known}): upgrade Switchyard`);
        for (const m of MIGRATIONS) {
          if (applied.has(m.version)) continue;
          this.db.exec(m.sql);
          this.stmt('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
        }
      })
      .immediate();
  }

  /**
   * The prepared statement of `sql`, compiled once per store: SQLite's compile of a statement costs more than
   * the lookup it runs (~35 µs against ~15 µs for a session's row, measured), and a turn makes a dozen calls.
   */
  private stmt(sql: string): Database.Statement {
    let st = this.stmts.get(sql);
    if (!st) this.stmts.set(sql, (st = this.db.prepare(sql)));
    return st;
  }

  /** In a read transaction of the caller's (a record and its turns are read as of one commit). */
  private getSync(id: string): Session | undefined {
    const r = this.stmt(`SELECT ${COLS}, turns_stamp FROM sessions WHERE id = ?`).get(id) as (Row & { turns_stamp: number }) | undefined;
    return r ? fromRow(r, this.turnsOf(r.id, r.turns_stamp)) : undefined;
  }

  /**
   * A session's turns (in a read transaction of the caller's): the list this process last read or wrote if its
   * stamp is still `stamp`; else the (index, revision) list from the index (no turn's text), and the text of only
   * the turns the process's cache does not hold.
   */
  private turnsOf(id: string, stamp: number): Turn[] {
    const known = turnCache.list(this.scope, id);
    if (known?.stamp === String(stamp)) return known.turns.slice();
    const revs = this.revsOf(id);
    const turns = revs.map((rev, idx) => {
      const hit = turnCache.cached(this.scope, id, idx, rev);
      if (hit) return hit;
      const text = this.stmt('SELECT turn FROM session_turns WHERE rev = ?').get(rev) as { turn: string };
      return turnCache.remember({ scope: this.scope, sessionId: id, index: idx, rev }, text.turn);
    });
    turnCache.setList(this.scope, id, String(stamp), revs, turns);
    return turns.slice();
  }

  /** Each stored turn's revision, by index (from the index alone). */
  private revsOf(id: string): number[] {
    const revs: number[] = [];
    for (const r of this.stmt('SELECT idx, rev FROM session_turns WHERE session_id = ? ORDER BY idx').all(id) as Array<{ idx: number; rev: number }>)
      revs[r.idx] = r.rev;
    return revs;
  }

  /**
   * Stores `turns` as the session's turns, in a write transaction of the caller's, where the session's list is
   * stamped `stamp` (as read in that transaction): writes only the turns that are not stored unchanged at their
   * index (isStoredAs), drops the entries past the last, and returns the list's stamp now (the caller stores it).
   */
  private writeTurns(id: string, turns: readonly Turn[], stamp: number): TurnWrites {
    const known = turnCache.list(this.scope, id);
    const held = known?.stamp === String(stamp) ? known.revs : this.revsOf(id);
    const put = this.stmt('INSERT OR REPLACE INTO session_turns (session_id, idx, turn) VALUES (?, ?, ?)');
    let last = 0;
    const writes = turns.map((t, index): TurnWrite => {
      const rev = held[index];
      if (rev !== undefined && isStoredAs(t, this.scope, id, index, rev)) return { kept: t, rev };
      const json = JSON.stringify(t);
      last = Number(put.run(id, index, json).lastInsertRowid);
      return { index, rev: last, json };
    });
    if (held.length > turns.length) {
      this.stmt('DELETE FROM session_turns WHERE session_id = ? AND idx >= ?').run(id, turns.length);
      // a shorter list without a new turn still needs a stamp of its own: the next revision of the sequence
      if (last === 0 && turns.length > 0)
        last = (this.stmt("UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'session_turns' RETURNING seq").get() as { seq: number }).seq;
      else if (turns.length === 0) return { writes, stamp: 0 };
    }
    return { writes, stamp: last || stamp };
  }

  /**
   * After the commit (a revision rolled back may be assigned again): the turns as stored, the written ones parsed,
   * frozen and cached, and the list kept for the next read and write.
   */
  private stored(id: string, { writes, stamp }: TurnWrites): Turn[] {
    const turns = writes.map((w) => ('kept' in w ? w.kept : turnCache.remember({ scope: this.scope, sessionId: id, index: w.index, rev: w.rev }, w.json)));
    turnCache.setList(
      this.scope,
      id,
      String(stamp),
      writes.map((w) => w.rev),
      turns,
    );
    return turns.slice();
  }

  async get(id: string): Promise<Session | undefined> {
    return this.db.transaction(() => this.getSync(id))();
  }

  async create(session: Session): Promise<Session> {
    const row = toRow(session, 1, session.updatedAt);
    const writes = this.db.transaction(() => {
      const r = this.stmt(`INSERT INTO sessions (${COLS}) VALUES (${PARAMS}) ON CONFLICT (id) DO NOTHING`).run(row);
      return r.changes === 0 ? undefined : this.stampTurns(session.id, this.writeTurns(session.id, session.history, 0));
    })();
    if (!writes) throw new SessionExistsError(session.id);
    return { ...session, history: this.stored(session.id, writes), version: 1 };
  }

  async update(session: Session, expectedVersion: number): Promise<Session> {
    const row = toRow(session, expectedVersion + 1, Date.now());
    const writes = this.db
      .transaction(() => {
        const cur = this.stmt('SELECT version, turns_stamp FROM sessions WHERE id = ?').get(session.id) as { version: number; turns_stamp: number } | undefined;
        if (!cur) throw new SessionNotFoundError(session.id);
        if (cur.version !== expectedVersion) throw new VersionConflictError(session.id, expectedVersion);
        const turns = this.writeTurns(session.id, session.history, cur.turns_stamp);
        this.stmt(
          `UPDATE sessions SET kind = @kind, owner_gateway_id = @owner_gateway_id, status = @status, moved_to = @moved_to,
               target = @target, thread_id = @thread_id, history = @history, affinity = @affinity, metadata = @metadata,
               updated_at = @updated_at, version = @version, turns_stamp = @stamp
             WHERE id = @id`,
        ).run({ ...row, stamp: turns.stamp });
        return turns;
      })
      .immediate();
    return fromRow(row, this.stored(session.id, writes));
  }

  /** Stores the stamp writeTurns returned on the session's row (create, import: the row was just written). */
  private stampTurns(id: string, turns: TurnWrites): TurnWrites {
    this.stmt('UPDATE sessions SET turns_stamp = ? WHERE id = ?').run(turns.stamp, id);
    return turns;
  }

  async list(opts: ListOptions = {}): Promise<Session[]> {
    const where: string[] = [];
    const args: Record<string, unknown> = { limit: opts.limit ?? -1 };
    if (opts.status) {
      where.push('status = @status');
      args.status = opts.status;
    }
    if (opts.owner) {
      where.push('owner_gateway_id = @owner');
      args.owner = opts.owner;
    }
    if (opts.after) {
      // a row value: SQLite reads sessions_listed (or sessions_status_listed) from the position on
      where.push('(updated_at, id) < (@afterUpdatedAt, @afterId)');
      args.afterUpdatedAt = opts.after.updatedAt;
      args.afterId = opts.after.id;
    }
    const sql = `SELECT ${COLS}, turns_stamp FROM sessions ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY updated_at DESC, id DESC LIMIT @limit`;
    return this.db.transaction(() =>
      (this.stmt(sql).all(args) as Array<Row & { turns_stamp: number }>).map((r) => fromRow(r, this.turnsOf(r.id, r.turns_stamp))),
    )();
  }

  async listMarked(mark: SessionMark): Promise<Session[]> {
    // from the mark's partial index (migration 8): only the (few) marked rows are read, with their turns
    const sql = `SELECT ${COLS}, turns_stamp FROM sessions WHERE ${MARKED[mark]}`;
    return this.db.transaction(() =>
      (this.stmt(sql).all() as Array<Row & { turns_stamp: number }>).map((r) => fromRow(r, this.turnsOf(r.id, r.turns_stamp))),
    )();
  }

  async deleteEndedBefore(before: number): Promise<number> {
    const pick = this.stmt(`SELECT id FROM sessions WHERE status IN ('closed', 'moved') AND updated_at < ? LIMIT 500`);
    let deleted = 0;
    // in batches, one transaction each: the database is not held for one long write
    for (;;) {
      const ids = (pick.all(before) as Array<{ id: string }>).map((r) => r.id);
      if (ids.length === 0) return deleted;
      this.db.transaction(() => {
        for (const id of ids) {
          this.deleteBesideSession(id);
          deleted += this.stmt("DELETE FROM sessions WHERE id = ? AND status IN ('closed', 'moved') AND updated_at < ?").run(id, before).changes;
        }
      })();
    }
  }

  async countByStatus(): Promise<Record<SessionStatus, number>> {
    const out: Record<SessionStatus, number> = { active: 0, running: 0, closed: 0, moved: 0 };
    for (const r of this.stmt('SELECT status, COUNT(*) AS n FROM sessions GROUP BY status').all() as Array<{ status: SessionStatus; n: number }>)
      out[r.status] = r.n;
    return out;
  }

  async delete(id: string): Promise<boolean> {
    return this.db.transaction(() => {
      this.deleteBesideSession(id);
      return this.stmt('DELETE FROM sessions WHERE id = ?').run(id).changes === 1;
    })();
  }

  /** What the store keeps of a session beside its row (its turns, lease, update log and that log's floor); in a transaction of the caller's. */
  private deleteBesideSession(id: string): void {
    this.stmt('DELETE FROM leases WHERE session_id = ?').run(id);
    this.stmt('DELETE FROM session_events WHERE session_id = ?').run(id);
    this.stmt('DELETE FROM session_event_floor WHERE session_id = ?').run(id);
    this.stmt('DELETE FROM session_turns WHERE session_id = ?').run(id);
  }

  async importTransferred(transferId: string, session: Session): Promise<ImportResult> {
    const r = this.db
      .transaction((): ImportResult | { row: Row; writes: TurnWrites } => {
        const seen = this.stmt('SELECT session_id FROM transfers WHERE transfer_id = ?').get(transferId) as { session_id: string } | undefined;
        if (seen) {
          const stored = seen.session_id === session.id ? this.getSync(session.id) : undefined;
          if (!stored) throw new TransferConflictError(session.id, `transfer ${transferId} was already used for another session`);
          return { session: stored, duplicate: true };
        }
        const existing = this.stmt('SELECT status, version, turns_stamp FROM sessions WHERE id = ?').get(session.id) as
          { status: string; version: number; turns_stamp: number } | undefined;
        if (existing && existing.status !== 'moved') throw new TransferConflictError(session.id, `it exists here with status ${existing.status}`);
        const row = toRow(session, Math.max(session.version, existing?.version ?? 0) + 1, Date.now());
        this.stmt(`INSERT OR REPLACE INTO sessions (${COLS}) VALUES (${PARAMS})`).run(row);
        this.stmt('INSERT INTO transfers (transfer_id, session_id, imported_at) VALUES (?, ?, ?)').run(transferId, session.id, row.updated_at);
        return { row, writes: this.stampTurns(session.id, this.writeTurns(session.id, session.history, existing?.turns_stamp ?? 0)) };
      })
      .immediate();
    return 'row' in r ? { session: fromRow(r.row, this.stored(session.id, r.writes)), duplicate: false } : r;
  }

  private expiringPuts = 0;

  async putExpiring(key: string, value: string, ttlMs: number): Promise<void> {
    const now = Date.now();
    this.stmt(
      'INSERT INTO expiring (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at',
    ).run(key, value, now + ttlMs);
    // expired rows are pruned every 100 puts: no timer, and a read never returns one anyway
    if (++this.expiringPuts % 100 === 0) this.stmt('DELETE FROM expiring WHERE expires_at <= ?').run(now);
  }

  async getExpiring(key: string): Promise<string | undefined> {
    const r = this.stmt('SELECT value FROM expiring WHERE key = ? AND expires_at > ?').get(key, Date.now()) as { value: string } | undefined;
    return r?.value;
  }

  async getMeta(key: string): Promise<string | undefined> {
    return (this.stmt('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined)?.value;
  }

  async setMeta(key: string, value: string): Promise<void> {
    this.stmt('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  async getOrSetMeta(key: string, value: string): Promise<string> {
    this.stmt('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING').run(key, value);
    return (await this.getMeta(key)) as string;
  }

  async acquireLease(sessionId: string, holderId: string, ttlMs: number): Promise<string | undefined> {
    const now = Date.now();
    const token = newLeaseToken(holderId);
    const r = this.stmt(
      `INSERT INTO leases (session_id, holder_id, expires_at, token) VALUES (@s, @h, @exp, @t)
         ON CONFLICT (session_id) DO UPDATE SET holder_id = @h, expires_at = @exp, token = @t
         WHERE leases.holder_id = @h OR leases.expires_at <= @now`,
    ).run({ s: sessionId, h: holderId, exp: now + ttlMs, t: token, now });
    return r.changes === 1 ? token : undefined;
  }

  async renewLease(sessionId: string, token: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const r = this.stmt('UPDATE leases SET expires_at = ? WHERE session_id = ? AND token = ? AND expires_at > ?').run(now + ttlMs, sessionId, token, now);
    return r.changes === 1;
  }

  async releaseLease(sessionId: string, token: string): Promise<boolean> {
    const r = this.stmt('DELETE FROM leases WHERE session_id = ? AND token = ? AND expires_at > ?').run(sessionId, token, Date.now());
    return r.changes === 1;
  }

  async getLease(sessionId: string): Promise<LeaseInfo | undefined> {
    const r = this.stmt('SELECT holder_id, token, expires_at FROM leases WHERE session_id = ? AND expires_at > ?').get(sessionId, Date.now()) as
      { holder_id: string; token: string; expires_at: number } | undefined;
    return r ? { holderId: r.holder_id, token: r.token, expiresAt: r.expires_at } : undefined;
  }

  async appendEvents(sessionId: string, events: readonly SessionEvent[], keep: number, maxBytes = Number.MAX_SAFE_INTEGER, fence?: string): Promise<boolean> {
    if (events.length === 0) return true;
    const leased = this.stmt('SELECT 1 FROM leases WHERE session_id = ? AND token = ? AND expires_at > ?');
    const ins = this.stmt('INSERT OR REPLACE INTO session_events (session_id, seq, event, bytes) VALUES (?, ?, ?, ?)');
    // the newest entry past either bound (never the newest of all), counted from the newest down
    const past = this.stmt(
      `SELECT seq FROM (SELECT seq, SUM(bytes) OVER (ORDER BY seq DESC ROWS UNBOUNDED PRECEDING) AS run, ROW_NUMBER() OVER (ORDER BY seq DESC) AS n
         FROM session_events WHERE session_id = ?) WHERE n > 1 AND (n > ? OR run > ?) ORDER BY seq DESC LIMIT 1`,
    );
    const drop = this.stmt('DELETE FROM session_events WHERE session_id = ? AND seq <= ?');
    const floor = this.stmt(RAISE_FLOOR);
    // IMMEDIATE: the lease row read by the fence (the take's token) is the one in force when the entries are
    // written (no other connection's take can commit in between)
    return this.db
      .transaction(() => {
        if (fence !== undefined && !leased.get(sessionId, fence, Date.now())) return false;
        for (const e of events) {
          const json = e.json ?? JSON.stringify(e.event);
          ins.run(sessionId, e.seq, json, Buffer.byteLength(json));
        }
        const cut = past.get(sessionId, Math.max(1, Math.trunc(keep)), maxBytes) as { seq: number } | undefined;
        if (cut) {
          drop.run(sessionId, cut.seq);
          floor.run(sessionId, cut.seq);
        }
        return true;
      })
      .immediate();
  }

  async readEvents(sessionId: string, afterSeq: number, limit: number, maxBytes = Number.MAX_SAFE_INTEGER): Promise<EventPage> {
    const max = Math.max(0, Math.trunc(limit));
    if (max === 0) return { events: [], more: false };
    // the page's extent from the sizes alone (an index that holds no entry's text), then only its entries' text;
    // one read transaction: a trim by another process between the two does not split the page
    const rows = this.db.transaction(() => {
      const sizes = this.stmt('SELECT seq, bytes FROM session_events WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?').all(
        sessionId,
        afterSeq,
        max + 1,
      ) as EventSize[];
      const n = pageLength(sizes, max, maxBytes);
      if (n === 0) return { rows: [], more: false };
      const through = sizes[n - 1]!.seq;
      const text = this.stmt('SELECT seq, event FROM session_events WHERE session_id = ? AND seq > ? AND seq <= ? ORDER BY seq').all(
        sessionId,
        afterSeq,
        through,
      ) as EventRow[];
      return { rows: text, more: n < sizes.length };
    })();
    return { events: rows.rows.map(parseEvent), more: rows.more };
  }

  async readNewestEvents(sessionId: string, limit: number, maxBytes: number): Promise<NewestEvents> {
    const max = Math.max(0, Math.trunc(limit));
    if (max === 0) return { events: [], before: await this.lastEventSeq(sessionId) };
    // as readEvents, from the newest down: the sizes first (the same covering index, read backwards), then the text
    const rows = this.db.transaction(() => {
      const sizes = this.stmt('SELECT seq, bytes FROM session_events WHERE session_id = ? ORDER BY seq DESC LIMIT ?').all(sessionId, max + 1) as EventSize[];
      const n = pageLength(sizes, max, maxBytes);
      if (n === 0) return { rows: [], before: 0 };
      const text = this.stmt('SELECT seq, event FROM session_events WHERE session_id = ? AND seq >= ? ORDER BY seq').all(
        sessionId,
        sizes[n - 1]!.seq,
      ) as EventRow[];
      return { rows: text, before: n < sizes.length ? sizes[n]!.seq : 0 };
    })();
    return { events: rows.rows.map(parseEvent), before: rows.before };
  }

  async lastEventSeq(sessionId: string): Promise<number> {
    const r = this.stmt('SELECT MAX(seq) AS seq FROM session_events WHERE session_id = ?').get(sessionId) as { seq: number | null };
    return r.seq ?? 0;
  }

  async droppedThrough(sessionId: string): Promise<number> {
    const r = this.stmt('SELECT dropped_through FROM session_event_floor WHERE session_id = ?').get(sessionId) as { dropped_through: number } | undefined;
    return r?.dropped_through ?? 0;
  }

  async dropThrough(sessionId: string, seq: number): Promise<void> {
    if (!(seq > 0)) return;
    this.db.transaction(() => {
      this.stmt('DELETE FROM session_events WHERE session_id = ? AND seq <= ?').run(sessionId, seq);
      this.stmt(RAISE_FLOOR).run(sessionId, seq);
    })();
  }

  async publish(channel: string, msg: unknown): Promise<void> {
    const text = JSON.stringify(msg);
    // asynchronous like Redis: a handler never runs inside the publisher's call stack
    setImmediate(() => this.bus.emit(channel, text));
  }

  async subscribe(channel: string, handler: MessageHandler): Promise<Unsubscribe> {
    const listener = (text: string): void => handler(JSON.parse(text));
    const off = (): void => {
      this.bus.off(channel, listener);
      this.subscriptions.delete(off);
    };
    this.bus.on(channel, listener);
    this.subscriptions.add(off);
    return async () => off();
  }

  async close(): Promise<void> {
    for (const off of this.subscriptions) off();
    this.subscriptions.clear();
    if (this.db.open) this.db.close();
  }
}
