/**
 * One upstream exchange on undici's `dispatch` with a handler of our own, instead of `Pool.request`.
 * `request` wraps every call in an AsyncResource, builds a Node `Readable` for the body (whose async iterator
 * adds a promise and stream bookkeeping per read) and parses headers twice; on the gateway's hot path that was
 * about a tenth of the CPU per request (docs/benchmarks.md). Here the response body is a small pull queue:
 * each network read is one Buffer, handed to a waiting `next()` directly or queued; reading pauses the socket
 * when HIGH_WATER bytes wait unread and resumes when they are taken (the backpressure `Readable` gave).
 *
 * One promise per exchange, settled by the handler itself (`dispatchRequest`):
 * - a 2xx answer resolves it: at the headers with the body to read (`want: 'body'`), or at the body's end with
 *   what the caller's `read` makes of its text and the answer's headers (`want: 'text'`, the whole body collected
 *   as it arrives, no promise per read; a throw from `read` rejects it);
 * - any other status rejects it, once its body (the upstream's message) is read, with `rules.status(…)`;
 * - a failure before that (timeouts, socket errors, the signal) rejects it with `rules.transport(err)`; after a
 *   2xx body was handed over, a failure rejects the body's pending or next read instead, unmapped (the stream
 *   readers map it as mid-stream).
 * So a provider's call is one `await`, where `request` + a status check + reading the text took five promises
 * (docs/benchmarks.md, "Ninth pass"). Leaving the body early (`return()`, a `break` out of `for await`) aborts
 * the request, as destroying the `Readable` did.
 *
 * What is collected whole is bounded: a 2xx body read as text by the client's `maxBodyBytes` (the channel's
 * `maxResponseBytes`; over it the request is aborted and the promise rejects with `tooLarge()`), an error
 * status's message by ERROR_BODY_MAX (over it the request is aborted and the status rejects with what came). A
 * streamed body is bounded per event by its reader (`maxEventChars`, src/providers/stream-reader.ts).
 */
import type { Dispatcher } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';
import type { CancelSignal } from '../util/abort.js';

/** The response body: read it once, as an async iterable of the network's reads. */
export type UpstreamBody = AsyncIterable<Buffer>;

/** A body's reader (its async iterator), which may also hand over reads already received without a promise. */
export interface BodyReads extends AsyncIterator<Uint8Array | string> {
  takeQueued?(): Uint8Array | undefined;
  /** true once the body ended and every read was taken (`next()` would report done); absent: unknown */
  readonly complete?: boolean;
  /** the longest event a stream reader may hold unfinished (decoded characters); absent: the reader's default */
  readonly maxEventChars?: number;
}

export interface DispatchedResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: UpstreamBody;
}

/** How an exchange's failures become the caller's errors, and its bounds; built once per client, not per request. */
export interface ExchangeRules {
  /** the most of a 2xx body collected whole (`want: 'text'`), and of one event of a streamed one */
  readonly maxBodyBytes: number;
  /** a 2xx body over `maxBodyBytes` */
  tooLarge(): Error;
  /** a transport failure (or the signal's reason) before the answer was handed over */
  transport(err: unknown): Error;
  /** a non-2xx answer; `text` is its body ('' when the body failed too) */
  status(status: number, headers: IncomingHttpHeaders, text: string): Error;
}

/** What the exchange's promise resolves with: the 2xx response at its headers, or its body's text at its end. */
export type Want = 'body' | 'text';

/**
 * A 2xx body collected whole (`want: 'text'`) → what the exchange resolves with, given the answer's headers (a body
 * that turns out to be an error object reads its Retry-After from them). Called once, at the body's end; a throw
 * rejects the exchange with it.
 */
export type ReadAnswer<T> = (text: string, headers: IncomingHttpHeaders) => T;

const HIGH_WATER = 64 * 1024;
/** the most of an error status's body read for its message (the message relayed is cut to RELAYED_TEXT_MAX characters, src/wire/errors.ts) */
export const ERROR_BODY_MAX = 64 * 1024;
const DONE: IteratorResult<Buffer> = { done: true, value: undefined };

type Waiter = { resolve: (r: IteratorResult<Buffer>) => void; reject: (e: Error) => void };

class Exchange implements Dispatcher.DispatchHandler, AsyncIterable<Buffer>, AsyncIterator<Buffer> {
  private controller: Dispatcher.DispatchController | undefined;
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private ended = false;
  private failure: Error | undefined;
  private waiter: Waiter | undefined;
  private onAbort: (() => void) | undefined;
  private iterating = false;
  /** the whole body is being read (`want: 'text'`, or an error status's message): every read is queued until the end */
  private collecting = false;
  /** the exchange's promise is still to settle */
  private settle: { resolve: (v: unknown) => void; reject: (e: Error) => void; want: Want } | undefined;
  /** what may be collected: `maxBodyBytes` for a 2xx body, ERROR_BODY_MAX for an error status's */
  private limit = 0;
  /** a non-2xx status whose body is being read for the rejection */
  private errorStatus = 0;
  /** the answer's headers while its body is collected whole (an error status's, or a 2xx body's for `read`) */
  private headers: IncomingHttpHeaders | undefined;

  constructor(
    private readonly signal: CancelSignal | undefined,
    resolve: (v: unknown) => void,
    reject: (e: Error) => void,
    want: Want,
    private readonly rules: ExchangeRules,
    private readonly read: ReadAnswer<unknown> | undefined,
  ) {
    this.settle = { resolve, reject, want };
    if (signal) {
      this.onAbort = () => this.controller?.abort(abortReason(signal));
      signal.addEventListener('abort', this.onAbort, { once: true });
    }
  }

  // ---- undici's side ----------------------------------------------------------------------------------------

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.signal?.aborted) controller.abort(abortReason(this.signal));
  }

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (statusCode < 200) return; // 1xx: informational, the real answer follows
    const s = this.settle!;
    if (statusCode >= 300) {
      // the upstream's message is in the body: read it whole, then reject (onResponseEnd / onResponseError)
      this.errorStatus = statusCode;
      this.headers = headers;
      this.collecting = true;
      this.limit = ERROR_BODY_MAX;
      return;
    }
    if (s.want === 'text') {
      this.headers = headers;
      this.collecting = true;
      this.limit = this.rules.maxBodyBytes;
      return;
    }
    // handed over: failures from now on go to the body's reader
    this.settle = undefined;
    s.resolve({ status: statusCode, headers, body: this });
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const w = this.waiter;
    if (w && !this.collecting) {
      this.waiter = undefined;
      w.resolve({ done: false, value: chunk });
      return;
    }
    this.queue.push(chunk);
    this.queued += chunk.length;
    if (this.collecting) {
      if (this.queued > this.limit) this.overLimit(controller);
    } else if (this.queued >= HIGH_WATER && !controller.paused) controller.pause();
  }

  /** A body collected whole went over its bound: settle now and abort the rest (its connection is closed). */
  private overLimit(controller: Dispatcher.DispatchController): void {
    const s = this.settle!;
    this.settle = undefined;
    this.collecting = false;
    let err: Error;
    if (this.errorStatus !== 0) {
      // the message is at the start: what came is enough
      err = this.rules.status(this.errorStatus, this.headers!, this.drain());
    } else {
      this.queue.length = 0;
      this.queued = 0;
      err = this.rules.tooLarge();
    }
    this.failure = err;
    this.unlisten();
    s.reject(err);
    controller.abort(err);
  }

  onResponseEnd(): void {
    this.ended = true;
    this.unlisten();
    const s = this.settle;
    if (s) {
      this.settle = undefined;
      const text = this.drain();
      if (this.errorStatus !== 0) s.reject(this.rules.status(this.errorStatus, this.headers!, text));
      else this.readAnswer(s, text);
      return;
    }
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w.resolve(DONE);
    }
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    this.unlisten();
    if (this.ended) return;
    this.failure = err;
    const s = this.settle;
    if (s) {
      this.settle = undefined;
      this.queue.length = 0;
      this.queued = 0;
      // an error status whose body failed too: the status is what matters
      s.reject(this.errorStatus !== 0 ? this.rules.status(this.errorStatus, this.headers!, '') : this.rules.transport(err));
      return;
    }
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w.reject(err);
    }
  }

  /** A 2xx body collected whole: the caller's `read` of it settles the exchange. */
  private readAnswer(s: { resolve: (v: unknown) => void; reject: (e: Error) => void }, text: string): void {
    let value: unknown;
    try {
      value = this.read!(text, this.headers!);
    } catch (err) {
      s.reject(err as Error);
      return;
    }
    s.resolve(value);
  }

  // ---- the reader's side ------------------------------------------------------------------------------------

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    if (this.iterating) throw new Error('upstream body already read');
    this.iterating = true;
    return this;
  }

  next(): Promise<IteratorResult<Buffer>> {
    if (this.queue.length > 0) return Promise.resolve({ done: false, value: this.shift() });
    if (this.failure) return Promise.reject(this.failure);
    if (this.ended) return Promise.resolve(DONE);
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  /**
   * A read already received, handed over without a promise, or undefined when none is queued (the end and a
   * failure are left to `next()`). One network read often holds many of the upstream's writes (each its own
   * chunk of a chunked body, delivered here one by one): a reader drains them with this and parses them at once.
   */
  takeQueued(): Buffer | undefined {
    return this.queue.length > 0 ? this.shift() : undefined;
  }

  get complete(): boolean {
    return this.ended && this.queue.length === 0;
  }

  get maxEventChars(): number {
    return this.rules.maxBodyBytes;
  }

  return(): Promise<IteratorResult<Buffer>> {
    if (!this.ended && !this.failure) {
      this.failure = new Error('upstream body abandoned');
      this.unlisten();
      this.controller?.abort(this.failure);
      // a read still waiting settles now, whatever undici does with the abort
      const w = this.waiter;
      if (w) {
        this.waiter = undefined;
        w.reject(this.failure);
      }
    }
    this.queue.length = 0;
    this.queued = 0;
    return Promise.resolve(DONE);
  }

  /** Everything queued, as UTF-8 text (the body collected whole). */
  private drain(): string {
    const q = this.queue;
    const text = (q.length === 1 ? q[0]! : Buffer.concat(q, this.queued)).toString('utf8');
    q.length = 0;
    this.queued = 0;
    return text;
  }

  // ---- internals --------------------------------------------------------------------------------------------

  private shift(): Buffer {
    const value = this.queue.shift()!;
    this.queued -= value.length;
    const c = this.controller;
    if (c?.paused && this.queued < HIGH_WATER / 2) c.resume();
    return value;
  }

  unlisten(): void {
    if (this.onAbort) {
      this.signal!.removeEventListener('abort', this.onAbort);
      this.onAbort = undefined;
    }
  }
}

function abortReason(signal: CancelSignal): Error {
  const r: unknown = signal.reason;
  if (r instanceof Error) return r;
  const e = new Error('This operation was aborted');
  e.name = 'AbortError';
  return e;
}

/**
 * Sends one request on `dispatcher`: resolves with a 2xx response at its headers (`want: 'body'`) or with what
 * `read` makes of its whole body and headers (`want: 'text'`); rejects with `rules`' mapping otherwise (see the
 * top of this file).
 */
export function dispatchRequest(
  dispatcher: Dispatcher,
  opts: Dispatcher.DispatchOptions,
  signal: CancelSignal | undefined,
  want: 'body',
  rules: ExchangeRules,
): Promise<DispatchedResponse>;
export function dispatchRequest<T>(
  dispatcher: Dispatcher,
  opts: Dispatcher.DispatchOptions,
  signal: CancelSignal | undefined,
  want: 'text',
  rules: ExchangeRules,
  read: ReadAnswer<T>,
): Promise<T>;
export function dispatchRequest(
  dispatcher: Dispatcher,
  opts: Dispatcher.DispatchOptions,
  signal: CancelSignal | undefined,
  want: Want,
  rules: ExchangeRules,
  read?: ReadAnswer<unknown>,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(rules.transport(abortReason(signal)));
      return;
    }
    const ex = new Exchange(signal, resolve, reject, want, rules, read);
    try {
      dispatcher.dispatch(opts, ex);
    } catch (err) {
      ex.unlisten();
      reject(rules.transport(err));
    }
  });
}
