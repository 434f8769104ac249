/**
 * Gateway errors in Anthropic's shape: `{ type: "error", error: { type, message } }` with the HTTP status
 * from the error table, and the same object as the data of an `error` SSE event mid-stream. The error
 * `type` is Anthropic's for that status, so the SDK raises its matching class (RateLimitError, …).
 */
import type { GatewayError } from '../../wire/errors.js';

const TYPE_BY_STATUS: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  405: 'invalid_request_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  503: 'overloaded_error',
  529: 'overloaded_error',
};

export function anthropicErrorType(e: GatewayError): string {
  return TYPE_BY_STATUS[e.status] ?? (e.status === 504 ? 'timeout_error' : 'api_error');
}

export function anthropicErrorBody(e: GatewayError, requestId?: string): Record<string, unknown> {
  const body: Record<string, unknown> = { type: 'error', error: { type: anthropicErrorType(e), message: e.message, code: e.code.toLowerCase() } };
  if (requestId) body.request_id = requestId;
  return body;
}

/** The `error` event that ends a stream abnormally (never followed by message_stop). */
export function anthropicErrorEvent(e: GatewayError): string {
  return `event: error\ndata: ${JSON.stringify(anthropicErrorBody(e))}\n\n`;
}
