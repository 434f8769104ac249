/**
 * `openai` provider: any OpenAI-compatible upstream. `vllm` is configuration of this one (its own default
 * base URL, no key needed). Request bodies pass through untouched apart from `model` (modelMap, applied by
 * the caller), for streams `stream_options.include_usage` (always asked for, so usage is never lost), and the
 * token limit's name (`options.maxTokensField`, tokenFieldOf): every inbound API's request reaches the upstream
 * here, so the limit is renamed in this one place for chat and the translated APIs alike.
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

export type TokenField = 'max_tokens' | 'max_completion_tokens';

/**
 * Whether a channel's base URL is OpenAI's own API: api.openai.com, or an Azure OpenAI resource
 * (`<resource>.openai.azure.com`, the host Azure gives every Azure OpenAI resource, for its v1 API and its
 * deployments' routes alike). The gateway has no Azure channel kind or Azure request shape: an Azure OpenAI
 * upstream is an `openai` channel whose `baseUrl` names such a host, so the host is what says it. Other
 * `*.azure.com` hosts (`*.cognitiveservices.azure.com`, `*.services.ai.azure.com`) also front models that are not
 * OpenAI's, and are left as any OpenAI-compatible server is. A trailing dot (the absolute DNS name) is the same host.
 */
function isOpenAiHost(base: string): boolean {
  if (!URL.canParse(base)) return false;
  const host = new URL(base).hostname.toLowerCase().replace(/\.$/, '');
  return host === 'api.openai.com' || (host.endsWith('.openai.azure.com') && host.length > '.openai.azure.com'.length);
}

/**
 * The name the channel's upstream takes the token limit under: `options.maxTokensField`, else the provider's
 * default; undefined = as the request has it (no rename, no per-request work). OpenAI's own API takes
 * `max_completion_tokens` on every chat model and refuses `max_tokens` on its reasoning models (o-series, gpt-5),
 * and Azure OpenAI does the same for the same models, so an `openai` channel on either (isOpenAiHost) renames by
 * default; any other OpenAI-compatible server is left as it was (Mistral refuses `max_completion_tokens`, vLLM
 * takes both), unless the option says otherwise.
 */
export function tokenFieldOf(cfg: Pick<ProviderChannelConfig, 'name' | 'provider' | 'baseUrl' | 'options'>): TokenField | undefined {
  const v = cfg.options?.maxTokensField;
  if (v === 'max_tokens' || v === 'max_completion_tokens') return v;
  if (v !== undefined)
    throw new GatewayError('CONFIG_INVALID', `channel ${cfg.name}: options.maxTokensField must be "max_tokens" or "max_completion_tokens"`, {
      param: 'options.maxTokensField',
    });
  if (cfg.provider !== 'openai') return undefined;
  return isOpenAiHost(cfg.baseUrl ?? DEFAULT_BASE.openai!) ? 'max_completion_tokens' : undefined;
}

/**
 * `req` with its token limit under `to`: the request itself when it has no limit under the other name (nothing
 * copied), else a shallow copy with the limit moved. With both names set, `max_completion_tokens` is the limit, as
 * the anthropic and ollama translations read it.
 */
export function withTokenField(req: ChatRequest, to: TokenField): ChatRequest {
  const from: TokenField = to === 'max_tokens' ? 'max_completion_tokens' : 'max_tokens';
  if (req[from] === undefined) return req;
  const out: ChatRequest = { ...req, [to]: req.max_completion_tokens ?? req.max_tokens };
  delete out[from];
  return out;
}

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
  const tokenField = tokenFieldOf(cfg);
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
      if (tokenField) req = withTokenField(req, tokenField);
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
