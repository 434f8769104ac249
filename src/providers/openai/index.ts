/**
 * `openai` provider: any OpenAI-compatible upstream. `vllm` is configuration of this one (its own default
 * base URL, no key needed). Request bodies pass through untouched apart from `model` (modelMap, applied by
 * the caller) and, for streams, `stream_options.include_usage` (always asked for, so usage is never lost).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../../wire/errors.js';
import type { ChatRequest, EmbeddingsRequest, EmbeddingsResponse } from '../../wire/openai.js';
import type { CallOptions, ChannelProvider, ChatOutcome, ProviderChannelConfig } from '../provider.js';
import { UpstreamClient } from '../upstream.js';
import { ChatReply } from '../chat-reply.js';
import { openAiStream } from './stream.js';
import { nativeRequestOf, withNative } from '../../wire/native.js';
import { responseToCompletion, responsesNativeStream } from './responses-native.js';
import { checkedEmbeddings } from '../embeddings-shape.js';
import { openAiModelMissing } from '../reported-error.js';

const DEFAULT_BASE: Record<string, string> = {
  openai: 'https://api.openai.com/v1',
  vllm: 'http://127.0.0.1:8000/v1',
};

export function createOpenAiProvider(cfg: ProviderChannelConfig): ChannelProvider {
  const client = new UpstreamClient({
    baseUrl: cfg.baseUrl ?? DEFAULT_BASE[cfg.provider] ?? DEFAULT_BASE.openai!,
    connections: cfg.maxConcurrent,
    headersTimeoutMs: cfg.timeoutMs,
    bodyTimeoutMs: cfg.timeoutMs,
    maxResponseBytes: cfg.maxResponseBytes,
    label: cfg.name,
    modelMissing: openAiModelMissing,
  });
  const baseHeaders: Record<string, string> = { 'content-type': 'application/json', ...(cfg.headers ?? {}) };
  if (cfg.apiKey) baseHeaders.authorization = `Bearer ${cfg.apiKey}`;
  // undici's flat form (name, value, name, value…): one array copy per request, where an object spread of the
  // base headers plus the request id took V8's slow property-definition path on every call
  const baseFlat = Object.entries(baseHeaders)
    .filter(([k]) => k !== 'x-request-id')
    .flat();
  const headers = (opts: CallOptions): string[] => baseFlat.concat('x-request-id', opts.requestId);
  // a relayed reply is read at the body's end, with the answer's headers (a 2xx error body's Retry-After): one closure per channel
  const relayed = (text: string, h: IncomingHttpHeaders): ChatReply => ChatReply.relayed(text, cfg.name, h);
  const responsesApi = cfg.options?.responsesApi;
  if (responsesApi !== undefined && typeof responsesApi !== 'boolean') {
    throw new GatewayError('CONFIG_INVALID', `channel ${cfg.name}: options.responsesApi must be a boolean`, { param: 'options.responsesApi' });
  }

  return {
    kind: cfg.provider,
    nativeApi: responsesApi ? 'openai-responses' : undefined,
    // the same implementation serves vLLM and other OpenAI-compatible servers: only OpenAI itself has /responses
    capabilities: { embeddings: true, tools: true, vision: true, nativeResponses: cfg.provider === 'openai', synthetic: false },
    async chat(req: ChatRequest, opts: CallOptions): Promise<ChatOutcome> {
      const native = responsesApi ? nativeRequestOf(req) : undefined;
      if (native?.api === 'openai-responses') {
        const init = { headers: headers(opts), body: JSON.stringify({ ...native.body, model: req.model }), signal: opts.signal };
        if (native.body.stream !== true) {
          const background = native.body.background === true;
          return client.sendJson('/responses', init, (r: Parameters<typeof responseToCompletion>[0], h) =>
            ChatReply.of(withNative(responseToCompletion(r, cfg.name, h, background), r)),
          );
        }
        const up = await client.send('/responses', init);
        return { stream: true, chunks: responsesNativeStream(up.body, cfg.name, up.headers) };
      }
      if (!req.stream) {
        const init = { headers: headers(opts), body: JSON.stringify(req), signal: opts.signal };
        // scanned, not parsed: the OpenAI edge and the bridge relay the bytes; an edge that translates parses them
        return client.sendReply('/chat/completions', init, relayed);
      }
      const body = { ...req, stream_options: { ...(req.stream_options ?? {}), include_usage: true } };
      const res = await client.send('/chat/completions', { headers: headers(opts), body: JSON.stringify(body), signal: opts.signal });
      return { stream: true, chunks: openAiStream(res.body, cfg.name, res.headers) };
    },
    async embeddings(req: EmbeddingsRequest, opts: CallOptions): Promise<EmbeddingsResponse> {
      const init = { headers: headers(opts), body: JSON.stringify(req), signal: opts.signal };
      return client.sendJson('/embeddings', init, (out: unknown, h) => checkedEmbeddings(out, req, cfg.name, h));
    },
    close: () => client.close(),
    retire: (graceMs) => client.retire(graceMs),
  };
}
