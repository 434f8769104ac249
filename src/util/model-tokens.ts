/**
 * Per-session model-API tokens. When the gateway launches an agent with `llm: { model }` it mints one token
 * for that session and hands it to the agent as its API key; the gateway's model APIs (`/v1/*`, and the
 * Anthropic / Responses / Gemini surfaces) accept it, nothing else does (`/admin` and `/acp/rpc` check their
 * own token lists and never consult this registry).
 *
 * Contract:
 * - `mint(grant)` returns a fresh 256-bit token bound to `grant.model`; `revoke(token)` (at session close)
 *   makes it unknown at once. Tokens live in memory only: a restarted gateway knows none of them (its agents
 *   are gone too).
 * - `authorize(req, token)` looks a presented token up (by its SHA-256, so the lookup time says nothing about
 *   how much of a token matched) and, if known, remembers the grant for that request. `pinnedModel(req)` then
 *   gives the model every model name in that request must be replaced with: an agent on a session token runs
 *   on `llm.model`, whatever model it asks for, and `pinAllows(req, model)` says whether the model lists
 *   (`GET /v1/models`, `GET /v1beta/models`) show a model to it: the pinned one only.
 * - `onMint` / `onRevoke` let the composition root register each token with the secret scrubber while it lives.
 * - `grant.trace` is the traceparent of the session's turn now running (tracing on; the agent runtime sets and
 *   clears it around each prompt). `traceParent(req)` gives it for a request presenting the token, so the
 *   agent's model requests are children of its turn's span (src/obs/request-meter.ts).
 */
import { hash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { clientCredential } from './secret.js';

export interface ModelGrant {
  /** every request on this token runs on this model */
  model: string;
  /** the ACP session the token belongs to (logs) */
  sessionId: string;
  agentId: string;
  /** the virtual key that started the session on /acp/rpc: the agent's model traffic is that key's (src/keys) */
  keyId?: string | undefined;
  /** the traceparent of the session's turn now running, while one runs (tracing on) */
  trace?: string | undefined;
}

export const MODEL_TOKEN_PREFIX = 'sy-agent-';

const digest = (token: string): string => hash('sha256', token, 'base64url');
const grants = new WeakMap<IncomingMessage, ModelGrant>();

export class ModelTokens {
  private readonly byDigest = new Map<string, ModelGrant>();

  constructor(
    private readonly onMint?: (token: string) => void,
    private readonly onRevoke?: (token: string) => void,
  ) {}

  mint(grant: ModelGrant): string {
    const token = MODEL_TOKEN_PREFIX + randomBytes(32).toString('base64url');
    this.byDigest.set(digest(token), { ...grant });
    this.onMint?.(token);
    return token;
  }

  revoke(token: string): void {
    if (this.byDigest.delete(digest(token))) this.onRevoke?.(token);
  }

  get size(): number {
    return this.byDigest.size;
  }

  lookup(token: string | undefined): ModelGrant | undefined {
    if (!token || !token.startsWith(MODEL_TOKEN_PREFIX)) return undefined;
    return this.byDigest.get(digest(token));
  }

  /** The traceparent of the running turn of the session whose token `req` presents (any header a model API reads). */
  traceParent(req: IncomingMessage): string | undefined {
    return this.lookup(clientCredential(req.headers, '', false))?.trace;
  }

  /** Checks `token`; when it is a live session token, remembers its grant for `req` and returns it. */
  authorize(req: IncomingMessage, token: string | undefined): ModelGrant | undefined {
    const g = this.lookup(token);
    if (g) grants.set(req, g);
    return g;
  }
}

/** The model a request authorised by a session token is pinned to; undefined for every other request. */
export function pinnedModel(req: IncomingMessage): string | undefined {
  return grants.get(req)?.model;
}

/**
 * Whether the model lists show `model` to a request: every model to a request without a session token, only the
 * pinned model to one with it (that token can use no other: each of its requests runs on the pinned model).
 */
export function pinAllows(req: IncomingMessage, model: string): boolean {
  const pin = pinnedModel(req);
  return pin === undefined || pin === model;
}
