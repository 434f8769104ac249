/**
 * `anthropic` provider: the Messages API (POST {baseUrl}/v1/messages). baseUrl is what the official SDK
 * calls its base URL: the server root, without /v1 (default https://api.anthropic.com).
 *
 * Channel options (cfg.options):
 * - `anthropicVersion` (string): the `anthropic-version` header; default 2023-06-01.
 * - `defaultMaxTokens` (positive integer): max_tokens when the client sets none; default 4096 (the API
 *   requires a value; OpenAI clients usually omit it).
 *
 * Streams need no usage opt-in: Anthropic always reports usage (message_start + message_delta).
 * No embeddings: Anthropic has no embeddings API.
 *
 * A request that came in on the gateway's own /v1/messages carries its original body (src/wire/native.ts)
 * and is passed through natively (./native.ts): cache_control, thinking blocks and beta headers untouched.
 * `countTokens` calls the upstream's /v1/messages/count_tokens.
 */
import { GatewayError } from '../../wire/errors.js';
import type { ChatRequest } from '../../wire/openai.js';
import type { CallOptions, ChannelProvider, ChatOutcome, ProviderChannelConfig } from '../provider.js';
import { UpstreamClient } from '../upstream.js';
import { ANTHROPIC_REFUSES, toMessagesRequest, type RequestMapOptions } from './request.js';
import { toChatCompletion } from './response.js';
import { anthropicStream } from './stream.js';
import { ANTHROPIC_VERSION, anthropicModelMissing, type MessagesResponse } from './wire.js';
import { nativeRequestOf, withNative } from '../../wire/native.js';
import { anthropicNativeStream, nativeHeaders } from './native.js';
import { ChatReply } from '../chat-reply.js';

export const ANTHROPIC_DEFAULT_BASE_URL = 'https://api.anthropic.com';

export function createAnthropicProvider(cfg: ProviderChannelConfig): ChannelProvider {
  const version = option(cfg, 'anthropicVersion', (v): v is string => typeof v === 'string' && v.length > 0) ?? ANTHROPIC_VERSION;
  const defaultMaxTokens = option(cfg, 'defaultMaxTokens', (v): v is number => Number.isInteger(v) && (v as number) > 0);
  const mapOpts: RequestMapOptions = defaultMaxTokens === undefined ? {} : { defaultMaxTokens };

  const client = new UpstreamClient({
    baseUrl: cfg.baseUrl ?? ANTHROPIC_DEFAULT_BASE_URL,
    connections: cfg.maxConcurrent ?? 128,
    headersTimeoutMs: cfg.timeoutMs,
    bodyTimeoutMs: cfg.timeoutMs,
    maxResponseBytes: cfg.maxResponseBytes,
    label: cfg.name,
    modelMissing: anthropicModelMissing,
  });
  const baseHeaders: Record<string, string> = {
    'content-type': 'application/json',
    'anthropic-version': version,
    ...(cfg.headers ?? {}),
  };
  if (cfg.apiKey) baseHeaders['x-api-key'] = cfg.apiKey;

  return {
    kind: 'anthropic',
    nativeApi: 'anthropic-messages',
    capabilities: { embeddings: false, tools: true, vision: true, nativeResponses: false, synthetic: false, refuses: ANTHROPIC_REFUSES },
    async chat(req: ChatRequest, opts: CallOptions): Promise<ChatOutcome> {
      const native = nativeRequestOf(req);
      if (native?.api === 'anthropic-messages') {
        const init = {
          headers: { ...nativeHeaders(baseHeaders, native.headers), 'x-request-id': opts.requestId },
          body: JSON.stringify({ ...native.body, model: req.model }),
          signal: opts.signal,
        };
        if (native.body.stream !== true) {
          return client.sendJson('/v1/messages', init, (msg: MessagesResponse, h) =>
            ChatReply.of(withNative(toChatCompletion(msg, cfg.name, req.model, h), msg)),
          );
        }
        const up = await client.send('/v1/messages', init);
        return { stream: true, chunks: anthropicNativeStream(up.body, cfg.name, up.headers) };
      }
      // mapping errors are the client's (INVALID_REQUEST / UNSUPPORTED): thrown before any upstream call
      const body = toMessagesRequest(req, mapOpts);
      const init = { headers: { ...baseHeaders, 'x-request-id': opts.requestId }, body: JSON.stringify(body), signal: opts.signal };
      if (!body.stream) return client.sendJson('/v1/messages', init, (msg: MessagesResponse, h) => ChatReply.of(toChatCompletion(msg, cfg.name, req.model, h)));
      const up = await client.send('/v1/messages', init);
      return { stream: true, chunks: anthropicStream(up.body, cfg.name, { model: req.model, headers: up.headers }) };
    },
    async countTokens(body, headers, opts): Promise<unknown> {
      return client.sendJson<unknown>('/v1/messages/count_tokens', {
        headers: { ...nativeHeaders(baseHeaders, headers), 'x-request-id': opts.requestId },
        body: JSON.stringify(body),
        signal: opts.signal,
      });
    },
    close: () => client.close(),
    retire: (graceMs) => client.retire(graceMs),
  };
}

function option<T>(cfg: ProviderChannelConfig, key: string, valid: (v: unknown) => v is T): T | undefined {
  const v = cfg.options?.[key];
  if (v === undefined) return undefined;
  if (!valid(v)) throw new GatewayError('CONFIG_INVALID', `channel ${cfg.name}: options.${key} has an invalid value`, { param: `options.${key}` });
  return v;
}
