/**
 * Redis session store (ioredis): several gateway instances share sessions, leases and cancel messages.
 *
 * Keys (prefix default `switchyard:`): `session:<id>` hash { v: version, st: status, doc: JSON record without its
 * history, tr: the turn list's stamp }, the history apart from it, one entry a turn: `turns:<id>` hash { <index>:
 * turn JSON } and `turnrevs:<id>` hash { <index>: revision }, revisions and stamps from the `turnrev` counter
 * (INCR, store-wide; see turn-cache.ts) of the epoch in `meta`'s `turnStore` field (named anew whenever the counter
 * starts again, a FLUSHALL say, so an (epoch, revision) is never reused), `sessions` zset (id by updatedAt), and
 * beside it one zset a status, `sessions:st:<status>` (the ids of that status, by the same score: what countByStatus
 * counts and a status filter of `list` pages over) and one set a mark of SESSION_MARKS, `sessions:mark:<mark>` (the
 * ids whose record holds it, computed here from the record written: what listMarked reads), each kept by the script
 * that writes or deletes the record (schema 3; an open of older keys builds them from the records: reindex),
 * `transfer:<transferId>` → session id, `meta` hash, `lease:<sessionId>` → the take's token (`<holder id>#<nonce>`,
 * lease-token.ts; the holder id alone when an older version took it) with a PX expiry, pub/sub channels
 * `chan:<name>`. A record written before the history moved out (schema 1) has no `tr` and its turns in `doc`: it is
 * read as it is and split at its next write. Every multi-key change is one Lua script (redis-scripts.ts), so it is
 * atomic; keys are not hash-tagged, so this needs a single Redis (or a Sentinel-managed primary), not Cluster.
 *
 * Durability: a method resolves after Redis has applied the write. How it survives a Redis restart is the
 * server's persistence config: `appendonly yes` + `appendfsync always` loses nothing acknowledged
 * (`everysec`: up to a second on a Redis crash). `open` warns when it can see that AOF is off, or that Redis
 * evicts keys at maxmemory (docs/operations.md).
 */
import { createHash, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Session, SessionStatus, Turn } from './model.js';
import { isStoredAs, turnCache, type TurnList } from './turn-cache.js';
import { leaseHolderOf, newLeaseToken } from './lease-token.js';
import {
  ACQUIRE,
  APPEND_EVENTS,
  CHECK_SCHEMA,
  CREATE,
  DELETE_ENDED,
  DROP_THROUGH,
  GET,
  GET_TURNS,
  IMPORT,
  INDEX_AFTER,
  INDEX_KEYS,
  INDEXED_MARKS,
  INDEXED_STATUSES,
  LAST_EVENT_SEQ,
  READ_EVENTS,
  RECORD_KEYS,
  REINDEX,
  RELEASE,
  RENEW,
  TURNS_PER_READ,
  UPDATE,
} from './redis-scripts.js';
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
  listedBefore,
  type MessageHandler,
  type SessionPosition,
  type SessionStore,
  SESSION_MARKS,
  type SessionMark,
  type Unsubscribe,
} from './store.js';
import { rootLogger, type Logger } from '../util/log.js';
import { REDIS_CLOSE_WAIT_MS, closeRedis } from '../util/redis-close.js';
import { settledWithin } from '../util/settled-within.js';

import { DEFAULT_REDIS_PREFIX } from './redis-constants.js';
export { DEFAULT_REDIS_PREFIX };
/**
 * 2: the history stored apart from the record (an instance of schema 1 would read such a record without turns).
 * 3: the status and mark indexes, kept by every write (an instance of schema 2 would write records without them).
 */
const SCHEMA_VERSION = 3;
/** records whose indexes one REINDEX script builds (their docs are read in batches of this many first) */
const REINDEX_BATCH = 100;

/** A sort comparator: the order `list` answers in (SessionPosition). */
const inListOrder = (a: SessionPosition, b: SessionPosition): number => (listedBefore(a, b) ? -1 : listedBefore(b, a) ? 1 : 0);

/** Each mark's flag ('1' held, '0' not: INDEXED_MARKS' order) for a record with this metadata. */
function markFlags(metadata: Session['metadata']): string {
  return INDEXED_MARKS.map((m) => (SESSION_MARKS[m](metadata) ? '1' : '0')).join('');
}

/** What a write sends of a session's turns (RedisStore.plan). */
interface WritePlan {
  /** the turn-list stamp the kept turns are stored under ('' when none is kept): the script checks it */
  tr: string;
  /** the store epoch `tr` and the kept turns' revisions are of (the script checks it too) */
  epoch: string;
  /** index, JSON of each turn written */
  pairs: Array<string | number>;
  written: Array<{ index: number; json: string }>;
  /** each index's revision: a kept turn's, 0 for a written one (until the write returns its new one) */
  revs: number[];
}

/**
 * A connection error in a few words that name nothing of the server (ioredis's messages carry its address): by the
 * socket's error code.
 */
function connectFailureOf(err: Error & { code?: string }): string {
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ETIMEDOUT':
      return 'connect timed out';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host not found';
    case 'ECONNRESET':
      return 'connection reset';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable';
    default:
      return 'connection failed';
  }
}

export class RedisStore implements SessionStore {
  readonly kind = 'redis' as const;
  private sub: Redis | undefined;
  private readonly handlers = new Map<string, Set<MessageHandler>>();
  /** per channel: resolves once Redis has acknowledged the SUBSCRIBE */
  private readonly active = new Map<string, Promise<unknown>>();
  /** serialises SUBSCRIBE / UNSUBSCRIBE on the subscriber connection */
  private subChain: Promise<unknown> = Promise.resolve();

  /**
   * The store's turn epoch as last seen (the `turnStore` field of `meta`, named anew when the `turnrev` counter
   * restarts: redis-scripts.ts STORE_EPOCH), and `scope`, which names this Redis's turns of that epoch (under
   * `prefix`) in the process's turn cache. Every script that reads or writes turns answers with the epoch, and
   * the store moves to it (`adopt`): a turn cached before a FLUSHALL is never taken for one written after it.
   */
  private epoch = '';
  private scope = '';
  /** the main connection's last connect failure since it was last ready (connectionProblem) */
  private connectFailure: string | undefined;

  private constructor(
    private readonly redis: Redis,
    readonly prefix: string,
    private readonly logger: Logger,
  ) {}

  /**
   * Connects (fails if Redis is unreachable) and checks the key schema version under `prefix`. `logger`: where the
   * store's warnings go (the gateway's; the process's root logger when none is given).
   */
  static async open(url: string, prefix: string = DEFAULT_REDIS_PREFIX, logger: Logger = rootLogger): Promise<RedisStore> {
    const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 3, connectTimeout: 5000 });
    RedisStore.logErrors(redis, 'main', logger);
    try {
      await redis.connect();
      const store = new RedisStore(redis, prefix, logger);
      redis.on('error', (err: Error & { code?: string }) => (store.connectFailure = connectFailureOf(err)));
      redis.on('ready', () => (store.connectFailure = undefined));
      await store.checkSchema();
      return store;
    } catch (err) {
      redis.disconnect();
      throw err;
    }
  }

  private async checkSchema(): Promise<void> {
    // schema 1 records are still read (and split at their next write); an older Switchyard must not start on these
    // keys: the version is raised before the indexes are built, and `_reindex` says they are still to be
    const [v, reindex] = (await this.redis.eval(CHECK_SCHEMA, 2, this.k('meta'), this.k('sessions'), SCHEMA_VERSION)) as [number, number];
    if (v > SCHEMA_VERSION) throw new Error(`Redis keys under "${this.prefix}" have schema version ${v}, newer than this Switchyard (${SCHEMA_VERSION})`);
    if (reindex === 1) await this.reindex(v);
    await this.redis.hsetnx(this.k('meta'), 'turnStore', randomUUID());
    this.adopt((await this.redis.hget(this.k('meta'), 'turnStore')) ?? '');
    // CONFIG may be refused (managed Redis, a renamed command): then nothing is said (docs/operations.md)
    const aof = await this.redis.call('CONFIG', 'GET', 'appendonly').catch(() => undefined);
    if (Array.isArray(aof) && aof[1] === 'no') {
      this.logger.warn('redis has appendonly=no: acknowledged session writes are lost if Redis restarts', { prefix: this.prefix });
    }
    const policy = await this.redis.call('CONFIG', 'GET', 'maxmemory-policy').catch(() => undefined);
    if (Array.isArray(policy) && typeof policy[1] === 'string' && policy[1] !== 'noeviction') {
      this.logger.warn(
        'redis evicts keys at maxmemory: session leases, records and update logs can vanish (docs/operations.md); set maxmemory-policy noeviction',
        {
          prefix: this.prefix,
          maxmemoryPolicy: policy[1],
        },
      );
    }
  }

  /**
   * Builds the status and mark indexes (schema 3) from the records, once, when the keys were written by an older
   * version: the `sessions` index scanned (ZSCAN: a record there all along is met at least once, whatever is written
   * meanwhile) a page at a time, each page's docs read REINDEX_BATCH at a time, their marks computed here, and each
   * batch indexed by one REINDEX script: a record's status as it is then, its marks only if it is unchanged since
   * it was read (a write since gave it its marks itself: every write of this version keeps the indexes). Instances
   * opening together each build them (the script is idempotent); the first to finish drops `_reindex`.
   */
  private async reindex(from: number): Promise<void> {
    const started = Date.now();
    let indexed = 0;
    let cursor = '0';
    do {
      const [next, page] = await this.redis.zscan(this.k('sessions'), cursor, 'COUNT', 500);
      cursor = next;
      const ids = page.filter((_, i) => i % 2 === 0);
      for (let i = 0; i < ids.length; i += REINDEX_BATCH) {
        const batch = ids.slice(i, i + REINDEX_BATCH);
        const pipe = this.redis.pipeline();
        for (const id of batch) pipe.hmgetBuffer(this.k(`session:${id}`), 'v', 'doc');
        const keys: string[] = [];
        const args: string[] = [];
        for (const [j, [err, res]] of ((await pipe.exec()) ?? []).entries()) {
          if (err) throw err;
          const [v, doc] = res as [Buffer | null, Buffer | null];
          const id = batch[j]!;
          keys.push(this.k(`session:${id}`));
          if (!v || !doc) {
            args.push(id, '', '', ''); // deleted meanwhile, or no record a mark can be read from: its status alone
            continue;
          }
          let metadata: Session['metadata'] | undefined;
          try {
            metadata = (JSON.parse(doc.toString('utf8')) as Partial<Session>).metadata;
          } catch {
            // a doc that is no JSON: read as nothing (get fails on it), its marks left as they are
          }
          if (metadata === undefined) args.push(id, '', '', '');
          else args.push(id, v.toString('utf8'), createHash('sha1').update(doc).digest('hex'), markFlags(metadata));
        }
        if (keys.length > 0)
          indexed += Number(await this.redis.eval(REINDEX, 1 + INDEX_KEYS + keys.length, this.k('sessions'), ...this.indexKeys(), ...keys, ...args));
      }
    } while (cursor !== '0');
    await this.redis.hdel(this.k('meta'), '_reindex');
    this.logger.info('built the session status and mark indexes of the Redis keys (key schema 3)', {
      prefix: this.prefix,
      fromSchema: from === 0 ? 'none' : from,
      indexed,
      ms: Date.now() - started,
    });
  }

  /** ioredis reconnects by itself; without a listener its 'error' events would be printed unstructured */
  private static logErrors(conn: Redis, role: string, logger: Logger): void {
    let last = '';
    conn.on('error', (err: Error) => {
      if (err.message !== last) logger.warn('redis connection error', { role, err: err.message });
      last = err.message;
    });
    conn.on('ready', () => (last = ''));
  }

  connectionProblem(): string | undefined {
    // between a refused connect and the next attempt the client is 'reconnecting', during it 'connecting': neither
    // is ready, and the failure seen since the last 'ready' is why
    if (this.redis.status === 'ready') return undefined;
    return this.redis.status === 'end' ? 'closed' : this.connectFailure;
  }

  private k(suffix: string): string {
    return this.prefix + suffix;
  }

  /** Moves to the store epoch a script answered with (the latest: one connection answers in order); its scope. */
  private adopt(epoch: string): string {
    if (epoch !== this.epoch) {
      this.epoch = epoch;
      this.scope = `redis:${epoch}`;
    }
    return this.scope;
  }

  /** KEYS of the scripts that write a record (RECORD_KEYS) */
  private recordKeys(id: string): string[] {
    return [
      this.k(`session:${id}`),
      this.k('sessions'),
      this.k(`turns:${id}`),
      this.k(`turnrevs:${id}`),
      this.k('turnrev'),
      this.k('meta'),
      ...this.indexKeys(),
    ];
  }

  /** A status's index: the ids of the sessions in that status, by the last update (the `sessions` index's score). */
  private statusKey(status: SessionStatus): string {
    return this.k(`sessions:st:${status}`);
  }

  /** The INDEX_KEYS, in the scripts' order: each status's index, then each mark's set. */
  private indexKeys(): string[] {
    return [...INDEXED_STATUSES.map((st) => this.statusKey(st)), ...INDEXED_MARKS.map((m) => this.k(`sessions:mark:${m}`))];
  }

  /** The record as `doc` holds it: without its history (stored apart) and its version (the `v` field). */
  private static doc(s: Session): string {
    const { history: _history, version: _version, ...rest } = s;
    return JSON.stringify(rest);
  }

  async get(id: string): Promise<Session | undefined> {
    for (;;) {
      // the list this process last read or wrote: GET sends the (index, revision) list only if it changed since
      const { epoch } = this;
      const known = turnCache.list(this.scope, id);
      const r = (await this.redis.eval(GET, 3, this.k(`session:${id}`), this.k(`turnrevs:${id}`), this.k('meta'), known?.stamp ?? '', epoch, randomUUID())) as
        [string, string, string, string?, string[]?] | null;
      if (!r) {
        turnCache.dropList(this.scope, id);
        return undefined;
      }
      const [v, doc, replyEpoch, tr, pairs] = r;
      const fetch = (stamp: string, batch: number[]) =>
        this.redis.eval(GET_TURNS, 3, this.k(`session:${id}`), this.k(`turns:${id}`), this.k('meta'), stamp, replyEpoch, ...batch) as Promise<string[] | null>;
      const s = await this.assemble(id, replyEpoch, [v, doc, tr, pairs], known, fetch);
      if (s) return s; // else the turns changed between the two reads: again
    }
  }

  /**
   * The record of a GET reply (or a duplicate import's) with its turns: those the process's cache holds, and the
   * others read (`fetch`: GET_TURNS, or the texts the reply carried); undefined when the turn list changed before
   * they were read. `known` is used only when the reply has no (index, revision) list: the list is then that stamp
   * of that epoch.
   */
  private async assemble(
    id: string,
    epoch: string,
    [v, doc, tr, pairs]: [string, string, string?, string[]?],
    known: TurnList | undefined,
    fetch: (stamp: string, batch: number[]) => Promise<string[] | null>,
  ): Promise<Session | undefined> {
    const scope = this.adopt(epoch);
    const { history: old, ...rec } = JSON.parse(doc) as Session;
    if (tr === undefined) {
      turnCache.dropList(scope, id);
      return { ...rec, history: old ?? [], version: Number(v) }; // schema 1: the turns are in doc
    }
    if (!pairs) return { ...rec, history: known!.turns.slice(), version: Number(v) };
    const revs = new Array<number>(pairs.length / 2);
    for (let i = 0; i < pairs.length; i += 2) revs[Number(pairs[i])] = Number(pairs[i + 1]);
    const history = new Array<Turn>(revs.length);
    const missing: number[] = [];
    revs.forEach((rev, i) => {
      const hit = turnCache.cached(scope, id, i, rev);
      if (hit) history[i] = hit;
      else missing.push(i);
    });
    for (let at = 0; at < missing.length; at += TURNS_PER_READ) {
      const batch = missing.slice(at, at + TURNS_PER_READ);
      const texts = await fetch(tr, batch);
      if (!texts) return undefined;
      batch.forEach((i, j) => (history[i] = turnCache.remember({ scope, sessionId: id, index: i, rev: revs[i]! }, texts[j]!)));
    }
    turnCache.setList(scope, id, tr, revs, history);
    return { ...rec, history: history.slice(), version: Number(v) };
  }

  /**
   * What a write sends of `turns`: the (index, JSON) pairs of the turns that are not stored unchanged at their
   * index under the stamp this process last read or wrote (`tr`: '' when it keeps none), and which those are.
   */
  private plan(id: string, turns: readonly Turn[], keepNone: boolean): WritePlan {
    const known = keepNone ? undefined : turnCache.list(this.scope, id);
    const pairs: Array<string | number> = [];
    const written: Array<{ index: number; json: string }> = [];
    const revs = new Array<number>(turns.length).fill(0);
    let kept = false;
    turns.forEach((t, index) => {
      if (known && isStoredAs(t, this.scope, id, index, known.revs[index])) {
        kept = true;
        revs[index] = known.revs[index]!;
      } else {
        const json = JSON.stringify(t);
        pairs.push(index, json);
        written.push({ index, json });
      }
    });
    return { tr: kept ? known!.stamp : '', epoch: this.epoch, pairs, written, revs };
  }

  /**
   * After a write: the turns as stored (the written ones parsed, frozen and cached), and the list remembered, under
   * the store epoch the write answered with.
   */
  private stored(id: string, turns: readonly Turn[], { written, revs }: WritePlan, tr: string, epoch: string, newRevs: number[]): Turn[] {
    const scope = this.adopt(epoch);
    const history = turns.slice();
    written.forEach((w, j) => {
      revs[w.index] = newRevs[j]!;
      history[w.index] = turnCache.remember({ scope, sessionId: id, index: w.index, rev: newRevs[j]! }, w.json);
    });
    turnCache.setList(scope, id, tr, revs, history);
    return history.slice();
  }

  async create(session: Session): Promise<Session> {
    const s = { ...session, version: 1 };
    const plan = this.plan(s.id, s.history, true);
    const r = (await this.redis.eval(
      CREATE,
      RECORD_KEYS,
      ...this.recordKeys(s.id),
      s.id,
      RedisStore.doc(s),
      s.status,
      s.updatedAt,
      s.history.length,
      randomUUID(),
      markFlags(s.metadata),
      ...plan.pairs,
    )) as [number, number, string, ...number[]];
    if (r[0] !== 1) throw new SessionExistsError(s.id);
    return { ...s, history: this.stored(s.id, s.history, plan, String(r[1]), r[2], r.slice(3) as number[]) };
  }

  async update(session: Session, expectedVersion: number): Promise<Session> {
    const s = { ...session, version: expectedVersion + 1, updatedAt: Date.now() };
    for (let keepNone = false; ; keepNone = true) {
      const plan = this.plan(s.id, s.history, keepNone);
      const args = [
        s.id,
        RedisStore.doc(s),
        s.status,
        s.updatedAt,
        expectedVersion,
        plan.tr,
        s.history.length,
        randomUUID(),
        plan.epoch,
        markFlags(s.metadata),
        ...plan.pairs,
      ];
      const r = (await this.redis.eval(UPDATE, RECORD_KEYS, ...this.recordKeys(s.id), ...args)) as [number, number, string, ...number[]];
      if (r[0] === 1) return { ...s, history: this.stored(s.id, s.history, plan, String(r[1]), r[2], r.slice(3) as number[]) };
      if (r[0] === -1) throw new SessionNotFoundError(s.id);
      if (r[0] === 0) throw new VersionConflictError(s.id, expectedVersion);
      // -2: the turn list is not the one this instance knew (another wrote it at the same version, or the store's
      // epoch moved on): send every turn
      turnCache.dropList(`redis:${plan.epoch}`, s.id);
    }
  }

  async list(opts: ListOptions = {}): Promise<Session[]> {
    // the index read a chunk at a time from the position on, and only as far as the page needs: a status filter
    // pages over that status's index (the same order), so it reads only ids of that status
    const limit = opts.limit ?? Infinity;
    const index = opts.status ? this.statusKey(opts.status) : this.k('sessions');
    const out: Session[] = [];
    let at = opts.after;
    let moved = false;
    // a record met twice in one call (updated between the reads, and stamped by a clock behind the index's order)
    const listed = new Set<string>();
    while (out.length < limit) {
      const want = Math.min(100, limit - out.length);
      const chunk = await this.indexAfter(index, at, want);
      if (chunk.length === 0) break;
      at = chunk[chunk.length - 1];
      const listedAt = new Map(chunk.map((p) => [p.id, p.updatedAt]));
      for (const s of await Promise.all(chunk.map((p) => this.get(p.id)))) {
        // deleted between the two reads, listed already, or no longer of the status asked
        if (!s || listed.has(s.id)) continue;
        if ((opts.status && s.status !== opts.status) || (opts.owner && s.ownerGatewayId !== opts.owner)) continue;
        if (s.updatedAt !== listedAt.get(s.id)) {
          // updated since its index entry was read: it stands before that place now, before `after` too
          if (opts.after && !listedBefore(opts.after, s)) continue;
          moved = true;
        }
        listed.add(s.id);
        out.push(s);
      }
      if (chunk.length < want) break;
    }
    // a record updated between the reads stands at its new place (first)
    return moved ? out.sort(inListOrder) : out;
  }

  /**
   * Up to `n` entries of `index` (`sessions` or a status's) past `after` (the first `n` without it), in the order of
   * SessionPosition (INDEX_AFTER).
   */
  private async indexAfter(index: string, after: SessionPosition | undefined, n: number): Promise<SessionPosition[]> {
    const flat = (await this.redis.eval(INDEX_AFTER, 1, index, after ? String(after.updatedAt) : '', after?.id ?? '', n)) as string[];
    const out: SessionPosition[] = [];
    for (let i = 0; i < flat.length; i += 2) out.push({ id: flat[i]!, updatedAt: Number(flat[i + 1]) });
    return out;
  }

  async listMarked(mark: SessionMark): Promise<Session[]> {
    // the mark's set holds the ids whose record held it when last written; each is read and checked again (it may
    // have been written or deleted since the set was read)
    const ids = await this.redis.smembers(this.k(`sessions:mark:${mark}`));
    const out: Session[] = [];
    for (let i = 0; i < ids.length; i += 100) {
      for (const s of await Promise.all(ids.slice(i, i + 100).map((id) => this.get(id)))) if (s && SESSION_MARKS[mark](s.metadata)) out.push(s);
    }
    return out.sort(inListOrder);
  }

  async deleteEndedBefore(before: number): Promise<number> {
    // the ended statuses' indexes are scored by the last update: only their ids older than the cut are read
    const ids = (await Promise.all((['closed', 'moved'] as const).map((st) => this.redis.zrangebyscore(this.statusKey(st), '-inf', `(${before}`)))).flat();
    let deleted = 0;
    for (const id of ids) {
      // checked again where it is deleted: a session restarted since the read is kept
      const keys = [
        this.k(`session:${id}`),
        this.k('sessions'),
        this.k(`lease:${id}`),
        this.k(`events:${id}`),
        this.k(`evmeta:${id}`),
        this.k(`turns:${id}`),
        this.k(`turnrevs:${id}`),
        ...this.indexKeys(),
      ];
      if ((await this.redis.eval(DELETE_ENDED, keys.length, ...keys, id, before)) === 1) {
        deleted++;
        turnCache.dropList(this.scope, id);
      }
    }
    return deleted;
  }

  async countByStatus(): Promise<Record<SessionStatus, number>> {
    // one ZCARD a status's index, in one transaction: a session changing status meanwhile is counted once
    const res = (await INDEXED_STATUSES.reduce((m, st) => m.zcard(this.statusKey(st)), this.redis.multi()).exec()) ?? [];
    const out: Record<SessionStatus, number> = { active: 0, running: 0, closed: 0, moved: 0 };
    INDEXED_STATUSES.forEach((st, i) => {
      const [err, n] = res[i] ?? [new Error('no reply')];
      if (err) throw err;
      out[st] = Number(n);
    });
    return out;
  }

  async delete(id: string): Promise<boolean> {
    const multi = this.redis
      .multi()
      .del(this.k(`session:${id}`))
      .zrem(this.k('sessions'), id)
      .del(this.k(`lease:${id}`))
      .del(this.k(`events:${id}`))
      .del(this.k(`evmeta:${id}`))
      .del(this.k(`turns:${id}`), this.k(`turnrevs:${id}`));
    // out of the status and mark indexes in the same transaction
    for (const st of INDEXED_STATUSES) multi.zrem(this.statusKey(st), id);
    for (const m of INDEXED_MARKS) multi.srem(this.k(`sessions:mark:${m}`), id);
    const res = await multi.exec();
    turnCache.dropList(this.scope, id);
    return res?.[0]?.[1] === 1;
  }

  async importTransferred(transferId: string, session: Session): Promise<ImportResult> {
    const s = { ...session, updatedAt: Date.now() };
    const keys = [...this.recordKeys(s.id), this.k(`transfer:${transferId}`)];
    const plan = this.plan(s.id, s.history, true);
    const r = (await this.redis.eval(
      IMPORT,
      keys.length,
      ...keys,
      s.id,
      RedisStore.doc(s),
      s.status,
      s.updatedAt,
      s.version,
      s.history.length,
      randomUUID(),
      markFlags(s.metadata),
      ...plan.pairs,
    )) as Array<string | number | string[]>;
    switch (r[0]) {
      case 'ok': {
        const history = this.stored(s.id, s.history, plan, String(r[2]), r[3] as string, r.slice(4) as number[]);
        return { session: { ...s, history, version: Number(r[1]) }, duplicate: false };
      }
      case 'dup': {
        // the record as stored when the script ran, sent by it (with every turn's text: a retried offer is rare)
        const [, v, doc, epoch, tr, pairs, turns] = r as [string, string, string, string, string?, string[]?, string[]?];
        const texts = new Map<number, string>();
        for (let i = 0; turns && i < turns.length; i += 2) texts.set(Number(turns[i]), turns[i + 1]!);
        const session = await this.assemble(s.id, epoch, [v, doc, tr, pairs ?? []], undefined, async (_, batch) => batch.map((i) => texts.get(i)!));
        return { session: session!, duplicate: true };
      }
      case 'conflict':
        throw new TransferConflictError(s.id, `it exists here with status ${r[1] as string}`);
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
   * `events:<id>`: a sorted set scored by seq, one member a seq (a later append at a seq replaces it); members are
   * `<seq> <json>` so equal payloads stay distinct.
   * `evmeta:<id>`: the JSON bytes the log holds and the highest seq its bounds dropped (APPEND_EVENTS).
   * The fence (a take's token) is compared with `lease:<id>` in that script: no round trip more.
   */
  async appendEvents(sessionId: string, events: readonly SessionEvent[], keep: number, maxBytes = Number.MAX_SAFE_INTEGER, fence?: string): Promise<boolean> {
    if (events.length === 0) return true;
    const args: Array<string | number> = [fence ?? '', Math.max(1, Math.trunc(keep)), maxBytes];
    for (const e of events) args.push(e.seq, `${e.seq} ${e.json ?? JSON.stringify(e.event)}`);
    const held = await this.redis.eval(APPEND_EVENTS, 3, this.k(`events:${sessionId}`), this.k(`evmeta:${sessionId}`), this.k(`lease:${sessionId}`), ...args);
    return held !== -1;
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

  async acquireLease(sessionId: string, holderId: string, ttlMs: number): Promise<string | undefined> {
    const token = newLeaseToken(holderId);
    const taken = await this.redis.eval(ACQUIRE, 1, this.k(`lease:${sessionId}`), holderId, token, Math.max(1, Math.ceil(ttlMs)));
    return taken === 1 ? token : undefined;
  }

  async renewLease(sessionId: string, token: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.eval(RENEW, 1, this.k(`lease:${sessionId}`), token, Math.max(1, Math.ceil(ttlMs)))) === 1;
  }

  async releaseLease(sessionId: string, token: string): Promise<boolean> {
    return (await this.redis.eval(RELEASE, 1, this.k(`lease:${sessionId}`), token)) === 1;
  }

  async getLease(sessionId: string): Promise<LeaseInfo | undefined> {
    const key = this.k(`lease:${sessionId}`);
    const res = await this.redis.multi().get(key).pttl(key).exec();
    const token = res?.[0]?.[1] as string | null | undefined;
    const pttl = res?.[1]?.[1] as number | undefined;
    return token && pttl !== undefined && pttl > 0 ? { holderId: leaseHolderOf(token), token, expiresAt: Date.now() + pttl } : undefined;
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
      // connected but not answering (a Redis stopped, a network dropping its packets): the stop that unsubscribes
      // does not wait for it for ever; the store's close disconnects the subscriber after that
      await settledWithin(
        this.serialised(() => sub.unsubscribe(full)),
        REDIS_CLOSE_WAIT_MS,
      );
    };
  }

  private subscriber(): Redis {
    if (this.sub) return this.sub;
    const sub = this.redis.duplicate();
    RedisStore.logErrors(sub, 'subscriber', this.logger);
    sub.on('message', (channel: string, text: string) => {
      const set = this.handlers.get(channel);
      if (!set) return;
      let msg: unknown;
      try {
        msg = JSON.parse(text);
      } catch {
        return this.logger.warn('ignored a non-JSON message on a session channel', { channel });
      }
      for (const h of set) {
        try {
          h(msg);
        } catch (err) {
          this.logger.error('session store subscriber threw', { channel, err: String(err) });
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
    // each connection closed as the key store's and the limiter's are (closeRedis), and a QUIT it gave up on logged the
    // same way: a stop held by a Redis that stopped answering says which client held it, and for how long
    const close = (conn: Redis, role: string) =>
      closeRedis(conn, undefined, (waitedMs) => this.logger.warn("closing: the session store's Redis did not answer QUIT, disconnected", { role, waitedMs }));
    await Promise.all([this.sub && close(this.sub, 'subscriber'), close(this.redis, 'main')]);
  }
}
