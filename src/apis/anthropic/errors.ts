/**
 * Gateway errors in Anthropic's shape: `{ type: "error", error: { type, message } }` with the HTTP status
 * from the error table, and the same object as the data of an `error` SSE event mid-stream. The error
 * `type` is Anthropic's for that status, so the SDK raises its matching class (RateLimitError, …).
 */
import type { GatewayError } from '../../wire/errors.js';
import { ERROR_STATUS } from '../../providers/anthropic/wire.js';

/** Anthropic's type for each status it names (ERROR_STATUS read backwards), and the two statuses it has no type of its own for. */
const TYPE_BY_STATUS: Readonly<Record<number, string>> = {
  ...Object.fromEntries(Object.entries(ERROR_STATUS).map(([type, status]) => [status, type])),
  405: 'invalid_request_error',
  503: 'overloaded_error',
};

/** A client error Anthropic has no type of its own for (408, 409, 415, …) is still the client's: never `api_error`, its server-error type. */
export function anthropicErrorType(e: GatewayError): string {
  return TYPE_BY_STATUS[e.status] ?? (e.status < 500 ? 'invalid_request_error' : 'api_error');
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
