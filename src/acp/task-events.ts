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

/**
 * Keeps each session's last task events in its record; writes of one session are ordered. The events of one
 * moment go in one write, made once that moment's work is done (`setImmediate`): a turn raises `selected` and
 * `started` just before its prompt goes to the agent, and their record write is then not on the way there.
 */
export class TaskEventStore {
  private readonly chains = new PerKeyQueue();
  /** events waiting for their session's next write */
  private readonly pending = new Map<string, Array<Record<string, unknown>>>();

  constructor(
    private readonly store: SessionStore,
    private readonly log: Logger,
  ) {}

  record(sessionId: string, params: Record<string, unknown>): void {
    const waiting = this.pending.get(sessionId);
    if (waiting) {
      waiting.push(params);
      return;
    }
    const batch = [params];
    this.pending.set(sessionId, batch);
    void this.chains.run(sessionId, async () => {
      await new Promise<void>((r) => setImmediate(r));
      // events recorded from here on start the next write
      if (this.pending.get(sessionId) === batch) this.pending.delete(sessionId);
      await mutateSession(this.store, sessionId, (s) => {
        const list = Array.isArray(s.metadata.taskEvents) ? (s.metadata.taskEvents as unknown[]) : [];
        return { ...s, metadata: { ...s.metadata, taskEvents: [...list, ...batch].slice(-TASK_EVENTS_KEEP) } };
      }).then(
        () => undefined,
        (err: unknown) => this.log.warn('task events could not be stored', { sessionId, error: String(err) }),
      );
    });
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
