/**
 * Redis session store (ioredis): several gateway instances share sessions, leases and cancel messages.
 *
 * Keys (prefix default `switchyard:`): `session:<id>` hash { v: version, st: status, doc: JSON record },
 * `sessions` zset (id by updatedAt), `transfer:<transferId>` → session id, `meta` hash, `lease:<sessionId>`
 * → holder id with a PX expiry, pub/sub channels `chan:<name>`. Every multi-key change is one Lua script, so it
 * is atomic; keys are not hash-tagged, so this needs a single Redis (or a Sentinel-managed primary), not Cluster.
 *
 * Durability: a method resolves after Redis has applied the write. How it survives a Redis restart is the
 * server's persistence config: `appendonly yes` + `appendfsync always` loses nothing acknowledged
 * (`everysec`: up to a second on a Redis crash). `open` warns when it can see that AOF is off.
 */
import { Redis } from 'ioredis';
import type { Session, SessionStatus } from './model.js';
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
  type Unsubscribe,
} from './store.js';
import { rootLogger } from '../util/log.js';
import { closeRedis } from '../util/redis-close.js';

import { DEFAULT_REDIS_PREFIX } from './redis-constants.js';
export { DEFAULT_REDIS_PREFIX };
const SCHEMA_VERSION = 1;

// KEYS: session, index. ARGV: id, doc, status, score
const CREATE = `if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'v', 1, 'st', ARGV[3], 'doc', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return 1`;

// KEYS: session, index, lease, events, evmeta. ARGV: id, before. Deletes a session that ended (closed or moved) before `before`.
const DELETE_ENDED = `local st = redis.call('HGET', KEYS[1], 'st')
if st ~= 'closed' and st ~= 'moved' then return 0 end
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) >= tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4], KEYS[5])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1`;

// An entry's size, in its bounds and in a page's: the bytes of its JSON, without the member's `<seq> ` prefix (what
// SQLite's `bytes` column holds), so both stores keep and page the same entries.
const JSON_BYTES = `local function jsonBytes(m) return #m - string.find(m, ' ', 1, true) end
`;

// KEYS: events, evmeta (j: the JSON bytes held, d: the highest seq dropped). ARGV: keep, maxBytes, then seq, member
// pairs. The oldest entries go while more than `keep` or `maxBytes` are held, never the newest of all. A log without
// `j` (new, or written before it: its `b` counted the prefixes too) is counted once from its members.
const APPEND_EVENTS = `${JSON_BYTES}local total = tonumber(redis.call('HGET', KEYS[2], 'j') or '-1')
if total < 0 then
  total = 0
  for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do total = total + jsonBytes(m) end
  redis.call('HDEL', KEYS[2], 'b')
end
for i = 3, #ARGV, 2 do
  if redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then total = total + jsonBytes(ARGV[i + 1]) end
end
local keep = tonumber(ARGV[1])
local maxBytes = tonumber(ARGV[2])
local dropped = tonumber(redis.call('HGET', KEYS[2], 'd') or '0')
local n = redis.call('ZCARD', KEYS[1])
while n > 1 and (n > keep or total > maxBytes) do
  local first = redis.call('ZPOPMIN', KEYS[1])
  total = total - jsonBytes(first[1])
  if tonumber(first[2]) > dropped then dropped = tonumber(first[2]) end
  n = n - 1
end
if total < 0 then total = 0 end
redis.call('HSET', KEYS[2], 'j', total, 'd', dropped)
return n`;

// KEYS: events. ARGV: direction (`up`: oldest first, after a seq; `down`: newest first), from (the exclusive score
// bound to start at: `(<afterSeq>`, or `+inf`), limit, maxBytes. A page of the log: at most `limit` entries and, past
// the first, at most `maxBytes` of JSON (jsonBytes), read a few at a time so that what lies past the page is not
// copied; returns {past (1|0), the score of the first entry past the page (0: none), member, …}, in reading order.
const READ_EVENTS = `${JSON_BYTES}local up = ARGV[1] == 'up'
local from = ARGV[2]
local limit = tonumber(ARGV[3])
local maxBytes = tonumber(ARGV[4])
local out = {0, 0}
local n = 0
local total = 0
while true do
  local want = limit + 1 - n
  if want > 32 then want = 32 end
  local batch
  if up then
    batch = redis.call('ZRANGEBYSCORE', KEYS[1], from, '+inf', 'WITHSCORES', 'LIMIT', 0, want)
  else
    batch = redis.call('ZREVRANGEBYSCORE', KEYS[1], from, '-inf', 'WITHSCORES', 'LIMIT', 0, want)
  end
  for i = 1, #batch, 2 do
    local m = batch[i]
    total = total + jsonBytes(m)
    if n >= limit or (n > 0 and total > maxBytes) then
      out[1] = 1
      out[2] = batch[i + 1]
      return out
    end
    n = n + 1
    out[n + 2] = m
    from = '(' .. batch[i + 1]
  end
  if #batch < want * 2 then return out end
end`;

// KEYS: events. The highest seq the log holds (0: none), without sending its entry.
const LAST_EVENT_SEQ = `local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #last == 0 then return 0 end
return tonumber(last[2])`;

// KEYS: events, evmeta. ARGV: seq. Drops the entries through `seq` and raises the dropped-through mark to it.
const DROP_THROUGH = `${JSON_BYTES}local total = tonumber(redis.call('HGET', KEYS[2], 'j') or '-1')
if total >= 0 then
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])) do total = total - jsonBytes(m) end
  if total < 0 then total = 0 end
  redis.call('HSET', KEYS[2], 'j', total)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local dropped = tonumber(redis.call('HGET', KEYS[2], 'd') or '0')
if tonumber(ARGV[1]) > dropped then redis.call('HSET', KEYS[2], 'd', ARGV[1]) end
return 1`;

// KEYS: session, index. ARGV: id, doc, status, score, expectedVersion
const UPDATE = `local v = redis.call('HGET', KEYS[1], 'v')
if not v then return -1 end
if tonumber(v) ~= tonumber(ARGV[5]) then return 0 end
redis.call('HSET', KEYS[1], 'v', tonumber(v) + 1, 'st', ARGV[3], 'doc', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return 1`;

// KEYS: session, index, transfer. ARGV: id, doc, status, score, offeredVersion
const IMPORT = `local seen = redis.call('GET', KEYS[3])
if seen then
  if seen ~= ARGV[1] then return {'other'} end
  local cur = redis.call('HMGET', KEYS[1], 'v', 'doc')
  if not cur[1] then return {'other'} end
  return {'dup', cur[1], cur[2]}
end
local cur = redis.call('HMGET', KEYS[1], 'v', 'st')
if cur[1] and cur[2] ~= 'moved' then return {'conflict', cur[2]} end
local v = tonumber(ARGV[5])
if cur[1] and tonumber(cur[1]) > v then v = tonumber(cur[1]) end
v = v + 1
redis.call('HSET', KEYS[1], 'v', v, 'st', ARGV[3], 'doc', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('SET', KEYS[3], ARGV[1])
return {'ok', tostring(v)}`;

// KEYS: lease. ARGV: holder, ttl
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;
// KEYS: lease. ARGV: holder
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export class RedisStore implements SessionStore {
  readonly kind = 'redis' as const;
  private sub: Redis | undefined;
  private readonly handlers = new Map<string, Set<MessageHandler>>();
  /** per channel: resolves once Redis has acknowledged the SUBSCRIBE */
  private readonly active = new Map<string, Promise<unknown>>();
  /** serialises SUBSCRIBE / UNSUBSCRIBE on the subscriber connection */
  private subChain: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly redis: Redis,
    readonly prefix: string,
  ) {}

  /** Connects (fails if Redis is unreachable) and checks the key schema version under `prefix`. */
  static async open(url: string, prefix: string = DEFAULT_REDIS_PREFIX): Promise<RedisStore> {
    const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 3, connectTimeout: 5000 });
    RedisStore.logErrors(redis, 'main');
    try {
      await redis.connect();
      const store = new RedisStore(redis, prefix);
      await store.checkSchema();
      return store;
    } catch (err) {
      redis.disconnect();
      throw err;
    }
  }

  private async checkSchema(): Promise<void> {
    await this.redis.hsetnx(this.k('meta'), '_schema', String(SCHEMA_VERSION));
    const v = Number(await this.redis.hget(this.k('meta'), '_schema'));
    if (v > SCHEMA_VERSION) throw new Error(`Redis keys under "${this.prefix}" have schema version ${v}, newer than this Switchyard (${SCHEMA_VERSION})`);
    const aof = await this.redis.call('CONFIG', 'GET', 'appendonly').catch(() => undefined); // CONFIG may be disabled (managed Redis)
    if (Array.isArray(aof) && aof[1] === 'no') {
      rootLogger.warn('redis has appendonly=no: acknowledged session writes are lost if Redis restarts', { prefix: this.prefix });
    }
  }

  /** ioredis reconnects by itself; without a listener its 'error' events would be printed unstructured */
  private static logErrors(conn: Redis, role: string): void {
    let last = '';
    conn.on('error', (err: Error) => {
      if (err.message !== last) rootLogger.warn('redis connection error', { role, err: err.message });
      last = err.message;
    });
    conn.on('ready', () => (last = ''));
  }

  private k(suffix: string): string {
    return this.prefix + suffix;
  }

  private static decode(v: string, doc: string): Session {
    return { ...(JSON.parse(doc) as Session), version: Number(v) };
  }

  async get(id: string): Promise<Session | undefined> {
    const [v, doc] = await this.redis.hmget(this.k(`session:${id}`), 'v', 'doc');
    return v && doc ? RedisStore.decode(v, doc) : undefined;
  }

  async create(session: Session): Promise<Session> {
    const s = { ...session, version: 1 };
    const ok = await this.redis.eval(CREATE, 2, this.k(`session:${s.id}`), this.k('sessions'), s.id, JSON.stringify(s), s.status, s.updatedAt);
    if (ok !== 1) throw new SessionExistsError(s.id);
    return s;
  }

  async update(session: Session, expectedVersion: number): Promise<Session> {
    const s = { ...session, version: expectedVersion + 1, updatedAt: Date.now() };
    const keys = [this.k(`session:${s.id}`), this.k('sessions')];
    const r = await this.redis.eval(UPDATE, 2, ...keys, s.id, JSON.stringify(s), s.status, s.updatedAt, expectedVersion);
    if (r === 1) return s;
    if (r === -1) throw new SessionNotFoundError(s.id);
    throw new VersionConflictError(s.id, expectedVersion);
  }

  async list(opts: ListOptions = {}): Promise<Session[]> {
    // a status filter reads each record's small status field first, and whole records only for matches
    const ids = opts.status ? await this.idsWithStatus(opts.status) : await this.redis.zrevrange(this.k('sessions'), 0, -1);
    const out: Session[] = [];
    const limit = opts.limit ?? Infinity;
    for (let i = 0; i < ids.length && out.length < limit; i += 100) {
      const pipe = this.redis.pipeline();
      for (const id of ids.slice(i, i + 100)) pipe.hmget(this.k(`session:${id}`), 'v', 'doc');
      for (const [err, res] of (await pipe.exec()) ?? []) {
        if (err) throw err;
        const [v, doc] = res as [string | null, string | null];
        if (!v || !doc) continue; // deleted between the two reads
        const s = RedisStore.decode(v, doc);
        if ((opts.status && s.status !== opts.status) || (opts.owner && s.ownerGatewayId !== opts.owner)) continue;
        if (out.length < limit) out.push(s);
      }
    }
    return out;
  }

  async deleteEndedBefore(before: number): Promise<number> {
    // the index is scored by the last update: only what is older is read, its small status field first
    const ids = await this.redis.zrangebyscore(this.k('sessions'), '-inf', `(${before}`);
    const st = await this.statuses(ids);
    let deleted = 0;
    for (let i = 0; i < ids.length; i++) {
      if (st[i] !== 'closed' && st[i] !== 'moved') continue;
      const id = ids[i]!;
      // checked again where it is deleted: a session restarted since the read is kept
      const keys = [this.k(`session:${id}`), this.k('sessions'), this.k(`lease:${id}`), this.k(`events:${id}`), this.k(`evmeta:${id}`)];
      if ((await this.redis.eval(DELETE_ENDED, keys.length, ...keys, id, before)) === 1) deleted++;
    }
    return deleted;
  }

  async countByStatus(): Promise<Record<SessionStatus, number>> {
    const out: Record<SessionStatus, number> = { active: 0, running: 0, closed: 0, moved: 0 };
    for (const st of await this.statuses(await this.redis.zrevrange(this.k('sessions'), 0, -1))) {
      if (st === 'active' || st === 'running' || st === 'closed' || st === 'moved') out[st] += 1;
    }
    return out;
  }

  /** The ids (most recently updated first) whose status field is `status`. */
  private async idsWithStatus(status: SessionStatus): Promise<string[]> {
    const ids = await this.redis.zrevrange(this.k('sessions'), 0, -1);
    const st = await this.statuses(ids);
    return ids.filter((_, i) => st[i] === status);
  }

  /** Each id's `st` field (null when deleted meanwhile), 500 per round trip. */
  private async statuses(ids: string[]): Promise<Array<string | null>> {
    const out: Array<string | null> = [];
    for (let i = 0; i < ids.length; i += 500) {
      const pipe = this.redis.pipeline();
      for (const id of ids.slice(i, i + 500)) pipe.hget(this.k(`session:${id}`), 'st');
      for (const [err, res] of (await pipe.exec()) ?? []) {
        if (err) throw err;
        out.push(res as string | null);
      }
    }
    return out;
  }

  async delete(id: string): Promise<boolean> {
    const res = await this.redis
      .multi()
      .del(this.k(`session:${id}`))
      .zrem(this.k('sessions'), id)
      .del(this.k(`lease:${id}`))
      .del(this.k(`events:${id}`))
      .del(this.k(`evmeta:${id}`))
      .exec();
    return res?.[0]?.[1] === 1;
  }

  async importTransferred(transferId: string, session: Session): Promise<ImportResult> {
    const s = { ...session, updatedAt: Date.now() };
    const keys = [this.k(`session:${s.id}`), this.k('sessions'), this.k(`transfer:${transferId}`)];
    const r = (await this.redis.eval(IMPORT, 3, ...keys, s.id, JSON.stringify(s), s.status, s.updatedAt, s.version)) as string[];
    switch (r[0]) {
      case 'ok':
        return { session: { ...s, version: Number(r[1]) }, duplicate: false };
      case 'dup':
        return { session: RedisStore.decode(r[1] as string, r[2] as string), duplicate: true };
      case 'conflict':
        throw new TransferConflictError(s.id, `it exists here with status ${r[1]}`);
      default:
        throw new TransferConflictError(s.id, `transfer ${transferId} was already used for another session`);
    }
  }

  async putExpiring(key: string, value: string, ttlMs: number): Promise<void> {
    await this.redis.set(this.k(`exp:${key}`), value, 'PX', Math.max(1, Math.trunc(ttlMs)));
  }

  async getExpiring(key: string): Promise<string | undefined> {
    return (await this.redis.get(this.k(`exp:${key}`))) ?? undefined;
  }

  /**
   * `events:<id>`: a sorted set scored by seq; members are `<seq> <json>` so equal payloads stay distinct.
   * `evmeta:<id>`: the JSON bytes the log holds and the highest seq its bounds dropped (APPEND_EVENTS).
   */
  async appendEvents(sessionId: string, events: readonly SessionEvent[], keep: number, maxBytes = Number.MAX_SAFE_INTEGER): Promise<void> {
    if (events.length === 0) return;
    const args: Array<string | number> = [Math.max(1, Math.trunc(keep)), maxBytes];
    for (const e of events) args.push(e.seq, `${e.seq} ${e.json ?? JSON.stringify(e.event)}`);
    await this.redis.eval(APPEND_EVENTS, 2, this.k(`events:${sessionId}`), this.k(`evmeta:${sessionId}`), ...args);
  }

  async readEvents(sessionId: string, afterSeq: number, limit: number, maxBytes = Number.MAX_SAFE_INTEGER): Promise<EventPage> {
    const max = Math.max(0, Math.trunc(limit));
    if (max === 0) return { events: [], more: false };
    const { events, past } = await this.page(sessionId, 'up', `(${afterSeq}`, max, maxBytes);
    return { events, more: past !== undefined };
  }

  async readNewestEvents(sessionId: string, limit: number, maxBytes: number): Promise<NewestEvents> {
    const max = Math.max(0, Math.trunc(limit));
    if (max === 0) return { events: [], before: await this.lastEventSeq(sessionId) };
    const { events, past } = await this.page(sessionId, 'down', '+inf', max, maxBytes);
    return { events: events.reverse(), before: past ?? 0 };
  }

  /** READ_EVENTS: the page's entries in reading order, and the seq of the first entry past it (undefined: none). */
  private async page(sessionId: string, dir: 'up' | 'down', from: string, limit: number, maxBytes: number): Promise<{ events: SessionEvent[]; past?: number }> {
    const [past, pastSeq, ...members] = (await this.redis.eval(READ_EVENTS, 1, this.k(`events:${sessionId}`), dir, from, limit, maxBytes)) as [
      number,
      string | number,
      ...string[],
    ];
    const events = members.map((m) => {
      const sp = m.indexOf(' ');
      return { seq: Number(m.slice(0, sp)), event: JSON.parse(m.slice(sp + 1)) as Record<string, unknown> };
    });
    return past === 1 ? { events, past: Number(pastSeq) } : { events };
  }

  async lastEventSeq(sessionId: string): Promise<number> {
    return Number(await this.redis.eval(LAST_EVENT_SEQ, 1, this.k(`events:${sessionId}`)));
  }

  async droppedThrough(sessionId: string): Promise<number> {
    return Number((await this.redis.hget(this.k(`evmeta:${sessionId}`), 'd')) ?? 0);
  }

  async dropThrough(sessionId: string, seq: number): Promise<void> {
    if (!(seq > 0)) return;
    await this.redis.eval(DROP_THROUGH, 2, this.k(`events:${sessionId}`), this.k(`evmeta:${sessionId}`), Math.trunc(seq));
  }

  async getMeta(key: string): Promise<string | undefined> {
    return (await this.redis.hget(this.k('meta'), key)) ?? undefined;
  }

  async setMeta(key: string, value: string): Promise<void> {
    await this.redis.hset(this.k('meta'), key, value);
  }

  async getOrSetMeta(key: string, value: string): Promise<string> {
    await this.redis.hsetnx(this.k('meta'), key, value);
    return (await this.getMeta(key)) ?? value;
  }

  async acquireLease(sessionId: string, holderId: string, ttlMs: number): Promise<boolean> {
    const key = this.k(`lease:${sessionId}`);
    const px = Math.max(1, Math.ceil(ttlMs));
    if ((await this.redis.set(key, holderId, 'PX', px, 'NX')) === 'OK') return true;
    return (await this.redis.eval(RENEW, 1, key, holderId, px)) === 1; // re-entrant for the same holder
  }

  async renewLease(sessionId: string, holderId: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.eval(RENEW, 1, this.k(`lease:${sessionId}`), holderId, Math.max(1, Math.ceil(ttlMs)))) === 1;
  }

  async releaseLease(sessionId: string, holderId: string): Promise<boolean> {
    return (await this.redis.eval(RELEASE, 1, this.k(`lease:${sessionId}`), holderId)) === 1;
  }

  async getLease(sessionId: string): Promise<LeaseInfo | undefined> {
    const key = this.k(`lease:${sessionId}`);
    const res = await this.redis.multi().get(key).pttl(key).exec();
    const holder = res?.[0]?.[1] as string | null | undefined;
    const pttl = res?.[1]?.[1] as number | undefined;
    return holder && pttl !== undefined && pttl > 0 ? { holderId: holder, expiresAt: Date.now() + pttl } : undefined;
  }

  async publish(channel: string, msg: unknown): Promise<void> {
    await this.redis.publish(this.k(`chan:${channel}`), JSON.stringify(msg));
  }

  async subscribe(channel: string, handler: MessageHandler): Promise<Unsubscribe> {
    const full = this.k(`chan:${channel}`);
    const sub = this.subscriber();
    let set = this.handlers.get(full);
    if (!set) this.handlers.set(full, (set = new Set()));
    set.add(handler);
    let active = this.active.get(full);
    if (!active) this.active.set(full, (active = this.serialised(() => sub.subscribe(full))));
    await active;
    return async () => {
      const cur = this.handlers.get(full);
      if (!cur?.delete(handler) || cur.size > 0) return;
      this.handlers.delete(full);
      this.active.delete(full);
      // while disconnected there is no subscription to end, and UNSUBSCRIBE would wait out the reconnects (a stop
      // with Redis down); the handler is gone, so whatever ioredis resubscribes on reconnect is dropped
      if (sub.status !== 'ready') return;
      await this.serialised(() => sub.unsubscribe(full));
    };
  }

  private subscriber(): Redis {
    if (this.sub) return this.sub;
    const sub = this.redis.duplicate();
    RedisStore.logErrors(sub, 'subscriber');
    sub.on('message', (channel: string, text: string) => {
      const set = this.handlers.get(channel);
      if (!set) return;
      let msg: unknown;
      try {
        msg = JSON.parse(text);
      } catch {
        return rootLogger.warn('ignored a non-JSON message on a session channel', { channel });
      }
      for (const h of set) {
        try {
          h(msg);
        } catch (err) {
          rootLogger.error('session store subscriber threw', { channel, err: String(err) });
        }
      }
    });
    this.sub = sub;
    return sub;
  }

  private serialised<T>(op: () => Promise<T>): Promise<T> {
    const p = this.subChain.then(op, op);
    this.subChain = p.catch(() => undefined);
    return p;
  }

  async close(): Promise<void> {
    this.handlers.clear();
    this.active.clear();
    await Promise.all([this.sub && closeRedis(this.sub), closeRedis(this.redis)]);
  }
}
