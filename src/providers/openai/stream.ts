/**
 * OpenAI SSE → StreamChunks. Chunks are relayed as the upstream sent them (the original JSON text, never
 * re-serialised). Every chunk is validated in full by the scanner (src/wire/json-scan.ts: exactly JSON.parse's
 * grammar, in one pass that builds nothing), which also reads what the gateway acts on: the usage chunk
 * (parsed from its slice), in-band errors (the chunk is parsed then, it is rare), chunks without choices. A
 * malformed chunk that merely looks like a content chunk is caught like any other (docs/benchmarks.md,
 * "Hot-path changes"): stream integrity comes first.
 * The stream must end with `data: [DONE]`: anything else is an abnormal end and throws. One generator sits
 * between the body and the router: SSE framing (SseParser) and the scan run synchronously inside it.
 */
import { GatewayError } from '../../wire/errors.js';
import { StreamJsonScan } from '../../wire/json-scan.js';
import type { Usage } from '../../wire/openai.js';
import { SseParser } from '../../util/lines.js';
import type { StreamChunk } from '../provider.js';
import { mapTransportError, upstreamText } from '../upstream.js';

interface ErrorChunk {
  error?: { message?: string; type?: string; code?: string } | string;
}

export async function* openAiStream(body: AsyncIterable<Uint8Array>, label: string): AsyncGenerator<StreamChunk> {
  const sse = new SseParser();
  const scan = new StreamJsonScan();
  let done = false;
  try {
    for await (const part of body) {
      sse.push(part);
      // After [DONE] the body is read to its end rather than abandoned: breaking out would destroy the
      // response (an AbortError with a stack, per stream) and could cost the keep-alive connection.
      for (let i = 0; i < sse.count && !done; i++) {
        const data = sse.datas[i]!;
        if (data === '[DONE]') done = true;
        else yield relay(data, sse.names[i], scan, label);
      }
    }
    sse.end();
    for (let i = 0; i < sse.count && !done; i++) {
      const data = sse.datas[i]!;
      if (data === '[DONE]') done = true;
      else yield relay(data, sse.names[i], scan, label);
    }
  } catch (err) {
    throw mapTransportError(err, label, true);
  }
  if (!done) throw new GatewayError('UPSTREAM_STREAM_ERROR', `channel ${label}: upstream stream ended without [DONE]`);
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
