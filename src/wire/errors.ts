/**
 * The error catalogue: one error class for the whole gateway, and one table (ERROR_TABLE) with one row per
 * code that says how the code shows on every surface — HTTP status and OpenAI `type` on /v1/* and /admin/*,
 * JSON-RPC code and `error.data.code` on /acp/rpc, `bridge-error.code` and close code on the bridge, and
 * `retryable`. No other table maps codes: every surface asks `describeError(code)`. Every code is documented
 * in docs/errors.md (test/wire/errors-doc.test.ts checks both ways). Depends on nothing but bridge-codes.ts.
 *
 * Row format. `status`, `type`, `retryable` and `rpc` are required; every other column is optional with a
 * default derived from the code, so a row written as `{ status, type, retryable, rpc }` is complete:
 *   data      `error.data.code` on /acp/rpc                       default: the code itself
 *   bridge    `bridge-error.code` when this error answers a peer  default: the code if it is a bridge code, else INTERNAL
 *   close     bridge close code when this error ends a link       default: none (the link stays up)
 *   fromPeer  the code a requester reports when a peer answers
 *             with this code (bridge code or gatewayCode)          default: the code itself
 *   failover  a peer's answer with this code for a forward lets
 *             the router try another candidate                     default: true (it only says THIS candidate failed)
 */
import { BRIDGE_ERROR_CODES, CLOSE_CODES, isBridgeErrorCode, type BridgeCloseCode, type BridgeErrorCode } from './bridge-codes.js';

export type ErrorCode =
  // request problems (client side)
  | 'INVALID_JSON'
  | 'INVALID_REQUEST'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'UPGRADE_REQUIRED'
  | 'MODEL_NOT_FOUND'
  | 'MODEL_NOT_ALLOWED'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'HOST_NOT_ALLOWED'
  | 'ORIGIN_NOT_ALLOWED'
  | 'REQUEST_TIMEOUT'
  | 'HEADERS_TOO_LARGE'
  // capacity
  | 'OVERLOADED'
  | 'RATE_LIMITED'
  | 'BUDGET_EXCEEDED'
  | 'SHUTTING_DOWN'
  | 'BODY_BUFFER_FULL'
  | 'CLIENT_TOO_SLOW'
  // the virtual-key store cannot be read (Redis down or stalled, a SQLite error): a key not loaded cannot be checked
  | 'KEY_STORE_UNAVAILABLE'
  // the session store cannot be read or written now (Redis down or stalled, a SQLite error): /admin/sessions*
  | 'SESSION_STORE_UNAVAILABLE'
  // upstream
  | 'UPSTREAM_ERROR'
  | 'UPSTREAM_TIMEOUT'
  | 'UPSTREAM_BAD_RESPONSE'
  | 'UPSTREAM_STREAM_ERROR'
  | 'UPSTREAM_CLIENT_ERROR'
  // bridge
  | 'CHANNEL_NOT_SHARED'
  | 'LOOP_DETECTED'
  | 'PEER_UNAVAILABLE'
  | 'BAD_FRAME'
  | 'CANCELLED'
  | BridgeErrorCode
  // /acp/rpc (JSON-RPC envelope and agent-task contract, docs/acp.md)
  | 'RPC_INVALID_REQUEST'
  | 'METHOD_NOT_FOUND'
  | 'INVALID_PARAMS'
  | 'ROUTING_REQUIRED'
  | 'ROUTING_CONFLICT'
  | 'SESSION_CONTINUATION_UNAVAILABLE'
  | 'SESSION_OWNER_UNREACHABLE'
  | 'SESSION_NOT_OWNED_HERE'
  | 'REMOTE_ERROR'
  // a resume cursor the session's update log no longer reaches (acp.updateLogMaxBytes dropped what followed it)
  | 'UPDATE_LOG_TRUNCATED'
  // task-session REST routes (addendum 2026-10 §6): a message with that clientRequestId is being queued
  | 'REQUEST_IN_PROGRESS'
  // /acp/rpc permission relay (addendum 2026-10 §5: -32602, the message is the code)
  | 'PERMISSION_REQUEST_NOT_FOUND'
  | 'PERMISSION_SESSION_MISMATCH'
  | 'PERMISSION_OPTION_NOT_OFFERED'
  | 'PERMISSION_ALREADY_DECIDED'
  // /acp/rpc turn failures with no other code: a runtime that answered no text; a turn whose gateway instance
  // stopped (or whose session was transferred) while it ran
  | 'NO_DISPLAYABLE_OUTPUT'
  | 'TURN_INTERRUPTED'
  // role routing: binding an agent to the chosen model (addendum 2026-10 §3)
  | 'MODEL_NOT_ADVERTISED'
  | 'MODEL_BINDING_UNVERIFIED'
  // upstream connections (OpenClaw gateway)
  | 'UPSTREAM_AUTH_FAILED'
  | 'UPSTREAM_UNREACHABLE'
  | 'UPSTREAM_CONNECTION_LOST'
  | 'PROVIDER_DIRECT_PATH_DISABLED'
  // config / generic
  | 'CONFIG_INVALID'
  | 'INTERNAL';

export type OpenAIErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'server_error'
  | 'timeout_error'
  | 'upstream_error';

/** One row of the catalogue (see the column list at the top of this file). */
export interface ErrorSpec {
  /** HTTP status on /v1/* and /admin/* (and of transport-level /acp/rpc errors) */
  status: number;
  /** OpenAI error `type` field */
  type: OpenAIErrorType;
  /** whether another candidate (or a later attempt) may succeed; the default `bridge-error.retryable` */
  retryable: boolean;
  /** JSON-RPC error code on /acp/rpc */
  rpc: number;
  /** `error.data.code` on /acp/rpc; default: the code */
  data?: string;
  /** `bridge-error.code` when this error answers a peer; default: the code if it is a bridge code, else INTERNAL */
  bridge?: BridgeErrorCode;
  /** close code when this error ends a bridge link; default: none */
  close?: BridgeCloseCode;
  /** the code a requester reports when a peer answers with this one; default: the code */
  fromPeer?: ErrorCode;
  /** a peer's answer with this code lets the router try another candidate; default: true */
  failover?: boolean;
}

const C = CLOSE_CODES;
/** a handshake refusal as seen by whoever would report it: the peer is not usable */
const HANDSHAKE = { status: 502, type: 'upstream_error', rpc: -32000, fromPeer: 'PEER_UNAVAILABLE' } as const;

export const ERROR_TABLE: Readonly<Record<ErrorCode, ErrorSpec>> = {
  INVALID_JSON: { status: 400, type: 'invalid_request_error', retryable: false, rpc: -32700, data: 'PARSE_ERROR', bridge: 'BAD_FRAME' },
  INVALID_REQUEST: { status: 400, type: 'invalid_request_error', retryable: false, rpc: -32602, bridge: 'BAD_FRAME', failover: false },
  UNAUTHORIZED: { status: 401, type: 'authentication_error', retryable: false, rpc: -32001, fromPeer: 'PEER_UNAVAILABLE' },
  FORBIDDEN: { status: 403, type: 'permission_error', retryable: false, rpc: -32003 },
  NOT_FOUND: { status: 404, type: 'not_found_error', retryable: false, rpc: -32601, bridge: 'CHANNEL_NOT_SHARED', fromPeer: 'PEER_UNAVAILABLE' },
  METHOD_NOT_ALLOWED: { status: 405, type: 'invalid_request_error', retryable: false, rpc: -32600, fromPeer: 'PEER_UNAVAILABLE' },
  UPGRADE_REQUIRED: { status: 426, type: 'invalid_request_error', retryable: false, rpc: -32600, fromPeer: 'PEER_UNAVAILABLE' },
  MODEL_NOT_FOUND: { status: 404, type: 'not_found_error', retryable: false, rpc: -32602 },
  MODEL_NOT_ALLOWED: { status: 403, type: 'permission_error', retryable: false, rpc: -32003 },
  PAYLOAD_TOO_LARGE: { status: 413, type: 'invalid_request_error', retryable: false, rpc: -32600, close: C.FRAME_TOO_LARGE, failover: false },
  UNSUPPORTED: { status: 400, type: 'invalid_request_error', retryable: false, rpc: -32602 },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, type: 'invalid_request_error', retryable: false, rpc: -32600, fromPeer: 'PEER_UNAVAILABLE' },
  HOST_NOT_ALLOWED: { status: 403, type: 'permission_error', retryable: false, rpc: -32003, fromPeer: 'PEER_UNAVAILABLE' },
  ORIGIN_NOT_ALLOWED: { status: 403, type: 'permission_error', retryable: false, rpc: -32003, fromPeer: 'PEER_UNAVAILABLE' },
  REQUEST_TIMEOUT: { status: 408, type: 'timeout_error', retryable: false, rpc: -32600 },
  HEADERS_TOO_LARGE: { status: 431, type: 'invalid_request_error', retryable: false, rpc: -32600 },
  OVERLOADED: { status: 503, type: 'server_error', retryable: true, rpc: -32000 },
  RATE_LIMITED: { status: 429, type: 'rate_limit_error', retryable: true, rpc: -32000 },
  BUDGET_EXCEEDED: { status: 429, type: 'rate_limit_error', retryable: false, rpc: -32000 },
  SHUTTING_DOWN: { status: 503, type: 'server_error', retryable: true, rpc: -32000, bridge: 'OVERLOADED' },
  BODY_BUFFER_FULL: { status: 503, type: 'server_error', retryable: true, rpc: -32000 },
  CLIENT_TOO_SLOW: { status: 503, type: 'server_error', retryable: false, rpc: -32000, failover: false },
  // an edge-only code, as UNAUTHORIZED: a peer's key store never speaks for our client's credentials
  KEY_STORE_UNAVAILABLE: { status: 503, type: 'server_error', retryable: true, rpc: -32000, fromPeer: 'PEER_UNAVAILABLE' },
  // an admin-API code: a peer's session store never speaks for ours
  SESSION_STORE_UNAVAILABLE: { status: 503, type: 'server_error', retryable: true, rpc: -32000, fromPeer: 'PEER_UNAVAILABLE' },
  UPSTREAM_ERROR: { status: 502, type: 'upstream_error', retryable: true, rpc: -32000 },
  UPSTREAM_TIMEOUT: { status: 504, type: 'timeout_error', retryable: true, rpc: -32000 },
  UPSTREAM_BAD_RESPONSE: { status: 502, type: 'upstream_error', retryable: true, rpc: -32000, bridge: 'UPSTREAM_ERROR' },
  UPSTREAM_STREAM_ERROR: { status: 502, type: 'upstream_error', retryable: true, rpc: -32000, bridge: 'UPSTREAM_ERROR' },
  UPSTREAM_CLIENT_ERROR: { status: 400, type: 'invalid_request_error', retryable: false, rpc: -32602, bridge: 'UPSTREAM_ERROR', failover: false },
  CHANNEL_NOT_SHARED: { status: 403, type: 'permission_error', retryable: false, rpc: -32003 },
  LOOP_DETECTED: { status: 508, type: 'server_error', retryable: false, rpc: -32000 },
  PEER_UNAVAILABLE: { status: 502, type: 'upstream_error', retryable: true, rpc: -32000, bridge: 'UPSTREAM_ERROR' },
  BAD_FRAME: { status: 400, type: 'invalid_request_error', retryable: false, rpc: -32600, close: C.BAD_FRAME },
  CANCELLED: { status: 499, type: 'server_error', retryable: false, rpc: -32800, failover: false },
  // bridge-only codes (handshake, agent tasks, session transfer)
  AUTH_FAILED: { ...HANDSHAKE, retryable: false, close: C.AUTH_FAILED },
  VERSION_UNSUPPORTED: { ...HANDSHAKE, retryable: false, close: C.VERSION_UNSUPPORTED },
  MAX_PEERS: { ...HANDSHAKE, retryable: true, close: C.MAX_PEERS },
  DUPLICATE_PEER: { ...HANDSHAKE, retryable: true, close: C.DUPLICATE_PEER },
  SELF_CONNECTION: { ...HANDSHAKE, retryable: false, close: C.NOT_ALLOWED },
  BAD_HELLO: { ...HANDSHAKE, retryable: false, close: C.BAD_FRAME },
  HANDSHAKE_TIMEOUT: { ...HANDSHAKE, retryable: true, close: C.HANDSHAKE_TIMEOUT },
  GATEWAY_ID_BOUND: { ...HANDSHAKE, retryable: false, close: C.NOT_ALLOWED },
  AGENT_NOT_SHARED: { status: 403, type: 'permission_error', retryable: false, rpc: -32003, fromPeer: 'FORBIDDEN' },
  UNKNOWN_TYPE: { status: 400, type: 'invalid_request_error', retryable: false, rpc: -32600, fromPeer: 'BAD_FRAME' },
  TRANSFER_REJECTED: { status: 403, type: 'permission_error', retryable: false, rpc: -32003, fromPeer: 'FORBIDDEN' },
  SESSION_NOT_FOUND: { status: 404, type: 'not_found_error', retryable: false, rpc: -32002, fromPeer: 'PEER_UNAVAILABLE' },
  NOT_OWNER: { status: 409, type: 'invalid_request_error', retryable: false, rpc: -32002, fromPeer: 'PEER_UNAVAILABLE' },
  // /acp/rpc contract codes (docs/acp.md); `RPC_INVALID_REQUEST` is JSON-RPC's "Invalid Request" (-32600)
  RPC_INVALID_REQUEST: { status: 400, type: 'invalid_request_error', retryable: false, rpc: -32600, data: 'INVALID_REQUEST' },
  METHOD_NOT_FOUND: { status: 404, type: 'not_found_error', retryable: false, rpc: -32601 },
  INVALID_PARAMS: { status: 400, type: 'invalid_request_error', retryable: false, rpc: -32602 },
  ROUTING_REQUIRED: { status: 400, type: 'invalid_request_error', retryable: false, rpc: -32602 },
  ROUTING_CONFLICT: { status: 400, type: 'invalid_request_error', retryable: false, rpc: -32602 },
  SESSION_CONTINUATION_UNAVAILABLE: { status: 409, type: 'invalid_request_error', retryable: false, rpc: -32002 },
  SESSION_OWNER_UNREACHABLE: { status: 502, type: 'upstream_error', retryable: true, rpc: -32002 },
  SESSION_NOT_OWNED_HERE: { status: 409, type: 'invalid_request_error', retryable: false, rpc: -32002 },
  REMOTE_ERROR: { status: 502, type: 'upstream_error', retryable: false, rpc: -32000 },
  UPDATE_LOG_TRUNCATED: { status: 410, type: 'invalid_request_error', retryable: false, rpc: -32602, failover: false },
  REQUEST_IN_PROGRESS: { status: 409, type: 'invalid_request_error', retryable: true, rpc: -32000 },
  PERMISSION_REQUEST_NOT_FOUND: { status: 404, type: 'not_found_error', retryable: false, rpc: -32602 },
  PERMISSION_SESSION_MISMATCH: { status: 400, type: 'invalid_request_error', retryable: false, rpc: -32602 },
  PERMISSION_OPTION_NOT_OFFERED: { status: 400, type: 'invalid_request_error', retryable: false, rpc: -32602 },
  PERMISSION_ALREADY_DECIDED: { status: 409, type: 'invalid_request_error', retryable: false, rpc: -32602 },
  NO_DISPLAYABLE_OUTPUT: { status: 502, type: 'upstream_error', retryable: true, rpc: -32000 },
  TURN_INTERRUPTED: { status: 503, type: 'server_error', retryable: true, rpc: -32000 },
  MODEL_NOT_ADVERTISED: { status: 502, type: 'upstream_error', retryable: false, rpc: -32000 },
  MODEL_BINDING_UNVERIFIED: { status: 502, type: 'upstream_error', retryable: false, rpc: -32000 },
  UPSTREAM_AUTH_FAILED: { status: 502, type: 'upstream_error', retryable: false, rpc: -32000 },
  UPSTREAM_UNREACHABLE: { status: 502, type: 'upstream_error', retryable: true, rpc: -32000 },
  UPSTREAM_CONNECTION_LOST: { status: 502, type: 'upstream_error', retryable: true, rpc: -32000 },
  PROVIDER_DIRECT_PATH_DISABLED: { status: 410, type: 'invalid_request_error', retryable: false, rpc: -32004 },
  CONFIG_INVALID: { status: 500, type: 'server_error', retryable: false, rpc: -32603, fromPeer: 'PEER_UNAVAILABLE' },
  INTERNAL: { status: 500, type: 'server_error', retryable: false, rpc: -32603, fromPeer: 'PEER_UNAVAILABLE' },
};

/** A row with every default filled in. */
export interface ResolvedErrorSpec extends Required<Omit<ErrorSpec, 'close'>> {
  code: ErrorCode;
  close: BridgeCloseCode | undefined;
}

const RESOLVED = new Map<string, ResolvedErrorSpec>();
for (const code of Object.keys(ERROR_TABLE) as ErrorCode[]) {
  const r = ERROR_TABLE[code];
  RESOLVED.set(code, {
    code,
    status: r.status,
    type: r.type,
    retryable: r.retryable,
    rpc: r.rpc,
    data: r.data ?? code,
    bridge: r.bridge ?? (isBridgeErrorCode(code) ? code : 'INTERNAL'),
    close: r.close,
    fromPeer: r.fromPeer ?? code,
    failover: r.failover ?? true,
  });
}

/** How `code` shows on every surface (defaults applied). */
export function describeError(code: ErrorCode): ResolvedErrorSpec {
  return RESOLVED.get(code)!;
}

/** The catalogue row of a bridge code, as the bridge sees it: default `retryable`, close code, requester's code. */
export function bridgeErrorSpec(code: BridgeErrorCode): { retryable: boolean; closeCode?: BridgeCloseCode; gatewayCode: ErrorCode } {
  const r = describeError(code);
  return r.close === undefined ? { retryable: r.retryable, gatewayCode: r.fromPeer } : { retryable: r.retryable, closeCode: r.close, gatewayCode: r.fromPeer };
}

/** Every bridge code is a catalogue row (checked at load: a new bridge code without a row fails every test). */
for (const b of BRIDGE_ERROR_CODES) if (!RESOLVED.has(b)) throw new Error(`bridge code ${b} has no ERROR_TABLE row`);

export function isErrorCode(v: unknown): v is ErrorCode {
  return typeof v === 'string' && Object.prototype.hasOwnProperty.call(ERROR_TABLE, v);
}

export interface GatewayErrorOptions {
  /** the request field at fault (OpenAI `param`) */
  param?: string;
  /** override the table's HTTP status (e.g. an upstream 4xx passed through) */
  status?: number;
  /** override the table's `retryable` */
  retryable?: boolean;
  /** seconds, from an upstream Retry-After */
  retryAfterSec?: number;
  /** extra machine-readable detail; must never contain secrets */
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly param: string | undefined;
  readonly status: number;
  readonly retryable: boolean;
  readonly retryAfterSec: number | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, opts: GatewayErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'GatewayError';
    this.code = code;
    const spec = ERROR_TABLE[code];
    this.param = opts.param;
    this.status = opts.status ?? spec.status;
    this.retryable = opts.retryable ?? spec.retryable;
    this.retryAfterSec = opts.retryAfterSec;
    this.details = opts.details;
  }

  get type(): OpenAIErrorType {
    return ERROR_TABLE[this.code].type;
  }

  /** OpenAI-style error body: `{ error: { message, type, code, param } }` */
  toOpenAI(): { error: { message: string; type: string; code: string; param: string | null; details?: Record<string, unknown> } } {
    const error: { message: string; type: string; code: string; param: string | null; details?: Record<string, unknown> } = {
      message: this.message,
      type: this.type,
      code: this.code.toLowerCase(),
      param: this.param ?? null,
    };
    if (this.details) error.details = this.details;
    return { error };
  }
}

/**
 * The most characters of another party's free text an error the gateway raises keeps: an upstream's error
 * message (`upstreamText` in src/providers/upstream.ts: every provider, every path, HTTP status or in-band), an
 * agent's (ACP runtimes), an OpenClaw gateway's. The error's message goes to the client, the logs, `lastError`
 * and peers, so what another party wrote is never unbounded there. 1000 keeps the messages upstreams actually
 * send whole (OpenAI's longest rate-limit message with its retry hint and billing link, vLLM's validation
 * errors, Anthropic's), and cuts an HTML error page or a runaway body early. Documented in docs/errors.md
 * ("Upstream messages").
 */
export const RELAYED_TEXT_MAX = 1000;

/** `text` cut to `max` characters (never between the halves of a surrogate pair), `…` marking a cut. */
export function cutText(text: string, max = RELAYED_TEXT_MAX): string {
  if (text.length <= max) return text;
  const end = (text.charCodeAt(max - 1) & 0xfc00) === 0xd800 ? max - 1 : max;
  return `${text.slice(0, end)}…`;
}

/** The one place unknown throwables become GatewayErrors. Never leaks a stack or a secret into the message. */
export function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  if (err && typeof err === 'object' && (err as { name?: string }).name === 'AbortError') {
    return new GatewayError('CANCELLED', 'request cancelled', { cause: err });
  }
  return new GatewayError('INTERNAL', 'internal error', { cause: err });
}

/**
 * What to log for an internal error: its stack and those of its causes (`toGatewayError` wraps what was
 * thrown; the stack that explains it is the cause's). Never sent to a client.
 */
export function stackOf(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err, i = 0; e !== undefined && e !== null && i < 5; i++) {
    if (!(e instanceof Error)) {
      parts.push(describeThrown(e));
      break;
    }
    parts.push(e.stack ?? `${e.name}: ${e.message}`);
    e = e.cause;
  }
  return parts.join('\ncaused by: ');
}

/** Something thrown that is not an Error, as text (JSON.stringify may itself throw: a cycle, a BigInt). */
function describeThrown(v: unknown): string {
  if (typeof v === 'string') return v;
  try {
    return JSON.stringify(v) ?? typeof v;
  } catch {
    return typeof v;
  }
}
