/**
 * The one interface every `/acp/rpc` runtime implements (agents over ACP stdio, `channels` gateways,
 * later OpenClaw and peers). The turn runner (turns.ts) owns ordering, seq numbers, ids, persistence and
 * results; a runtime only runs one turn at a time and reports what happens through `emit`.
 */
import type { ChatMessage } from '../wire/openai.js';
import type { SessionTarget } from '../sessions/model.js';

/** One update of a running turn; turns.ts adds sessionId/threadId/turnId/runId/seq before it goes out. */
export interface UpdateEvent {
  type: 'status' | 'delta' | 'step';
  /** `delta` | `tool_call` | `plan` | `running` … (started/completed/failed/cancelled are the runner's) */
  event: string;
  /** text carried by this update (for deltas: the new text) */
  text?: string;
  delta?: string;
  /**
   * the runtime's own payload (agents: the ACP `session/update` `update` object; OpenClaw: the chat event's short
   * fields, without its text). A delta's or thought chunk's text may be in it only in `text` members: when the
   * secret scrubber changes a chunk's text (turn-runner.ts), those are the members it rewrites to match
   */
  structuredEvent?: unknown;
}

export interface TurnInput {
  turnId: string;
  /** the prompt of this turn */
  text: string;
  /** previous turns as chat messages (user/assistant), oldest first; runtimes with their own memory ignore it */
  history: ChatMessage[];
  /** W3C traceparent of the turn's span (tracing on): a runtime that routes requests passes it on */
  trace?: string | undefined;
}

export interface TurnOutput {
  /** the final displayable text ('' = nothing displayable: the runner fails the turn) */
  output: string;
  /** ACP stop reasons: end_turn | max_tokens | max_turn_requests | refusal | cancelled */
  stopReason: string;
  /** chat messages this turn adds to the session history (defaults to user prompt + assistant output) */
  messages?: ChatMessage[];
  /** the model that actually answered, when the runtime knows it */
  model?: string;
  /** with `RuntimeContext.bindModel`: the executor was bound to that model and it was read back */
  modelBindingVerified?: boolean;
}

export interface Runtime {
  /**
   * Runs one turn. Aborting `signal` cancels it: the promise then resolves with stopReason "cancelled" (with the
   * partial output) or rejects; either way the runner records the turn as cancelled. Failures reject with a
   * GatewayError whose message is safe to show the client.
   */
  prompt(turn: TurnInput, emit: (u: UpdateEvent) => void, signal: AbortSignal): Promise<TurnOutput>;
  /** Ends the runtime session (agent process stopped). Idempotent. */
  close(): Promise<void>;
}

/** An agent's permission request, as the relay sees it (ACP RequestPermissionRequest without its sessionId). */
export interface PermissionRequest {
  toolCall: Record<string, unknown>;
  options: Array<{ optionId: string; name: string; kind: string }>;
}
export type PermissionOutcome = { outcome: 'selected'; optionId: string } | { outcome: 'cancelled' };
/** Asks the app (permissions.ts); resolves with its answer, or cancelled (also when `signal` aborts). */
export type PermissionRelay = (req: PermissionRequest, signal: AbortSignal) => Promise<PermissionOutcome>;

export interface RuntimeContext {
  sessionId: string;
  threadId: string;
  target: SessionTarget;
  /** validated relative folder (see working-directory.ts), resolved under acp.workspaceRoot by runtimes that use one */
  workingDirectory: string | undefined;
  /** the permission relay of the running turn; agents whose `permissions` is `ask` use it */
  permissions?: PermissionRelay;
  /** overrides the agent's `permissions` setting (role-routed turns always ask the app) */
  permissionPolicy?: 'ask';
  /**
   * Role routing: the model the policy chose. A runtime that can bind its executor to a model does so and
   * reports `modelBindingVerified` on each TurnOutput, or fails the turn with MODEL_NOT_ADVERTISED /
   * MODEL_BINDING_UNVERIFIED (addendum 2026-10 §3).
   */
  bindModel?: string;
  /**
   * The virtual key that started the session (its caller is `key:<id>`): the model traffic the runtime causes
   * (an agent's requests on its session token, a gateway chat task's) is that key's, under its limits and budget.
   */
  keyId?: string | undefined;
}

/** Creates the runtime session of one ACP session; may throw (e.g. provider not startable). */
export type RuntimeFactory = (ctx: RuntimeContext) => Runtime | Promise<Runtime>;

/** Factories keyed by provider id, per execution target. A missing factory = the provider is unavailable. */
export interface RuntimeFactories {
  agent: Map<string, RuntimeFactory>;
  gateway: Map<string, RuntimeFactory>;
}

/**
 * A gateway provider runtime built outside this module (e.g. `OpenClawGateway` in runtimes/openclaw/), handed
 * to createAcp by the composition root: its factory runs the sessions, its probe answers availability, and
 * close() runs at shutdown.
 */
export interface PluggedGatewayRuntime {
  factory: RuntimeFactory;
  probe(): Promise<{ enabled: true } | { enabled: false; reason: string }>;
  close(): Promise<void>;
}

/**
 * The most output one turn may produce (characters of its deltas): the turn runner fails a turn past it
 * (UPSTREAM_BAD_RESPONSE) and stops its runtime; a runtime keeps no more than this of a turn's text.
 */
export const MAX_TURN_OUTPUT_CHARS = 16 * 1024 * 1024;
