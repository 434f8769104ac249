/**
 * OpenAI SSE → StreamChunks. Chunks are relayed as the upstream sent them (the original JSON text, never
 * re-serialised). Every chunk is still parsed once, to validate it and to read the usage chunk and in-band
 * errors: a scan that skips the parse would relay a malformed chunk that merely looks like a content chunk
 * (docs/benchmarks.md, "Hot-path changes"), and stream integrity comes first.
 * The stream must end with `data: [DONE]`: anything else is an abnormal end and throws.
 */
import { GatewayError } from '../../wire/errors.js';
import type { Usage } from '../../wire/openai.js';
import { parseSse } from '../../util/lines.js';
import type { StreamChunk } from '../provider.js';
import { mapTransportError, upstreamText } from '../upstream.js';

interface ParsedChunk {
  choices?: unknown[];
  usage?: Usage | null;
  error?: { message?: string; type?: string; code?: string } | string;
}

export async function* openAiStream(body: AsyncIterable<Uint8Array>, label: string): AsyncGenerator<StreamChunk> {
  let done = false;
  try {
    for await (const ev of parseSse(body)) {
      const data = ev.data;
      // After [DONE] the body is read to its end rather than abandoned: breaking out would destroy the
      // response (an AbortError with a stack, per stream) and could cost the keep-alive connection.
      if (done) continue;
      if (data === '[DONE]') {
        done = true;
        continue;
      }
      let parsed: ParsedChunk;
      try {
        parsed = JSON.parse(data) as ParsedChunk;
      } catch {
        throw new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${label}: upstream sent a malformed stream chunk`);
      }
      if (ev.event === 'error' || (parsed && parsed.error !== undefined && parsed.error !== null)) {
        const e = parsed?.error;
        const msg = typeof e === 'string' ? e : (e?.message ?? 'error event');
        throw new GatewayError('UPSTREAM_STREAM_ERROR', `channel ${label}: upstream reported an error mid-stream: ${upstreamText(String(msg))}`);
      }
      if (!parsed || typeof parsed !== 'object' || !Array.isArray(parsed.choices)) {
        throw new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${label}: upstream sent a chunk without choices`);
      }
      if (parsed.usage && parsed.choices.length === 0) yield { data, usage: parsed.usage };
      else yield { data };
    }
  } catch (err) {
    throw mapTransportError(err, label, true);
  }
  if (!done) throw new GatewayError('UPSTREAM_STREAM_ERROR', `channel ${label}: upstream stream ended without [DONE]`);
}
