/**
 * OpenAI SSE → StreamChunks. Chunks are relayed as the upstream sent them (the original JSON text, never
 * re-serialised). The usual content chunk is only scanned (see `plainChunk`); a chunk the scan cannot vouch
 * for is parsed, to validate it and to read the usage chunk and in-band errors.
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

/**
 * The scan that spares the parse: a compact object (`{…}`) with a non-empty `choices` array and neither an
 * `"error"` nor a `"usage":{` key anywhere. A quote inside a JSON string is escaped (`\"error\"`), so chat
 * content cannot fake those keys; what the scan cannot vouch for (other spacing, `choices: []`, the usage
 * chunk, a cut or malformed chunk such as `{not json`) goes through JSON.parse exactly as before.
 */
function plainChunk(data: string): boolean {
  return (
    data.charCodeAt(0) === 123 /* { */ &&
    data.charCodeAt(data.length - 1) === 125 /* } */ &&
    data.includes('"choices":[{') &&
    !data.includes('"error"') &&
    !data.includes('"usage":{')
  );
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
      if (ev.event === undefined && plainChunk(data)) {
        yield { data };
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
