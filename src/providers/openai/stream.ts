/**
 * OpenAI SSE → StreamChunks. Chunks are relayed as the upstream sent them (the original JSON text, never
 * re-serialised). Every chunk is validated in full by the scanner (src/wire/json-scan.ts: exactly JSON.parse's
 * grammar, in one pass that builds nothing), which also reads what the gateway acts on: the usage chunk
 * (parsed from its slice), in-band errors (the chunk is parsed then, it is rare), chunks without choices. A
 * malformed chunk that merely looks like a content chunk is caught like any other (docs/benchmarks.md,
 * "Hot-path changes"): stream integrity comes first.
 * The stream must end with `data: [DONE]`: anything else is an abnormal end and throws. Nothing asynchronous
 * sits between the body and the router: SSE framing (SseParser) and the scan run synchronously per read, and
 * the chunks of one read are handed over without a promise each (ChunkStream.takeReady).
 */
import { GatewayError } from '../../wire/errors.js';
import { StreamJsonScan } from '../../wire/json-scan.js';
import type { Usage } from '../../wire/openai.js';
import { SseParser } from '../../util/lines.js';
import type { ChunkStream, StreamChunk } from '../provider.js';
import { mapTransportError, upstreamText } from '../upstream.js';
import type { BodyReads } from '../upstream-body.js';

interface ErrorChunk {
  error?: { message?: string; type?: string; code?: string } | string;
}

/**
 * The relay as a ChunkStream: each upstream read is framed and scanned at once, synchronously, into a queue
 * the edge drains with `takeReady` (no promise per chunk); `next()` awaits the next read only when the queue
 * is empty. A failing event ends the stream after the chunks before it in the same read were handed over,
 * exactly where a chunk-by-chunk reader would have stopped.
 */
class OpenAiChunks implements ChunkStream, AsyncIterable<StreamChunk> {
  private readonly sse = new SseParser();
  private readonly scan = new StreamJsonScan();
  private readonly ready: StreamChunk[] = [];
  private head = 0;
  /** `data: [DONE]` was seen: the rest of the body is read to its end and ignored */
  private done = false;
  /** the body ended (after [DONE]) or the stream failed or was left: nothing more comes */
  private over = false;
  /** the failure that ends the stream once the chunks before it are taken */
  private failure: GatewayError | undefined;
  private readonly reads: BodyReads;

  constructor(
    body: AsyncIterable<Uint8Array>,
    private readonly label: string,
  ) {
    this.reads = body[Symbol.asyncIterator]();
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
        this.over = true;
        void this.reads.return?.().catch(() => undefined);
        throw f;
      }
      if (this.over) return { done: true, value: undefined };
      this.ready.length = 0;
      this.head = 0;
      let r: IteratorResult<Uint8Array>;
      try {
        r = await this.reads.next();
      } catch (err) {
        this.over = true;
        throw mapTransportError(err, this.label, true);
      }
      if (r.done) {
        this.sse.end();
        this.take();
        // after [DONE] the body was read to its end; anything else is an abnormal end
        if (!this.done && !this.failure)
          this.failure = new GatewayError('UPSTREAM_STREAM_ERROR', `channel ${this.label}: upstream stream ended without [DONE]`);
        if (!this.failure) this.over = true;
        continue;
      }
      // After [DONE] the body is read to its end rather than abandoned: breaking out would destroy the
      // response (an AbortError with a stack, per stream) and could cost the keep-alive connection.
      this.sse.push(r.value);
      this.take();
      // the reads already received (one network read carries many of the upstream's writes) are parsed now,
      // so the edge takes their chunks in one go: no promise and no write per upstream write
      const reads = this.reads;
      if (reads.takeQueued) {
        let b: Uint8Array | undefined;
        while (!this.failure && (b = reads.takeQueued()) !== undefined) {
          this.sse.push(b);
          this.take();
        }
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

  /** The events the last push/end completed → ready chunks, up to [DONE] or the first failing one. */
  private take(): void {
    const sse = this.sse;
    for (let i = 0; i < sse.count && !this.done && !this.failure; i++) {
      const data = sse.datas[i]!;
      if (data === '[DONE]') this.done = true;
      else {
        try {
          this.ready.push(relay(data, sse.names[i], this.scan, this.label));
        } catch (err) {
          this.failure = err as GatewayError;
        }
      }
    }
  }
}

export function openAiStream(body: AsyncIterable<Uint8Array>, label: string): ChunkStream & AsyncIterable<StreamChunk> {
  return new OpenAiChunks(body, label);
}

/** One event's chunk, or the error it stands for. */
function relay(data: string, event: string | undefined, scan: StreamJsonScan, label: string): StreamChunk {
  if (!scan.scan(data)) {
    throw new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${label}: upstream sent a malformed stream chunk`);
  }
  if (event === 'error' || scan.error) {
    const parsed = JSON.parse(data) as ErrorChunk | null;
    const e = scan.object ? parsed?.error : undefined;
    const msg = typeof e === 'string' ? e : (e?.message ?? 'error event');
    throw new GatewayError('UPSTREAM_STREAM_ERROR', `channel ${label}: upstream reported an error mid-stream: ${upstreamText(String(msg))}`);
  }
  if (!scan.choicesArray) {
    throw new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${label}: upstream sent a chunk without choices`);
  }
  if (scan.choicesEmpty && scan.usage === 'object') return { data, usage: scan.usageOf(data) as Usage };
  return { data };
}
