/**
 * The turn runner behind `session.start` / `session.message` / `session.cancel` / `session.close` /
 * `xworkmate.tasks.get`. Owns, per session: the arrival-order queue (one turn at a time; different sessions run
 * concurrently), the `seq` counter (strictly increasing over every `session.update` of the session), the
 * runtime session, and the durable record in the SessionStore (turn appended when it starts, updated when it
 * ends, with optimistic concurrency via mutateSession, and a store lease held while it runs: lease.ts).
 * Task snapshots for `xworkmate.tasks.get` live in task-registry.ts.
 *
 * A turn never depends on the request that started it: updates go to a sink that may be gone (client
 * disconnected) and the turn still runs to its end; its result stays readable through `task()`. Every update
 * also goes to the session's update log (update-log.ts, for resume) and task events to the record
 * (task-events.ts); agents' permission requests go through the broker (permissions.ts).
 *
 * Over 400 lines on purpose: this is the one place that orders a session's turns, numbers its updates and holds
 * its lease, and the three must change together; everything that can stand alone already does (lease,
 * task-registry, update-log, task-events, permissions, live-session).
 */
import { GatewayError, stackOf, toGatewayError, type ErrorCode } from '../wire/errors.js';
import type { Logger } from '../util/log.js';
import { newId } from '../util/ids.js';
import {
  appendTurn,
  chatMessages,
  closeSession,
  newSession,
  newTurn,
  notPeersSession,
  peerReaches,
  updateTurn,
  type Session,
  type Turn,
  type TurnStatus,
} from '../sessions/model.js';
import { mutateSession, SessionExistsError, type SessionStore } from '../sessions/store.js';
import { leavingHere, offeredNow } from '../sessions/transfer.js';
import { secrets } from '../util/redact.js';
import { holdUntilSettled } from '../util/per-key-queue.js';
import { isObj } from '../util/is-object.js';
import { MAX_TURN_OUTPUT_CHARS, type Runtime, type RuntimeContext, type TurnOutput, type UpdateEvent } from './runtime.js';
import { otherHolder, OwnTakes, SessionLease } from './lease.js';
import { resultOutputMaxChars, TaskRegistry, type Task, type TaskQuery, type TaskRegistryHeld, type TurnResult } from './task-registry.js';
import { UpdateLog, type ReplayFlow } from './update-log.js';
import { TaskEventStore, taskEventFields, type TaskPhase } from './task-events.js';
import { DEFAULT_PERMISSION_TIMEOUT_MS, PermissionBroker, type Answer, type PermissionPrompt, type ResolveReason } from './permissions.js';
import { settledWithin } from '../util/settled-within.js';
import { RecordRead } from './record-read.js';
import type { PermissionOutcome, PermissionRequest } from './runtime.js';
import {
  aboutOf,
  continuationUnavailable,
  failInterrupted,
  holdsLease,
  INTERRUPTED_ERROR,
  keyIdOf,
  newLive,
  noOutput,
  resultOf,
  roleOf,
  seqOf,
  type Emit,
  type LiveSession,
  type RoleBinding,
  type StartInput,
} from './live-session.js';

export type { TurnResult } from './task-registry.js';
export type { RoleBinding, StartInput } from './live-session.js';
export { continuationUnavailable, NO_OUTPUT_ERROR, summaryOf } from './live-session.js';

/**
 * A turn queued by the REST messages route (session-api.ts): its first update is a `queued` status carrying the
 * client's id even when the session is idle, so the route can answer with it at once.
 */
export interface QueuedNotice {
  clientRequestId: string;
}

/** Receives the params of each `session.update` of one turn. Must not throw (errors are swallowed). */
export type UpdateSink = (params: Record<string, unknown>) => void;

/**
 * store pub/sub channel between instances sharing the store: a cancel `{ sessionId, holder }` (the lease holder that
 * runs it), and an end `{ sessionId, closedBy }` from the instance that closed the session, moved it to another
 * gateway, or began running it (its first turn there holds the session's lease): every other one ends its live
 * session of that id, with the agent behind it and its model-API token, unless that one is current (endStaleCopy)
 */
const CANCEL_CHANNEL = 'acp.cancel';

/** A turn's span: its traceparent goes to the runtime; `end` is called once with the turn's status. */
export interface TurnSpan {
  readonly traceparent: string;
  end(status: TurnStatus, error?: string): void;
}

export interface TurnRunnerOptions {
  store: SessionStore;
  gatewayId: string;
  logger: Logger;
  /** builds the runtime session for a session's target; rejects with a GatewayError when it cannot */
  runtimeFor(ctx: RuntimeContext): Promise<Runtime>;
  /**
   * This process's lease holder id. Stable across restarts where that is safe (see leaseHolderId), so a
   * restarted gateway owns the leases of its previous life at once; default: unique per process.
   */
  holderId?: string;
  /** store lease ttl while a turn runs (renewed every ttl/3); default 30 s */
  leaseTtlMs?: number;
  /** how long a turn waits for a lease held by another instance; default derived from the ttl (lease.ts `defaultLeaseWaitMs`) */
  leaseWaitMs?: number;
  /** task snapshots kept in memory for xworkmate.tasks.get (running ones are never dropped); default 10 000 */
  maxTasks?: number;
  /** the bytes the finished task snapshots kept in memory may take together (task-registry.ts `taskBytesBudget`); default that of an 8 MiB stream bound */
  maxTaskBytes?: number;
  /** `acp.updateLogMaxBytes`: the JSON bytes of updates kept per session in the update log; default 64 MiB */
  updateLogMaxBytes?: number;
  /** the JSON bytes of one read of the update log at most (update-log.ts updateLogPageBytes); default 2 MiB */
  updateLogPageBytes?: number;
  /** the most of a turn's output its result carries (live-session.ts `resultOutputMaxChars`); default that of an 8 MiB stream bound */
  resultOutputMaxChars?: number;
  /** a permission prompt nobody answers resolves as cancelled after this long; default 10 min */
  permissionTimeoutMs?: number;
  /** metrics hook (src/obs): each turn's end, by runtime (`agent:<id>` / `gateway:<id>`) and status */
  onTurnEnded?: ((runtime: string, status: TurnStatus) => void) | undefined;
  /** tracing hook (src/obs): a span per turn under `parent`; undefined when tracing is off */
  traceTurn?: ((runtime: string, sessionId: string, parent: string | undefined) => TurnSpan | undefined) | undefined;
}

/** A session.start still replacing its session (TurnRunner.startsPending). */
interface PendingStart {
  /** set by a session.cancel meanwhile: the start's turn ends cancelled without running */
  cancelled: boolean;
  /** the replacement: it resolves when the start's turn follows, rejects when the start failed */
  replacing: Promise<unknown>;
}

/** a wait that does not keep the process alive by itself (a shutdown that ended early leaves no timer behind) */
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());
/** whether a turn's end sends its task event before its final status (an `unavailable` one sends the status only) */
const endsWithTaskEvent = (s: TurnStatus): s is 'completed' | 'failed' | 'cancelled' => s === 'completed' || s === 'failed' || s === 'cancelled';
/** the updates `finish` numbers after a turn's result is stored: its task event, if it has one, and its final status */
const endUpdates = (s: TurnStatus): number => (endsWithTaskEvent(s) ? 2 : 1);
/** how long a stop waits at least for the last session updates to be stored (shutdown) */
const STOP_WRITE_WAIT_MS = 1_000;

export class TurnRunner {
  private readonly sessions = new Map<string, LiveSession>();
  private readonly rehydrating = new Map<string, Promise<LiveSession>>();
  private readonly starting = new Map<string, Promise<void>>();
  /** sessions being closed (close()): a revival waits for the close, then finds the record closed */
  private readonly closing = new Map<string, Promise<void>>();
  /**
   * session.start calls still replacing their session (closing the old one, storing the new record): a
   * session.cancel that comes meanwhile marks them, and the turn each then starts ends cancelled at once.
   * `replacing` settles with the replacement (fulfilled: a turn follows, which the mark cancels).
   */
  private readonly startsPending = new Map<string, Set<PendingStart>>();
  /** the record reads of calls under way (watch): what this process begins or ends on a session invalidates them (touch) */
  private readonly watches = new Map<string, Set<RecordRead>>();
  private readonly tasks: TaskRegistry;
  private readonly updates: UpdateLog;
  private readonly taskEvents: TaskEventStore;
  private readonly permissions: PermissionBroker;
  private readonly holder: string;
  /**
   * every take of a session lease this runner makes (a turn's, a brief one, a revival's): a take waits while an
   * earlier one of the session here is live instead of ending it (lease.ts OwnTakes)
   */
  private readonly own = new OwnTakes();
  /** the most of a turn's output its result carries */
  private readonly resultMax: number;
  private unsubscribe: (() => Promise<void>) | undefined;
  private shuttingDown = false;

  constructor(private readonly o: TurnRunnerOptions) {
    this.holder = o.holderId ?? `${o.gatewayId}/${newId('acp', 6)}`;
    this.resultMax = o.resultOutputMaxChars ?? resultOutputMaxChars(8 * 1024 * 1024);
    this.tasks = new TaskRegistry(o.store, this.resultMax, { maxTasks: o.maxTasks, maxBytes: o.maxTaskBytes });
    this.updates = new UpdateLog(o.store, o.logger, o.updateLogMaxBytes, o.updateLogPageBytes);
    this.taskEvents = new TaskEventStore(o.store, o.logger);
    this.permissions = new PermissionBroker({
      store: o.store,
      holder: this.holder,
      timeoutMs: o.permissionTimeoutMs ?? DEFAULT_PERMISSION_TIMEOUT_MS,
      logger: o.logger,
    });
  }

  /** session.start: (re)creates the session afresh (an existing one is closed first) and runs the first turn. */
  async start(input: StartInput, sink: UpdateSink): Promise<TurnResult> {
    this.assertOpen();
    // concurrent starts of one sessionId replace the session one after the other, never side by side, and
    // after a close already under way (which would otherwise close the record this start makes)
    const prev = Promise.all([this.starting.get(input.sessionId), this.closing.get(input.sessionId)]);
    const mine = prev.then(() => this.replace(input));
    holdUntilSettled(this.starting, input.sessionId, mine);
    this.touchAround(input.sessionId, mine);
    // a cancel while the old session is closed and the new one stored is for this start's turn (cancel())
    const pending: PendingStart = { cancelled: false, replacing: mine };
    let marks = this.startsPending.get(input.sessionId);
    if (!marks) this.startsPending.set(input.sessionId, (marks = new Set()));
    marks.add(pending);
    let live: LiveSession;
    try {
      live = await mine;
    } finally {
      marks.delete(pending);
      if (marks.size === 0 && this.startsPending.get(input.sessionId) === marks) this.startsPending.delete(input.sessionId);
    }
    return this.enqueue(live, input.prompt, sink, input.trace, undefined, pending.cancelled);
  }

  /** Closes the live session of that id (if any) and stores a fresh record; returns the new live session. */
  private async replace(input: StartInput): Promise<LiveSession> {
    // a bridge peer replaces only a session it reaches (peers.ts): checked before the live one is closed, and
    // again on the stored record below, where a local start may have created it since
    const { origin } = input;
    const reachCheck = (cur: Session) => {
      if (origin !== undefined && !peerReaches(cur, origin)) throw notPeersSession(input.sessionId);
    };
    if (origin !== undefined) {
      const rec = await this.o.store.get(input.sessionId);
      if (rec) reachCheck(rec);
    }
    const old = this.sessions.get(input.sessionId);
    if (old) {
      await this.closeLive(old, 'restarted by session.start');
      await old.tail;
    }
    // read once the old turn ended: its last updates (`cancelled`) are numbered only then
    let seq = old?.seq ?? 0;
    const kind = input.target.executionTarget === 'agent' ? 'agent' : 'chat';
    const metadata: Record<string, unknown> = { source: 'acp' };
    if (input.workingDirectory) metadata.workingDirectory = input.workingDirectory;
    if (input.origin) metadata.viaPeer = input.origin;
    if (input.caller) metadata.caller = input.caller;
    if (input.role) metadata.role = input.role;
    const fresh = newSession({ id: input.sessionId, kind, ownerGatewayId: this.o.gatewayId, target: input.target, threadId: input.threadId, metadata });
    try {
      await this.o.store.create({ ...fresh, metadata: { ...metadata, seq } });
    } catch (err) {
      if (!(err instanceof SessionExistsError)) throw err;
      await mutateSession(this.o.store, input.sessionId, (cur) => {
        reachCheck(cur);
        seq = Math.max(seq, typeof cur.metadata.seq === 'number' ? cur.metadata.seq : 0);
        return { ...fresh, metadata: { ...metadata, seq }, version: cur.version };
      });
    }
    seq = await this.updates.lastSeq(input.sessionId, seq);
    const live = newLive(input.sessionId, input.threadId, input.target, input.workingDirectory, seq, input.role, input.caller);
    this.sessions.set(live.id, live);
    this.touch(live.id);
    return live;
  }

  /**
   * session.message: the next turn of an open session; never starts a new one. `seen`: the record as the call's owner
   * check read it (methods.ts), used instead of reading it again while nothing began or ended on the session here
   * since (record-read.ts); a start awaited here invalidates it.
   */
  async message(sessionId: string, prompt: string, sink: UpdateSink, trace?: string, queued?: QueuedNotice, seen?: RecordRead): Promise<TurnResult> {
    this.assertOpen();
    // a session.start replacing the session came first: this is the next turn of the session it makes (its turn
    // is queued before this wakes). Read now, the old record would be revived beside it and its turn lost.
    await this.starting.get(sessionId);
    let live = this.sessions.get(sessionId);
    if (live && !live.closed && (await this.overtaken(live, seen))) await this.closeLive(live, 'the session went on without it');
    if (!live || live.closed) live = await this.rehydrate(sessionId, seen);
    return this.enqueue(live, prompt, sink, trace, queued);
  }

  /**
   * A read of `sessionId`'s record for the steps of one call to share (record-read.ts), invalidated by what this
   * process begins or ends on the session until `unwatch`.
   */
  watch(sessionId: string): RecordRead {
    const r = new RecordRead(sessionId, () => this.starting.has(sessionId) || this.closing.has(sessionId));
    let set = this.watches.get(sessionId);
    if (!set) this.watches.set(sessionId, (set = new Set()));
    set.add(r);
    return r;
  }

  unwatch(r: RecordRead): void {
    const set = this.watches.get(r.sessionId);
    if (set?.delete(r) && set.size === 0) this.watches.delete(r.sessionId);
  }

  /** Something began or ended on the session here: a record read before it (watch) is read again. */
  private touch(sessionId: string): void {
    for (const r of this.watches.get(sessionId) ?? []) r.invalidate();
  }

  /** touch now and once `work` settles (a start or close: begun now, its writes done by then) */
  private touchAround(sessionId: string, work: Promise<unknown>): void {
    this.touch(sessionId);
    const after = () => this.touch(sessionId);
    void work.then(after, after);
  }

  /**
   * The role binding of an open session (its live one, else its record) once a `session.start` replacing it has
   * stored the new one; undefined when it is not role-routed, or not open here (then `message` gives its error).
   */
  async roleBinding(sessionId: string, seen?: RecordRead): Promise<{ role: RoleBinding; threadId: string } | undefined> {
    await this.starting.get(sessionId);
    const live = this.sessions.get(sessionId);
    if (live && !live.closed) return live.role ? { role: live.role, threadId: live.threadId } : undefined;
    const rec = await this.read(sessionId, seen);
    if (!rec || rec.status === 'closed' || rec.status === 'moved') return undefined;
    const role = roleOf(rec.metadata);
    return role ? { role, threadId: rec.threadId } : undefined;
  }

  /**
   * The `task.rejected` update of a role turn the policy refused (methods.ts): nothing runs. Like every update of a
   * session it follows the seq rule (`stamp`): numbered, logged and kept with its task events when this instance
   * holds the session's lease or can take it at once (withLease), so a client that resumes after the last `seq` it
   * saw misses nothing; without it (another instance holds the lease: a turn of the session runs there, or a turn
   * here waits for it) it goes out without `seq`. So does it for a session that is not open (none yet, closed,
   * moved): nothing is created.
   */
  async rejected(ids: { sessionId: string; threadId: string; turnId: string }, fields: Record<string, unknown>, sink: UpdateSink): Promise<void> {
    await this.starting.get(ids.sessionId);
    // its update raises the record's seq: other calls' reads are read again (record-read.ts)
    this.touch(ids.sessionId);
    let live = this.sessions.get(ids.sessionId);
    // held by another instance: not revived here for an update it could not number anyway
    if (!live || live.closed)
      live = (await otherHolder(this.o.store, ids.sessionId, this.holder)) ? undefined : await this.rehydrate(ids.sessionId).catch(() => undefined);
    let params: Record<string, unknown> | undefined;
    if (live) {
      const l = live;
      params = await this.withLease(l, () => this.outOfTurnEmit(l, ids.turnId)(fields)).catch(() => undefined);
      // in the log before the answer (a brief take wrote it already; a turn's lease here did not yet)
      await this.updates.flush(l.id);
    }
    params ??= { ...ids, ...secrets.scrubValue(fields), at: new Date().toISOString() };
    try {
      sink(params);
    } catch {
      // the client is gone
    }
  }

  /**
   * An idle live session whose record went on without it: the session moved away and came back (A→B→A), or
   * another instance sharing the store ran a turn of it. Reused, it would number updates from a stale seq, and
   * the log keeps one update per seq: earlier ones would be overwritten. It is revived from the record instead.
   */
  private async overtaken(live: LiveSession, seen?: RecordRead): Promise<boolean> {
    if (live.pending > 0) return false;
    const rec = await this.read(live.id, seen);
    // a turn queued meanwhile owns it (and its own end writes a seq above live.seq for a moment)
    if (!rec || live.pending > 0) return false;
    return this.wentOnWithout(live, rec);
  }

  private wentOnWithout(live: LiveSession, rec: Session): boolean {
    const seq = typeof rec.metadata.seq === 'number' ? rec.metadata.seq : 0;
    return rec.ownerGatewayId !== this.o.gatewayId || rec.status === 'moved' || seq > live.seq;
  }

  /**
   * The session moved to another gateway (transfer.ts calls this once its record says so): its live session
   * ends here, with the agent process behind it, which would otherwise hold an agent slot until its idle timeout
   * and be found stale if the session ever came back.
   */
  async movedAway(sessionId: string): Promise<void> {
    this.touch(sessionId);
    const live = this.sessions.get(sessionId);
    if (live) await this.closeLive(live, 'the session moved to another gateway');
    await this.endOtherCopies(sessionId);
  }

  /**
   * session.cancel. A turn running here is aborted. A turn running on another instance sharing the store (it
   * holds the session's live lease) is reached through the store's pub/sub: that instance aborts it.
   *
   * A session.start still replacing the session: its turn is the one the client means. The answer waits for the
   * replacement's outcome (closing the old session, whose agent may take its stop grace, and storing the new
   * record), because only then is it known: `cancelled: true` when a start's turn follows (it ends cancelled without running), `false` when
   * every such start failed (nothing ran, nothing was cancelled; the start's own answer carries its error).
   */
  async cancel(sessionId: string): Promise<{ accepted: true; cancelled: boolean; runCancelled: boolean }> {
    this.permissions.cancelSession(sessionId);
    const starts = this.startsPending.get(sessionId);
    const replaced: Promise<boolean>[] = [];
    for (const s of starts ?? []) {
      s.cancelled = true;
      replaced.push(
        s.replacing.then(
          () => true,
          () => false,
        ),
      );
    }
    if (this.cancelLocal(sessionId)) return { accepted: true, cancelled: true, runCancelled: true };
    if (replaced.length > 0) {
      const any = (await Promise.all(replaced)).some(Boolean);
      return { accepted: true, cancelled: any, runCancelled: any };
    }
    const holder = await otherHolder(this.o.store, sessionId, this.holder);
    if (holder) {
      await this.o.store.publish(CANCEL_CHANNEL, { sessionId, holder });
      return { accepted: true, cancelled: true, runCancelled: true };
    }
    return { accepted: true, cancelled: false, runCancelled: false };
  }

  private cancelLocal(sessionId: string): boolean {
    const cur = this.sessions.get(sessionId)?.current;
    if (!cur || cur.abort.signal.aborted) return false;
    cur.abort.abort();
    return true;
  }

  /** Listens for cancels addressed to this instance's turns by other instances (see cancel()). */
  async listen(): Promise<void> {
    this.unsubscribe = await this.o.store.subscribe(CANCEL_CHANNEL, (msg) => {
      const m = msg as { sessionId?: unknown; holder?: unknown; closedBy?: unknown };
      if (typeof m?.sessionId === 'string' && m.holder === this.holder) {
        this.permissions.cancelSession(m.sessionId);
        this.cancelLocal(m.sessionId);
      }
      if (typeof m?.sessionId === 'string' && typeof m.closedBy === 'string' && m.closedBy !== this.holder) {
        const sessionId = m.sessionId;
        void this.endStaleCopy(sessionId).catch((err: unknown) =>
          this.o.logger.warn('a session ended or run on another instance could not be ended here', { sessionId, error: String(err) }),
        );
      }
    });
    await this.permissions.listen();
    // what our previous life left open is settled now, not when the session is next used (rehydrate): prompts it
    // left pending (its agents are gone), and turns it was running when it died (failed, so that tasks.get and a
    // replay say so). Only those records are read: an open session with neither (most of a large store) is not
    const open = [
      ...(await this.o.store.list({ owner: this.o.gatewayId, status: 'running', limit: 10_000 })),
      ...(await this.o.store.listMarked('pendingPermissions')).filter((s) => s.ownerGatewayId === this.o.gatewayId && s.status === 'active'),
    ];
    for (const s of open) {
      await this.rehydrate(s.id).catch((err: unknown) =>
        this.o.logger.warn('a session a previous run left open could not be settled', { sessionId: s.id, error: String(err) }),
      );
    }
  }

  /** `xworkmate.permissions.respond` */
  respondPermission(sessionId: string, requestId: string, answer: Answer): Promise<{ accepted: true; requestId: string }> {
    return this.permissions.respond(sessionId, requestId, answer);
  }

  /** `xworkmate.permissions.list`: one session's pending prompts; without one, those pending here of the sessions `caller` started. */
  async listPermissions(sessionId: string | undefined, caller?: string): Promise<{ items: PermissionPrompt[] }> {
    return { items: await this.permissions.list(sessionId, caller) };
  }

  /**
   * Resume: the session's updates after `afterSeq` from the log, then its live ones (see UpdateLog.follow).
   * A key's caller may follow only the sessions it started (see `assertReach`).
   */
  async follow(sessionId: string, afterSeq: number, push: (params: Record<string, unknown>) => void, caller?: string, flow?: ReplayFlow): Promise<() => void> {
    await this.assertReach(sessionId, caller);
    return this.updates.follow(sessionId, afterSeq, push, flow);
  }

  /**
   * A virtual key's calls reach only the sessions that key started (their record's, or pointer's,
   * `metadata.caller`); `acp.tokens` callers and bridge peers reach every session, and a session nobody has
   * recorded yet may be started by anyone. FORBIDDEN otherwise.
   */
  async assertReach(sessionId: string, caller: string | undefined, seen?: RecordRead): Promise<void> {
    if (!caller?.startsWith('key:')) return;
    const rec = await this.read(sessionId, seen);
    if (!rec || rec.metadata.caller === caller) return;
    throw new GatewayError('FORBIDDEN', `session "${sessionId}" was started by another caller: a virtual key reaches only the sessions it started`, {
      details: { sessionId },
    });
  }

  /** session.close: ends the runtime session, cancels what is running or queued, marks the record closed. */
  async close(sessionId: string): Promise<{ accepted: true; closed: boolean }> {
    // while it runs, a session.message must not revive the session from its still-open record (rehydrate
    // waits for it): the revived session's agent would outlive the close
    const done = this.closeNow(sessionId);
    holdUntilSettled(this.closing, sessionId, done);
    this.touchAround(sessionId, done);
    return done;
  }

  private async closeNow(sessionId: string): Promise<{ accepted: true; closed: boolean }> {
    this.permissions.cancelSession(sessionId);
    // one being started or revived right now is closed once it is live. Both are read now, before any await:
    // a revival that begins later waits for this close (rehydrate), and waiting for it here would deadlock
    const starting = this.starting.get(sessionId);
    const reviving = this.rehydrating.get(sessionId);
    await starting;
    await reviving?.catch(() => undefined);
    const live = this.sessions.get(sessionId);
    let existed = !!live && !live.closed;
    if (live) await this.closeLive(live, 'closed by session.close');
    const rec = await this.o.store.get(sessionId);
    if (rec && rec.status !== 'closed' && rec.status !== 'moved') {
      existed = true;
      await mutateSession(this.o.store, sessionId, (s) =>
        s.status === 'closed' ? undefined : closeSession({ ...s, metadata: { ...s.metadata, seq: Math.max(live?.seq ?? 0, Number(s.metadata.seq) || 0) } }),
      );
    }
    await this.endOtherCopies(sessionId);
    return { accepted: true, closed: existed };
  }

  /**
   * The session ended here (closed, or moved to another gateway), or a turn of it runs here now: another instance
   * sharing the store may hold a live session of this id (its agent, its llm token), and ends it (endStaleCopy).
   */
  private async endOtherCopies(sessionId: string): Promise<void> {
    await this.o.store
      .publish(CANCEL_CHANNEL, { sessionId, closedBy: this.holder })
      .catch((err: unknown) => this.o.logger.warn('the end of a session could not be told to the other instances', { sessionId, error: String(err) }));
  }

  /**
   * Another instance closed `sessionId`, moved it to another gateway, or runs it now: a live session of it here ends
   * (its agent stops, its llm token is revoked), unless it is still the session: the record is open here again (a
   * session.start reused the id after the close, or the session came back), or, when the session merely ran there,
   * a turn is queued here, or the record did not go on without it and no other instance holds its lease.
   */
  private async endStaleCopy(sessionId: string): Promise<void> {
    const live = this.sessions.get(sessionId);
    if (!live || live.closed) return;
    const rec = await this.o.store.get(sessionId);
    const current = () => this.sessions.get(sessionId) === live && !live.closed;
    if (!current()) return;
    if (!rec || rec.status === 'closed' || rec.status === 'moved') {
      await this.closeLive(
        live,
        rec?.status === 'moved' ? 'the session moved to another gateway (by another instance)' : 'closed by session.close on another instance',
      );
      return;
    }
    // open: stale only when another instance went on with it while it sat idle here. A turn there holds the
    // session's lease from before its first update until after its seq is in the record: one of the two shows it
    if (live.pending > 0) return;
    const stale = this.wentOnWithout(live, rec) || (await otherHolder(this.o.store, sessionId, this.holder)) !== undefined;
    if (stale && current() && live.pending === 0) await this.closeLive(live, 'the session went on on another instance');
  }

  /**
   * xworkmate.tasks.get: by runId, else the latest turn of sessionId; memory first, then the store. With a
   * sessionId also its `taskEvents` and `pendingPermissions`, and with `afterSeq` the `updates` after it (resume),
   * at most `limit` of them.
   */
  async task(q: TaskQuery & { afterSeq?: number | undefined; limit?: number | undefined }): Promise<Record<string, unknown>> {
    if (!q.sessionId) return this.tasks.get(q);
    // from memory before the wait: every task event its state reflects is then among those the wait is for
    const held = this.tasks.inMemory(q);
    // One read of the record answers the rest, made once what this process wrote of the session is in the store: its
    // task events, and its open prompts (whose removal is written before the `permission_resolved` event is raised)
    await Promise.all([this.taskEvents.settled(q.sessionId), this.permissions.settled(q.sessionId)]);
    const rec = await this.o.store.get(q.sessionId);
    const snap = held ?? this.tasks.ofRecord(q, rec);
    const role = rec ? roleOf(rec.metadata) : undefined;
    const out: Record<string, unknown> = {
      ...snap,
      ...(role ? { resolvedRole: role.resolvedRole, roleSelection: role.roleSelection } : {}),
      taskEvents: turnEvents(rec?.metadata.taskEvents, snap.turnId),
      pendingPermissions: this.permissions.listOf(rec),
    };
    if (q.afterSeq !== undefined) {
      const updates = await this.updates.read(q.sessionId, q.afterSeq, q.limit);
      out.updates = updates;
      const live = this.sessions.get(q.sessionId);
      const known = Math.max(Number(updates[updates.length - 1]?.seq ?? 0), live?.seq ?? 0, typeof rec?.metadata.seq === 'number' ? rec.metadata.seq : 0);
      // the session's highest seq, never the client's cursor; the log may be past the record (a crash between the two)
      out.lastSeq = await this.updates.lastSeq(q.sessionId, known);
    }
    return out;
  }

  /** What the task registry holds now (for /metrics). */
  tasksHeld(): TaskRegistryHeld {
    return this.tasks.held();
  }

  /** Graceful stop, first step: new turns are refused (SHUTTING_DOWN); resolves when the running turns ended, or after `graceMs`. */
  async drain(graceMs: number): Promise<void> {
    this.shuttingDown = true;
    await Promise.race([Promise.all([...this.sessions.values()].map((l) => l.tail)), sleep(graceMs)]);
  }

  /**
   * Shutdown: cancels every running turn, ends every runtime session, waits (bounded) for the turns to end, then
   * for their last updates and task events to be stored: until `deadline` (the stop's, epoch ms), at least
   * STOP_WRITE_WAIT_MS. A store that is connected but does not answer (a Redis stopped, a network dropping its
   * packets) would hold those writes, and the stop, for ever; what is not stored by then is logged, and the
   * store's close (next) fails it.
   */
  async shutdown(waitMs = 5_000, deadline = 0): Promise<void> {
    this.shuttingDown = true;
    // the cross-instance cancel's and the permission prompts' subscriptions end together: each UNSUBSCRIBE is bounded
    // (1 s) for a store that does not answer, and one after the other they held the stop 2 s
    await Promise.all([this.unsubscribe?.().catch(() => undefined), this.permissions.close()]);
    const lives = [...this.sessions.values()];
    await Promise.all(lives.map((l) => this.closeLive(l, 'gateway shutting down', false)));
    await Promise.race([Promise.all(lives.map((l) => l.tail)), sleep(waitMs)]);
    const waitWrites = Math.max(STOP_WRITE_WAIT_MS, deadline - Date.now());
    if (!(await settledWithin(Promise.all([this.updates.flushAll(), this.taskEvents.settledAll()]), waitWrites)))
      this.o.logger.warn('graceful stop: session updates not stored: the store did not answer', { waitedMs: waitWrites, openSessions: lives.length });
  }

  // ---- internals ----

  /** The session's record: `seen`'s when still usable (record-read.ts), else read from the store now. */
  private read(sessionId: string, seen: RecordRead | undefined): Promise<Session | undefined> {
    const read = () => this.o.store.get(sessionId);
    return seen ? seen.get(read) : read();
  }

  private assertOpen(): void {
    if (this.shuttingDown) throw new GatewayError('SHUTTING_DOWN', 'gateway is shutting down', { retryAfterSec: 1 });
  }

  private async closeLive(live: LiveSession, why: string, forget = true): Promise<void> {
    live.closed = true;
    this.touch(live.id);
    live.current?.abort.abort(new GatewayError('CANCELLED', why));
    const ending = this.endRuntime(live);
    if (forget && this.sessions.get(live.id) === live) this.sessions.delete(live.id);
    await ending;
  }

  /** Ends the runtime of `live` (an agent's process stops and its model-API token is revoked); the next turn makes one anew. */
  private async endRuntime(live: LiveSession): Promise<void> {
    const rt = live.runtime;
    live.runtime = undefined;
    if (rt) {
      const r = await rt.catch(() => undefined);
      await r?.close().catch((err: unknown) => this.o.logger.warn('runtime close failed', { sessionId: live.id, error: String(err) }));
    }
  }

  /**
   * A live session whose turn, holding the lease, found that the record went on without it (wentOnWithout: another
   * instance ran turns of the session while this turn was queued here, so the stale-copy end, endStaleCopy, kept it).
   * Its runtime never saw those turns: it ends, as a stale copy's does, and what the live session knows of the
   * session is read from the record again, as a revival reads it (`liveOf`, rehydrate): the turn runs on a runtime
   * made anew, as it would on a session moved here. Announced again: the copy on the other instance is stale now.
   */
  private async revive(live: LiveSession, rec: Session): Promise<void> {
    await this.endRuntime(live);
    const fresh = liveOf(rec);
    live.threadId = fresh.threadId;
    live.target = fresh.target;
    live.workingDirectory = fresh.workingDirectory;
    live.role = fresh.role;
    live.caller = fresh.caller;
    live.announced = false;
  }

  /** `seen`: the caller's read of the record (record-read.ts), used when this call is the one that revives it */
  private rehydrate(sessionId: string, seen?: RecordRead): Promise<LiveSession> {
    let p = this.rehydrating.get(sessionId);
    if (!p) {
      p = (async () => {
        // a close under way makes `seen` unusable (`busy`), and its end invalidates it: read after it, as before
        await this.closing.get(sessionId);
        const rec = await this.read(sessionId, seen);
        // the revival writes (an interrupted turn) from here on: other calls' reads are read again (record-read.ts)
        this.touch(sessionId);
        if (!rec) throw continuationUnavailable(sessionId, 'no such session');
        if (rec.status === 'closed') throw continuationUnavailable(sessionId, 'the session is closed');
        if (rec.status === 'moved') throw continuationUnavailable(sessionId, 'the session was moved to another gateway');
        const again = this.sessions.get(sessionId);
        if (again && !again.closed) return again;
        // What the previous holder left open is settled here with updates of the session: a turn still marked running
        // was interrupted (its instance died), a permission prompt's holder is gone. Those updates are numbered under
        // the session's lease, as a turn's are (the seq rule, docs/sessions.md), taken without waiting: held by
        // another instance, a turn of the session runs there now, and what is left open is settled by the next turn
        // to take the lease (runTurn).
        const pending = rec.metadata.pendingPermissions;
        const open = rec.history.some((t) => t.status === 'running') || (Array.isArray(pending) && pending.length > 0);
        const lease = open
          ? await SessionLease.acquire(this.o.store, sessionId, this.holder, new AbortController().signal, {
              ttlMs: this.o.leaseTtlMs,
              waitMs: 0,
              own: this.own,
            }).catch(() => undefined)
          : undefined;
        try {
          // read again under the lease: a session leaving this gateway (a transfer's offer began since, or it moved) is
          // settled by its receiver, which numbers its updates on from the log the offer carried (leavingHere)
          const cur = lease ? await this.o.store.get(sessionId) : undefined;
          const settles = cur !== undefined && !leavingHere(cur);
          // a turn still marked running was interrupted (this process restarted): record it as failed
          let failed: Turn[] = [];
          if (settles && rec.history.some((t) => t.status === 'running')) {
            await mutateSession(this.o.store, sessionId, (s) => {
              failed = s.history.filter((t) => t.status === 'running');
              const next = failInterrupted(s);
              return next === s ? undefined : next;
            });
          }
          const live = liveOf(rec);
          // a crashed process may have sent (and logged) updates past the stored seq, and the last holder of the
          // lease logs its turn's last updates before it gives the lease back: never number below the log
          live.seq = await this.updates.lastSeq(sessionId, live.seq);
          this.sessions.set(sessionId, live);
          this.touch(sessionId);
          if (settles) {
            live.lease = lease;
            await this.settleLeftOpen(live, failed);
          }
          return live;
        } finally {
          if (lease) await this.releaseAfterLog(sessionId, lease, this.sessions.get(sessionId));
        }
      })().finally(() => this.rehydrating.delete(sessionId));
      this.rehydrating.set(sessionId, p);
    }
    return p;
  }

  /**
   * What a previous holder of the session's lease left open, settled by this one while it holds the lease (its
   * updates are numbered under it, the seq rule): the final updates of `failed`, turns it just recorded as
   * interrupted, as their own end would have sent them (a replay of them ends), and every stored permission prompt
   * not pending in this process (its holder is gone: this process's previous life, or an instance whose lease
   * lapsed), resolved as cancelled.
   */
  private async settleLeftOpen(live: LiveSession, failed: Turn[]): Promise<void> {
    const sessionId = live.id;
    for (const t of failed) {
      const emit = this.outOfTurnEmit(live, t.turnId, t.runId);
      const code: ErrorCode = 'TURN_INTERRUPTED';
      const detail = { status: 'failed', code, modelBindingVerified: live.role?.modelBindingVerified ?? false, error: INTERRUPTED_ERROR };
      emit(taskEventFields('failed', { sessionId, threadId: live.threadId, turnId: t.turnId }, aboutOf(live), detail));
      emit({ type: 'status', event: 'failed', status: 'failed', error: INTERRUPTED_ERROR, code });
    }
    for (const p of await this.permissions.resolveOrphans(sessionId, () => true)) {
      this.outOfTurnEmit(
        live,
        p.turnId,
      )(
        taskEventFields('permission_resolved', { sessionId, threadId: live.threadId, turnId: p.turnId }, aboutOf(live), {
          ...p,
          outcome: { outcome: 'cancelled' },
          reason: 'gateway_restarted',
        }),
      );
    }
  }

  /** `cancelled`: the turn was cancelled before it was queued (a cancel during its session.start): it ends at once */
  private enqueue(live: LiveSession, prompt: string, sink: UpdateSink, trace?: string, queued?: QueuedNotice, cancelled = false): Promise<TurnResult> {
    const turn = newTurn(prompt, []);
    const task: Task = {
      runId: turn.runId,
      turnId: turn.turnId,
      sessionId: live.id,
      threadId: live.threadId,
      status: 'queued',
      output: '',
      updates: 0,
      startedAt: Date.now(),
    };
    this.tasks.add(task);
    const emit: Emit = (fields) => {
      task.updates++;
      const { params } = this.stamp(live, { sessionId: live.id, threadId: live.threadId, turnId: turn.turnId, runId: turn.runId }, fields);
      try {
        sink(params);
      } catch {
        // the client is gone: the turn goes on
      }
      return params;
    };
    // numbered when a turn here holds the lease (queued behind it) or the lease is free (taken briefly); unnumbered
    // when the turn waits behind one on another instance. Its own turn's take waits for it (withLease), so it comes first
    if (live.pending > 0 || queued)
      void this.withLease(live, () =>
        emit({ type: 'status', event: 'queued', status: 'queued', ...(queued ? { clientRequestId: queued.clientRequestId } : {}) }),
      ).catch((err: unknown) => this.o.logger.warn('a queued status could not be sent', { sessionId: live.id, error: String(err) }));
    live.pending++;
    this.touch(live.id);
    // the result goes out after every update of the turn is in the store (a resume never misses one)
    const run = live.tail
      .then(() => this.runTurn(live, turn, task, emit, trace, cancelled))
      .then(async (r) => {
        await this.updates.flush(live.id);
        return r;
      });
    live.tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run.finally(() => {
      live.pending--;
      this.touch(live.id);
    });
  }

  private async runTurn(live: LiveSession, turn: Turn, task: Task, emit: Emit, trace?: string, cancelled = false): Promise<TurnResult> {
    const runtimeLabel = live.target.executionTarget === 'agent' ? `agent:${live.target.providerId}` : `gateway:${live.target.gatewayProviderId}`;
    const span = this.o.traceTurn?.(runtimeLabel, live.id, trace);
    const ids = { sessionId: live.id, threadId: live.threadId, turnId: turn.turnId };
    const taskEvent = (phase: TaskPhase, detail?: unknown) => emit(taskEventFields(phase, ids, aboutOf(live), detail));
    const finish = (status: TurnStatus, output: string, stopReason: string, err?: GatewayError | string, model?: string): TurnResult => {
      const r = resultOf(live, turn, status, output, stopReason, this.resultMax, err, model);
      task.status = status;
      // what the snapshot keeps of a finished turn is its result's (bounded) output; the whole is in the store
      task.output = r.output;
      task.outputChars = output.length;
      task.result = r;
      task.endedAt = Date.now();
      this.tasks.ended(task);
      this.o.onTurnEnded?.(runtimeLabel, status);
      span?.end(status, r.error);
      if (endsWithTaskEvent(status)) {
        taskEvent(
          status,
          status === 'cancelled'
            ? undefined
            : { status, code: r.errorCode ?? null, modelBindingVerified: live.role?.modelBindingVerified ?? false, ...(r.error ? { error: r.error } : {}) },
        );
      }
      // the final status stays the turn's last update; no `text` here: clients that append every update's
      // text would show the output twice
      emit({ type: 'status', event: status, status, ...(r.error ? { error: r.error } : {}), ...(r.code ? { code: r.code } : {}) });
      return r;
    };

    // ended before it started: its end is numbered if the lease can be had at once (withLease), else goes out without
    if (live.closed) return this.withLease(live, () => finish('cancelled', '', 'cancelled', 'the session was closed before this turn started'));
    if (cancelled) return this.withLease(live, () => finish('cancelled', '', 'cancelled'));

    const abort = new AbortController();
    live.current = { turnId: turn.turnId, abort, emit };
    let lease: SessionLease | undefined;
    let history: ReturnType<typeof chatMessages>;
    // this turn takes the lease: a brief take (withLease) waits for its first try, and this for one under way
    live.leasing = true;
    let tried = () => {};
    live.firstTry = new Promise<void>((r) => (tried = r));
    /** the record, read under the lease, says the session is leaving this gateway: the turn is refused, its end unnumbered */
    let leaving = false;
    try {
      while (live.brief) await live.brief;
      lease = await SessionLease.acquire(this.o.store, live.id, this.holder, abort.signal, {
        ttlMs: this.o.leaseTtlMs,
        waitMs: this.o.leaseWaitMs,
        onBusy: tried,
        own: this.own,
      });
      // Holding the lease, no other instance runs a turn of this session: one still marked running was
      // interrupted (its instance crashed). The turn starts now, not when it was queued.
      turn.startedAt = Date.now();
      let failed: Turn[] = [];
      const begin = (s: Session): Session => {
        leaving = leavingHere(s);
        // the session is being moved: once it has, a retry goes where it went (the transfer's marker, transfer.ts)
        if (offeredNow(s))
          throw new GatewayError('OVERLOADED', `session ${live.id} is being transferred to another gateway; retry: once it has moved, the call goes there`, {
            retryAfterSec: 1,
          });
        failed = s.history.filter((t) => t.status === 'running');
        return appendTurn(failInterrupted(s), turn);
      };
      // in order with the session's task-event writes, carrying those not yet written, as the result's write is
      // (TaskEventStore.write): the previous turn's `completed` event, still being written, read the version this
      // write read, and the loser of the compare-and-set read the record again
      const stored = await this.taskEvents.write(live.id, (events) => mutateSession(this.o.store, live.id, (s) => (events ? events(begin(s)) : begin(s))));
      // The record went on without this live session (another instance ran turns of it while this turn was queued
      // here): its runtime never saw them. It is ended, as a stale copy is (endStaleCopy), and the session revived
      // from the record, as one moved from another instance is (rehydrate): a new runtime for this turn.
      if (this.wentOnWithout(live, stored)) await this.revive(live, stored);
      // The seq rule (docs/sessions.md): holding the lease, this instance numbers the session's updates from above
      // the record's seq and the log's highest. Another instance may have run turns of it since this live session
      // last numbered one (this turn queued here while that one held the lease): the counter is never trusted as
      // it is. One read of the log per lease take, nothing per update.
      live.seq = await this.updates.lastSeq(live.id, Math.max(live.seq, seqOf(stored)));
      live.lease = lease;
      tried();
      // what a previous holder left open (its instance died; a revival found the lease held): settled now, under it
      const prompts = stored.metadata.pendingPermissions;
      if (failed.length > 0 || (Array.isArray(prompts) && prompts.length > 0)) await this.settleLeftOpen(live, failed);
      history = chatMessages({ ...stored, history: stored.history.filter((t) => t.turnId !== turn.turnId && t.status === 'completed') });
      // the first turn of this live session here: a live session of it on another instance sharing the store (where
      // it ran before) is stale from now on, its agent and model-API token idle there: told, that instance ends it
      if (!live.announced) {
        live.announced = true;
        void this.endOtherCopies(live.id);
      }
    } catch (err) {
      live.current = undefined;
      let r: TurnResult;
      // the lease held, its end is numbered under it (the seq rule); the wait for it ran out or was cancelled, or the
      // record said the session is leaving this gateway (a transfer's offer, or moved: the receiver numbers on from
      // the log the offer carried): the turn never started in the record, and its end goes to its caller unnumbered
      if (lease && !live.lease && !leaving) {
        live.seq = await this.updates.lastSeq(live.id, live.seq).catch(() => live.seq);
        live.lease = lease;
      }
      // answered once this turn holds the lease or surely will not: a brief take waiting for it numbers under it
      tried();
      if (abort.signal.aborted) r = finish('cancelled', '', 'cancelled');
      else {
        const e = toGatewayError(err);
        if (e.code === 'INTERNAL') this.o.logger.error('acp turn could not start', { sessionId: live.id, error: stackOf(err) });
        r = finish('failed', '', 'error', e);
      }
      live.firstTry = undefined;
      // numbered while the lease is held, and in the log before it is given back (the seq rule)
      if (lease) await this.releaseAfterLog(live.id, lease, live, true);
      else live.leasing = false;
      return r;
    }
    live.firstTry = undefined;

    task.status = 'running';
    emit({ type: 'status', event: 'started', status: 'running' });
    if (live.role) taskEvent('selected', live.role.roleSelection);
    taskEvent('started');
    let status: TurnStatus;
    let output = '';
    let stopReason: string;
    let error: GatewayError | string | undefined;
    let out: TurnOutput | undefined;
    /** why the turn was stopped from here, not by its client: its output passed the bound, or its lease was lost */
    let overflow: GatewayError | undefined;
    lease.onLost = () => {
      if (live.lease === lease) live.lease = undefined;
      overflow ??= new GatewayError(
        'SESSION_NOT_OWNED_HERE',
        `session ${live.id} was taken over by another gateway instance while this one was held up past its lease: the turn was stopped`,
      );
      abort.abort(overflow);
    };
    if (lease.lost) lease.onLost();
    // A secret an agent streams across chunks goes out (and into the update log) as `[REDACTED]`, never in pieces:
    // message deltas and thought chunks each pass their own delta scrubber, which holds back the end of a chunk
    // while it may start a secret. What is held waits for the next chunk of its kind, across updates of any other
    // kind (a status, a tool call, the other kind of chunk: none of them ends the text a secret continues in), and
    // goes out in the shape of the chunk it came from with that chunk, or at the turn's end.
    const held = { delta: secrets.deltas(), step: secrets.deltas() };
    /** per kind, the last chunk pushed while its scrubber holds part of it */
    const heldFrom: { delta?: UpdateEvent; step?: UpdateEvent } = {};
    /** `u`, a chunk whose text `raw` goes out as `text` */
    const emitChunk = (u: UpdateEvent, raw: string, text: string) => {
      if (u.type === 'delta') task.output += text;
      if (text === raw) return void emit({ ...u });
      const { structuredEvent, ...fields } = u;
      const structured = structuredEvent === undefined ? {} : { structuredEvent: withChunkText(structuredEvent, raw, text) };
      if (u.type === 'delta') emit({ ...fields, delta: text, text, ...structured });
      else emit({ ...fields, ...structured });
    };
    /** the turn ended: what each scrubber holds (no whole secret) goes out, thoughts first */
    const flushHeld = () => {
      for (const kind of ['step', 'delta'] as const) {
        const from = heldFrom[kind];
        heldFrom[kind] = undefined;
        const rest = held[kind].flush();
        if (from && rest.length > 0) emitChunk(from, chunkText(from)!, rest);
      }
    };
    try {
      // closed while the turn waited for its lease: no runtime may start for it (nobody would close it)
      if (live.closed) throw new GatewayError('CANCELLED', 'the session was closed');
      live.runtime ??= this.o.runtimeFor({
        sessionId: live.id,
        threadId: live.threadId,
        target: live.target,
        workingDirectory: live.workingDirectory,
        permissions: (req, signal) => this.relayPermission(live, req, signal),
        // role turns are never auto-approved (addendum §5), and run on the model the policy chose (§3)
        ...(live.role ? { permissionPolicy: 'ask' as const, bindModel: live.role.resolvedModelId } : {}),
        keyId: keyIdOf(live.caller),
      });
      const rt = live.runtime;
      const runtime = await rt.catch((err: unknown) => {
        if (live.runtime === rt) live.runtime = undefined; // the next turn tries again
        throw err;
      });
      if (!abort.signal.aborted) emit({ type: 'status', event: 'running', status: 'running' });
      out = await runtime.prompt(
        { turnId: turn.turnId, text: turn.prompt, history, trace: span?.traceparent ?? trace },
        (u) => {
          if (overflow) return;
          // the store does not keep up with the session's updates, which wait in memory: past the log's bound the turn
          // is stopped as past its output's (update-log.ts `behind`)
          overflow = this.updates.behind(live.id);
          if (overflow) return void abort.abort(overflow);
          const raw = chunkText(u);
          if (raw) {
            // a turn's output is bounded: past it the turn fails and the runtime is told to stop (it is kept in
            // memory, stored, and sent whole in the result)
            if (u.type === 'delta' && task.output.length + held.delta.holding + raw.length > MAX_TURN_OUTPUT_CHARS) {
              overflow = new GatewayError('UPSTREAM_BAD_RESPONSE', `the turn's output passed ${MAX_TURN_OUTPUT_CHARS} characters: the turn was stopped`);
              abort.abort(overflow);
              return;
            }
            const kind = u.type === 'delta' ? 'delta' : 'step';
            const text = held[kind].push(raw);
            heldFrom[kind] = held[kind].holding > 0 ? u : undefined;
            // all of it held: the next chunk of its kind (or the flush) carries it
            if (text.length > 0) emitChunk(u, raw, text);
            return;
          }
          emit({ ...u });
        },
        abort.signal,
      );
      flushHeld();
      if (overflow) throw overflow;
      output = out.output;
      stopReason = out.stopReason;
      if (live.role && out.modelBindingVerified !== undefined) live.role.modelBindingVerified = out.modelBindingVerified;
      if (abort.signal.aborted || stopReason === 'cancelled') {
        status = 'cancelled';
        stopReason = 'cancelled';
      } else if (output.trim() === '') {
        status = 'failed';
        stopReason = 'error'; // as every failure (docs/acp.md)
        error = noOutput();
      } else status = 'completed';
    } catch (err) {
      flushHeld();
      output = task.output;
      if (overflow) {
        status = 'failed';
        stopReason = 'error';
        error = overflow;
      } else if (abort.signal.aborted) {
        status = 'cancelled';
        stopReason = 'cancelled';
      } else {
        status = 'failed';
        stopReason = 'error';
        error = toGatewayError(err);
        if (error.code === 'INTERNAL') this.o.logger.error('acp turn failed', { sessionId: live.id, error: stackOf(err) });
      }
    } finally {
      if (live.current?.turnId === turn.turnId) live.current = undefined;
      lease.stopRenewing();
      // a prompt belongs to its turn: one the agent left open when the turn ended (or raises while it ends) is
      // denied through the turn's signal, so an answer that comes later never reaches the agent outside a turn
      if (!abort.signal.aborted) abort.abort(new GatewayError('CANCELLED', 'the turn ended'));
    }

    // what is stored and returned holds no configured secret (util/redact.ts)
    output = secrets.scrub(output);
    const messages =
      status === 'completed'
        ? (
            out?.messages ?? [
              { role: 'user' as const, content: turn.prompt },
              { role: 'assistant' as const, content: output },
            ]
          ).map((m) => (typeof m.content === 'string' ? { ...m, content: secrets.scrub(m.content) } : m))
        : [];
    const errText = error === undefined ? undefined : secrets.scrubError(typeof error === 'string' ? error : error.message);
    // the code beside the text: what tasks.get reads back from the store, however many task events came after
    const errCode = error === undefined || typeof error === 'string' ? undefined : error.code;
    // a turn that lost its lease (or may have: held up past it) writes nothing: the record went on under another
    // holder, which recorded this turn as interrupted; its last updates go to its caller unnumbered (the seq rule)
    if (!holdsLease(live) && !(live.lease === lease && (await lease.confirm()))) {
      if (live.lease === lease) live.lease = undefined;
      const result = finish(status, output, stopReason, error, out?.model);
      await this.releaseAfterLog(live.id, lease, live, true);
      return result;
    }
    try {
      // in order with the session's task-event writes, carrying those not yet written (TaskEventStore.write)
      await this.taskEvents.write(live.id, (events) =>
        mutateSession(this.o.store, live.id, (s) => {
          if (!s.history.some((t) => t.turnId === turn.turnId)) return events?.(s); // replaced by a later session.start
          const next = updateTurn(s, turn.turnId, {
            status,
            output,
            messages,
            ...(errText ? { error: errText } : {}),
            ...(errCode ? { errorCode: errCode } : {}),
          });
          // the role binding travels with the record: a verified model binding (§3) is read back after a restart too.
          // Its seq is the turn's last: `finish` numbers endUpdates(status) more after this write
          const out = {
            ...next,
            metadata: {
              ...next.metadata,
              seq: Math.max(live.seq + endUpdates(status), Number(s.metadata.seq) || 0),
              ...(live.role ? { role: live.role } : {}),
            },
          };
          return events ? events(out) : out;
        }),
      );
    } catch (err) {
      this.o.logger.warn('acp turn result could not be stored', { sessionId: live.id, turnId: turn.turnId, error: String(err) });
    }
    // the turn's last updates are numbered and stored while it still holds the lease: the next instance to take it
    // reads them in the log and numbers on above them
    const result = finish(status, output, stopReason, error, out?.model);
    await this.releaseAfterLog(live.id, lease, live, true);
    return result;
  }

  /**
   * Gives the lease back once every update numbered under it is in the update log, and its task events are kept with
   * the record (the seq rule): a transfer waits for the release only, then offers the record and the log. `live` stops
   * numbering under it before that last flush: an update numbered while the flush runs (the `queued` status of a
   * turn queued meanwhile) would be written only after the release, and dropped, a hole in the log at its `seq`.
   * Until the lease is given back `live.ending` is set: a brief take (withLease) waits for it, then takes the lease
   * itself and numbers its update above this take's last, rather than find the lease still this take's and send it
   * without `seq`. `turn`: a turn's take, whose `leasing` ends with it (before a brief take waiting wakes).
   */
  private async releaseAfterLog(sessionId: string, lease: SessionLease, live?: LiveSession, turn = false): Promise<void> {
    let done = () => {};
    const ending = new Promise<void>((r) => (done = r));
    if (live) {
      live.ending = ending;
      if (live.lease === lease) live.lease = undefined;
    }
    try {
      await Promise.all([this.updates.flush(sessionId), this.taskEvents.settled(sessionId)]);
      await lease.release();
    } finally {
      if (live) {
        if (turn) live.leasing = false;
        if (live.ending === ending) live.ending = undefined;
      }
      done();
    }
  }

  /**
   * Runs `fn` under the session's lease, so that the updates it sends are numbered (the seq rule): at once when a
   * turn of `live` here holds it (re-entrant); else, when no turn here is taking it, the lease is taken without
   * waiting, `seq` refreshed from the store (as a turn's take does), and given back once what `fn` numbered is in the
   * log. When another instance holds it, or a turn here waits for it, `fn` runs without it: its updates go out
   * unnumbered. A turn's own take waits for a brief one under way (`brief`), and this for a turn's first try
   * (`firstTry`), so that an update sent while a turn of `live` takes the lease is numbered under that turn's take,
   * and for a take of `live` being given back (`ending`), so that one sent while a turn here ends is numbered under
   * its own take, after it. Takes of the session by other live sessions here (a closed one whose turn still ends,
   * beside the one a session.start made of its id) are kept apart by `own` (lease.ts OwnTakes): this one then finds
   * the lease busy.
   */
  private async withLease<T>(live: LiveSession, fn: () => T | Promise<T>): Promise<T> {
    for (;;) {
      while (live.brief || live.ending) await (live.brief ?? live.ending);
      if (!live.firstTry) break;
      await live.firstTry;
      // a turn whose take failed gives it back right after its first try answered
      if (!live.ending) break;
    }
    if (holdsLease(live) || live.leasing || live.brief) return fn();
    let done = () => {};
    live.brief = new Promise<void>((r) => (done = r));
    try {
      const lease = await SessionLease.acquire(this.o.store, live.id, this.holder, new AbortController().signal, {
        ttlMs: this.o.leaseTtlMs,
        waitMs: 0,
        own: this.own,
      }).catch(() => undefined);
      if (!lease) return await fn();
      try {
        const rec = await this.o.store.get(live.id);
        // a session leaving this gateway: its updates are the receiver's to number (leavingHere), this one goes without
        if (!rec || !leavingHere(rec)) {
          live.seq = await this.updates.lastSeq(live.id, Math.max(live.seq, rec ? seqOf(rec) : 0));
          live.lease = lease;
        }
      } catch (err) {
        this.o.logger.warn('the session could not be read under its lease: its update goes out unnumbered', { sessionId: live.id, error: String(err) });
      }
      try {
        return await fn();
      } finally {
        await this.releaseAfterLog(live.id, lease, live);
      }
    } finally {
      live.brief = undefined;
      done();
    }
  }

  /**
   * The seq rule, for every update of a session: numbered (`seq`), logged for resume, and a task event kept with the
   * record, only while `live` holds the session's lease (`holdsLease`). Otherwise the update goes to its caller as it
   * is, without `seq`, and nowhere else: it concerns no turn of the record (one that never started here, or one the
   * record has gone on from under another holder), and numbered here it could take a `seq` the holder hands out.
   */
  private stamp(live: LiveSession, ids: Record<string, unknown>, fields: Record<string, unknown>): { params: Record<string, unknown>; numbered: boolean } {
    const lease = live.lease;
    const numbered = lease?.held() === true;
    const params = { ...ids, ...(numbered ? { seq: ++live.seq } : {}), ...secrets.scrubValue(fields), at: new Date().toISOString() };
    if (numbered) {
      this.updates.push(live.id, params, lease);
      if (fields.type === 'task') this.taskEvents.record(live.id, params);
    }
    return { params, numbered };
  }

  /** The agent asks: a prompt for the app, tied to the turn running now (none running: cancelled). */
  private relayPermission(live: LiveSession, req: PermissionRequest, signal: AbortSignal): Promise<PermissionOutcome> {
    const cur = live.current;
    if (!cur || cur.abort.signal.aborted) return Promise.resolve({ outcome: 'cancelled' });
    const ids = { sessionId: live.id, threadId: live.threadId, turnId: cur.turnId };
    const both = AbortSignal.any([signal, cur.abort.signal]);
    return this.permissions.ask(ids, req, both, {
      requested: (p) => void cur.emit(taskEventFields('permission_requested', ids, aboutOf(live), p)),
      resolved: (p, outcome, reason: ResolveReason) => void cur.emit(taskEventFields('permission_resolved', ids, aboutOf(live), { ...p, outcome, reason })),
    });
  }

  /** An update that belongs to no running turn (e.g. a prompt resolved after a restart): logged and kept (under the lease: `stamp`). */
  private outOfTurnEmit(live: LiveSession, turnId: string, runId?: string): Emit {
    return (fields) => {
      const ids = { sessionId: live.id, threadId: live.threadId, turnId, ...(runId ? { runId } : {}) };
      const { params, numbered } = this.stamp(live, ids, fields);
      if (!numbered) return params;
      void mutateSession(this.o.store, live.id, (s) => ({ ...s, metadata: { ...s.metadata, seq: Math.max(live.seq, Number(s.metadata.seq) || 0) } })).catch(
        () => undefined,
      );
      return params;
    };
  }
}

/** A live session revived from its record (rehydrate, TurnRunner.revive). */
function liveOf(rec: Session): LiveSession {
  const wd = rec.metadata.workingDirectory;
  const caller = rec.metadata.caller;
  return newLive(
    rec.id,
    rec.threadId,
    rec.target,
    typeof wd === 'string' ? wd : undefined,
    seqOf(rec),
    roleOf(rec.metadata),
    typeof caller === 'string' ? caller : undefined,
  );
}

/**
 * The text of a chunk the delta scrubber reads: a message delta's, or an ACP agent's thought chunk's
 * (`agent_thought_chunk` with text content), which carries its text in `structuredEvent` only; undefined for any
 * other update.
 */
function chunkText(u: UpdateEvent): string | undefined {
  if (u.type === 'delta') return u.delta;
  if (u.type !== 'step') return undefined;
  const s = u.structuredEvent as { sessionUpdate?: unknown; content?: { type?: unknown; text?: unknown } } | undefined;
  return s?.sessionUpdate === 'agent_thought_chunk' && s.content?.type === 'text' && typeof s.content.text === 'string' ? s.content.text : undefined;
}

/**
 * A chunk's `structuredEvent` once the delta scrubber changed its text (held part of it back, redacted a secret,
 * or gives back what it held): a runtime carries a chunk's text in its payload, if at all, in `text` members
 * (UpdateEvent.structuredEvent), so each `text` member that is the chunk's text becomes the text that goes out
 * (an ACP agent's `content.text`; other members that happen to equal the text, such as `content.type` for a chunk
 * reading "text", stay). A payload without the text (OpenClaw's, the chat event's own short fields) goes out as
 * it is. Like every update, it then passes the scrubber whole (`emit`).
 */
function withChunkText(structured: unknown, from: string, to: string): unknown {
  const swap = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(swap);
    if (v === null || typeof v !== 'object') return v;
    return Object.fromEntries(Object.entries(v).map(([k, x]) => (k === 'text' && x === from ? [k, to] : [k, swap(x)])));
  };
  return swap(structured);
}

/**
 * The task events of the turn a tasks.get answer reports (`turnId`): the addendum's "current turn's" events, reset
 * by the next turn, so an earlier turn's `task.completed` is never read as this one's. The session's record keeps
 * the last 100 of every turn (they survive a restart and travel with a transfer); none when no turn is reported.
 */
function turnEvents(stored: unknown, turnId: unknown): unknown[] {
  if (!Array.isArray(stored) || typeof turnId !== 'string') return [];
  return stored.filter((e) => isObj(e) && e.turnId === turnId);
}
