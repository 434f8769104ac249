/**
 * `kind: "openclaw"` gateway runtime: adapter from OpenClawClient to the Runtime interface (../../runtime.ts).
 *
 * - One OpenClawClient (one WebSocket) per configured gateway, shared by all its sessions (OpenClawGateway).
 * - One OpenClaw session key per Switchyard session, derived from the session id only (never from client
 *   params): `agent:main:switchyard-<sessionId>` (see sessionKeyFor). OpenClaw keeps the conversation memory
 *   under that key, so TurnInput.history is not resent.
 * - A turn is one `chat.send`. Updates: `status/running` when OpenClaw acknowledges the run (structuredEvent =
 *   the ack `{ runId, status }`), `delta` per text piece, and `step/running` with the whole text when OpenClaw
 *   replaced the text so far (v4 `replace`, or a rewritten v3 cumulative message). The structuredEvent of a
 *   delta or step is the `chat` event's short fields only (protocol.ts chatEventSummary): never its text, which
 *   real v4 servers repeat whole (`message`) in every delta, nor fields this client does not know.
 *   started/completed/failed/cancelled are the turn runner's: `final` resolves the turn, `error` rejects it with
 *   a GatewayError, `aborted` (or the signal) resolves it with stopReason "cancelled"; cancelling sends
 *   `chat.abort`.
 * - Output bound: every text change counts toward MAX_TURN_OUTPUT_CHARS, a replacement with its whole text (the
 *   turn runner counts deltas only); past it the turn fails with UPSTREAM_BAD_RESPONSE and the run is aborted.
 */
import { createHash } from 'node:crypto';
import { GatewayError, toGatewayError } from '../../../wire/errors.js';
import type { Logger } from '../../../util/log.js';
import {
  MAX_TURN_OUTPUT_CHARS,
  type Runtime,
  type RuntimeContext,
  type RuntimeFactory,
  type TurnInput,
  type TurnOutput,
  type UpdateEvent,
} from '../../runtime.js';
import { OpenClawClient, type OpenClawClientOptions } from './client.js';
import { chatEventSummary } from './protocol.js';

export const DEFAULT_AGENT_ID = 'main';
export const DEFAULT_TURN_TIMEOUT_MS = 10 * 60_000;

/**
 * The OpenClaw session key of a Switchyard session: `agent:<agentId>:switchyard-<id>`, where id is the session
 * id when it is already a safe lower-case key segment (`[a-z0-9][a-z0-9_.-]{0,127}`), else `h` + the first 40 hex
 * digits of its SHA-256 (deterministic, collision-resistant, and immune to OpenClaw lower-casing keys).
 */
export function sessionKeyFor(sessionId: string, agentId: string = DEFAULT_AGENT_ID): string {
  if (!sessionId) throw new GatewayError('INVALID_REQUEST', 'session id required for an OpenClaw session key');
  const seg = /^[a-z0-9][a-z0-9_.-]{0,127}$/.test(sessionId) ? sessionId : `h${createHash('sha256').update(sessionId).digest('hex').slice(0, 40)}`;
  return `agent:${agentId}:switchyard-${seg}`;
}

export interface OpenClawRuntimeOptions {
  client: OpenClawClient;
  sessionId: string;
  agentId?: string;
  /** whole-turn deadline; default 10 min */
  turnTimeoutMs?: number;
}

export function createOpenClawRuntime(o: OpenClawRuntimeOptions): Runtime {
  const sessionKey = sessionKeyFor(o.sessionId, o.agentId);
  let closed = false;
  let current: AbortController | undefined;
  return {
    async prompt(turn: TurnInput, emit: (u: UpdateEvent) => void, signal: AbortSignal): Promise<TurnOutput> {
      if (closed) throw new GatewayError('SHUTTING_DOWN', 'OpenClaw runtime session is closed');
      const userMsg = { role: 'user' as const, content: turn.text };
      if (signal.aborted) return { output: '', stopReason: 'cancelled', messages: [userMsg, { role: 'assistant', content: '' }] };
      // our own controller so close() can cancel a running turn too
      const ac = new AbortController();
      const forward = () => ac.abort();
      signal.addEventListener('abort', forward, { once: true });
      current = ac;
      try {
        const r = await o.client.chatSend(sessionKey, turn.text, {
          signal: ac.signal,
          timeoutMs: o.turnTimeoutMs ?? DEFAULT_TURN_TIMEOUT_MS,
          maxOutputChars: MAX_TURN_OUTPUT_CHARS,
          onAck: (ack) => emit({ type: 'status', event: 'running', structuredEvent: ack }),
          onDelta: (change, ev) => {
            const structuredEvent = chatEventSummary(ev, sessionKey);
            if (change.kind === 'append') emit({ type: 'delta', event: 'delta', delta: change.text, text: change.text, structuredEvent });
            else emit({ type: 'step', event: 'running', text: change.text, structuredEvent });
          },
        });
        return {
          output: r.text,
          stopReason: r.status === 'cancelled' ? 'cancelled' : r.stopReason,
          messages: [userMsg, { role: 'assistant', content: r.text }],
        };
      } catch (err) {
        throw toGatewayError(err);
      } finally {
        signal.removeEventListener('abort', forward);
        if (current === ac) current = undefined;
      }
    },
    close: async () => {
      closed = true;
      current?.abort();
    },
  };
}

/** The part of an `acp.gateways[]` entry this runtime uses (structurally the config schema's openclaw entry). */
export interface OpenClawGatewayConfig {
  id: string;
  label?: string;
  kind?: 'openclaw';
  url: string;
  token: string;
}

export interface OpenClawGatewayOptions {
  log?: Logger;
  turnTimeoutMs?: number;
  agentId?: string;
  /** how long a probe result is reused; default 30 s */
  probeTtlMs?: number;
  /** bound on one availability probe; default 5 s */
  probeTimeoutMs?: number;
  /** extra client settings (timeouts, back-off); url/token come from the config entry */
  client?: Omit<OpenClawClientOptions, 'url' | 'token' | 'log'>;
}

export type OpenClawAvailability = { enabled: true } | { enabled: false; reason: string };

/**
 * One configured OpenClaw gateway: the shared client, the RuntimeFactory for its sessions, an availability
 * probe for `acp.capabilities`, and close() for shutdown. Closing a session's runtime does not close the client.
 */
export class OpenClawGateway {
  readonly client: OpenClawClient;
  readonly factory: RuntimeFactory;
  private probeCache: { at: number; result: OpenClawAvailability } | undefined;
  private probing: Promise<OpenClawAvailability> | undefined;

  constructor(
    readonly config: OpenClawGatewayConfig,
    private readonly opts: OpenClawGatewayOptions = {},
  ) {
    this.client = new OpenClawClient({
      displayName: 'Switchyard',
      ...opts.client,
      url: config.url,
      token: config.token,
      ...(opts.log ? { log: opts.log.child({ gatewayProvider: config.id }) } : {}),
    });
    this.factory = (ctx: RuntimeContext) =>
      createOpenClawRuntime({
        client: this.client,
        sessionId: ctx.sessionId,
        ...(opts.agentId ? { agentId: opts.agentId } : {}),
        ...(opts.turnTimeoutMs !== undefined ? { turnTimeoutMs: opts.turnTimeoutMs } : {}),
      });
  }

  /** Whether a turn could start now: connected, or a connect succeeds within probeTimeoutMs. Cached. */
  probe(): Promise<OpenClawAvailability> {
    if (this.client.connected) return Promise.resolve({ enabled: true });
    const ttl = this.opts.probeTtlMs ?? 30_000;
    if (this.probeCache && Date.now() - this.probeCache.at < ttl) return Promise.resolve(this.probeCache.result);
    this.probing ??= (async (): Promise<OpenClawAvailability> => {
      const ac = new AbortController();
      const t = setTimeout(() => ac.abort(), this.opts.probeTimeoutMs ?? 5_000);
      try {
        await this.client.connect(ac.signal);
        return { enabled: true };
      } catch (err) {
        const e = toGatewayError(err);
        return { enabled: false, reason: e.code === 'CANCELLED' ? 'OpenClaw gateway did not answer in time' : e.message };
      } finally {
        clearTimeout(t);
      }
    })().then((result) => {
      this.probeCache = { at: Date.now(), result };
      this.probing = undefined;
      return result;
    });
    return this.probing;
  }

  close(): Promise<void> {
    return this.client.close();
  }
}
