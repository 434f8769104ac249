/**
 * The `/acp/rpc` wire envelopes: JSON-RPC 2.0 plus the mirrors the xworkmate app reads
 * (../shared/spec/acp-rpc.md, "Transport"). Pure: values in, values out; no I/O.
 *
 *   result        { jsonrpc:"2.0", id, result, type:"res", ok:true, payload: result }
 *   error         { jsonrpc:"2.0", id, error:{ code, message, data:{ code, … } }, type:"res", ok:false }
 *   notification  { jsonrpc:"2.0", method, params, type:"event", event: method, payload: params }
 *
 * `error.data.code` is a stable machine code (e.g. ROUTING_REQUIRED, SESSION_CONTINUATION_UNAVAILABLE, or a
 * gateway ErrorCode such as MODEL_NOT_FOUND); clients branch on it, never on the message.
 */
import { describeError, GatewayError, toGatewayError, type ErrorCode } from '../../wire/errors.js';
import { updateJson } from '../../acp/update-json.js';

export type RpcId = string | number;

/**
 * A validated request. `id` undefined (no `id` member) = a notification: it runs, nothing is replied. `id: null` is
 * a request (JSON-RPC 2.0 §4: an id is a String, Number or NULL; only a request without `id` is a notification):
 * it is answered, with `id: null`.
 */
export interface RpcRequest {
  id: RpcId | null | undefined;
  method: string;
  params: Record<string, unknown>;
}

/** JSON-RPC codes used on /acp/rpc, as the error catalogue (src/wire/errors.ts) assigns them. */
const rpcOf = (code: ErrorCode): number => describeError(code).rpc;
export const RPC = {
  PARSE_ERROR: rpcOf('INVALID_JSON'),
  INVALID_REQUEST: rpcOf('RPC_INVALID_REQUEST'),
  METHOD_NOT_FOUND: rpcOf('METHOD_NOT_FOUND'),
  INVALID_PARAMS: rpcOf('INVALID_PARAMS'),
  INTERNAL: rpcOf('INTERNAL'),
  SERVER_ERROR: rpcOf('UPSTREAM_ERROR'),
  UNAUTHORIZED: rpcOf('UNAUTHORIZED'),
  SESSION_CONTINUATION_UNAVAILABLE: rpcOf('SESSION_CONTINUATION_UNAVAILABLE'),
  FORBIDDEN: rpcOf('FORBIDDEN'),
  PROVIDER_DIRECT_PATH_DISABLED: rpcOf('PROVIDER_DIRECT_PATH_DISABLED'),
} as const;

/**
 * An error destined for a JSON-RPC error envelope. `dataCode` becomes `error.data.code`; `httpStatus` is used
 * only for transport-level errors (auth, origin, parse, body size), method-level errors always go out as 200.
 */
export class AcpRpcError extends Error {
  constructor(
    readonly rpcCode: number,
    readonly dataCode: string,
    message: string,
    readonly data: Record<string, unknown> = {},
    readonly httpStatus = 200,
    /** a transport-level refusal's `Retry-After` (seconds), from the gateway error it was made of */
    readonly retryAfterSec?: number,
  ) {
    super(message);
    this.name = 'AcpRpcError';
  }
}

/** -32602 naming the offending field (`data.field`). */
export function invalidParams(field: string, message: string, dataCode = 'INVALID_PARAMS'): AcpRpcError {
  return new AcpRpcError(RPC.INVALID_PARAMS, dataCode, message, { field });
}

/**
 * The one place unknown throwables become AcpRpcErrors: a GatewayError's code → the catalogue's JSON-RPC code
 * and `data.code` (e.g. INVALID_JSON → -32700 PARSE_ERROR, the name JSON-RPC clients know).
 */
export function toRpcError(err: unknown): AcpRpcError {
  if (err instanceof AcpRpcError) return err;
  const e: GatewayError = toGatewayError(err);
  const data: Record<string, unknown> = {};
  if (e.param) data.field = e.param;
  if (e.details) Object.assign(data, e.details);
  if (e.retryable) data.retryable = true;
  const spec = describeError(e.code);
  return new AcpRpcError(spec.rpc, spec.data, e.message, data, e.status, e.retryAfterSec);
}

export function resultEnvelope(id: RpcId | null, result: unknown): Record<string, unknown> {
  return { jsonrpc: '2.0', id, result, type: 'res', ok: true, payload: result };
}

export function errorEnvelope(id: RpcId | null, err: unknown): Record<string, unknown> {
  const e = toRpcError(err);
  return { jsonrpc: '2.0', id, error: { code: e.rpcCode, message: e.message, data: { ...e.data, code: e.dataCode } }, type: 'res', ok: false };
}

/**
 * A notification's envelope as JSON text: `{ jsonrpc, method, params, type: "event", event: method, payload:
 * params }`, built around the params' JSON made once per update (src/acp/update-json.ts) instead of serialising
 * the params twice per stream.
 */
export function notificationText(method: string, params: Record<string, unknown>): string {
  const m = JSON.stringify(method);
  const p = updateJson(params);
  return `{"jsonrpc":"2.0","method":${m},"params":${p},"type":"event","event":${m},"payload":${p}}`;
}

export type ParseOutcome = { ok: true; request: RpcRequest } | { ok: false; id: RpcId | null; error: AcpRpcError };

const isId = (v: unknown): v is RpcId => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));

/**
 * An integer id past 2^53 − 1 was rounded when its JSON was read (12345678901234567891 reads as
 * 12345678901234567000): echoed, it would not be the id the client sent, so it is refused rather than answered
 * under another id. Such ids travel as strings.
 */
const roundedId = (v: RpcId): boolean => typeof v === 'number' && Number.isInteger(v) && !Number.isSafeInteger(v);

/**
 * Validates one decoded JSON value as a JSON-RPC 2.0 request. Batches (arrays) are not supported.
 * Failures carry the request's id when it was readable, so the error can still be correlated.
 */
export function parseRequest(value: unknown): ParseOutcome {
  const bad = (id: RpcId | null, message: string, code: ErrorCode = 'RPC_INVALID_REQUEST', field?: string): ParseOutcome => {
    const spec = describeError(code);
    return { ok: false, id, error: new AcpRpcError(spec.rpc, spec.data, message, field ? { field } : {}, 400) };
  };
  if (Array.isArray(value)) return bad(null, 'batch requests are not supported; send one JSON-RPC request object');
  if (!value || typeof value !== 'object') return bad(null, 'request must be a JSON-RPC 2.0 object');
  const o = value as Record<string, unknown>;
  const hasId = Object.prototype.hasOwnProperty.call(o, 'id') && o.id !== undefined;
  if (hasId && o.id !== null && !isId(o.id)) return bad(null, 'id must be a string, a number or null', 'RPC_INVALID_REQUEST', 'id');
  if (hasId && roundedId(o.id as RpcId))
    return bad(null, 'id is an integer beyond 2^53 - 1, which cannot be echoed exactly; send it as a string', 'RPC_INVALID_REQUEST', 'id');
  const id = hasId ? (o.id as RpcId | null) : null;
  if (o.jsonrpc !== '2.0') return bad(id, 'jsonrpc must be "2.0"', 'RPC_INVALID_REQUEST', 'jsonrpc');
  if (typeof o.method !== 'string' || o.method.length === 0) return bad(id, 'method is required (a non-empty string)', 'RPC_INVALID_REQUEST', 'method');
  let params: Record<string, unknown> = {};
  if (o.params !== undefined && o.params !== null) {
    if (typeof o.params !== 'object' || Array.isArray(o.params)) return bad(id, 'params must be an object', 'INVALID_PARAMS', 'params');
    params = o.params as Record<string, unknown>;
  }
  return { ok: true, request: { id: hasId ? (o.id as RpcId | null) : undefined, method: o.method, params } };
}
