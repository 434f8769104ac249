/**
 * The session store contract. Two implementations: SQLite (embedded default, one gateway process) and Redis
 * (several gateway instances sharing sessions). Both pass the same behavioural suite
 * (test/sessions/store.test.ts). Every method is async and every resolved write is durable per docs/sessions.md.
 */
import { GatewayError } from '../wire/errors.js';
import type { Session, SessionStatus } from './model.js';

/**
 * A place in the order `list` answers in: most recently updated first, and of those updated in the same
 * millisecond the greatest id first (ids compared as bytes). Both stores keep an index in that order, so a page that
 * starts past a position reads from there, not from the first session.
 */
export interface SessionPosition {
  /** the session's `updatedAt` (epoch ms) */
  updatedAt: number;
  id: string;
}

export interface ListOptions {
  status?: SessionStatus;
  /** ownerGatewayId */
  owner?: string;
  /** default: all */
  limit?: number;
  /**
   * Only the sessions past this position (keyset paging: the last session of the previous page). A position no
   * session holds any more (updated, deleted) is still a place in the order: the page starts where it would stand.
   */
  after?: SessionPosition;
}

/** true when `a` comes before `b` in the order `list` answers in (SessionPosition) */
export function listedBefore(a: SessionPosition, b: SessionPosition): boolean {
  if (a.updatedAt !== b.updatedAt) return a.updatedAt > b.updatedAt;
  return Buffer.compare(Buffer.from(a.id, 'utf8'), Buffer.from(b.id, 'utf8')) > 0;
}

export interface ImportResult {
  /** the record as stored (with the store's version) */
  session: Session;
  /** true when this transferId had already been imported: nothing was written */
  duplicate: boolean;
}

export interface LeaseInfo {
  holderId: string;
  /** the take's token (lease-token.ts); a lease written before tokens: its holder id */
  token: string;
  /** epoch ms */
  expiresAt: number;
}

/**
 * The session's lease while some take of it is live (not past its expiry): the turn runner's "held by another
 * holder" check and a transfer's wait for a turn's last writes both ask this. An expired lease counts as none: its
 * holder's fenced writes land no more.
 */
export async function liveLease(store: Pick<SessionStore, 'getLease'>, sessionId: string): Promise<LeaseInfo | undefined> {
  const lease = await store.getLease(sessionId);
  return lease !== undefined && lease.expiresAt > Date.now() ? lease : undefined;
}

/** updates kept per session in the store's update log (a transfer carries at most these) */
export const UPDATE_LOG_KEEP = 1000;

/** One entry of a session's update log (the `session.update` params the client was sent, by `seq`). */
export interface SessionEvent {
  seq: number;
  event: Record<string, unknown>;
  /** `event` as JSON when the writer has it already (src/acp/update-json.ts): stored as it is, not serialised again */
  json?: string;
}

/** A page of a session's update log (`readEvents`). */
export interface EventPage {
  events: SessionEvent[];
  /** the log held entries after the page's last one when it was read: the page was cut by its limit or its bytes */
  more: boolean;
}

/** The newest entries of a session's update log (`readNewestEvents`). */
export interface NewestEvents {
  events: SessionEvent[];
  /** the highest seq the log held below `events` when it was read (0: none) */
  before: number;
}

/**
 * What a record may hold that something must find among many records (SessionStore.listMarked): a transfer marker
 * (`metadata.transfer`, a transfer left half-way) or open permission prompts (`metadata.pendingPermissions`). Each
 * store looks for it in its own way (SQLite in the metadata column, Redis inside each record in a script); `holds`
 * is the test on the record read.
 */
export const SESSION_MARKS = {
  transfer: (m: Session['metadata']) => typeof m.transfer === 'object' && m.transfer !== null && !Array.isArray(m.transfer),
  pendingPermissions: (m: Session['metadata']) => Array.isArray(m.pendingPermissions) && m.pendingPermissions.length > 0,
} as const;
export type SessionMark = keyof typeof SESSION_MARKS;

export type MessageHandler = (msg: unknown) => void;
/** Stops the subscription; resolves once no more messages will be delivered to that handler. */
export type Unsubscribe = () => Promise<void>;

export interface SessionStore {
  /** `sqlite` or `redis`: what `openStore` built */
  readonly kind: 'sqlite' | 'redis';

  /**
   * Why the store's client cannot reach the store now, as the client knows it without asking (a Redis client not
   * connected since its connect failed: refused, timed out, ...): a few words naming nothing of the store (no
   * address, no credential), e.g. `connection refused`. Undefined while connected (slow or not), and for a store
   * with no connection (SQLite). The status snapshot says "unreadable" at once on it, rather than waiting on reads
   * its client queues until it reconnects.
   */
  connectionProblem?(): string | undefined;

  get(id: string): Promise<Session | undefined>;
  /** Stores a new session with version 1 (the given version is ignored). Throws SessionExistsError. */
  create(session: Session): Promise<Session>;
  /**
   * Compare-and-set: writes `session` only if the stored version is `expectedVersion`, and returns it with
   * version `expectedVersion + 1` and `updatedAt` = now. Of two writers holding the same
   * version exactly one wins; the other gets VersionConflictError. Unknown id: SessionNotFoundError.
   */
  update(session: Session, expectedVersion: number): Promise<Session>;
  /**
   * In the order of SessionPosition: most recently updated first, ties by id, greatest first. Each listed record is
   * read whole; a page (`limit`, `after`) reads the index from its position on, never the sessions before it. A
   * record updated between the store's read of its index and of the record is listed at its new place: first on a
   * page without `after`, and left out of a page with one (it is now before that position).
   */
  list(opts?: ListOptions): Promise<Session[]>;
  /**
   * How many sessions are in each status, without reading the records (the metrics scrape and the status page
   * ask at every poll; a store's records grow with what clients send).
   */
  countByStatus(): Promise<Record<SessionStatus, number>>;
  /**
   * The sessions whose record holds `mark` (SESSION_MARKS), found without reading the other records: a link that
   * comes up settles the transfers left half-way (TransferCoordinator.reconcile), a start the prompts its previous
   * life left pending, and a store of many sessions read whole held the event loop for seconds each time.
   */
  listMarked(mark: SessionMark): Promise<Session[]>;
  /** true if it existed. Also drops its lease. */
  delete(id: string): Promise<boolean>;
  /**
   * Deletes the sessions that ended (`closed`, or `moved` away: a tombstone) before `before` (ms since epoch,
   * by their last update), with their leases and update logs: `acp.endedSessionRetentionDays`. Returns how many.
   * Active and running sessions are never touched.
   */
  deleteEndedBefore(before: number): Promise<number>;

  /**
   * The receiving side of a transfer: stores the (already adopted, see `adoptTransferred`) record durably.
   * Idempotent per `transferId`: a retried offer returns the stored record with `duplicate: true`, read with the
   * check (SQLite: in its transaction; Redis: by the IMPORT script, which sends it), so nothing in between. A session
   * that exists here and is not `moved` away is never overwritten: TransferConflictError. A session coming
   * back (stored here as `moved`) is replaced. The stored version is max(offered, stored) + 1.
   */
  importTransferred(transferId: string, session: Session): Promise<ImportResult>;

  /** Small gateway state (e.g. the persisted gateway id). */
  getMeta(key: string): Promise<string | undefined>;
  setMeta(key: string, value: string): Promise<void>;
  /** Sets `key` only if absent; returns the value that is stored afterwards (the winner's, on a race). */
  getOrSetMeta(key: string, value: string): Promise<string>;

  /**
   * Leases serialise a session's turns across processes sharing the store. `acquire` succeeds if the lease is
   * free, expired, or held by a take of `holderId` (a restarted process's previous life, whose lease it takes over
   * at once), and resolves the new take's token (lease-token.ts), undefined when it did not take the lease. Every
   * take gets a new token, which renewals keep: an earlier take's renewals, release and fenced writes fail from then
   * on. A crashed holder's lease expires after `ttlMs`; a live holder renews it while the turn runs.
   */
  acquireLease(sessionId: string, holderId: string, ttlMs: number): Promise<string | undefined>;
  /** false if the take `token` does not hold it (anymore). */
  renewLease(sessionId: string, token: string, ttlMs: number): Promise<boolean>;
  /** false if the take `token` does not hold it: nobody can release another take's lease. */
  releaseLease(sessionId: string, token: string): Promise<boolean>;
  getLease(sessionId: string): Promise<LeaseInfo | undefined>;

  /**
   * A session's update log, so that a client that lost its stream can read what it missed
   * (`xworkmate.tasks.get` with `afterSeq`, the WebSocket resume). `appendEvents` adds entries (seqs increase; one
   * at a seq the log holds, a re-sent update, replaces the entry there) and keeps only the newest `keep` of the session, and of those only the newest whose JSON is at most
   * `maxBytes` bytes together (the newest entry is always kept); `readEvents` returns a page of the entries with
   * seq > `afterSeq`, oldest first: at most `limit`, and past the first no more than `maxBytes` of JSON together
   * (one entry larger than that is a page by itself), with `more` when the log holds entries after the page;
   * `lastEventSeq` is the highest seq it holds (0: none); `droppedThrough` is the highest seq the bounds dropped from
   * the session's log (0: none), so a reader can tell a cursor the log no longer reaches, and `dropThrough` raises
   * it (dropping what the log holds up to it: a transfer's receiver, whose sender no longer had those entries).
   * `delete(id)` drops the log too. A transfer carries the log's newest entries (sessions/transfer.ts).
   *
   * `fence`: the token of the lease take the entries were numbered under (the seq rule, docs/sessions.md). They are
   * written only if, in the same atomic step as the write (Redis: the script that appends; SQLite: its transaction),
   * the session's lease is still that take and not expired; otherwise nothing is written and the call resolves
   * false. A writer paused past its lease's ttl (and its own `held()` check) cannot then land updates at seqs the
   * next holder has numbered meanwhile, even when the next holder has its holder id (its restart). Without `fence` the entries are written whoever holds the lease (a transfer's receiver).
   * Resolves true when written.
   */
  appendEvents(sessionId: string, events: readonly SessionEvent[], keep: number, maxBytes?: number, fence?: string): Promise<boolean>;
  readEvents(sessionId: string, afterSeq: number, limit: number, maxBytes?: number): Promise<EventPage>;
  /**
   * The newest entries of a session's log, oldest first: at most `limit`, and past the newest no more than
   * `maxBytes` of JSON together (the newest is always read), counted as `readEvents` counts; `before` is the
   * highest seq the log holds below them (0: none). Only those entries are read (what a transfer can carry).
   */
  readNewestEvents(sessionId: string, limit: number, maxBytes: number): Promise<NewestEvents>;
  lastEventSeq(sessionId: string): Promise<number>;
  droppedThrough(sessionId: string): Promise<number>;
  dropThrough(sessionId: string, seq: number): Promise<void>;

  /**
   * Fire-and-forget messages between instances (e.g. "cancel the turn of session X"). Redis: every instance
   * subscribed to the same prefix receives it. SQLite: delivered only to stores opened on the same file in
   * this process (SQLite has no cross-process notification; one SQLite gateway is one process).
   * Messages are JSON values; delivery is at most once, to subscribers present at publish time.
   */
  publish(channel: string, msg: unknown): Promise<void>;
  /** Resolves once the subscription is active: a publish issued after that reaches `handler`. */
  subscribe(channel: string, handler: MessageHandler): Promise<Unsubscribe>;

  /**
   * Small expiring documents beside the sessions (stored OpenAI Responses, `gateway.responses.storeTtlMs`):
   * `value` is opaque text, gone after `ttlMs`. A later put of the same key replaces it and its expiry.
   */
  putExpiring(key: string, value: string, ttlMs: number): Promise<void>;
  /** undefined when absent or expired */
  getExpiring(key: string): Promise<string | undefined>;

  close(): Promise<void>;
}

// ---- typed errors (HTTP 409 on the admin API; `reason` is the stable machine code) ----

export type StoreErrorReason = 'SESSION_EXISTS' | 'SESSION_NOT_FOUND' | 'VERSION_CONFLICT' | 'TRANSFER_CONFLICT';

export class SessionStoreError extends GatewayError {
  readonly reason: StoreErrorReason;
  readonly sessionId: string;
  constructor(reason: StoreErrorReason, sessionId: string, message: string, extra: Record<string, unknown> = {}) {
    const code = reason === 'SESSION_NOT_FOUND' ? 'NOT_FOUND' : 'INVALID_REQUEST';
    super(code, message, { status: reason === 'SESSION_NOT_FOUND' ? 404 : 409, details: { reason, sessionId, ...extra } });
    this.name = 'SessionStoreError';
    this.reason = reason;
    this.sessionId = sessionId;
  }
}

export class SessionExistsError extends SessionStoreError {
  constructor(sessionId: string) {
    super('SESSION_EXISTS', sessionId, `session ${sessionId} already exists`);
    this.name = 'SessionExistsError';
  }
}

export class SessionNotFoundError extends SessionStoreError {
  constructor(sessionId: string) {
    super('SESSION_NOT_FOUND', sessionId, `session ${sessionId} not found`);
    this.name = 'SessionNotFoundError';
  }
}

export class VersionConflictError extends SessionStoreError {
  readonly expectedVersion: number;
  constructor(sessionId: string, expectedVersion: number) {
    super('VERSION_CONFLICT', sessionId, `session ${sessionId} was changed concurrently (expected version ${expectedVersion})`, { expectedVersion });
    this.name = 'VersionConflictError';
    this.expectedVersion = expectedVersion;
  }
}

export class TransferConflictError extends SessionStoreError {
  constructor(sessionId: string, why: string) {
    super('TRANSFER_CONFLICT', sessionId, `transfer of session ${sessionId} refused: ${why}`);
    this.name = 'TransferConflictError';
  }
}

/**
 * Read-modify-write with retry on VersionConflictError: `change` gets the current record and returns the next
 * one (or undefined to write nothing). Returns the stored record.
 */
export async function mutateSession(store: SessionStore, id: string, change: (current: Session) => Session | undefined, maxAttempts = 20): Promise<Session> {
  for (let attempt = 1; ; attempt++) {
    const cur = await store.get(id);
    if (!cur) throw new SessionNotFoundError(id);
    const next = change(cur);
    if (!next) return cur;
    try {
      return await store.update(next, cur.version);
    } catch (err) {
      if (!(err instanceof VersionConflictError) || attempt >= maxAttempts) throw err;
    }
  }
}
