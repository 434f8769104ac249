/**
 * Gateway errors in Google's shape: `{ error: { code, message, status } }` (google.rpc.Status as JSON), with
 * the HTTP status from the error table and `status` the canonical code name for it. Mid-stream the same
 * object is the data of the last SSE event (the API's own way of failing a stream).
 */
import type { GatewayError } from '../../wire/errors.js';

const STATUS: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  405: 'INVALID_ARGUMENT',
  408: 'DEADLINE_EXCEEDED',
  409: 'ABORTED',
  413: 'INVALID_ARGUMENT',
  415: 'INVALID_ARGUMENT',
  429: 'RESOURCE_EXHAUSTED',
  499: 'CANCELLED',
  502: 'UNAVAILABLE',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
};

export function geminiErrorBody(e: GatewayError): { error: { code: number; message: string; status: string; details: unknown[] } } {
  return {
    error: {
      code: e.status,
      message: e.message,
      // a client error the table does not name is still the client's, never INTERNAL
      status: STATUS[e.status] ?? (e.status < 500 ? 'INVALID_ARGUMENT' : 'INTERNAL'),
      details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: e.code, domain: 'switchyard', metadata: e.param ? { param: e.param } : {} }],
    },
  };
}
