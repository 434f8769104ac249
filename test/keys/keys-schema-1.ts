/**
 * A store file as Switchyard wrote it before usage records said whether they were estimated: the key tables at
 * schema version 1 (the first migration of src/keys/sqlite-key-store.ts, copied here as released; a released
 * migration is never edited), with the rows given. For the tests that open such a file with today's code.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { VirtualKey } from '../../src/keys/model.js';

const SCHEMA_1 = `
  CREATE TABLE virtual_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, hash TEXT NOT NULL UNIQUE, doc TEXT NOT NULL CHECK (json_valid(doc)));
  CREATE TABLE keys_meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
  INSERT INTO keys_meta (k, v) VALUES ('version', 0);
  CREATE TABLE usage_records (
    ts INTEGER NOT NULL, key_id TEXT NOT NULL, model TEXT NOT NULL, channel TEXT NOT NULL, peer TEXT NOT NULL,
    direction TEXT NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL, cost REAL NOT NULL, stream INTEGER NOT NULL
  );
  CREATE INDEX usage_ts ON usage_records (ts);
  CREATE INDEX usage_key_ts ON usage_records (key_id, ts);`;

/** one usage row of schema 1 */
export interface Schema1Usage {
  ts: number;
  key: string;
  model: string;
  channel: string;
  inputTokens: number;
  outputTokens: number;
  cost: number;
}

/** Writes a schema-1 store file at `path` holding `keys` and `usage`. */
export function writeSchema1Store(path: string, keys: VirtualKey[], usage: Schema1Usage[]): void {
  mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE keys_schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
    db.exec(SCHEMA_1);
    db.prepare('INSERT INTO keys_schema_migrations (version, applied_at) VALUES (1, ?)').run(Date.now());
    for (const k of keys) db.prepare('INSERT INTO virtual_keys (id, name, hash, doc) VALUES (?, ?, ?, ?)').run(k.id, k.name, k.hash, JSON.stringify(k));
    for (const u of usage)
      db.prepare(
        `INSERT INTO usage_records (ts, key_id, model, channel, peer, direction, input_tokens, output_tokens, cached_tokens, cost, stream)
         VALUES (?, ?, ?, ?, '-', 'local', ?, ?, 0, ?, 0)`,
      ).run(u.ts, u.key, u.model, u.channel, u.inputTokens, u.outputTokens, u.cost);
  } finally {
    db.close();
  }
}
