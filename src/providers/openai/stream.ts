/**
 * OpenAI SSE → StreamChunks. Chunks are relayed as the upstream sent them (the original JSON text, never
 * re-serialised). Every chunk is validated in full by the scanner (src/wire/json-scan.ts: exactly JSON.parse's
 * grammar, in one pass that builds nothing), which also reads what the gateway acts on: the usage chunk
 * (parsed from its slice), in-band errors (the chunk is parsed then, it is rare), chunks without choices. A
 * malformed chunk that merely looks like a content chunk is caught like any other (docs/benchmarks.md,
 * "Hot-path changes"): stream integrity comes first.
 * The stream must end with `data: [DONE]`: anything else is an abnormal end and throws. The body is read by
 * the shared SSE reader (src/providers/stream-reader.ts): every read already received is framed and scanned at
 * once, synchronously, and the edge takes the chunks without a promise each.
 */
import { GatewayError } from '../../wire/errors.js';
import { StreamJsonScan, type JsonScan } from '../../wire/json-scan.js';
import type { Usage } from '../../wire/openai.js';
import type { ChunkStream, StreamChunk } from '../provider.js';
import { sseStream, type StreamTranslator } from '../stream-reader.js';
import { upstreamText } from '../upstream.js';

interface ErrorChunk {
  error?: { message?: string; type?: string; code?: string } | string;
}

class OpenAiRelay implements StreamTranslator {
  private readonly scan = new StreamJsonScan();

  constructor(private readonly label: string) {}

  event(data: string, name: string | undefined, out: StreamChunk[]): boolean {
    if (data === '[DONE]') return true;
    out.push(relay(data, name, this.scan, this.label));
    return false;
  }

  unterminated(): GatewayError {
    return new GatewayError('UPSTREAM_STREAM_ERROR', `channel ${this.label}: upstream stream ended without [DONE]`);
  }
}

export function openAiStream(body: AsyncIterable<Uint8Array | string>, label: string): ChunkStream & AsyncIterable<StreamChunk> {
  return sseStream(body, new OpenAiRelay(label), label);
}

/** One event's chunk, or the error it stands for. */
function relay(data: string, event: string | undefined, scan: StreamJsonScan, label: string): StreamChunk {
  if (!scan.scan(data)) {
    throw new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${label}: upstream sent a malformed stream chunk`);
  }
  return checkedChunk(data, scan, label, event === 'error');
}

/**
 * A chunk `scan` found to be JSON, held to the stream's rules: an in-band error ends the stream with it, a
 * chunk without a `choices` array is a bad answer. The one rule for an upstream's chunks (above) and a bridge
 * peer's (src/bridge/forwarding.ts).
 */
export function checkedChunk(data: string, scan: JsonScan, label: string, errorEvent = false): StreamChunk {
  if (errorEvent || scan.error) {
    const parsed = JSON.parse(data) as ErrorChunk | null;
    const e = scan.object ? parsed?.error : undefined;
    const msg = typeof e === 'string' ? e : (e?.message ?? 'error event');
    throw new GatewayError('UPSTREAM_STREAM_ERROR', `channel ${label}: upstream reported an error mid-stream: ${upstreamText(String(msg))}`);
  }
  if (!scan.choicesArray) {
    throw new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${label}: upstream sent a chunk without choices`);
  }
  return scannedChunk(data, scan);
}

/**
 * A chunk already validated by `scan` as the StreamChunk it stands for: the usage chunk (`choices: []` and a
 * `usage` object) carries its usage, read from its own slice. The one rule for the upstream relay above and for
 * a chunk a bridge peer relayed (src/bridge/forwarding.ts).
 */
export function scannedChunk(data: string, scan: JsonScan): StreamChunk {
  return scan.choicesArray && scan.choicesEmpty && scan.usage === 'object' ? { data, usage: scan.usageOf(data) as Usage } : { data };
}
