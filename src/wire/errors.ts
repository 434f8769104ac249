/**
 * One error class for the whole gateway, and one table that maps each code to how it shows on every surface:
 * HTTP status + OpenAI error `type` on /v1/*, JSON-RPC code on /acp/rpc, `retryable` on the bridge.
 * Every code is documented in docs/errors.md. Nothing here depends on anything else in the project.
 */

export type ErrorCode =
  // request problems (client side)
  | 'INVALID_JSON'
  | 'INVALID_REQUEST'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'MODEL_NOT_FOUND'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED'
  // capacity
  | 'OVERLOADED'
  | 'RATE_LIMITED'
  | 'SHUTTING_DOWN'
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
  // /acp/rpc method level (JSON-RPC -32602 / -32601 / -32002)
  | 'INVALID_PARAMS'
  | 'ROUTING_REQUIRED'
  | 'ROUTING_CONFLICT'
  | 'METHOD_NOT_FOUND'
  | 'SESSION_CONTINUATION_UNAVAILABLE'
  | 'SESSION_OWNER_UNREACHABLE'
  | 'SESSION_NOT_OWNED_HERE'
  | 'REMOTE_ERROR'
  // upstream connections (OpenClaw gateway)
  | 'UPSTREAM_AUTH_FAILED'
  | 'UPSTREAM_UNREACHABLE'
  | 'UPSTREAM_CONNECTION_LOST'
  // config / generic
  | 'CONFIG_INVALID'
  | 'INTERNAL';

export interface ErrorSpec {
  /** HTTP status on /v1/* and /admin/* */
  status: number;
  /** OpenAI error `type` field */
  type: 'invalid_request_error' | 'authentication_error' | 'permission_error' | 'not_found_error' | 'rate_limit_error' | 'server_error' | 'timeout_error' | 'upstream_error';
  /** whether another candidate (or a later attempt) may succeed */
  retryable: boolean;
  /** JSON-RPC error code on /acp/rpc */
  rpc: number;
}

export const ERROR_TABLE: Readonly<Record<ErrorCode, ErrorSpec>> = {
  INVALID_JSON: { status: 400, type: 'invalid_request_error', retryable: false, rpc: -32700 },
  INVALID_REQUEST: { status: 400, type: 'invalid_request_error', retryable: false, rpc: -32602 },
  UNAUTHORIZED: { status: 401, type: 'authentication_error', retryable: false, rpc: -32001 },
  FORBIDDEN: { status: 403, type: 'permission_error', retryable: false, rpc: -32003 },
  NOT_FOUND: { status: 404, type: 'not_found_error', retryable: false, rpc: -32601 },
  METHOD_NOT_ALLOWED: { status: 405, type: 'invalid_request_error', retryable: false, rpc: -32600 },
  MODEL_NOT_FOUND: { status: 404, type: 'not_found_error', retryable: false, rpc: -32602 },
  PAYLOAD_TOO_LARGE: { status: 413, type: 'invalid_request_error', retryable: false, rpc: -32600 },
  UNSUPPORTED: { status: 400, type: 'invalid_request_error', retryable: false, rpc: -32602 },
  OVERLOADED: { status: 503, type: 'server_error', retryable: true, rpc: -32000 },
  RATE_LIMITED: { status: 429, type: 'rate_limit_error', retryable: true, rpc: -32000 },
  SHUTTING_DOWN: { status: 503, type: 'server_error', retryable: true, rpc: -32000 },
  UPSTREAM_ERROR: { status: 502, type: 'upstream_error', retryable: true, rpc: -32000 },
  UPSTREAM_TIMEOUT: { status: 504, type: 'timeout_error', retryable: true, rpc: -32000 },
  UPSTREAM_BAD_RESPONSE: { status: 502, type: 'upstream_error', retryable: true, rpc: -32000 },
  UPSTREAM_STREAM_ERROR: { status: 502, type: 'upstream_error', retryable: true, rpc: -32000 },
  UPSTREAM_CLIENT_ERROR: { status: 400, type: 'invalid_request_error', retryable: false, rpc: -32602 },
  CHANNEL_NOT_SHARED: { status: 403, type: 'permission_error', retryable: false, rpc: -32003 },
  LOOP_DETECTED: { status: 508, type: 'server_error', retryable: false, rpc: -32000 },
  PEER_UNAVAILABLE: { status: 502, type: 'upstream_error', retryable: true, rpc: -32000 },
  BAD_FRAME: { status: 400, type: 'invalid_request_error', retryable: false, rpc: -32600 },
  CANCELLED: { status: 499, type: 'server_error', retryable: false, rpc: -32800 },
  INVALID_PARAMS: { status: 400, type: 'invalid_request_error', retryable: false, rpc: -32602 },
  ROUTING_REQUIRED: { status: 400, type: 'invalid_request_error', retryable: false, rpc: -32602 },
  ROUTING_CONFLICT: { status: 400, type: 'invalid_request_error', retryable: false, rpc: -32602 },
  METHOD_NOT_FOUND: { status: 404, type: 'not_found_error', retryable: false, rpc: -32601 },
  SESSION_CONTINUATION_UNAVAILABLE: { status: 409, type: 'invalid_request_error', retryable: false, rpc: -32002 },
  SESSION_OWNER_UNREACHABLE: { status: 502, type: 'upstream_error', retryable: false, rpc: -32002 },
  SESSION_NOT_OWNED_HERE: { status: 409, type: 'invalid_request_error', retryable: false, rpc: -32002 },
  REMOTE_ERROR: { status: 502, type: 'upstream_error', retryable: false, rpc: -32000 },
  UPSTREAM_AUTH_FAILED: { status: 502, type: 'upstream_error', retryable: false, rpc: -32000 },
  UPSTREAM_UNREACHABLE: { status: 502, type: 'upstream_error', retryable: true, rpc: -32000 },
  UPSTREAM_CONNECTION_LOST: { status: 502, type: 'upstream_error', retryable: true, rpc: -32000 },
  CONFIG_INVALID: { status: 500, type: 'server_error', retryable: false, rpc: -32603 },
  INTERNAL: { status: 500, type: 'server_error', retryable: false, rpc: -32603 },
};

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

  get type(): ErrorSpec['type'] {
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

/** The one place unknown throwables become GatewayErrors. Never leaks a stack or a secret into the message. */
export function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  if (err && typeof err === 'object' && (err as { name?: string }).name === 'AbortError') {
    return new GatewayError('CANCELLED', 'request cancelled', { cause: err });
  }
  return new GatewayError('INTERNAL', 'internal error', { cause: err });
}
