/**
 * What the turn runner keeps per open session in memory (LiveSession), what starts one (StartInput, with the
 * role binding when role routing picked its runtime), and the pure pieces of a turn's outcome: the result a
 * client gets and what every task event says about the session's runtime.
 */
import { GatewayError } from '../wire/errors.js';
import { updateTurn, type Session, type SessionTarget, type Turn, type TurnStatus } from '../sessions/model.js';
import type { Runtime } from './runtime.js';
import type { SessionLease } from './lease.js';
import type { RoleSelection } from './roles.js';
import { boundOutput, type TurnResult } from './task-registry.js';
import { REMOTE_WORKSPACE_REF_KIND, remoteWorkingDirectory } from './working-directory.js';
import { secrets } from '../util/redact.js';
import { INTERRUPTED_ERROR, TASK_CANCELLED } from './turn-failures.js';

export { INTERRUPTED_ERROR, NO_OUTPUT_ERROR, noOutput, TASK_CANCELLED } from './turn-failures.js';

/** Records every turn still marked running as failed (interrupted); returns `s` itself when there is none. */
export function failInterrupted(s: Session): Session {
  const failed = { status: 'failed', error: INTERRUPTED_ERROR, errorCode: 'TURN_INTERRUPTED' } as const;
  let next = s;
  for (const t of s.history) if (t.status === 'running') next = updateTurn(next, t.turnId, { ...failed, endedAt: Date.now() });
  return next;
}

export interface StartInput {
  sessionId: string;
  threadId: string;
  prompt: string;
  workingDirectory: string | undefined;
  target: SessionTarget;
  /** the bridge peer that started this session here, if any (it may continue it over the bridge) */
  origin?: string | undefined;
  /** who started it (CallContext.caller), kept as `metadata.caller`: `xworkmate.permissions.list` filters by it */
  caller?: string | undefined;
  /** set when the policy picked the runtime (role routing): kept with the session */
  role?: RoleBinding;
  /** W3C traceparent of the request that started it (tracing on) */
  trace?: string | undefined;
}

/** What role routing decided for a session (addendum §3), kept in its record as `metadata.role`. */
export interface RoleBinding {
  resolvedRole: string;
  roleMode: 'auto' | 'manual';
  modelKey: string;
  resolvedModelId: string;
  modelBindingVerified: boolean;
  policyVersion: string;
  roleSelection: RoleSelection;
}

export interface LiveSession {
  id: string;
  threadId: string;
  target: SessionTarget;
  workingDirectory: string | undefined;
  seq: number;
  /** resolves when every queued turn has ended */
  tail: Promise<void>;
  pending: number;
  runtime: Promise<Runtime> | undefined;
  current: { turnId: string; abort: AbortController; emit: Emit } | undefined;
  closed: boolean;
  role: RoleBinding | undefined;
  /** who started it (`metadata.caller`): a `key:<id>` caller's key pays for the session's model traffic */
  caller: string | undefined;
  /**
   * set once its first turn here holds the session's lease: the other instances sharing the store were then told
   * to end their own live session of this id (TurnRunner.endOtherCopies)
   */
  announced: boolean;
  /**
   * The seq rule (docs/sessions.md): the session's lease this live session numbers updates under, set once it is
   * taken here (by a turn, or briefly: TurnRunner.withLease) and `seq` refreshed from the store; cleared when it is
   * given back or lost. Only while it is held (`holdsLease`) is an update numbered and logged.
   */
  lease: SessionLease | undefined;
  /** a turn of it here is taking or holds the session's lease (from before its first try until it gives it back) */
  leasing: boolean;
  /** while `leasing`: settles once that turn's first try answered (it holds the lease, or another instance does) */
  firstTry: Promise<void> | undefined;
  /** a brief take of the lease under way (TurnRunner.withLease): a turn's own take waits for it */
  brief: Promise<void> | undefined;
  /**
   * a take of it here (a turn's, a brief one, a revival's) being given back (TurnRunner.releaseAfterLog): nothing is
   * numbered under it any more, and a brief take waits for it rather than send its update without `seq`
   */
  ending: Promise<void> | undefined;
}

/** Whether updates of `live` are numbered now: it holds the session's lease (not lost, not possibly lapsed). */
export const holdsLease = (live: LiveSession): boolean => live.lease?.held() === true;

/** Sends one update of a turn (the runner adds ids and `seq`); returns the params as sent. */
export type Emit = (fields: Record<string, unknown>) => Record<string, unknown>;

export function newLive(
  id: string,
  threadId: string,
  target: SessionTarget,
  workingDirectory: string | undefined,
  seq: number,
  role: RoleBinding | undefined,
  caller: string | undefined,
): LiveSession {
  return {
    id,
    threadId,
    target: { ...target },
    workingDirectory,
    seq,
    tail: Promise.resolve(),
    pending: 0,
    runtime: undefined,
    current: undefined,
    closed: false,
    role,
    caller,
    announced: false,
    lease: undefined,
    leasing: false,
    firstTry: undefined,
    brief: undefined,
    ending: undefined,
  };
}

/** The virtual key a session's caller names (`key:<id>`, src/http/acp/access.ts), if it is one. */
export const keyIdOf = (caller: string | undefined): string | undefined => (caller?.startsWith('key:') ? caller.slice(4) : undefined);

/** The last `seq` a session's record says it numbered (`metadata.seq`), 0 when none. */
export const seqOf = (rec: Session): number => (typeof rec.metadata.seq === 'number' ? rec.metadata.seq : 0);

export const roleOf = (md: Record<string, unknown>): RoleBinding | undefined => (md.role && typeof md.role === 'object' ? (md.role as RoleBinding) : undefined);

export function continuationUnavailable(sessionId: string, why: string): GatewayError {
  return new GatewayError('SESSION_CONTINUATION_UNAVAILABLE', `session "${sessionId}" cannot be continued: ${why}; start it with session.start`, {
    details: { sessionId },
  });
}

export function summaryOf(output: string): string {
  const s = output.trim().replace(/\s+/g, ' ');
  return s.length > 280 ? s.slice(0, 279) + '…' : s;
}

/** The result of a turn, as session.start / session.message return it; its `output` at most `maxChars` (boundOutput). */
export function resultOf(
  live: LiveSession,
  turn: Turn,
  status: TurnStatus,
  output: string,
  stopReason: string,
  maxChars: number,
  err?: GatewayError | string,
  model?: string,
): TurnResult {
  const bounded = boundOutput(output, maxChars);
  const r: TurnResult = {
    success: status === 'completed',
    status,
    sessionId: live.id,
    threadId: live.threadId,
    turnId: turn.turnId,
    runId: turn.runId,
    ...bounded,
    summary: summaryOf(bounded.output),
    stopReason,
    resolvedExecutionTarget: live.target.executionTarget === 'agent' ? 'single-agent' : 'gateway',
    resolvedProviderId: live.target.providerId,
    resolvedGatewayProviderId: live.target.gatewayProviderId,
    resolvedModel: live.target.model || model || '',
  };
  if (live.role) {
    const { resolvedRole, resolvedModelId, modelBindingVerified, roleSelection } = live.role;
    Object.assign(r, { resolvedRole, resolvedModelId, modelBindingVerified, roleSelection });
  }
  if (live.target.executionTarget === 'agent' || live.workingDirectory) {
    r.remoteWorkingDirectory = remoteWorkingDirectory(live.workingDirectory, live.id);
    r.remoteWorkspaceRefKind = REMOTE_WORKSPACE_REF_KIND;
  }
  if (err !== undefined) {
    r.error = secrets.scrubError(typeof err === 'string' ? err : err.message);
    if (typeof err !== 'string') r.errorCode = err.code;
  }
  const code = status === 'cancelled' ? TASK_CANCELLED : r.errorCode;
  if (code !== undefined) r.code = code;
  return r;
}

/** What every task event says about the session's runtime (and its role binding). */
export function aboutOf(live: LiveSession): Record<string, unknown> {
  const t = live.target;
  const about: Record<string, unknown> = {
    providerId: t.providerId || t.gatewayProviderId,
    executor: t.providerId || t.gatewayProviderId,
    executionTarget: t.executionTarget === 'agent' ? 'single-agent' : 'gateway',
  };
  if (live.role)
    Object.assign(about, {
      role: live.role.resolvedRole,
      roleMode: live.role.roleMode,
      modelKey: live.role.modelKey,
      modelId: live.role.resolvedModelId,
      policyVersion: live.role.policyVersion,
    });
  return about;
}
