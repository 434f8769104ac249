/**
 * The turn failures that have no error of their own to carry a code (a runtime that answered no text, a turn
 * its gateway instance or a transfer interrupted), and the code of a failed turn read back from the store, so
 * every failure the app sees carries one (docs/errors.md, *Errors on /acp/rpc*).
 */
import { GatewayError } from '../wire/errors.js';
import { TRANSFER_INTERRUPTED_ERROR, type Turn } from '../sessions/model.js';

/** The `code` of a cancelled turn's result (addendum 2026-10 §3). */
export const TASK_CANCELLED = 'TASK_CANCELLED';

export const NO_OUTPUT_ERROR = 'provider returned no displayable output';

export const INTERRUPTED_ERROR = 'interrupted: the instance running it stopped';

/** A turn whose runtime answered no text (acp-rpc.md: failed, with the message the spec gives). */
export const noOutput = (): GatewayError => new GatewayError('NO_DISPLAYABLE_OUTPUT', NO_OUTPUT_ERROR);

/**
 * The code of a failed turn read back from the store: the `errorCode` its record keeps beside its error's text;
 * for a turn stored before that field, the code its `task.failed` event carried (while the session's last 100
 * task events still hold it, task-events.ts), else that of a failure the store itself wrote (an interrupted turn:
 * a restart's failInterrupted, a transfer's adoptTransferred; a turn without text).
 */
export function storedFailureCode(turn: Pick<Turn, 'turnId' | 'error' | 'errorCode'>, taskEvents: unknown): string | undefined {
  if (turn.errorCode) return turn.errorCode;
  const { turnId, error } = turn;
  if (Array.isArray(taskEvents)) {
    for (let i = taskEvents.length - 1; i >= 0; i--) {
      const e = taskEvents[i] as { turnId?: unknown; task?: { phase?: unknown; detail?: { code?: unknown } } } | null;
      if (e?.turnId === turnId && e.task?.phase === 'failed' && typeof e.task.detail?.code === 'string') return e.task.detail.code;
    }
  }
  if (error === INTERRUPTED_ERROR || error === TRANSFER_INTERRUPTED_ERROR) return 'TURN_INTERRUPTED';
  if (error === NO_OUTPUT_ERROR) return 'NO_DISPLAYABLE_OUTPUT';
  return undefined;
}
