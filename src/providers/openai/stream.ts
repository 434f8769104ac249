/**
 * OpenAI SSE → StreamChunks. Chunks are relayed as the upstream sent them (the original JSON text, never
 * re-serialised). Every chunk is validated in full by the scanner (src/wire/json-scan.ts: exactly JSON.parse's
 * grammar, in one pass that builds nothing), which also reads what the gateway acts on: the usage chunk
 * (parsed from its slice), in-band errors (the chunk is parsed then, it is rare; `inBandError` maps it as
 * the HTTP answer of the status its code or type names), chunks without choices. A
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
import { errorForStatus, upstreamText } from '../upstream.js';
import { ERROR_STATUS } from '../anthropic/wire.js';

type UpstreamError = { message?: unknown; type?: unknown; code?: unknown } | string;

/**
 * OpenAI's error codes and types that name the HTTP status OpenAI answers them with (platform.openai.com/docs/
 * guides/error-codes): an in-band error chunk carries no status of its own. A name Anthropic's API uses
 * (`invalid_request_error`, `rate_limit_error`, `overloaded_error`, …, which OpenAI-compatible servers in front
 * of Claude relay) is read from Anthropic's table (ERROR_STATUS), not repeated here.
 */
const OPENAI_ERROR_STATUS: Readonly<Record<string, number>> = {
  context_length_exceeded: 400,
  insufficient_quota: 429,
  rate_limit_exceeded: 429,
  server_error: 500,
};

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
 * A chunk `scan` found to be JSON, held to the stream's rules: an in-band error (`errorOf`) ends the stream
 * with it, any other chunk without a `choices` array is a bad answer. The one rule for an upstream's chunks
 * (above) and a bridge peer's (src/bridge/forwarding.ts).
 */
export function checkedChunk(data: string, scan: JsonScan, label: string, errorEvent = false): StreamChunk {
  // a content chunk (a `choices` array, no `error`) costs nothing here; only the rest is parsed
  if (errorEvent || scan.error || !scan.choicesArray) {
    const e = scan.object ? errorOf(JSON.parse(data) as Record<string, unknown>) : undefined;
    if (errorEvent || e !== undefined) throw inBandError(e, label);
    throw new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${label}: upstream sent a chunk without choices`);
  }
  return scannedChunk(data, scan);
}

/**
 * The error an in-band error chunk carries: its `error` (OpenAI's form, and vLLM's since it wraps it), or the
 * chunk itself in the form older vLLM (and servers modelled on it) send, its ErrorResponse at the top level:
 * `{"object":"error","message":…,"type":"BadRequestError","param":null,"code":400}`.
 */
function errorOf(chunk: Record<string, unknown>): UpstreamError | undefined {
  const e = chunk.error;
  if (e !== undefined && e !== null) return e;
  return chunk.object === 'error' ? chunk : undefined;
}

/**
 * An in-band error chunk's error → the GatewayError of the HTTP status its `code`, else its `type`, names
 * (`errorForStatus`, as an HTTP answer with that status would be): a number from 400 to 599 is that status (as
 * vLLM sends it), a name is looked up in OPENAI_ERROR_STATUS, then in Anthropic's ERROR_STATUS. So an overload or
 * a rate limit inside a stream reads as it would as an HTTP answer. Anything else is UPSTREAM_STREAM_ERROR.
 */
function inBandError(e: UpstreamError | undefined, label: string): GatewayError {
  const msg = upstreamText(typeof e === 'string' ? e : typeof e?.message === 'string' ? e.message : 'error event');
  const named = typeof e === 'object' && e !== null ? (statusNamed(e.code) ?? statusNamed(e.type)) : undefined;
  if (named === undefined) return new GatewayError('UPSTREAM_STREAM_ERROR', `channel ${label}: upstream reported an error mid-stream: ${msg}`);
  const [name, status] = named;
  const text = `channel ${label}: upstream reported ${typeof name === 'number' ? `status ${name}` : name} mid-stream: ${msg}`;
  return errorForStatus(status, text, { details: typeof name === 'number' ? { upstreamStatus: status } : { upstreamErrorType: name } });
}

/** An in-band error's `code` or `type` with the status it names, if it names one. */
function statusNamed(v: unknown): [string | number, number] | undefined {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 400 && v <= 599 ? [v, v] : undefined;
  if (typeof v !== 'string') return undefined;
  if (Object.hasOwn(OPENAI_ERROR_STATUS, v)) return [v, OPENAI_ERROR_STATUS[v]!];
  if (Object.hasOwn(ERROR_STATUS, v)) return [v, ERROR_STATUS[v]!];
  return undefined;
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
