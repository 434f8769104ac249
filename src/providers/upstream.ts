/**
 * The upstream HTTP client shared by every HTTP provider: one undici Pool per channel with keep-alive,
 * sized to the channel's concurrency; aborts through the caller's signal; undici's timeouts mapped to
 * gateway error codes; upstream error statuses mapped in one place. A call is one promise: it resolves only
 * with a 2xx answer (src/providers/upstream-body.ts).
 */
import { createRequire } from 'node:module';
import type { Dispatcher, Pool as UndiciPool, errors as UndiciErrors } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';
import { dispatchRequest, type DispatchedResponse, type ExchangeRules, type ReadAnswer } from './upstream-body.js';
import { DEFAULT_MAX_RESPONSE_BYTES } from '../config/schema.js';
import { cutText, GatewayError, type ErrorCode, type GatewayErrorOptions } from '../wire/errors.js';
import { secrets } from '../util/redact.js';
import { MAX_VALUE_DEPTH, pathDeeperThan } from '../wire/json-depth.js';
import type { CancelSignal } from '../util/abort.js';

// The root of undici loads all of it (fetch, WebSocket, caches, mocks…: ~9 MiB of a gateway's idle RSS, measured
// in docs/benchmarks.md); the gateway uses the Pool and the error classes. undici (pinned) has no exports map,
// so these are its own modules, the same instances its root would give (instanceof holds).
const requireCjs = createRequire(import.meta.url);
const Pool = requireCjs('undici/lib/dispatcher/pool.js') as typeof UndiciPool;
const undiciErrors = requireCjs('undici/lib/core/errors.js') as typeof UndiciErrors;

export interface UpstreamOptions {
  /** e.g. https://api.openai.com/v1 — paths are appended to its pathname */
  baseUrl: string;
  /** pool size; default 128 */
  connections?: number | undefined;
  /** time until response headers arrive (first byte); default 60 s */
  headersTimeoutMs?: number | undefined;
  /** max silence between body chunks (stream idle); default 60 s */
  bodyTimeoutMs?: number | undefined;
  /** used in error messages: the channel name, never the URL with credentials */
  label: string;
  /** trust this CA for https upstreams (PEM) */
  ca?: string | undefined;
  /** the most of one answer held at once: a whole non-streaming body, or one event of a stream; default 128 MiB */
  maxResponseBytes?: number | undefined;
  /**
   * The provider's reading of a 404 answer's body (parsed JSON, or undefined when it is not JSON): true when it
   * says the upstream does not serve the model the request named. Such an answer is `modelMissing`'s error
   * (MODEL_NOT_FOUND), which the router neither holds against the channel's health nor sends there again for a
   * while (docs/routing.md, Health); any other 404 is a channel misconfiguration (`errorForStatus`). None: every
   * 404 is the latter.
   */
  modelMissing?: ModelMissing | undefined;
}

/** A provider's reading of an upstream's 404 body (`UpstreamOptions.modelMissing`). */
export type ModelMissing = (body: unknown) => boolean;

/** A 2xx response at its headers, its body still to read. */
export type UpstreamResponse = DispatchedResponse;

export interface UpstreamInit {
  method?: 'GET' | 'POST';
  /** an object, or undici's flat list of names and values */
  headers: Record<string, string> | string[];
  body?: string;
  signal: CancelSignal;
}

export class UpstreamClient {
  private readonly pool: UndiciPool;
  private readonly basePath: string;
  readonly label: string;
  /** the exchange's failures as GatewayErrors, and its bounds, for every request of this client */
  private readonly rules: ExchangeRules;

  constructor(opts: UpstreamOptions) {
    const url = new URL(opts.baseUrl);
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.label = opts.label;
    const label = opts.label;
    const maxBodyBytes = opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    const missing = opts.modelMissing;
    this.rules = {
      maxBodyBytes,
      tooLarge: () => tooLarge(label, 'answer', maxBodyBytes),
      transport: (err) => mapTransportError(err, label, false),
      status: (status, headers, text) =>
        status === 404 && missing !== undefined && missing(jsonOrUndefined(text))
          ? modelMissing(upstreamMessage(text), label)
          : statusError(status, upstreamMessage(text), label, retryAfterOf(headers)),
    };
    this.pool = new Pool(url.origin, {
      connections: opts.connections ?? 128,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 600_000,
      headersTimeout: opts.headersTimeoutMs ?? 60_000,
      bodyTimeout: opts.bodyTimeoutMs ?? 60_000,
      ...(opts.ca ? { connect: { ca: opts.ca } } : {}),
    });
  }

  /**
   * Sends a request and resolves with its 2xx response at the headers, the body still to read (a stream).
   * Any other status rejects with its GatewayError (`statusError`, with the upstream's own message, scrubbed
   * and truncated); a transport failure with `mapTransportError`'s.
   */
  send(path: string, init: UpstreamInit): Promise<UpstreamResponse> {
    return dispatchRequest(this.pool, this.options(path, init), init.signal, 'body', this.rules);
  }

  /**
   * As `send`, but the whole (small) 2xx body is collected as text, as received, and the promise resolves with what
   * `read` makes of it and the answer's headers, at the body's end (a throw from `read` rejects): a body that is an
   * error object reads its Retry-After from those headers (`replyError`, src/providers/reported-error.ts).
   */
  sendReply<T>(path: string, init: UpstreamInit, read: ReadAnswer<T>): Promise<T> {
    return dispatchRequest(this.pool, this.options(path, init), init.signal, 'text', this.rules, read);
  }

  /**
   * As `sendReply`, parsed; a body that is not JSON is UPSTREAM_BAD_RESPONSE. With `read`, resolves with what it
   * makes of the value and the answer's headers (as `sendReply`).
   */
  sendJson<T>(path: string, init: UpstreamInit): Promise<T>;
  sendJson<T, R>(path: string, init: UpstreamInit, read: (value: T, headers: IncomingHttpHeaders) => R): Promise<R>;
  sendJson<T, R>(path: string, init: UpstreamInit, read?: (value: T, headers: IncomingHttpHeaders) => R): Promise<T | R> {
    return this.sendReply(path, init, (text, headers) => {
      const value = this.parsed<T>(text);
      return read ? read(value, headers) : value;
    });
  }

  private parsed<T>(text: string): T {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw notJson(this.label);
    }
    // parsed at any depth, but the gateway serialises parts of an answer again (its own replies, translations)
    if (pathDeeperThan(value, MAX_VALUE_DEPTH)) throw tooDeep(this.label);
    return value as T;
  }

  private options(path: string, init: UpstreamInit): Dispatcher.DispatchOptions {
    return { path: this.basePath + path, method: init.method ?? 'POST', headers: init.headers, body: init.body ?? null };
  }

  /** Called at shutdown, after in-flight requests had their grace period: whatever is left is cut. */
  async close(): Promise<void> {
    await this.pool.destroy().catch(() => undefined);
  }

  /**
   * The channel left the config: the pool takes no new request (undici's graceful `close`), the requests it
   * carries (streams included) run to their end, and its connections are closed then; what still runs after
   * `graceMs` is cut. Resolves when the pool is gone.
   */
  async retire(graceMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs).unref()));
    await Promise.race([this.pool.close().catch(() => undefined), late]);
    clearTimeout(timer);
    await this.pool.destroy().catch(() => undefined);
  }
}

/**
 * Upstream-provided text made safe to relay: secrets and credential shapes scrubbed (an upstream may echo
 * the channel's key or the request headers), whitespace collapsed, then cut to RELAYED_TEXT_MAX characters
 * (src/wire/errors.ts), so a secret is scrubbed whole before any cut. Every provider relays upstream text only
 * through this.
 */
export function upstreamText(text: string): string {
  return cutText(secrets.scrubError(text.replace(/\s+/g, ' ').trim()));
}

/** Extracts a readable message from an upstream error body of any of the providers' shapes (scrubbed). */
export function upstreamMessage(text: string): string {
  let msg = text;
  try {
    const j = JSON.parse(text) as { error?: unknown; message?: unknown };
    const e = j.error;
    if (typeof e === 'string') msg = e;
    else if (e && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string') msg = (e as { message: string }).message;
    else if (typeof j.message === 'string') msg = j.message;
  } catch {
    /* not JSON: use the text */
  }
  return upstreamText(msg);
}

/**
 * An upstream answer's Retry-After (RFC 9110: delay-seconds, or an HTTP date) in whole seconds, at most a day;
 * anything else (`0x10`, `1e23`, a negative number) is no Retry-After at all. It is passed on to clients as sent
 * here. The one reading of it: an error status's (`statusError`), a 2xx answer's whose body is an error
 * object (`replyError`, src/providers/reported-error.ts), and a 2xx stream's once an in-band error is found in it
 * (the chat relay's `checkedChunk`, the Responses pass-through, the Anthropic stream translation and pass-through,
 * the Ollama stream translation).
 */
export function retryAfterOf(headers: IncomingHttpHeaders | undefined): number | undefined {
  // undici gives a repeated header as an array (node's type says string): the first one counts
  const h: unknown = headers?.['retry-after'];
  const first: unknown = Array.isArray(h) ? (h as unknown[])[0] : h;
  const v = typeof first === 'string' ? first.trim() : undefined;
  if (!v) return undefined;
  if (/^\d+$/.test(v)) return Math.min(Number(v), MAX_RETRY_AFTER_SEC);
  // an HTTP date names its day and month (`Wed, 21 Oct 2026 07:28:00 GMT`): Date.parse would take '-5' too
  const d = /[A-Za-z]{3}/.test(v) ? Date.parse(v) : NaN;
  return Number.isNaN(d) ? undefined : Math.min(MAX_RETRY_AFTER_SEC, Math.max(0, Math.ceil((d - Date.now()) / 1000)));
}

const MAX_RETRY_AFTER_SEC = 86_400;

/** Upstream HTTP status → gateway error. Auth failures upstream are the gateway's problem (502), not the client's. */
export function statusError(status: number, message: string, label: string, retryAfterSec?: number): GatewayError {
  const text = `channel ${label}: upstream answered ${status}${message ? `: ${message}` : ''}`;
  return errorForStatus(status, text, { details: { upstreamStatus: status }, ...(retryAfterSec !== undefined ? { retryAfterSec } : {}) });
}

/**
 * An upstream's answer that it does not serve the model the request named (a 404 its provider recognised,
 * `UpstreamOptions.modelMissing`): MODEL_NOT_FOUND, 404 to a client, but retryable, so the router tries another
 * candidate of the model; it does not count against the channel's health, and the router skips this channel for
 * this model for a while (src/router/router.ts, `skipMissing`).
 */
export function modelMissing(message: string, label: string): GatewayError {
  return new GatewayError('MODEL_NOT_FOUND', `channel ${label}: upstream answered 404: ${message || 'model not found'}`, {
    param: 'model',
    retryable: true,
    details: { upstreamStatus: 404 },
  });
}

/** `text` parsed, or undefined when it is not JSON (an error body read for what it says). */
function jsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * The one mapping of an upstream status to a gateway error: an HTTP answer's (`statusError`), and an in-band
 * stream error whose type names a status (Anthropic's `overloaded_error` is its 529), so a client sees the same
 * error whether the upstream failed before its stream or inside it.
 */
export function errorForStatus(status: number, text: string, opts: GatewayErrorOptions): GatewayError {
  if (status === 429) return new GatewayError('RATE_LIMITED', text, opts);
  if (status === 408 || status === 504) return new GatewayError('UPSTREAM_TIMEOUT', text, opts);
  // 529 is Anthropic's "overloaded": the same meaning as 503 for routing and for clients.
  if (status === 503 || status === 529) return new GatewayError('UPSTREAM_ERROR', text, { ...opts, status: 503 });
  if (status >= 500) return new GatewayError('UPSTREAM_ERROR', text, opts);
  if (status === 400 || status === 422 || status === 413)
    return new GatewayError('UPSTREAM_CLIENT_ERROR', text, { ...opts, status: status === 413 ? 413 : 400 });
  // 401/403/404/other 4xx: a channel misconfiguration (key, URL); another channel may serve it. A 404 that says
  // the model is missing is `modelMissing`'s, when the provider recognises it.
  return new GatewayError('UPSTREAM_ERROR', text, opts);
}

/** An upstream answer (a non-streaming body) or one event of its stream over the channel's `maxResponseBytes`. */
export function tooLarge(label: string, what: 'answer' | 'stream event', max: number): GatewayError {
  return new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${label}: upstream ${what} exceeds maxResponseBytes (${max})`, {
    details: { maxResponseBytes: max },
  });
}

/**
 * undici / socket failures → gateway errors. `midStream` distinguishes a failure after data started
 * flowing (UPSTREAM_STREAM_ERROR) from one before (UPSTREAM_ERROR / UPSTREAM_TIMEOUT).
 */
export function mapTransportError(err: unknown, label: string, midStream: boolean): GatewayError {
  if (err instanceof GatewayError) return err;
  const e = err as { name?: string; code?: string; message?: string } | undefined;
  const code = e?.code;
  if (e?.name === 'AbortError' || code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR') {
    return new GatewayError('CANCELLED', `channel ${label}: request cancelled`, { cause: err });
  }
  let gw: ErrorCode = midStream ? 'UPSTREAM_STREAM_ERROR' : 'UPSTREAM_ERROR';
  let what = midStream ? 'upstream stream broke' : 'upstream unreachable';
  if (err instanceof undiciErrors.HeadersTimeoutError || code === 'UND_ERR_HEADERS_TIMEOUT') {
    gw = 'UPSTREAM_TIMEOUT';
    what = 'no response from upstream before the first-byte timeout';
  } else if (err instanceof undiciErrors.BodyTimeoutError || code === 'UND_ERR_BODY_TIMEOUT') {
    gw = 'UPSTREAM_TIMEOUT';
    what = 'upstream went silent (idle timeout)';
  } else if (err instanceof undiciErrors.HTTPParserError || (code === 'UND_ERR_SOCKET' && e?.message?.startsWith('bad '))) {
    // undici's HTTP parser (llhttp) refused the answer, or undici did: "bad response" is an
    // unsolicited `100 Continue` (the gateway never sends `Expect`) or an answer to no request, "bad upgrade"
    // an upgrade nobody asked for. A malformed answer, not a closed connection.
    if (!midStream) gw = 'UPSTREAM_BAD_RESPONSE';
    what = midStream ? 'upstream sent malformed HTTP mid-stream' : 'upstream sent a malformed HTTP response';
  } else if (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'UND_ERR_CLOSED') {
    what = midStream ? 'upstream closed the connection mid-stream' : 'upstream closed the connection';
  } else if (code === 'ECONNREFUSED') {
    what = 'upstream refused the connection';
  } else if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    what = 'upstream host not found';
  }
  return new GatewayError(gw, `channel ${label}: ${what}`, { cause: err, details: code ? { cause: code } : undefined });
}

/** The error for an upstream body nested past MAX_VALUE_DEPTH (UpstreamClient.sendJson, ChatReply.relayed). */
export function tooDeep(label: string): GatewayError {
  return new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${label}: upstream returned JSON nested deeper than ${MAX_VALUE_DEPTH} levels`);
}

/** The error for an upstream body that is not JSON (UpstreamClient.sendJson, ChatReply.relayed). */
export function notJson(label: string): GatewayError {
  return new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${label}: upstream returned a body that is not JSON`);
}
