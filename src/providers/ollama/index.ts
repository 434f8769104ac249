/**
 * `ollama` provider: Ollama's native API (`/api/chat`, `/api/embed`), not its OpenAI-compatible `/v1`, so
 * that usage counts, done reasons and in-band stream errors come through exactly.
 *
 * baseUrl is the server root (default http://127.0.0.1:11434); a path prefix is kept (Ollama behind a
 * reverse proxy), and so is `apiKey`, sent as a Bearer token for such proxies (Ollama itself needs none).
 * channel.options: `keepAlive` (string duration such as "10m", or seconds) is sent as `keep_alive`.
 */
import { GatewayError } from '../../wire/errors.js';
import type { ChatRequest, EmbeddingsRequest, EmbeddingsResponse } from '../../wire/openai.js';
import type { CallOptions, ChannelProvider, ChatOutcome, ProviderChannelConfig } from '../provider.js';
import { UpstreamClient } from '../upstream.js';
import { OLLAMA_REFUSES, toOllamaChat, toOllamaEmbed, type OllamaRequestDefaults } from './request.js';
import { fromOllamaChat, fromOllamaEmbed } from './response.js';
import { ollamaStream } from './stream.js';
import { ollamaModelMissing } from './wire.js';
import { ChatReply } from '../chat-reply.js';

export const OLLAMA_DEFAULT_BASE_URL = 'http://127.0.0.1:11434';

function readDefaults(cfg: ProviderChannelConfig): OllamaRequestDefaults {
  const k = cfg.options?.keepAlive;
  if (k === undefined) return {};
  if (typeof k === 'string' || (typeof k === 'number' && Number.isFinite(k))) return { keepAlive: k };
  throw new GatewayError('CONFIG_INVALID', `channel ${cfg.name}: options.keepAlive must be a duration string or a number of seconds`, {
    param: 'options.keepAlive',
  });
}

export function createOllamaProvider(cfg: ProviderChannelConfig): ChannelProvider {
  const defaults = readDefaults(cfg);
  const client = new UpstreamClient({
    baseUrl: cfg.baseUrl ?? OLLAMA_DEFAULT_BASE_URL,
    connections: cfg.maxConcurrent ?? 128,
    headersTimeoutMs: cfg.timeoutMs,
    bodyTimeoutMs: cfg.timeoutMs,
    maxResponseBytes: cfg.maxResponseBytes,
    label: cfg.name,
    modelMissing: ollamaModelMissing,
  });
  const baseHeaders: Record<string, string> = { 'content-type': 'application/json', ...(cfg.headers ?? {}) };
  if (cfg.apiKey) baseHeaders.authorization = `Bearer ${cfg.apiKey}`;
  const headers = (opts: CallOptions, accept: string) => ({ ...baseHeaders, accept, 'x-request-id': opts.requestId });

  return {
    kind: 'ollama',
    capabilities: { embeddings: true, tools: true, vision: true, nativeResponses: false, synthetic: false, refuses: OLLAMA_REFUSES },
    async chat(req: ChatRequest, opts: CallOptions): Promise<ChatOutcome> {
      // mapping errors (bad tool arguments, remote images) surface before anything is sent
      const body = toOllamaChat(req, defaults);
      const accept = body.stream ? 'application/x-ndjson' : 'application/json';
      const init = { headers: headers(opts, accept), body: JSON.stringify(body), signal: opts.signal };
      if (!body.stream) return client.sendJson('/api/chat', init, (r: unknown, h) => ChatReply.of(fromOllamaChat(r, cfg.name, req.model, h)));
      const up = await client.send('/api/chat', init);
      return { stream: true, chunks: ollamaStream(up.body, cfg.name, req.model, up.headers) };
    },
    async embeddings(req: EmbeddingsRequest, opts: CallOptions): Promise<EmbeddingsResponse> {
      const body = toOllamaEmbed(req, defaults);
      const init = { headers: headers(opts, 'application/json'), body: JSON.stringify(body), signal: opts.signal };
      return client.sendJson('/api/embed', init, (out: unknown, h) => fromOllamaEmbed(out, req, cfg.name, h));
    },
    close: () => client.close(),
    retire: (graceMs) => client.retire(graceMs),
  };
}
