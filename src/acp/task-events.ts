/**
 * Task events (addendum 2026-10 §4): a `session.update` with `type:"task"` and `event:"task.<phase>"` for every
 * phase of a turn, and the last TASK_EVENTS_KEEP of them per session kept in the session record
 * (`metadata.taskEvents`, so they survive a restart and travel with a transfer), returned by
 * `xworkmate.tasks.get`.
 *
 *   { type:"task", event:"task.started", sessionId, threadId, turnId, runId, seq, pending, error,
 *     task: { taskId, sessionId, threadId, phase, at, providerId, executor, [role fields], [detail] } }
 *
 * `pending` is false on completed/failed/cancelled/rejected; `error` is true on failed/rejected.
 */
import { PerKeyQueue } from '../util/per-key-queue.js';
import { mutateSession, type SessionStore } from '../sessions/store.js';
import type { Logger } from '../util/log.js';
import type { Session } from '../sessions/model.js';

export const TASK_EVENTS_KEEP = 100;

export type TaskPhase = 'selected' | 'started' | 'permission_requested' | 'permission_resolved' | 'completed' | 'failed' | 'cancelled' | 'rejected';

const FINAL: ReadonlySet<TaskPhase> = new Set(['completed', 'failed', 'cancelled', 'rejected']);

/** The fields of a task event before the runner adds sessionId/threadId/turnId/runId/seq. */
export function taskEventFields(
  phase: TaskPhase,
  ids: { sessionId: string; threadId: string; turnId: string },
  about: Record<string, unknown>,
  detail?: unknown,
): Record<string, unknown> {
  return {
    type: 'task',
    event: `task.${phase}`,
    pending: !FINAL.has(phase),
    error: phase === 'failed' || phase === 'rejected',
    task: {
      taskId: ids.turnId,
      sessionId: ids.sessionId,
      threadId: ids.threadId,
      phase,
      at: new Date().toISOString(),
      ...about,
      ...(detail !== undefined ? { detail } : {}),
    },
  };
}

/** `s` with `events` after its task events, the newest TASK_EVENTS_KEEP kept */
function withTaskEvents(s: Session, events: ReadonlyArray<Record<string, unknown>>): Session {
  const list = Array.isArray(s.metadata.taskEvents) ? (s.metadata.taskEvents as unknown[]) : [];
  return { ...s, metadata: { ...s.metadata, taskEvents: [...list, ...events].slice(-TASK_EVENTS_KEEP) } };
}

/** events waiting for their session's next write; `taken` once a write of the runner's carries them (`write`) */
interface Batch {
  events: Array<Record<string, unknown>>;
  taken: boolean;
}

/**
 * Keeps each session's last task events in its record; writes of one session are ordered. The events of one
 * moment go in one write, made once that moment's work is done (`setImmediate`): a turn raises `selected` and
 * `started` just before its prompt goes to the agent, and their record write is then not on the way there.
 */
export class TaskEventStore {
  private readonly chains = new PerKeyQueue();
  private readonly pending = new Map<string, Batch>();

  constructor(
    private readonly store: SessionStore,
    private readonly log: Logger,
  ) {}

  record(sessionId: string, params: Record<string, unknown>): void {
    const waiting = this.pending.get(sessionId);
    if (waiting) {
      waiting.events.push(params);
      return;
    }
    const batch: Batch = { events: [params], taken: false };
    this.pending.set(sessionId, batch);
    void this.chains.run(sessionId, async () => {
      await new Promise<void>((r) => setImmediate(r));
      if (batch.taken) return;
      // events recorded from here on start the next write
      if (this.pending.get(sessionId) === batch) this.pending.delete(sessionId);
      await mutateSession(this.store, sessionId, (s) => withTaskEvents(s, batch.events)).then(
        () => undefined,
        (err: unknown) => this.log.warn('task events could not be stored', { sessionId, error: String(err) }),
      );
    });
  }

  /**
   * A write of the session's record by the runner (a turn's start, a turn's result), in order with the task-event
   * writes. One under way ends first: side by side, the two read the same version, and the one whose compare-and-set
   * lost read the record again (with Redis, a turn's `started` events were often being written when it ended: a read
   * more per turn; with a slow store, the previous turn's `completed` event when the next turn began). The events not
   * yet being written go in this write (`events` adds them to the record it writes), not in a read and write of their
   * own. `events` is undefined when none wait.
   */
  write<T>(sessionId: string, write: (events: ((s: Session) => Session) | undefined) => Promise<T>): Promise<T> {
    const batch = this.pending.get(sessionId);
    if (batch) {
      batch.taken = true;
      this.pending.delete(sessionId);
    }
    const run = this.chains.run(sessionId, () => write(batch ? (s) => withTaskEvents(s, batch.events) : undefined));
    // the write failed: its events are not lost with it, they go in a write of their own
    if (batch) void run.catch(() => batch.events.forEach((e) => this.record(sessionId, e)));
    return run;
  }

  /** Resolves once every event recorded so far for the session is in the store. */
  settled(sessionId: string): Promise<void> {
    return this.chains.idle(sessionId);
  }

  /** Resolves once every event recorded so far is in the store (shutdown). */
  async settledAll(): Promise<void> {
    await Promise.all([...this.chains.keys()].map((id) => this.chains.idle(id)));
  }
}
