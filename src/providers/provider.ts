/**
 * The one small interface every upstream adapter implements. The router never branches on a provider's name:
 * it calls `chat` / `embeddings` on whatever the registry built for a channel.
 *
 * Streaming contract (the heart of stream integrity):
 * - `chat` resolves only once the upstream answered with a success status (so a failure before the first
 *   byte can be retried elsewhere). It rejects with a GatewayError otherwise.
 * - A stream yields OpenAI `chat.completion.chunk` objects already serialised to JSON (`data`), in order, as
 *   they arrive. The adapter always asks the upstream for usage and yields it as a final usage chunk
 *   (`choices: []`, `usage: {...}`) flagged with `usage`; the edge decides whether the client sees it.
 * - Normal end = the iterator returns. Any abnormal end (connection cut, malformed chunk, in-band error,
 *   upstream error event) = the iterator throws a GatewayError. Never a silent return.
 * - `opts.signal` aborts the upstream request (client disconnect, deadline, cancel).
 */
import type { CancelSignal } from '../util/abort.js';
import type { ChatRequest, EmbeddingsRequest, EmbeddingsResponse, Usage } from '../wire/openai.js';
import type { ChannelCapabilities } from '../wire/bridge-frames.js';
import type { NativeApi } from '../wire/native.js';
import type { ChatReply } from './chat-reply.js';

/**
 * What a provider's channels can do. The core routes on these, never on the provider's name, and a gateway
 * announces them to its bridge peers for the channels it shares (SharedChannel.capabilities).
 * `embeddings` must be true exactly when `embeddings()` is implemented.
 */
export type ProviderCapabilities = ChannelCapabilities;

export interface StreamChunk {
  /** one serialised chat.completion.chunk */
  data: string;
  /** the upstream's count: set on the usage chunk (choices: []), and on a content chunk that carries one (`inline`) */
  usage?: Usage;
  /**
   * `usage` rides on a chunk that has choices (some servers count on their last content chunk instead of a
   * `choices: []` chunk of its own; vLLM's continuous usage stats on every chunk): the chunk is content and is
   * relayed as such, its usage is still the stream's count. Absent on the usage chunk, which an edge may leave out.
   */
  inline?: true;
  /**
   * Native pass-through only (src/wire/native.ts): the upstream's SSE event verbatim (`event: …\ndata: …\n\n`),
   * for the edge of the same API to relay. `data` is then '' unless the event has a chat-form meaning.
   */
  raw?: string;
  /**
   * Native pass-through only: the event carries output (a text, tool-call input or reasoning delta: Messages'
   * `content_block_delta` other than a signature or citations delta, a Responses `*.delta` event), so it is a
   * content chunk the client was sent, one token
   * of a stream's estimated output (Exchange's pump). Every other native event (message_start, ping,
   * response.created, …) is not content. Set where the event's type is already known; never on a chat chunk.
   */
  content?: true;
}

/**
 * Whether a stream's chunk is output: one token of the stream's estimated output when the upstream did not count
 * it (src/usage/record.ts estimatedUsage). The usage chunk is not (a content chunk that also counts, `inline`, is);
 * of a native pass-through, only an event that carries output (`content`). The one rule for every loop that counts
 * what a stream sent: Exchange's pump, /acp/rpc chat tasks, the bridge's serving side.
 */
export function isOutputChunk(c: StreamChunk): boolean {
  return c.usage ? c.inline === true : c.raw === undefined || c.content === true;
}

/**
 * Native pass-through only: an upstream's own failure event (Responses' `response.failed` or `error`, Messages'
 * `error` after `message_start`) is the last chunk's `raw`, scrubbed, and ends its stream: the stream then throws
 * that failure's GatewayError, so the attempt counts as failed, marked by `relayedFailure`. The edge has relayed
 * the event as the client's end of stream and, seeing the mark on the error (`wasRelayed`), writes no failure
 * event of its own. The mark is set only where a failure is relayed: nothing is looked at per chunk.
 */
const relayed = new WeakSet<object>();

/** Marks `e` (and returns it) as a failure whose own event the stream handed over as its last chunk. */
export function relayedFailure<E extends Error>(e: E): E {
  relayed.add(e);
  return e;
}

/** Whether `e` is a failure whose own event the client was already sent (`relayedFailure`). */
export function wasRelayed(e: unknown): boolean {
  return typeof e === 'object' && e !== null && relayed.has(e);
}

/**
 * A stream of chunks as the router and the edges read it. `takeReady`, when a stream has it, hands over without
 * a promise a chunk the stream already holds (parsed from an upstream read already received), or undefined
 * when the next chunk must be awaited with `next()`; it never ends or fails the stream (`next()` does). An
 * upstream read often carries many events (a fast upstream's whole answer can come in one read): an edge that
 * drains them with `takeReady` writes them to its client in one write and skips a promise per chunk.
 */
export interface ChunkStream extends AsyncIterator<StreamChunk> {
  takeReady?(): StreamChunk | undefined;
}

/**
 * A non-streaming answer is a ChatReply (src/providers/chat-reply.ts): its usage, the upstream's bytes when
 * they can be relayed as received (`raw`), and the completion object, parsed only when something reads it.
 */
export type ChatOutcome = ChatReply | { stream: true; chunks: AsyncIterable<StreamChunk> };

export interface CallOptions {
  /** aborts the upstream request */
  signal: CancelSignal;
  /** gateway request id, forwarded upstream as x-request-id where the provider allows it */
  requestId: string;
}

export interface ChannelProvider {
  /** provider kind as configured (openai, vllm, anthropic, ollama, mock) */
  readonly kind: string;
  /** the client API it takes natively (src/wire/native.ts), if any: a local channel's own, never a peer's */
  readonly nativeApi?: NativeApi | undefined;
  readonly capabilities: ProviderCapabilities;
  /** `req.model` is already the upstream model name (modelMap applied by the caller) */
  chat(req: ChatRequest, opts: CallOptions): Promise<ChatOutcome>;
  /** absent when the provider has no embeddings API */
  embeddings?(req: EmbeddingsRequest, opts: CallOptions): Promise<EmbeddingsResponse>;
  /**
   * Anthropic `count_tokens` on the upstream (only providers whose upstream has such an endpoint). `body` is
   * the client's Anthropic body with `model` already mapped; resolves with the upstream's JSON answer.
   */
  countTokens?(body: Record<string, unknown>, headers: Record<string, string>, opts: CallOptions): Promise<unknown>;
  /** release pooled connections, cutting whatever still runs on them (shutdown, after its grace period) */
  close(): Promise<void>;
  /**
   * The channel was removed or replaced (config reload): take no new request, let those running on this
   * provider end, then close, cutting what is still running after `graceMs`. Absent: nothing pooled, `close`.
   */
  retire?(graceMs: number): Promise<void>;
}

/** What a provider factory receives: the channel's resolved config (secrets already substituted). */
export interface ProviderChannelConfig {
  name: string;
  provider: 'openai' | 'vllm' | 'anthropic' | 'ollama' | 'mock';
  baseUrl?: string | undefined;
  apiKey?: string | undefined;
  headers?: Record<string, string> | undefined;
  timeoutMs?: number | undefined;
  maxConcurrent?: number | undefined;
  /** the most of one upstream answer held at once (a whole body, or one stream event); default 128 MiB */
  maxResponseBytes?: number | undefined;
  /** provider-specific knobs (e.g. mock behaviour, anthropic version) */
  options?: Record<string, unknown> | undefined;
}

export type ProviderFactory = (cfg: ProviderChannelConfig) => ChannelProvider;
