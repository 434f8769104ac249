/**
 * Keys and usage in SQLite (better-sqlite3), in the gateway's store file beside the sessions, with their
 * own tables and their own migration list (`keys_schema_migrations`), so neither store's migrations touch
 * the other's. Durability is the session store's: WAL, synchronous=NORMAL.
 */
import { resolve } from 'node:path';
import Database from 'better-sqlite3';
import { GatewayError } from '../wire/errors.js';
import type { UsageRecord } from '../usage/record.js';
import { storedKey, type VirtualKey } from './model.js';
import { logUnreadableKey, type KeyPage, type KeyStore, type UsageQuery } from './store.js';
import type { Logger } from '../util/log.js';
import { readySqlitePath } from '../sessions/store-location.js';

/** Versioned, append-only: never edit a released migration, add a new one. */
/** usage rows deleted per statement when pruning (docs/keys.md, retention) */
const PRUNE_SLICE = 5000;

const MIGRATIONS: ReadonlyArray<{ version: number; sql: string }> = [
  {
    version: 1,
    sql: `
      CREATE TABLE virtual_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, hash TEXT NOT NULL UNIQUE, doc TEXT NOT NULL CHECK (json_valid(doc)));
      CREATE TABLE keys_meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
      INSERT INTO keys_meta (k, v) VALUES ('version', 0);
      CREATE TABLE usage_records (
        ts INTEGER NOT NULL, key_id TEXT NOT NULL, model TEXT NOT NULL, channel TEXT NOT NULL, peer TEXT NOT NULL,
        direction TEXT NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
        cached_tokens INTEGER NOT NULL, cost REAL NOT NULL, stream INTEGER NOT NULL
      );
      CREATE INDEX usage_ts ON usage_records (ts);
      CREATE INDEX usage_key_ts ON usage_records (key_id, ts);`,
  },
  {
    // UsageRecord.estimated; the records written before it were all taken as counted, and read so
    version: 2,
    sql: `ALTER TABLE usage_records ADD COLUMN estimated INTEGER NOT NULL DEFAULT 0;`,
  },
];

interface UsageRow {
  ts: number;
  key_id: string;
  model: string;
  channel: string;
  peer: string;
  direction: string;
  input_tokens: number;
  output_tokens: number;
  cached_tokens: number;
  cost: number;
  stream: number;
  estimated: number;
}

interface KeyRow {
  id: string;
  doc: unknown;
}

/** Rows per INSERT statement in `appendUsage` (12 parameters each: far under SQLite's 32,766). */
const USAGE_ROWS_PER_INSERT = 50;

export class SqliteKeyStore implements KeyStore {
  readonly kind = 'sqlite' as const;
  private readonly db: Database.Database;

  /** `logger`: where a stored record that is no key is reported (`KeyStore.get`) */
  constructor(
    path: string,
    private readonly logger?: Logger,
  ) {
    const file = resolve(path);
    readySqlitePath(file);
    this.db = new Database(file);
    try {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('busy_timeout = 5000');
      this.migrate(file);
    } catch (err) {
      this.db.close();
      throw err;
    }
  }

  private migrate(file: string): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS keys_schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
    this.db
      .transaction(() => {
        const applied = new Set((this.db.prepare('SELECT version FROM keys_schema_migrations').all() as { version: number }[]).map((r) => r.version));
        const known = MIGRATIONS[MIGRATIONS.length - 1]!.version;
        if (Math.max(0, ...applied) > known)
          throw new Error(`${file}: key tables have schema version ${Math.max(...applied)}, newer than this Switchyard (${known})`);
        for (const m of MIGRATIONS) {
          if (applied.has(m.version)) continue;
          this.db.exec(m.sql);
          this.db.prepare('INSERT INTO keys_schema_migrations (version, applied_at) VALUES (?, ?)').run(m.version, Date.now());
        }
      })
      .immediate();
  }

  private bump(): void {
    this.db.prepare("UPDATE keys_meta SET v = v + 1 WHERE k = 'version'").run();
  }

  async create(k: VirtualKey): Promise<void> {
    this.db.transaction(() => {
      const r = this.db
        .prepare('INSERT INTO virtual_keys (id, name, hash, doc) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING')
        .run(k.id, k.name, k.hash, JSON.stringify(k));
      if (r.changes === 0) throw keyExists(k.name);
      this.bump();
    })();
  }

  /** Read, change and write in one IMMEDIATE transaction: no other writer (process or call) comes in between. */
  async modify(id: string, change: (k: VirtualKey) => VirtualKey): Promise<VirtualKey> {
    return this.db
      .transaction(() => {
        const r = this.db.prepare('SELECT id, doc FROM virtual_keys WHERE id = ?').get(id) as KeyRow | undefined;
        const cur = r && this.read(r);
        if (!cur) throw new GatewayError('NOT_FOUND', `no key ${id}`);
        const next = change(cur);
        this.db.prepare('UPDATE virtual_keys SET name = ?, hash = ?, doc = ? WHERE id = ?').run(next.name, next.hash, JSON.stringify(next), id);
        this.bump();
        return next;
      })
      .immediate();
  }

  async get(id: string): Promise<VirtualKey | undefined> {
    const r = this.db.prepare('SELECT id, doc FROM virtual_keys WHERE id = ?').get(id) as KeyRow | undefined;
    return r && this.read(r);
  }

  async byHash(hash: string): Promise<VirtualKey | undefined> {
    const r = this.db.prepare('SELECT id, doc FROM virtual_keys WHERE hash = ?').get(hash) as KeyRow | undefined;
    const k = r && this.read(r);
    return k?.hash === hash ? k : undefined;
  }

  async list(): Promise<VirtualKey[]> {
    const out: VirtualKey[] = [];
    for (const r of this.db.prepare('SELECT id, doc FROM virtual_keys ORDER BY name').all() as KeyRow[]) {
      const k = this.read(r);
      if (k) out.push(k);
    }
    return out;
  }

  /** through the `name` column's unique index (BINARY collation: byteOrder), reading `limit` + 1 rows at most */
  async listPage(after: string | undefined, limit: number): Promise<KeyPage> {
    const rows = (
      after === undefined
        ? this.db.prepare('SELECT id, name, doc FROM virtual_keys ORDER BY name LIMIT ?').all(limit + 1)
        : this.db.prepare('SELECT id, name, doc FROM virtual_keys WHERE name > ? ORDER BY name LIMIT ?').all(after, limit + 1)
    ) as Array<KeyRow & { name: string }>;
    const page = rows.slice(0, limit);
    const keys: VirtualKey[] = [];
    for (const r of page) {
      const k = this.read(r);
      if (k) keys.push(k);
    }
    return { keys, next: rows.length > limit ? page[page.length - 1]!.name : undefined };
  }

  /** The row's key, or undefined (logged) when its record is no key. */
  private read(r: KeyRow): VirtualKey | undefined {
    // json_valid guards the column, but a record can still be written around it (a hand edit with
    // ignore_check_constraints, another tool) or be JSON of another shape
    const k = typeof r.doc === 'string' ? storedKey(r.doc) : undefined;
    if (!k) logUnreadableKey(this.logger, this.kind, String(r.id));
    return k;
  }

  async version(): Promise<number> {
    return (this.db.prepare("SELECT v FROM keys_meta WHERE k = 'version'").get() as { v: number }).v;
  }

  /**
   * One transaction per batch, up to USAGE_ROWS_PER_INSERT rows per INSERT: one statement call binds them all,
   * where a call per row cost ~20 % more per record (a record per request on the event loop; docs/benchmarks.md,
   * ninth pass). The statements are prepared once per row count.
   */
  async appendUsage(records: readonly UsageRecord[]): Promise<void> {
    if (records.length === 0) return;
    this.db.transaction(() => {
      for (let i = 0; i < records.length; i += USAGE_ROWS_PER_INSERT) {
        const n = Math.min(USAGE_ROWS_PER_INSERT, records.length - i);
        const args: Array<string | number> = [];
        for (let j = i; j < i + n; j++) {
          const r = records[j]!;
          args.push(
            r.ts,
            r.key,
            r.model,
            r.channel,
            r.peer,
            r.direction,
            r.inputTokens,
            r.outputTokens,
            r.cachedTokens,
            r.cost,
            r.stream ? 1 : 0,
            r.estimated ? 1 : 0,
          );
        }
        this.usageInsert(n).run(args);
      }
    })();
  }

  private readonly usageInserts = new Map<number, Database.Statement>();

  private usageInsert(rows: number): Database.Statement {
    let st = this.usageInserts.get(rows);
    if (!st) {
      const values = Array.from({ length: rows }, () => '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ');
      st = this.db.prepare(
        `INSERT INTO usage_records (ts, key_id, model, channel, peer, direction, input_tokens, output_tokens, cached_tokens, cost, stream, estimated) VALUES ${values}`,
      );
      this.usageInserts.set(rows, st);
    }
    return st;
  }

  async queryUsage(q: UsageQuery): Promise<UsageRecord[]> {
    const rows = this.db
      .prepare(`SELECT * FROM usage_records WHERE ts >= ? ${q.key ? 'AND key_id = ?' : ''} ORDER BY ts`)
      .all(...(q.key ? [q.since ?? 0, q.key] : [q.since ?? 0])) as UsageRow[];
    return rows.map((r) => ({
      ts: r.ts,
      key: r.key_id,
      model: r.model,
      channel: r.channel,
      peer: r.peer,
      direction: r.direction as UsageRecord['direction'],
      inputTokens: r.input_tokens,
      outputTokens: r.output_tokens,
      cachedTokens: r.cached_tokens,
      cost: r.cost,
      stream: r.stream === 1,
      estimated: r.estimated === 1,
    }));
  }

  async spendSince(since: number): Promise<Map<string, { tokens: number; cost: number }>> {
    const rows = this.db
      .prepare(
        "SELECT key_id, SUM(input_tokens + output_tokens) AS t, SUM(cost) AS c FROM usage_records WHERE ts >= ? AND key_id LIKE 'key\\_%' ESCAPE '\\' GROUP BY key_id",
      )
      .all(since) as { key_id: string; t: number; c: number }[];
    return new Map(rows.map((r) => [r.key_id, { tokens: r.t, cost: r.c }]));
  }

  async pruneUsage(before: number): Promise<number> {
    // by rowid through the ts index, PRUNE_SLICE rows per statement, yielding between slices (each is one
    // short synchronous write; a year's backlog must not stall requests)
    const del = this.db.prepare('DELETE FROM usage_records WHERE rowid IN (SELECT rowid FROM usage_records WHERE ts < ? LIMIT ?)');
    let total = 0;
    for (;;) {
      if (!this.db.open) return total;
      const n = del.run(before, PRUNE_SLICE).changes;
      total += n;
      if (n < PRUNE_SLICE) return total;
      await new Promise((r) => setImmediate(r));
    }
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

export function keyExists(name: string): GatewayError {
  return new GatewayError('INVALID_REQUEST', `a key named "${name}" already exists`, { status: 409, param: 'name', details: { reason: 'KEY_EXISTS' } });
}
