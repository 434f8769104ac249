/**
 * The durable session record shared by `/acp/rpc` (agent tasks, gateway chats), the bridge (session transfer)
 * and the admin API. Everything here is pure: no I/O, no clock except through the `now` arguments' defaults.
 * A store persists these records as they are; `version` is owned by the store (optimistic concurrency).
 */
import { z } from 'zod';
import { GatewayError } from '../wire/errors.js';
import type { ChatMessage } from '../wire/openai.js';
import { newId } from '../util/ids.js';

export type SessionKind = 'agent' | 'chat';
/**
 * `active`: owned here, idle. `running`: owned here, a turn is in progress. `closed`: ended by the client, kept
 * for `show`. `moved`: transferred to `movedTo`, which owns it now; requests are forwarded there.
 */
export type SessionStatus = 'active' | 'running' | 'closed' | 'moved';
export type TurnStatus = 'running' | 'completed' | 'failed' | 'cancelled' | 'unavailable';
export type ExecutionTarget = 'agent' | 'gateway';

export interface SessionTarget {
  executionTarget: ExecutionTarget;
  /** agent provider id (`codex`, …); '' on the gateway path */
  providerId: string;
  /** gateway provider id (`switchyard`, …); '' on the agent path */
  gatewayProviderId: string;
  model: string;
}

export interface Turn {
  turnId: string;
  runId: string;
  prompt: string;
  status: TurnStatus;
  /** final text of the turn ('' while running) */
  output: string;
  error?: string;
  /**
   * with `failed`: the error catalogue code the turn failed with (docs/errors.md), kept beside `error` so that it
   * is read back with the turn however many task events followed it; absent on a turn stored before the field
   */
  errorCode?: string;
  /** chat sessions: the OpenAI-style messages this turn added (user prompt + assistant reply); [] for agents */
  messages: ChatMessage[];
  /** epoch ms */
  startedAt: number;
  endedAt?: number;
}

export interface Session {
  id: string;
  kind: SessionKind;
  /** the gateway that owns the session; exactly one at a time */
  ownerGatewayId: string;
  status: SessionStatus;
  /** set with status `moved`: the gateway id that owns it now */
  movedTo?: string;
  target: SessionTarget;
  threadId: string;
  /** turns in order, oldest first */
  history: Turn[];
  /** the router candidate id the session sticks to, if any */
  affinity?: string;
  /** free JSON for the layer that owns the session (e.g. the ACP working directory hint) */
  metadata: Record<string, unknown>;
  /** epoch ms */
  createdAt: number;
  updatedAt: number;
  /** starts at 1 on create; each successful update adds 1 */
  version: number;
}

export interface NewSessionInit {
  id: string;
  kind: SessionKind;
  ownerGatewayId: string;
  target: SessionTarget;
  threadId?: string;
  affinity?: string;
  metadata?: Record<string, unknown>;
}

export function newSession(init: NewSessionInit, now: number = Date.now()): Session {
  const s: Session = {
    id: init.id,
    kind: init.kind,
    ownerGatewayId: init.ownerGatewayId,
    status: 'active',
    target: { ...init.target },
    threadId: init.threadId ?? init.id,
    history: [],
    metadata: init.metadata ?? {},
    createdAt: now,
    updatedAt: now,
    version: 1,
  };
  if (init.affinity !== undefined) s.affinity = init.affinity;
  return s;
}

export function newTurn(prompt: string, messages: ChatMessage[] = [], now: number = Date.now()): Turn {
  return { turnId: newId('turn'), runId: newId('run'), prompt, status: 'running', output: '', messages, startedAt: now };
}

/**
 * Appends a turn; a `running` turn makes the session `running`. Refuses a turn on a session not owned here, and
 * a second running turn (turns of one session run one at a time).
 */
export function appendTurn(s: Session, turn: Turn, now: number = Date.now()): Session {
  if (s.status === 'closed' || s.status === 'moved') {
    throw new GatewayError('INVALID_REQUEST', `session ${s.id} is ${s.status}`, { status: 409, details: { sessionId: s.id, status: s.status } });
  }
  const busy = turn.status === 'running' ? runningTurn(s) : undefined;
  if (busy) {
    throw new GatewayError('INVALID_REQUEST', `session ${s.id} already has turn ${busy.turnId} running`, {
      status: 409,
      details: { sessionId: s.id, turnId: busy.turnId },
    });
  }
  const status = turn.status === 'running' ? 'running' : s.status;
  return { ...s, status, history: [...s.history, turn], updatedAt: now };
}

/** Replaces the turn with `turnId` by `patch` applied to it; a finished last turn makes the session `active`. */
export function updateTurn(s: Session, turnId: string, patch: Partial<Omit<Turn, 'turnId'>>, now: number = Date.now()): Session {
  const i = s.history.findIndex((t) => t.turnId === turnId);
  const old = s.history[i];
  if (!old) throw new GatewayError('NOT_FOUND', `turn ${turnId} not found in session ${s.id}`, { details: { sessionId: s.id, turnId } });
  const turn: Turn = { ...old, ...patch };
  if (turn.status !== 'running' && turn.endedAt === undefined) turn.endedAt = now;
  const history = s.history.slice();
  history[i] = turn;
  const anyRunning = history.some((t) => t.status === 'running');
  const status = s.status === 'running' && !anyRunning ? 'active' : s.status;
  return { ...s, history, status, updatedAt: now };
}

export function runningTurn(s: Session): Turn | undefined {
  return s.history.find((t) => t.status === 'running');
}

/** The whole conversation of a chat session, in order: what the next turn sends upstream. */
export function chatMessages(s: Session): ChatMessage[] {
  return s.history.flatMap((t) => t.messages);
}

export function closeSession(s: Session, now: number = Date.now()): Session {
  return { ...s, status: 'closed', updatedAt: now };
}

/** Whether bridge peer `peerId` may reach this session here: it started it here (`viaPeer`) or transferred it here. */
export function peerReaches(s: Session, peerId: string): boolean {
  return s.metadata.viaPeer === peerId || s.metadata.transferredFrom === peerId;
}

/** What a peer gets for a session it may not reach (peerReaches false). */
export const notPeersSession = (sessionId: string): GatewayError =>
  new GatewayError('CHANNEL_NOT_SHARED', `session "${sessionId}" is not one you started or transferred here`);

/** The sender's side of a transfer, after the receiver's ok: it no longer owns the session. */
export function markMoved(s: Session, toGatewayId: string, now: number = Date.now()): Session {
  return { ...s, status: 'moved', movedTo: toGatewayId, updatedAt: now };
}

/** The error of a turn a transfer interrupted (adoptTransferred), stored with the code TURN_INTERRUPTED. */
export const TRANSFER_INTERRUPTED_ERROR = 'interrupted by session transfer';

/**
 * The receiver's side of a transfer: the record as it is stored on the new owner. A turn that was still
 * marked running on the sender cannot be resumed here, so it is recorded as failed.
 */
export function adoptTransferred(s: Session, selfGatewayId: string, now: number = Date.now()): Session {
  const history = s.history.map((t) =>
    t.status === 'running' ? { ...t, status: 'failed' as const, error: TRANSFER_INTERRUPTED_ERROR, errorCode: 'TURN_INTERRUPTED', endedAt: now } : t,
  );
  const { movedTo: _movedTo, ...rest } = s;
  return { ...rest, ownerGatewayId: selfGatewayId, status: s.status === 'closed' ? 'closed' : 'active', history, updatedAt: now };
}

// ---- validation of records that come from outside (transfer frames, admin API) ----

const messageSchema = z.looseObject({ role: z.enum(['system', 'developer', 'user', 'assistant', 'tool', 'function']) });
const turnSchema = z.strictObject({
  turnId: z.string().min(1),
  runId: z.string().min(1),
  prompt: z.string(),
  status: z.enum(['running', 'completed', 'failed', 'cancelled', 'unavailable']),
  output: z.string(),
  error: z.string().optional(),
  // a catalogue code (docs/errors.md): upper case, digits and underscores
  errorCode: z
    .string()
    .regex(/^[A-Z][A-Z0-9_]{0,63}$/)
    .optional(),
  messages: z.array(messageSchema),
  startedAt: z.number().int().nonnegative(),
  endedAt: z.number().int().nonnegative().optional(),
});
const sessionSchema = z.strictObject({
  id: z.string().min(1).max(256),
  kind: z.enum(['agent', 'chat']),
  ownerGatewayId: z.string().min(1),
  status: z.enum(['active', 'running', 'closed', 'moved']),
  movedTo: z.string().min(1).optional(),
  target: z.strictObject({
    executionTarget: z.enum(['agent', 'gateway']),
    providerId: z.string(),
    gatewayProviderId: z.string(),
    model: z.string(),
  }),
  threadId: z.string().min(1),
  history: z.array(turnSchema),
  affinity: z.string().optional(),
  metadata: z.record(z.string(), z.unknown()),
  createdAt: z.number().int().nonnegative(),
  updatedAt: z.number().int().nonnegative(),
  version: z.number().int().positive(),
});

/** Validates an untrusted session record; throws INVALID_REQUEST naming the first bad key path. */
export function parseSession(v: unknown): Session {
  const r = sessionSchema.safeParse(v);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const path = issue ? issue.path.join('.') || '(root)' : '(root)';
  throw new GatewayError('INVALID_REQUEST', `invalid session record at ${path}: ${issue?.message ?? 'invalid'}`, { param: path });
}
