/**
 * OpenAI SSE → StreamChunks. Chunks are relayed as the upstream sent them (the original JSON text, never
 * re-serialised). Every chunk is validated in full by the scanner (src/wire/json-scan.ts: exactly JSON.parse's
 * grammar, in one pass that builds nothing), which also reads what the gateway acts on: the usage chunk
 * (parsed from its slice), in-band errors (the chunk is parsed then, it is rare; `reportedError` in ./errors.ts
 * maps it as the HTTP answer of the status its code or type names), chunks without choices. A
 * malformed chunk that merely looks like a content chunk is caught like any other (docs/benchmarks.md,
 * "Hot-path changes"): stream integrity comes first.
 * The stream must end with `data: [DONE]`: anything else is an abnormal end and throws. The body is read by
 * the shared SSE reader (src/providers/stream-reader.ts): every read already received is framed and scanned at
 * once, synchronously, and the edge takes the chunks without a promise each.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../../wire/errors.js';
import { StreamJsonScan, type JsonScan } from '../../wire/json-scan.js';
import type { Usage } from '../../wire/openai.js';
import type { ChunkStream, StreamChunk } from '../provider.js';
import { sseStream, type StreamTranslator } from '../stream-reader.js';
import { retryAfterOf } from '../upstream.js';
import { answerErrorOf, errorOf, reportedError } from '../reported-error.js';

class OpenAiRelay implements StreamTranslator {
  private readonly scan = new StreamJsonScan();

  constructor(
    private readonly label: string,
    private readonly headers: IncomingHttpHeaders | undefined,
  ) {}

  event(data: string, name: string | undefined, out: StreamChunk[]): boolean {
    if (data === '[DONE]') return true;
    out.push(relay(data, name, this.scan, this.label, this.headers));
    return false;
  }

  unterminated(): GatewayError {
    return new GatewayError('UPSTREAM_STREAM_ERROR', `channel ${this.label}: upstream stream ended without [DONE]`);
  }
}

/** `headers`: the answer's, whose Retry-After an in-band error carries (read only when there is one). */
export function openAiStream(body: AsyncIterable<Uint8Array | string>, label: string, headers?: IncomingHttpHeaders): ChunkStream & AsyncIterable<StreamChunk> {
  return sseStream(body, new OpenAiRelay(label, headers), label);
}

/** One event's chunk, or the error it stands for. */
function relay(data: string, event: string | undefined, scan: StreamJsonScan, label: string, headers: IncomingHttpHeaders | undefined): StreamChunk {
  if (!scan.scan(data)) {
    throw new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${label}: upstream sent a malformed stream chunk`);
  }
  return checkedChunk(data, scan, label, event === 'error', headers);
}

/**
 * A chunk `scan` found to be JSON, held to the stream's rules: an in-band error ends the stream with it (a chunk
 * without `choices` that is an error object, `errorOf`; one with `choices` and an `error` that reads as one,
 * `answerErrorOf`: ../reported-error.ts), any other chunk without a `choices` array is a bad answer. The one
 * rule for an upstream's chunks (above) and a bridge peer's (src/bridge/forwarding.ts). `headers`: the upstream
 * answer's, whose Retry-After the error carries, read only once there is an error (a peer's chunk has none).
 */
export function checkedChunk(data: string, scan: JsonScan, label: string, errorEvent = false, headers?: IncomingHttpHeaders): StreamChunk {
  // a content chunk (a `choices` array, no `error`) costs nothing here; only the rest is parsed
  if (errorEvent || scan.error || !scan.choicesArray) {
    const body = scan.object ? (JSON.parse(data) as Record<string, unknown>) : undefined;
    // beside `choices` only an `error` that reads as one ends the stream (`answerErrorOf`, the non-streaming reply's rule)
    const e = body === undefined ? undefined : scan.choicesArray ? answerErrorOf(body) : errorOf(body);
    if (errorEvent || e !== undefined) throw reportedError(e, label, 'stream', retryAfterOf(headers));
    if (!scan.choicesArray) throw new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${label}: upstream sent a chunk without choices`);
  }
  return scannedChunk(data, scan);
}

/**
 * A chunk already validated by `scan` as the StreamChunk it stands for: a chunk with a `usage` object carries its
 * usage, read from its own slice: the usage chunk (`choices: []`), or a content chunk that counts too (`inline`).
 * The one rule for the upstream relay above and for a chunk a bridge peer relayed (src/bridge/forwarding.ts).
 */
export function scannedChunk(data: string, scan: JsonScan): StreamChunk {
  if (scan.usage !== 'object' || !scan.choicesArray) return { data };
  const usage = scan.usageOf(data) as Usage;
  return scan.choicesEmpty ? { data, usage } : { data, usage, inline: true };
}
