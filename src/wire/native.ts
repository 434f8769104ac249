/**
 * Native pass-through: a client request in an upstream's own API format, carried beside its translation to
 * the internal chat form. The edge that translated a request attaches it under the `NATIVE` symbol; a
 * provider that speaks that API natively (an `anthropic` channel for Anthropic Messages, an `openai` channel
 * with `options.responsesApi` for OpenAI Responses) sends `body` instead of mapping the chat form, so
 * provider-specific fields (cache_control, thinking blocks, reasoning items, beta headers) arrive untouched.
 *
 * A symbol key is copied by object spread (the model-map copy in the local candidate keeps it) and dropped by
 * JSON.stringify, so a request forwarded over the bridge is the plain chat form: the peer translates it like
 * any other chat request, and translation back to the client's format still happens once, at the edge.
 *
 * The native answer comes back in the same way: a non-streaming completion carries the upstream's own body
 * under `NATIVE`, and every StreamChunk of a native stream carries the upstream's SSE event verbatim (`raw`).
 */

export type NativeApi = 'anthropic-messages' | 'openai-responses';

export interface NativeRequest {
  api: NativeApi;
  /**
   * Set when a part of the client's body has no place in the chat form (an Anthropic server tool or
   * `document` block, a Responses item type): the chat form leaves it out, so only a candidate that takes
   * `api` natively may serve the request, and without one the request fails with this error (UNSUPPORTED).
   */
  untranslatable?: Error;
  /** the client's body, as parsed; the provider replaces only `model` (the channel's upstream name) */
  body: Record<string, unknown>;
  /** client headers the upstream API defines (anthropic-version, anthropic-beta); never auth headers */
  headers: Record<string, string>;
}

export const NATIVE: unique symbol = Symbol('switchyard.native');

interface Carrier {
  [NATIVE]?: unknown;
}

/** Attaches `native` to `target` (a ChatRequest or ChatCompletion) and returns target. */
export function withNative<T extends object>(target: T, native: unknown): T {
  (target as Carrier)[NATIVE] = native;
  return target;
}

export function nativeRequestOf(req: object): NativeRequest | undefined {
  return (req as Carrier)[NATIVE] as NativeRequest | undefined;
}

/** The upstream's own response body carried by a completion, when the call went native. */
export function nativeBodyOf(completion: object): unknown {
  return (completion as Carrier)[NATIVE];
}
