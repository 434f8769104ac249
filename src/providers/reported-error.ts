/**
 * An upstream's error that came with a 2xx status: inside an OpenAI-compatible stream (a chunk, or an `error`
 * event), or as the whole body of a non-streaming answer (some OpenAI-compatible servers and proxies answer
 * 200 `{"error": {…}}`, older vLLM 200 `{"object":"error",…}`; Anthropic's shape is
 * `{"type":"error","error":{"type":"overloaded_error",…}}`, Ollama's `{"error":"…"}`). None carries a status of
 * its own, so the status is read from the error's `code`, else its `type` (`reportedError`), and the error is the
 * one an HTTP answer of that status is (`errorForStatus`): the same code, retry and health treatment. One
 * mechanism for the OpenAI-compatible stream relay (./openai/stream.ts), a relayed non-streaming reply
 * (./chat-reply.ts), embeddings (./embeddings-shape.ts), the native Responses pass-through's failure events and
 * non-streaming answers (./openai/responses-native.ts), the non-streaming answers of Anthropic
 * (./anthropic/response.ts) and Ollama (./ollama/response.ts), and Ollama's `{"error": …}` stream lines
 * (./ollama/stream.ts). An answer that holds an error beside its output
 * (a chat completion's `choices` and `error`, a Response with `status: "failed"`) is read by one rule too
 * (`answerErrorOf`, `answerError`). A non-streaming answer's error carries its Retry-After (`retryAfterOf`), and
 * so does a stream's (chat relay, Responses, Anthropic's translated and passed-through streams, Ollama's). And an
 * upstream's own error event that native pass-through relays is bounded here as every relayed upstream text is
 * (`relayedErrorEvent`).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { cutText, GatewayError, RELAYED_TEXT_MAX } from '../wire/errors.js';
import { errorForStatus, retryAfterOf, upstreamText } from './upstream.js';
import { ERROR_STATUS } from './anthropic/wire.js';
import { secrets } from '../util/redact.js';
import { sseFrame } from '../util/lines.js';
import { isObj } from '../util/is-object.js';

export type UpstreamError = { message?: unknown; type?: unknown; code?: unknown } | string;

/**
 * OpenAI's error codes and types that name the HTTP status OpenAI answers them with (platform.openai.com/docs/
 * guides/error-codes), and the codes of a Responses `error` (a Response with `status: "failed"`, streamed as
 * `response.failed` or sent as a non-streaming answer; the openai SDK's `ResponseError['code']`), which come with
 * no status of their own: the status each stands for. The one table for both paths (`reportedError`). A code the
 * client's request caused (its prompt, an image or file it names) is 400, so it is the client's error, neither
 * retried nor held against the channel; a server-side one is 5xx, retried; `invalid_api_key` and
 * `data_residency_mismatch` are the channel's account (401, 403), an upstream error another channel may not have. A
 * name Anthropic's API uses (`invalid_request_error`, `rate_limit_error`, `overloaded_error`, …, which
 * OpenAI-compatible servers in front of Claude relay) is read from Anthropic's table (ERROR_STATUS), not repeated here.
 */
const OPENAI_ERROR_STATUS: Readonly<Record<string, number>> = {
  context_length_exceeded: 400,
  insufficient_quota: 429,
  invalid_api_key: 401,
  rate_limit_exceeded: 429,
  // the code a nested Responses `error` event has been seen with (Azure OpenAI's 429 code as well)
  too_many_requests: 429,
  server_error: 500,
  // ResponseError codes: the service's side
  vector_store_timeout: 500,
  data_residency_mismatch: 403,
  // ResponseError codes: the request's content (the prompt, an image or a file it names)
  invalid_prompt: 400,
  bio_policy: 400,
  invalid_image: 400,
  invalid_image_format: 400,
  invalid_base64_image: 400,
  invalid_image_url: 400,
  image_too_large: 400,
  image_too_small: 400,
  image_parse_error: 400,
  image_content_policy_violation: 400,
  invalid_image_mode: 400,
  image_file_too_large: 400,
  unsupported_image_media_type: 400,
  empty_image_file: 400,
  failed_to_download_image: 400,
  image_file_not_found: 400,
};

/**
 * The error a body or chunk carries, if it is one: its `error` (OpenAI's form, and vLLM's since it wraps it),
 * or the object itself in the form older vLLM (and servers modelled on it) send, its ErrorResponse at the top
 * level: `{"object":"error","message":…,"type":"BadRequestError","param":null,"code":400}`.
 */
export function errorOf(body: Record<string, unknown>): UpstreamError | undefined {
  const e = body.error;
  if (e !== undefined && e !== null) return e;
  return body.object === 'error' ? body : undefined;
}

/**
 * An error body of an OpenAI-compatible 404 that says the model is not there (`UpstreamOptions.modelMissing`):
 * OpenAI's `code: "model_not_found"` ("The model `x` does not exist or you do not have access to it."), and
 * vLLM's `NotFoundError` "The model `x` does not exist." (under `error`, or at the top level in older vLLM, as
 * `errorOf` reads both). Any other 404 (a wrong base URL's, a proxy's page) is not.
 */
export function openAiModelMissing(body: unknown): boolean {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return false;
  const e = errorOf(body as Record<string, unknown>);
  if (typeof e !== 'object' || e === null) return false;
  return e.code === 'model_not_found' || (typeof e.message === 'string' && /\bmodel\b.*\bdoes not exist\b/i.test(e.message));
}

/**
 * The error an answer holds beside its output (a chat completion or a stream chunk with a `choices` array): its
 * `error`, only when that reads as an error: an object with a string `message`, `type` or `code`, or a number
 * `code`, or a non-empty string (the form Ollama and some proxies send). A successful answer carries no `error`,
 * or `error: null`; an answer with a `choices` array and such an `error` is the error (some proxies put both in an
 * upstream's failure), and one whose `error` reads as none (`{}`, `false`, `""`) is relayed. One rule for a
 * stream's chunks (./openai/stream.ts) and a non-streaming reply (./chat-reply.ts); either is parsed for it only
 * when its scan saw a non-null `error`.
 */
export function answerErrorOf(body: Record<string, unknown>): UpstreamError | undefined {
  const e = body.error;
  if (typeof e === 'string') return e === '' ? undefined : e;
  if (typeof e !== 'object' || e === null || Array.isArray(e)) return undefined;
  const { message, type, code } = e as Record<string, unknown>;
  const reads = typeof message === 'string' || typeof type === 'string' || typeof code === 'string' || typeof code === 'number';
  return reads ? e : undefined;
}

/** Where the error came: inside a stream, or as a non-streaming 2xx answer's body. */
export type ReportedIn = 'stream' | 'reply';

/**
 * The error → the GatewayError of the HTTP status its `code`, else its `type`, names (`errorForStatus`, as an
 * HTTP answer with that status would be): a number from 400 to 599 is that status (as vLLM sends it), a name is
 * looked up in OPENAI_ERROR_STATUS, then in Anthropic's ERROR_STATUS. So an overload or a rate limit reads as it
 * would as an HTTP answer. One that names no status is UPSTREAM_STREAM_ERROR in a stream, UPSTREAM_ERROR (as an
 * unknown status is) in a reply. The message is the upstream's, through `upstreamText` (scrubbed, bounded).
 * `retryAfterSec`: a reply's Retry-After (`retryAfterOf` its headers), passed on as an HTTP answer's is.
 */
export function reportedError(e: UpstreamError | undefined, label: string, where: ReportedIn, retryAfterSec?: number): GatewayError {
  const fallback = where === 'stream' ? 'error event' : 'error body';
  const msg = upstreamText(typeof e === 'string' ? e : typeof e?.message === 'string' ? e.message : fallback);
  const at = where === 'stream' ? 'mid-stream' : 'in a 2xx reply';
  const named = typeof e === 'object' && e !== null ? (statusNamed(e.code) ?? statusNamed(e.type)) : undefined;
  const wait = retryAfterSec !== undefined ? { retryAfterSec } : {};
  if (named === undefined) {
    return new GatewayError(
      where === 'stream' ? 'UPSTREAM_STREAM_ERROR' : 'UPSTREAM_ERROR',
      `channel ${label}: upstream reported an error ${at}: ${msg}`,
      wait,
    );
  }
  const [name, status] = named;
  const text = `channel ${label}: upstream reported ${typeof name === 'number' ? `status ${name}` : name} ${at}: ${msg}`;
  return errorForStatus(status, text, { details: typeof name === 'number' ? { upstreamStatus: status } : { upstreamErrorType: name }, ...wait });
}

/**
 * A non-streaming 2xx body (parsed) that is not the answer asked for (no `choices`, no `data`, no `output`, no
 * `content`, no `message`, no `embeddings`) → the error it reports, or undefined when it reports none (then it is
 * a bad answer). Only such a body is looked at here (an answer that holds an error is `answerError`'s): a relayed
 * reply is scanned, not parsed, and is parsed for this only once the scan found no `choices`. `headers`: the
 * answer's, whose Retry-After the error carries (read only when there is an error).
 */
export function replyError(body: unknown, label: string, headers?: IncomingHttpHeaders): GatewayError | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  const e = errorOf(body as Record<string, unknown>);
  return e === undefined ? undefined : reportedError(e, label, 'reply', retryAfterOf(headers));
}

/**
 * A non-streaming 2xx answer (parsed, with its `choices`, or a Response with its `output`) that holds an error
 * beside them (`answerErrorOf`) → that error, else undefined (the answer is relayed). A Response whose `status` is
 * `"failed"` is an error whatever its `error` holds (one that reads as none names no status: UPSTREAM_ERROR).
 */
export function answerError(body: Record<string, unknown>, label: string, headers?: IncomingHttpHeaders): GatewayError | undefined {
  const e = body.status === 'failed' ? responseFailure(body) : answerErrorOf(body);
  return e === undefined ? undefined : reportedError(e, label, 'reply', retryAfterOf(headers));
}

/**
 * What a failed Response (`status: "failed"`, a non-streaming answer or a streamed `response.failed`'s `response`)
 * reports: its `error` when that reads as one (`answerErrorOf`), else only that it failed. One rule for both paths.
 */
export function responseFailure(response: Record<string, unknown>): UpstreamError {
  return answerErrorOf(response) ?? FAILED;
}

/** A Response with `status: "failed"` and no `error` that reads as one: its message says only that. */
const FAILED: UpstreamError = { message: 'response status "failed"' };

/** Where an upstream's own error event holds its message: Anthropic's `error` event and the Responses `error` event (under `error`, or at the top level as the API reference has it), `response.failed`. */
const EVENT_MESSAGES: ReadonlyArray<readonly string[]> = [['error'], [], ['response', 'error']];

/**
 * An upstream's own error event as native pass-through relays it to the client (`event` its type, `data` its
 * data, already parsed and found to be an object): scrubbed of credentials the upstream may echo
 * (`secrets.scrubError`), and each message it holds (`error.message`, `message`, `response.error.message`) bounded
 * as every relayed upstream text is: scrubbed, then cut to RELAYED_TEXT_MAX characters (`cutText`, `…` where cut).
 * The event is relayed as sent unless a message is cut: then it is serialised again, every other member kept.
 */
export function relayedErrorEvent(data: string, event: string): string {
  // parsed again, once, so its objects are this function's to edit (an error event is rare)
  const ev: unknown = JSON.parse(data);
  let cut = false;
  for (const path of EVENT_MESSAGES) {
    let at: unknown = ev;
    for (const k of path) at = isObj(at) ? at[k] : undefined;
    if (!isObj(at) || typeof at.message !== 'string') continue;
    const scrubbed = secrets.scrubError(at.message);
    if (scrubbed.length <= RELAYED_TEXT_MAX) continue;
    at.message = cutText(scrubbed);
    cut = true;
  }
  return secrets.scrubError(sseFrame(cut ? JSON.stringify(ev) : data, event));
}

/** An error's `code` or `type` with the status it names, if it names one. */
function statusNamed(v: unknown): [string | number, number] | undefined {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 400 && v <= 599 ? [v, v] : undefined;
  if (typeof v !== 'string') return undefined;
  if (Object.hasOwn(OPENAI_ERROR_STATUS, v)) return [v, OPENAI_ERROR_STATUS[v]!];
  if (Object.hasOwn(ERROR_STATUS, v)) return [v, ERROR_STATUS[v]!];
  return undefined;
}
