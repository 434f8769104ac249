/**
 * An upstream's streamed body as a ChunkStream: the one reader behind every provider stream (the OpenAI relay,
 * the Anthropic translation, the native Messages and Responses pass-throughs over SSE, and Ollama's NDJSON).
 * Each provider supplies only a `StreamTranslator`: what one event (an SSE event, or an NDJSON line) becomes,
 * and which one ends the stream.
 *
 * Why a class and not an async generator per provider: undici hands each chunk of a chunked body over on its
 * own, and an upstream writes each event as its own chunk, so a generator ran a promise chain, and the edge a
 * write, per event. Here every read already received is framed (SseParser / LineParser, src/util/lines.ts) and
 * translated at once, synchronously, into a queue the edge drains with `takeReady`; `next()` awaits only when
 * nothing is queued. docs/benchmarks.md has what this bought.
 *
 * Stream integrity (src/providers/provider.ts):
 * - An event the translator rejects ends the stream after the chunks before it, even those of the same read,
 *   and never hands over a chunk behind it.
 * - A body that ends before the terminal event is an abnormal end (`unterminated()`); a transport failure is
 *   mapped as mid-stream (`mapTransportError`).
 * - After the terminal event nothing more is translated. The stream ends there for its reader, and the rest of
 *   the body is read to its end in the background rather than abandoned: abandoning it would abort the request
 *   (an AbortError per stream) and cost the keep-alive connection. A body that then fails changes nothing. A
 *   body still open `DRAIN_AFTER_END_MS` after its terminal event is abandoned then: the answer is whole, and
 *   an upstream that never ends its body would otherwise hold a pooled connection for the channel's timeout.
 * - One event is bounded: an event (or line) still unfinished past the body's `maxEventChars` (the channel's
 *   `maxResponseBytes`, as decoded characters) ends the stream with UPSTREAM_BAD_RESPONSE after the chunks
 *   before it, so an upstream that never ends an event cannot grow the gateway's memory without bound.
 */
import { GatewayError } from '../wire/errors.js';
import { LineParser, SseParser, type Framer } from '../util/lines.js';
import type { ChunkStream, StreamChunk } from './provider.js';
import { mapTransportError, tooLarge } from './upstream.js';
import type { BodyReads } from './upstream-body.js';
import { DEFAULT_MAX_RESPONSE_BYTES } from '../config/schema.js';

export interface StreamTranslator {
  /**
   * One event (`name`: its SSE `event:` field; undefined for a line) → the chunks it stands for, pushed to
   * `out` (none is fine). Returns true for the event that ends the stream normally. Throws the GatewayError of
   * an event that ends it abnormally (an in-band error, a malformed event).
   */
  event(data: string, name: string | undefined, out: StreamChunk[]): boolean;
  /** The error for a body that ended before the terminal event. */
  unterminated(): GatewayError;
}

class TranslatedStream implements ChunkStream, AsyncIterable<StreamChunk> {
  private readonly ready: StreamChunk[] = [];
  private head = 0;
  /** the terminal event was translated */
  private ended = false;
  /** nothing more comes: the stream ended, failed (once its failure was thrown) or was left */
  private over = false;
  /** the failure that ends the stream once the chunks before it are taken */
  private failure: GatewayError | undefined;
  private readonly reads: BodyReads;
  /** the longest unfinished event the framer may hold */
  private readonly maxEvent: number;

  constructor(
    body: AsyncIterable<Uint8Array | string>,
    private readonly frames: Framer,
    private readonly translator: StreamTranslator,
    private readonly label: string,
  ) {
    this.reads = body[Symbol.asyncIterator]() as BodyReads;
    this.maxEvent = this.reads.maxEventChars ?? DEFAULT_MAX_RESPONSE_BYTES;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  takeReady(): StreamChunk | undefined {
    return this.head < this.ready.length ? this.ready[this.head++] : undefined;
  }

  async next(): Promise<IteratorResult<StreamChunk>> {
    for (;;) {
      const c = this.takeReady();
      if (c !== undefined) return { done: false, value: c };
      if (this.failure) {
        const f = this.failure;
        this.failure = undefined;
        this.over = true;
        void this.reads.return?.().catch(() => undefined);
        throw f;
      }
      if (this.over) return { done: true, value: undefined };
      this.ready.length = 0;
      this.head = 0;
      let r: IteratorResult<Uint8Array | string>;
      try {
        r = await this.reads.next();
      } catch (err) {
        this.over = true;
        throw mapTransportError(err, this.label, true);
      }
      if (r.done) {
        this.frames.end();
        this.take();
        if (!this.ended && !this.failure) this.failure = this.translator.unterminated();
        if (!this.failure) this.over = true;
        continue;
      }
      this.push(r.value);
      // the reads already received (one network read carries many of the upstream's writes) are translated now,
      // so the edge takes their chunks in one go: no promise and no client write per upstream write
      const reads = this.reads;
      if (reads.takeQueued) {
        let b: Uint8Array | undefined;
        while (!this.ended && !this.failure && (b = reads.takeQueued()) !== undefined) this.push(b);
      }
      if (this.ended) {
        this.over = true;
        // usually the body's end came with the terminal event: nothing left to read, no promise for it
        if (reads.takeQueued) while (reads.takeQueued() !== undefined);
        if (reads.complete !== true) void drain(reads);
      }
    }
  }

  async return(): Promise<IteratorResult<StreamChunk>> {
    this.over = true;
    this.ready.length = 0;
    this.head = 0;
    await this.reads.return?.();
    return { done: true, value: undefined };
  }

  /** One read framed and translated; an event left unfinished past `maxEvent` fails the stream. */
  private push(part: Uint8Array | string): void {
    const f = this.frames;
    f.push(part);
    this.take();
    if (f.pending > this.maxEvent && !this.ended && !this.failure) this.failure = tooLarge(this.label, 'stream event', this.maxEvent);
  }

  /** The events the last push/end completed → ready chunks, up to the terminal event or the first failing one. */
  private take(): void {
    const f = this.frames;
    for (let i = 0; i < f.count && !this.ended && !this.failure; i++) {
      const data = f.datas[i]!;
      // an event completed within one read is held to the same bound as one left unfinished across reads
      if (data.length > this.maxEvent) {
        this.failure = tooLarge(this.label, 'stream event', this.maxEvent);
        break;
      }
      try {
        this.ended = this.translator.event(data, f.names[i], this.ready);
      } catch (err) {
        this.failure = mapTransportError(err, this.label, true);
      }
    }
  }
}

/** How long the rest of a body may take after its stream's terminal event before its connection is dropped. */
export const DRAIN_AFTER_END_MS = 2_000;

/**
 * Reads what is left of a body still open after its stream's terminal event; a failure there changes nothing.
 * One still open after `DRAIN_AFTER_END_MS` is abandoned, which aborts its request and closes the connection.
 */
async function drain(reads: BodyReads): Promise<void> {
  const timer = setTimeout(() => void reads.return?.(), DRAIN_AFTER_END_MS);
  try {
    while (!(await reads.next()).done);
  } catch {
    /* the answer was already complete */
  } finally {
    clearTimeout(timer);
  }
}

/** `body` (an upstream's SSE response body) as a ChunkStream, each event translated by `translator`. */
export function sseStream(body: AsyncIterable<Uint8Array | string>, translator: StreamTranslator, label: string): ChunkStream & AsyncIterable<StreamChunk> {
  return new TranslatedStream(body, new SseParser(), translator, label);
}

/** `body` (an upstream's NDJSON response body) as a ChunkStream, each line translated by `translator`. */
export function ndjsonStream(body: AsyncIterable<Uint8Array | string>, translator: StreamTranslator, label: string): ChunkStream & AsyncIterable<StreamChunk> {
  return new TranslatedStream(body, new LineParser(), translator, label);
}
