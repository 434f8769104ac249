/**
 * Resuming a streamed turn whose stream the gateway cut with CLIENT_TOO_SLOW (docs/acp.md, *Slow clients*): the
 * turn went on, and its updates are in the session's update log. `resumeTurn` reads them from where the stream
 * stopped (`lastSeq`), a page at a time with `xworkmate.tasks.get { sessionId, runId, afterSeq, limit }`, hands each
 * to `onUpdate` in order, and once the turn ended and its last update was read returns the turn's result from the
 * same method. Pages are plain replies, so nothing is cut again; a read that fails (the gateway unreachable for a
 * moment, or the log no longer holding the cursor: UPDATE_LOG_TRUNCATED, then it goes on after what was dropped)
 * is one more resume, and there are at most `maxResumes` per turn.
 */
import { setTimeout as pause } from 'node:timers/promises';
import { AcpRpcError, AcpTransportError, type AcpClient, type SessionUpdate, type TaskResult } from './client.js';

/** resumes per turn at most (the one after the cut included) */
export const MAX_RESUMES = 3;
/** a page of updates */
const PAGE = 200;
/** how long to wait before asking again while the turn runs and the log has nothing new */
const POLL_MS = 250;

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

export interface ResumeOptions {
  sessionId: string;
  /** the turn's run, when an update named it (else the session's latest run) */
  runId: string | undefined;
  /** the last seq received (the cut's `data.lastSeq`, else the last update read) */
  afterSeq: number;
  onUpdate(u: SessionUpdate): void;
  /** one line for the user per resume (the CLI writes it to stderr) */
  notice(line: string): void;
  signal?: AbortSignal;
  maxResumes?: number;
}

/** The cut's resume point: its `data.lastSeq`, else what the caller last received; undefined when it is no cut. */
export function cutAt(err: unknown, lastReceived: number | undefined): number | undefined {
  if (!(err instanceof AcpRpcError) || err.dataCode !== 'CLIENT_TOO_SLOW') return undefined;
  const named = err.data?.lastSeq;
  return typeof named === 'number' && Number.isSafeInteger(named) && named >= 0 ? named : (lastReceived ?? 0);
}

/** Waits `ms`, or less if `signal` aborts (resolves either way). */
const sleep = (ms: number, signal?: AbortSignal): Promise<void> => pause(ms, undefined, signal ? { signal } : undefined).catch(() => undefined);

export async function resumeTurn(c: AcpClient, o: ResumeOptions): Promise<TaskResult> {
  const max = o.maxResumes ?? MAX_RESUMES;
  let resumes = 1;
  let after = o.afterSeq;
  let runId = o.runId;
  o.notice(
    `the gateway cut the stream: this client read slower than the updates came (CLIENT_TOO_SLOW); resuming from the update log after seq ${after} (resume 1 of ${max})`,
  );
  for (;;) {
    if (o.signal?.aborted) throw new AcpTransportError('aborted', 'resume: aborted');
    let page: Record<string, unknown>;
    try {
      page = await c.call(
        'xworkmate.tasks.get',
        { sessionId: o.sessionId, ...(runId ? { runId } : {}), afterSeq: after, limit: PAGE },
        o.signal ? { signal: o.signal } : {},
      );
    } catch (err) {
      const truncated = err instanceof AcpRpcError && err.dataCode === 'UPDATE_LOG_TRUNCATED';
      const retry = truncated || (err instanceof AcpTransportError && err.reason !== 'aborted');
      if (!retry || resumes >= max) throw err;
      resumes++;
      if (truncated) {
        const dropped = Number(err.data?.droppedThroughSeq);
        o.notice(
          `the update log no longer holds the updates after seq ${after}: what came through seq ${dropped} is not shown; resuming after it (resume ${resumes} of ${max})`,
        );
        if (Number.isSafeInteger(dropped) && dropped > after) after = dropped;
      } else {
        o.notice(`reading the update log failed (${err.message}); resuming after seq ${after} (resume ${resumes} of ${max})`);
        await sleep(POLL_MS * resumes, o.signal);
      }
      continue;
    }
    const updates = (Array.isArray(page.updates) ? page.updates : []) as SessionUpdate[];
    for (const u of updates) {
      if (typeof u.seq !== 'number' || u.seq <= after) continue;
      after = u.seq;
      runId ??= typeof u.runId === 'string' ? u.runId : undefined;
      o.onUpdate(u);
    }
    const caughtUp = updates.length === 0 || after >= Number(page.lastSeq ?? after);
    if (caughtUp && TERMINAL.has(String(page.status))) return resultOf(page, o.sessionId);
    if (caughtUp) await sleep(POLL_MS, o.signal);
  }
}

/**
 * The turn's result from its snapshot: the result itself when the gateway still holds it, else what the snapshot
 * says (read from the store: its `output` is cut to the result's bound the same way, and `outputTruncated` /
 * `outputChars` say so, as in a result).
 */
function resultOf(snap: Record<string, unknown>, sessionId: string): TaskResult {
  if (snap.result && typeof snap.result === 'object') return snap.result as TaskResult;
  const status = String(snap.status);
  return {
    success: status === 'completed',
    status,
    sessionId: typeof snap.sessionId === 'string' ? snap.sessionId : sessionId,
    ...(typeof snap.runId === 'string' ? { runId: snap.runId } : {}),
    ...(typeof snap.turnId === 'string' ? { turnId: snap.turnId } : {}),
    output: typeof snap.output === 'string' ? snap.output : '',
    ...(snap.outputTruncated === true ? { outputTruncated: true } : {}),
    ...(typeof snap.outputChars === 'number' ? { outputChars: snap.outputChars } : {}),
    ...(typeof snap.error === 'string' ? { error: snap.error } : {}),
  };
}
