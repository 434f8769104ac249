/**
 * `openai` provider: any OpenAI-compatible upstream. `vllm` is configuration of this one (its own default
 * base URL, no key needed). Request bodies pass through untouched apart from `model` (modelMap, applied by
 * the caller) and, for streams, `stream_options.include_usage` (always asked for, so usage is never lost).
 */
import { GatewayError } from '../../wire/errors.js';
import type { ChatCompletion, ChatRequest, EmbeddingsRequest, EmbeddingsResponse } from '../../wire/openai.js';
import type { CallOptions, ChannelProvider, ChatOutcome, ProviderChannelConfig } from '../provider.js';
import { UpstreamClient } from '../upstream.js';
import { openAiStream } from './stream.js';

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
    label: cfg.name,
  });
  const baseHeaders: Record<string, string> = { 'content-type': 'application/json', ...(cfg.headers ?? {}) };
  if (cfg.apiKey) baseHeaders.authorization = `Bearer ${cfg.apiKey}`;
  const headers = (opts: CallOptions) => ({ ...baseHeaders, 'x-request-id': opts.requestId });

  return {
    kind: cfg.provider,
    // the same implementation serves vLLM and other OpenAI-compatible servers: only OpenAI itself has /responses
    capabilities: { embeddings: true, tools: true, vision: true, nativeResponses: cfg.provider === 'openai', synthetic: false },
    async chat(req: ChatRequest, opts: CallOptions): Promise<ChatOutcome> {
      const body = req.stream ? { ...req, stream_options: { ...(req.stream_options ?? {}), include_usage: true } } : req;
      const res = await client.request('/chat/completions', { headers: headers(opts), body: JSON.stringify(body), signal: opts.signal });
      await client.ensureOk(res);
      if (!req.stream) {
        const completion = await client.json<ChatCompletion>(res);
        if (!completion || typeof completion !== 'object' || !Array.isArray(completion.choices)) {
          throw new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${cfg.name}: upstream reply has no choices`);
        }
        return { stream: false, completion };
      }
      return { stream: true, chunks: openAiStream(res.body, cfg.name) };
    },
    async embeddings(req: EmbeddingsRequest, opts: CallOptions): Promise<EmbeddingsResponse> {
      const res = await client.request('/embeddings', { headers: headers(opts), body: JSON.stringify(req), signal: opts.signal });
      await client.ensureOk(res);
      const out = await client.json<EmbeddingsResponse>(res);
      if (!out || !Array.isArray(out.data)) throw new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${cfg.name}: embeddings reply has no data`);
      return out;
    },
    close: () => client.close(),
  };
}
