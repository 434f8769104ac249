/**
 * Keys and usage in Redis (ioredis), shared by every instance on the same prefix. Keys: `keys` hash
 * (id → JSON record), `keys:hash` hash (secret hash → id), `keys:name` hash (name → id), `keys:version`
 * counter, `usage` stream (one entry per request; the entry id is Redis's time when it was written, `ts`
 * the completion time, which is never later, so a range read from `since` finds every record). Every key change is one Lua script.
 */
import { Redis } from 'ioredis';
import { GatewayError } from '../wire/errors.js';
import type { UsageRecord } from '../usage/record.js';
import { storedKey, type VirtualKey } from './model.js';
import { byteOrder, logUnreadableKey, type KeyPage, type KeyStore, type UsageQuery } from './store.js';
import type { Logger } from '../util/log.js';
import { keyExists } from './sqlite-key-store.js';
import { closeRedis } from '../util/redis-close.js';

// KEYS: keys, byHash, byName, version. ARGV: id, hash, name, doc
const CREATE = `if redis.call('HEXISTS', KEYS[3], ARGV[3]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[1])
redis.call('INCR', KEYS[4])
return 1`;

// Writes a key's record, and its hash and name indexes, only while the stored record is still the one the change
// was made from (compare and set). KEYS: keys, byHash, byName, version. ARGV: id, hash, name, doc, the record as
// read. 1: written; 0: no such key; -1: changed meanwhile.
const WRITE = `local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return 0 end
if old ~= ARGV[5] then return -1 end
local o = cjson.decode(old)
if o.hash ~= ARGV[2] then redis.call('HDEL', KEYS[2], o.hash) end
if o.name ~= ARGV[3] then redis.call('HDEL', KEYS[3], o.name) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[1])
redis.call('INCR', KEYS[4])
return 1`;

/** how often `modify` reads a record again that changed under it before giving up (each round is one change won elsewhere) */
const MODIFY_ROUNDS = 100;

/** stream entries trimmed per command when pruning (docs/keys.md, retention) */
const PRUNE_SLICE = 5000;

export class RedisKeyStore implements KeyStore {
  readonly kind = 'redis' as const;

  private constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly logger: Logger | undefined,
  ) {}

  /** `logger`: where a stored record that is no key is reported (`KeyStore.get`) */
  static async open(url: string, prefix: string, logger?: Logger): Promise<RedisKeyStore> {
    const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 3, connectTimeout: 5000 });
    redis.on('error', () => undefined); // the session store on the same server logs connection errors
    await redis.connect();
    return new RedisKeyStore(redis, prefix, logger);
  }

  private k(s: string): string {
    return this.prefix + s;
  }

  private keys(): string[] {
    return [this.k('keys'), this.k('keys:hash'), this.k('keys:name'), this.k('keys:version')];
  }

  async create(k: VirtualKey): Promise<void> {
    const ok = await this.redis.eval(CREATE, 4, ...this.keys(), k.id, k.hash, k.name, JSON.stringify(k));
    if (ok !== 1) throw keyExists(k.name);
  }

  /**
   * Read, change, then write only if the record is still the one read (WRITE, one script): a disable and a rotation
   * of the same key at once, on one instance or two, each read the record and wrote it back whole, and the one that
   * wrote last undid the other (a disabled key enabled again, or a rotated secret replaced by the old one).
   */
  async modify(id: string, change: (k: VirtualKey) => VirtualKey): Promise<VirtualKey> {
    for (let round = 0; round < MODIFY_ROUNDS; round++) {
      const doc = await this.redis.hget(this.k('keys'), id);
      const cur = doc === null ? undefined : this.read(id, doc);
      if (!cur) throw new GatewayError('NOT_FOUND', `no key ${id}`);
      const next = change(cur);
      const r = await this.redis.eval(WRITE, 4, ...this.keys(), id, next.hash, next.name, JSON.stringify(next), doc!);
      if (r === 1) return next;
      if (r === 0) throw new GatewayError('NOT_FOUND', `no key ${id}`);
    }
    throw new GatewayError('OVERLOADED', `key ${id} changed ${MODIFY_ROUNDS} times while this change was being made: try again`, { retryAfterSec: 1 });
  }

  async get(id: string): Promise<VirtualKey | undefined> {
    const doc = await this.redis.hget(this.k('keys'), id);
    return doc === null ? undefined : this.read(id, doc);
  }

  async byHash(hash: string): Promise<VirtualKey | undefined> {
    const id = await this.redis.hget(this.k('keys:hash'), hash);
    const k = id ? await this.get(id) : undefined;
    return k?.hash === hash ? k : undefined;
  }

  async list(): Promise<VirtualKey[]> {
    const out: VirtualKey[] = [];
    for (const [id, doc] of Object.entries(await this.redis.hgetall(this.k('keys')))) {
      const k = this.read(id, doc);
      if (k) out.push(k);
    }
    return out.sort((a, b) => byteOrder(a.name, b.name));
  }

  /**
   * The names from the name index (names and ids only, not every record), then the page's records in one HMGET. A
   * name whose record is gone or no key takes its place in the page and is left out, as in SQLite.
   */
  async listPage(after: string | undefined, limit: number): Promise<KeyPage> {
    const names = Object.entries(await this.redis.hgetall(this.k('keys:name')))
      .filter(([name]) => after === undefined || name > after)
      .sort(([a], [b]) => byteOrder(a, b));
    const page = names.slice(0, limit);
    const docs = page.length === 0 ? [] : await this.redis.hmget(this.k('keys'), ...page.map(([, id]) => id));
    const keys: VirtualKey[] = [];
    page.forEach(([, id], i) => {
      const doc = docs[i];
      const k = doc == null ? undefined : this.read(id, doc);
      if (k) keys.push(k);
    });
    return { keys, next: names.length > limit ? page[page.length - 1]![0] : undefined };
  }

  /** The record's key, or undefined (logged) when it is no key. */
  private read(id: string, doc: string): VirtualKey | undefined {
    const k = storedKey(doc);
    if (!k) logUnreadableKey(this.logger, this.kind, id);
    return k;
  }

  async version(): Promise<number> {
    return Number((await this.redis.get(this.k('keys:version'))) ?? 0);
  }

  async appendUsage(records: readonly UsageRecord[]): Promise<void> {
    if (records.length === 0) return;
    const pipe = this.redis.pipeline();
    for (const r of records) {
      pipe.xadd(
        this.k('usage'),
        '*',
        'ts',
        r.ts,
        'key',
        r.key,
        'model',
        r.model,
        'channel',
        r.channel,
        'peer',
        r.peer,
        'direction',
        r.direction,
        'in',
        r.inputTokens,
        'out',
        r.outputTokens,
        'cached',
        r.cachedTokens,
        'cost',
        r.cost,
        'stream',
        r.stream ? 1 : 0,
        'estimated',
        r.estimated ? 1 : 0,
      );
    }
    for (const [err] of (await pipe.exec()) ?? []) if (err) throw err;
  }

  async queryUsage(q: UsageQuery): Promise<UsageRecord[]> {
    const out: UsageRecord[] = [];
    let start = `${q.since ?? 0}-0`;
    for (;;) {
      const page = await this.redis.xrange(this.k('usage'), start, '+', 'COUNT', 5000);
      for (const [id, flat] of page) {
        const f: Record<string, string> = {};
        for (let i = 0; i + 1 < flat.length; i += 2) f[flat[i]!] = flat[i + 1]!;
        const ts = Number(f.ts ?? id.split('-')[0]);
        if ((q.key && f.key !== q.key) || ts < (q.since ?? 0)) continue;
        out.push({
          ts,
          key: f.key ?? '-',
          model: f.model ?? '',
          channel: f.channel ?? '',
          peer: f.peer ?? '-',
          direction: (f.direction ?? 'local') as UsageRecord['direction'],
          inputTokens: Number(f.in ?? 0),
          outputTokens: Number(f.out ?? 0),
          cachedTokens: Number(f.cached ?? 0),
          cost: Number(f.cost ?? 0),
          stream: f.stream === '1',
          // absent in the entries written before the field existed: those were all taken as counted
          estimated: f.estimated === '1',
        });
      }
      if (page.length < 5000) return out;
      start = `(${page[page.length - 1]![0]}`;
    }
  }

  /** Redis keeps budget spend in the limiter's own counters; nothing to seed. */
  async spendSince(): Promise<Map<string, { tokens: number; cost: number }>> {
    return new Map();
  }

  /**
   * By entry id, which is Redis's clock when the record was written (within a flush interval of its `ts`):
   * approximate trims of whole stream nodes, PRUNE_SLICE entries at most each, then one exact trim of the rest.
   */
  async pruneUsage(before: number): Promise<number> {
    const key = this.k('usage');
    const min = `${Math.max(0, Math.floor(before))}-0`;
    let total = 0;
    for (;;) {
      const n = await this.redis.xtrim(key, 'MINID', '~', min, 'LIMIT', PRUNE_SLICE);
      total += n;
      if (n === 0) break;
    }
    return total + (await this.redis.xtrim(key, 'MINID', min));
  }

  async close(): Promise<void> {
    await closeRedis(this.redis, undefined, (waitedMs) => this.logger?.warn("closing: the key store's Redis did not answer QUIT, disconnected", { waitedMs }));
  }
}
