/**
 * What `xworkmate.tasks.get` reads: a bounded in-memory registry of task snapshots (one per turn, by runId, and
 * the latest run per session), falling back to the turn records in the SessionStore for turns this process no
 * longer holds (evicted, run before a restart, or run by another instance): by the session, or by a runId
 * through a small expiring index (RUN_INDEX_TTL_MS).
 *
 * The registry is bounded by count (`maxTasks`) and by the size of what its finished snapshots hold
 * (`taskBytesBudget`): past either the oldest finished snapshots go first; a running one is never dropped.
 */
import type { Session, TurnStatus } from '../sessions/model.js';
import type { SessionStore } from '../sessions/store.js';
import { storedFailureCode, TASK_CANCELLED } from './turn-failures.js';

export type TaskStatus = 'queued' | 'running' | TurnStatus;

/**
 * The most of a turn's output its result carries (and `xworkmate.tasks.get`'s snapshot): a sixteenth of
 * `acp.maxStreamBacklogBytes` in characters, so that the final envelope, which carries the result twice (`result`
 * and its `payload` mirror), stays within the bound even where every character takes six bytes of JSON (`\u001f`).
 * The whole output is in the turn's `delta` updates (the update log) and in the stored session.
 */
export const resultOutputMaxChars = (maxStreamBacklogBytes: number): number => Math.floor(maxStreamBacklogBytes / 16);

/** `output` cut to `max` characters (never inside a surrogate pair), saying so: `outputTruncated`, and `outputChars` whole. */
export function boundOutput(output: string, max: number): { output: string; outputTruncated?: true; outputChars?: number } {
  if (output.length <= max) return { output };
  const end = max > 0 && isHighSurrogate(output.charCodeAt(max - 1)) ? max - 1 : max;
  return { output: output.slice(0, end), outputTruncated: true, outputChars: output.length };
}

/**
 * The bytes the finished snapshots held in memory may take together: eight times `acp.maxStreamBacklogBytes`
 * (64 MiB by default). A finished snapshot holds at most a result's output (a sixteenth of that bound in
 * characters, two bytes each in the heap at most), so the budget holds the 63 newest results of the largest size
 * (with TASK_OVERHEAD_BYTES each), and many more of smaller ones; older ones are read from the store.
 */
export const taskBytesBudget = (maxStreamBacklogBytes: number): number => maxStreamBacklogBytes * 8;

/** What a finished snapshot is counted as beyond its text: the task, its result and their ids and fields. */
export const TASK_OVERHEAD_BYTES = 1024;

/** What a finished snapshot holds in the heap, counted as two bytes per UTF-16 code unit of its text. */
export function taskBytes(t: Task): number {
  const r = t.result;
  // t.output is the result's output once the turn ended (the same string, held once)
  const text = t.output.length + (r ? r.summary.length + (r.error?.length ?? 0) + (r.output === t.output ? 0 : r.output.length) : 0);
  return TASK_OVERHEAD_BYTES + 2 * text;
}

const isHighSurrogate = (c: number): boolean => c >= 0xd800 && c <= 0xdbff;

/** The result of one turn, as session.start / session.message return it. */
export interface TurnResult {
  success: boolean;
  status: TurnStatus;
  sessionId: string;
  threadId: string;
  turnId: string;
  runId: string;
  /** the output, at most the result's bound (`outputTruncated` / `outputChars` say when it was cut: live-session.ts) */
  output: string;
  outputTruncated?: true;
  outputChars?: number;
  summary: string;
  stopReason: string;
  resolvedExecutionTarget: 'single-agent' | 'gateway';
  resolvedProviderId: string;
  resolvedGatewayProviderId: string;
  resolvedModel: string;
  /** the session's folder relative to acp.workspaceRoot (agent sessions, or when a workingDirectory was given) */
  remoteWorkingDirectory?: string;
  remoteWorkspaceRefKind?: string;
  error?: string;
  errorCode?: string;
  /**
   * The machine code of a turn that did not complete (addendum 2026-10 §3): a failure's gateway error code (the
   * same as `errorCode`, e.g. MODEL_NOT_ADVERTISED), or TASK_CANCELLED on a cancelled turn.
   */
  code?: string;
}

/** The live snapshot of one turn; the runner mutates it as the turn progresses. */
export interface Task {
  runId: string;
  turnId: string;
  sessionId: string;
  threadId: string;
  status: TaskStatus;
  /** the output so far; once the turn ended, the result's (bounded) output */
  output: string;
  /** the whole output's length once the turn ended (`output` may be cut) */
  outputChars?: number;
  updates: number;
  startedAt: number;
  endedAt?: number;
  result?: TurnResult;
}

export interface TaskQuery {
  runId?: string;
  sessionId?: string;
}

/**
 * How long a runId alone finds its turn in the store (`xworkmate.tasks.get { runId }` after a restart or on
 * another instance): an index entry runId → sessionId written when the turn is queued. With its sessionId a
 * turn is found for as long as the session is kept.
 */
export const RUN_INDEX_TTL_MS = 7 * 24 * 3_600_000;
const runKey = (runId: string): string => `acp-run:${runId}`;

export interface TaskRegistryLimits {
  /** snapshots kept in memory, running ones included (those are never evicted); default 10 000 */
  maxTasks?: number | undefined;
  /** the bytes (taskBytes) the finished snapshots kept in memory may take together; default that of an 8 MiB stream bound */
  maxBytes?: number | undefined;
}

/** What the registry holds now: its finished snapshots and their bytes (taskBytes), and the running ones. */
export interface TaskRegistryHeld {
  finished: number;
  bytes: number;
  maxBytes: number;
  running: number;
}

export class TaskRegistry {
  private readonly tasks = new Map<string, Task>();
  private readonly latestRun = new Map<string, string>();
  /** the finished snapshots in the order they ended, with the bytes each is counted as */
  private readonly finished = new Map<string, number>();
  private finishedBytes = 0;
  private readonly max: number;
  private readonly maxBytes: number;

  /** `outputMax`: the most of a turn's output a snapshot carries (the result's bound, `boundOutput`). */
  constructor(
    private readonly store: SessionStore,
    private readonly outputMax: number,
    limits: TaskRegistryLimits = {},
  ) {
    this.max = limits.maxTasks ?? 10_000;
    this.maxBytes = limits.maxBytes ?? taskBytesBudget(8 * 1024 * 1024);
  }

  add(t: Task): void {
    this.tasks.set(t.runId, t);
    this.latestRun.set(t.sessionId, t.runId);
    // best effort: a run the index missed is still found with its sessionId. Written once the moment's work is
    // done: the turn's prompt goes to its agent first (this process finds its runs in memory anyway)
    setImmediate(() => void this.store.putExpiring(runKey(t.runId), t.sessionId, RUN_INDEX_TTL_MS).catch(() => undefined));
    this.evict();
  }

  /** The turn of `t` ended (its snapshot holds its result now): counted from here on, and the oldest go past the bounds. */
  ended(t: Task): void {
    if (this.tasks.get(t.runId) !== t || this.finished.has(t.runId)) return;
    const bytes = taskBytes(t);
    this.finished.set(t.runId, bytes);
    this.finishedBytes += bytes;
    this.evict();
  }

  held(): TaskRegistryHeld {
    return { finished: this.finished.size, bytes: this.finishedBytes, maxBytes: this.maxBytes, running: this.tasks.size - this.finished.size };
  }

  /** Drops the oldest finished snapshots while the registry is past either bound. */
  private evict(): void {
    for (const [k, bytes] of this.finished) {
      if (this.tasks.size <= this.max && this.finishedBytes <= this.maxBytes) break;
      this.finished.delete(k);
      this.finishedBytes -= bytes;
      const v = this.tasks.get(k);
      this.tasks.delete(k);
      if (v && this.latestRun.get(v.sessionId) === k) this.latestRun.delete(v.sessionId);
    }
  }

  /** By runId, else the latest turn of sessionId; memory first, then the store. */
  async get(q: TaskQuery): Promise<Record<string, unknown>> {
    const held = this.inMemory(q);
    if (held) return held;
    if (q.sessionId) return this.ofRecord(q, await this.store.get(q.sessionId));
    // one lookup, never a scan of the stored sessions (their size is the clients' to choose)
    const sessionId = q.runId ? await this.store.getExpiring(runKey(q.runId)) : undefined;
    return this.ofRecord(q, sessionId ? await this.store.get(sessionId) : undefined);
  }

  /** The snapshot `get` answers from memory, or undefined: it would read the store. */
  inMemory(q: TaskQuery): Record<string, unknown> | undefined {
    const runId = q.runId ?? (q.sessionId ? this.latestRun.get(q.sessionId) : undefined);
    const t = runId ? this.tasks.get(runId) : undefined;
    return t && (!q.sessionId || t.sessionId === q.sessionId) ? snapshotOf(t, this.outputMax) : undefined;
  }

  /** The snapshot of `q`'s turn in `rec` (the session's record, or the run's, read by the caller), memory aside. */
  ofRecord(q: TaskQuery, rec: Session | undefined): Record<string, unknown> {
    const turn = q.runId ? rec?.history.find((x) => x.runId === q.runId) : rec?.history[rec.history.length - 1];
    if (!rec || !turn) return { status: 'not_found', ...(q.runId ? { runId: q.runId } : {}), ...(q.sessionId ? { sessionId: q.sessionId } : {}) };
    const code = turn.status === 'cancelled' ? TASK_CANCELLED : turn.status === 'failed' ? storedFailureCode(turn, rec.metadata.taskEvents) : undefined;
    // a turn still marked running in the store but not running here was interrupted (crash or other instance)
    return {
      status: turn.status,
      sessionId: rec.id,
      threadId: rec.threadId,
      turnId: turn.turnId,
      runId: turn.runId,
      ...boundOutput(turn.output, this.outputMax),
      progress: { updates: null, outputChars: turn.output.length },
      ...(turn.error ? { error: turn.error } : {}),
      ...(code ? { code } : {}),
      sessionStatus: rec.status,
    };
  }
}

function snapshotOf(t: Task, outputMax: number): Record<string, unknown> {
  const bounded = t.result ?? boundOutput(t.output, outputMax);
  return {
    status: t.status,
    sessionId: t.sessionId,
    threadId: t.threadId,
    turnId: t.turnId,
    runId: t.runId,
    output: bounded.output,
    ...(bounded.outputTruncated ? { outputTruncated: true, outputChars: bounded.outputChars } : {}),
    progress: { updates: t.updates, outputChars: t.outputChars ?? t.output.length },
    ...(t.result ? { result: t.result } : {}),
    ...(t.result?.error ? { error: t.result.error } : {}),
    ...(t.result?.code ? { code: t.result.code } : {}),
  };
}
