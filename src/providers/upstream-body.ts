/**
 * One upstream exchange on undici's `dispatch` with a handler of our own, instead of `Pool.request`.
 * `request` wraps every call in an AsyncResource, builds a Node `Readable` for the body (whose async iterator
 * adds a promise and stream bookkeeping per read) and parses headers twice; on the gateway's hot path that was
 * about a tenth of the CPU per request (docs/benchmarks.md). Here the response body is a small pull queue:
 * each network read is one Buffer, handed to a waiting `next()` directly or queued; reading pauses the socket
 * when HIGH_WATER bytes wait unread and resumes when they are taken (the backpressure `Readable` gave).
 *
 * Contract kept from `request`: the promise resolves at the response's headers (any status) and rejects with
 * undici's error (timeouts, socket errors) or the signal's reason before them; after them, a failure rejects
 * the body's pending or next read. Leaving the body early (`return()`, a `break` out of `for await`) aborts
 * the request, as destroying the `Readable` did.
 */
import type { Dispatcher } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';
import type { CancelSignal } from '../util/abort.js';

/** The response body: read it once, as an async iterable of the network's reads or whole with `text()`. */
export interface UpstreamBody extends AsyncIterable<Buffer> {
  text(): Promise<string>;
}

/** A body's reader (its async iterator), which may also hand over reads already received without a promise. */
export interface BodyReads extends AsyncIterator<Uint8Array | string> {
  takeQueued?(): Uint8Array | undefined;
  /** true once the body ended and every read was taken (`next()` would report done); absent: unknown */
  readonly complete?: boolean;
}

export interface DispatchedResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: UpstreamBody;
}

const HIGH_WATER = 64 * 1024;
const DONE: IteratorResult<Buffer> = { done: true, value: undefined };

type Waiter = { resolve: (r: IteratorResult<Buffer>) => void; reject: (e: Error) => void };

class Exchange implements Dispatcher.DispatchHandler, UpstreamBody, AsyncIterator<Buffer> {
  private controller: Dispatcher.DispatchController | undefined;
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private ended = false;
  private failure: Error | undefined;
  private waiter: Waiter | undefined;
  /** the response's headers were handed over: failures from then on go to the body's reader */
  private responded = false;
  private onAbort: (() => void) | undefined;
  private iterating = false;
  /** `text()` is reading: every read is queued until the end */
  private collecting = false;

  constructor(
    private readonly signal: CancelSignal | undefined,
    private readonly onStart: (r: DispatchedResponse) => void,
    private readonly onFail: (e: Error) => void,
  ) {
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
    this.responded = true;
    this.onStart({ status: statusCode, headers, body: this });
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
    if (this.queued >= HIGH_WATER && !this.collecting && !controller.paused) controller.pause();
  }

  onResponseEnd(): void {
    this.ended = true;
    this.unlisten();
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
    if (!this.responded) {
      this.onFail(err);
      return;
    }
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w.reject(err);
    }
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

  /** The whole body as UTF-8 text: collected as the reads arrive, with no promise per read. */
  text(): Promise<string> {
    if (this.iterating) return Promise.reject(new Error('upstream body already read'));
    this.iterating = true;
    if (this.failure) return Promise.reject(this.failure);
    if (this.ended) return Promise.resolve(this.drain());
    return new Promise((resolve, reject) => {
      // the reads keep queueing (never paused: a whole body is wanted); the end resolves with all of them
      this.waiter = { resolve: () => resolve(this.drain()), reject };
      this.collecting = true;
      this.controller?.resume();
    });
  }

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

/** Sends one request on `dispatcher`; resolves at the response's headers (see the top of this file). */
export function dispatchRequest(dispatcher: Dispatcher, opts: Dispatcher.DispatchOptions, signal: CancelSignal | undefined): Promise<DispatchedResponse> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const ex = new Exchange(signal, resolve, reject);
    try {
      dispatcher.dispatch(opts, ex);
    } catch (err) {
      ex.unlisten();
      reject(err instanceof Error ? err : new Error(String(err)));
    }
  });
}
