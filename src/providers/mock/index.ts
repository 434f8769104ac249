/**
 * `mock` provider: a built-in deterministic model for demos and tests. Labelled as a mock wherever it shows
 * (model list, replies, demo output). The reply is derived from the prompt; with tools present (and
 * tool_choice not "none") the first turn calls a tool, and a turn after a tool result reports it.
 *
 * options (channel.options): delayMs (before the first byte), chunkDelayMs (between stream chunks),
 * chunks (0 = one chunk per word), reply (fixed text), failEvery (every Nth request fails), failFirst
 * (the first N requests fail), failStatus (429|500|503|…, default 500), failMidStream (streams are cut
 * after half their chunks), embeddingDims (default 8).
 */
import { createHash } from 'node:crypto';
import { GatewayError } from '../../wire/errors.js';
import type { ContractField } from '../../wire/chat-contract.js';
import { inputsOf } from '../embeddings-shape.js';
import {
  namedTool,
  type ChatCompletion,
  type ChatMessage,
  type ChatRequest,
  type EmbeddingsRequest,
  type EmbeddingsResponse,
  type Usage,
} from '../../wire/openai.js';
import type { CallOptions, ChannelProvider, ChatOutcome, ProviderChannelConfig, StreamChunk } from '../provider.js';
import { statusError } from '../upstream.js';
import { ChatReply } from '../chat-reply.js';
import type { CancelSignal } from '../../util/abort.js';

interface MockOptions {
  delayMs: number;
  chunkDelayMs: number;
  chunks: number;
  reply: string | undefined;
  failEvery: number;
  failFirst: number;
  failStatus: number;
  failMidStream: boolean;
  embeddingDims: number;
}

function readOptions(o: Record<string, unknown> = {}): MockOptions {
  const num = (k: string, d: number) => (typeof o[k] === 'number' && Number.isFinite(o[k]) ? o[k] : d);
  return {
    delayMs: num('delayMs', 0),
    chunkDelayMs: num('chunkDelayMs', 0),
    chunks: num('chunks', 0),
    reply: typeof o.reply === 'string' ? o.reply : undefined,
    failEvery: num('failEvery', 0),
    failFirst: num('failFirst', 0),
    failStatus: num('failStatus', 500),
    failMidStream: o.failMidStream === true,
    embeddingDims: num('embeddingDims', 8),
  };
}

export function textOf(content: ChatMessage['content']): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content.map((p) => (p.type === 'text' && typeof (p as { text?: unknown }).text === 'string' ? (p as { text: string }).text : '')).join('');
}

/**
 * What the mock cannot honour: it makes one choice of text, no log probabilities and prose, never JSON or audio. It does honour
 * the tool forms: with tools (and tool_choice not "none") it always makes exactly one call, to the named tool.
 */
const MOCK_REFUSES: readonly ContractField[] = ['n', 'logprobs', 'response_format.json_object', 'response_format.json_schema', 'audio'];

/** What one embeddings request may hold, as OpenAI documents it; a mock answering more would only stall the loop. */
const MAX_EMBEDDING_INPUTS = 2048;

const words = (s: string) => s.split(/\s+/).filter(Boolean).length;

/** What the mock says: a pure function of the request. */
export function mockAnswer(req: ChatRequest, fixed?: string): { text: string | null; toolCall?: { name: string; arguments: string } } {
  const last = req.messages[req.messages.length - 1];
  if (last?.role === 'tool') return { text: fixed ?? `[mock] The tool returned: ${textOf(last.content)}` };
  const wantsTool = req.tools && req.tools.length > 0 && req.tool_choice !== 'none';
  const lastUser = [...req.messages].reverse().find((m) => m.role === 'user');
  const prompt = textOf(lastUser?.content).trim();
  if (wantsTool) {
    const named = namedTool(req.tool_choice);
    const tool = req.tools!.find((t) => t.function.name === named) ?? req.tools![0]!;
    return { text: null, toolCall: { name: tool.function.name, arguments: JSON.stringify({ input: prompt }) } };
  }
  return { text: fixed ?? `[mock ${req.model}] You said: ${prompt.length > 500 ? prompt.slice(0, 500) + '…' : prompt}` };
}

function split(text: string, n: number): string[] {
  if (n <= 0) return text.match(/\S+\s*/g) ?? [text];
  if (!text) return [];
  const k = Math.min(n, text.length);
  return Array.from({ length: k }, (_, i) => text.slice(Math.floor((i * text.length) / k), Math.floor(((i + 1) * text.length) / k)));
}

const sleep = (ms: number, signal: CancelSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(new GatewayError('CANCELLED', 'request cancelled'));
    if (ms <= 0) return resolve();
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new GatewayError('CANCELLED', 'request cancelled'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });

export function createMockProvider(cfg: ProviderChannelConfig): ChannelProvider {
  const o = readOptions(cfg.options);
  let count = 0;

  const maybeFail = () => {
    count++;
    if (count <= o.failFirst || (o.failEvery > 0 && count % o.failEvery === 0)) {
      throw statusError(o.failStatus, 'mock: injected failure', cfg.name, o.failStatus === 429 ? 1 : undefined);
    }
  };

  return {
    kind: 'mock',
    capabilities: { embeddings: true, tools: true, vision: true, nativeResponses: false, synthetic: true, refuses: MOCK_REFUSES },
    async chat(req: ChatRequest, opts: CallOptions): Promise<ChatOutcome> {
      await sleep(o.delayMs, opts.signal);
      maybeFail();
      const answer = mockAnswer(req, o.reply);
      const id = `chatcmpl-mock-${createHash('sha1').update(JSON.stringify(req.messages)).digest('hex').slice(0, 16)}`;
      const created = Math.floor(Date.now() / 1000);
      const promptTokens = req.messages.reduce((n, m) => n + words(textOf(m.content)) + 1, 0);
      const completionTokens = answer.text ? words(answer.text) : 8;
      const usage: Usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
      const toolCalls = answer.toolCall ? [{ id: `call_mock_${id.slice(-8)}`, type: 'function' as const, function: answer.toolCall }] : undefined;
      const finish = toolCalls ? 'tool_calls' : 'stop';
      if (!req.stream) {
        const completion: ChatCompletion = {
          id,
          object: 'chat.completion',
          created,
          model: req.model,
          choices: [{ index: 0, message: { role: 'assistant', content: answer.text, ...(toolCalls ? { tool_calls: toolCalls } : {}) }, finish_reason: finish }],
          usage,
        };
        return ChatReply.of(completion);
      }
      const chunk = (delta: Record<string, unknown>, finish_reason: string | null) =>
        JSON.stringify({ id, object: 'chat.completion.chunk', created, model: req.model, choices: [{ index: 0, delta, finish_reason }] });
      async function* gen(): AsyncGenerator<StreamChunk> {
        yield { data: chunk({ role: 'assistant', content: '' }, null) };
        const pieces = toolCalls ? [] : split(answer.text ?? '', o.chunks);
        for (let i = 0; i < pieces.length; i++) {
          await sleep(o.chunkDelayMs, opts.signal);
          if (o.failMidStream && i === Math.floor(pieces.length / 2)) {
            throw new GatewayError('UPSTREAM_STREAM_ERROR', `channel ${cfg.name}: mock stream cut mid-way (injected)`);
          }
          yield { data: chunk({ content: pieces[i] }, null) };
        }
        if (toolCalls) {
          const tc = toolCalls[0]!;
          yield { data: chunk({ tool_calls: [{ index: 0, id: tc.id, type: 'function', function: { name: tc.function.name, arguments: '' } }] }, null) };
          yield { data: chunk({ tool_calls: [{ index: 0, function: { arguments: tc.function.arguments } }] }, null) };
        }
        yield { data: chunk({}, finish) };
        yield { data: JSON.stringify({ id, object: 'chat.completion.chunk', created, model: req.model, choices: [], usage }), usage };
      }
      return { stream: true, chunks: gen() };
    },
    async embeddings(req: EmbeddingsRequest, opts: CallOptions): Promise<EmbeddingsResponse> {
      await sleep(o.delayMs, opts.signal);
      maybeFail();
      const inputs = inputsOf(req.input);
      if (inputs.length > MAX_EMBEDDING_INPUTS)
        throw new GatewayError('INVALID_REQUEST', `input: at most ${MAX_EMBEDDING_INPUTS} inputs per request (OpenAI's limit)`, { param: 'input' });
      const data = inputs.map((inp, index) => {
        const h = createHash('sha256').update(JSON.stringify(inp)).digest();
        const vector = Array.from({ length: o.embeddingDims }, (_, i) => (h[i % h.length]! - 128) / 128);
        // Like OpenAI: base64 of little-endian float32 when asked (the openai SDK asks by default).
        const embedding = req.encoding_format === 'base64' ? Buffer.from(new Float32Array(vector).buffer).toString('base64') : vector;
        return { object: 'embedding' as const, index, embedding };
      });
      const tokens = inputs.reduce<number>((n, i) => n + (typeof i === 'string' ? words(i) : i.length), 0);
      return { object: 'list', data, model: req.model, usage: { prompt_tokens: tokens, total_tokens: tokens } };
    },
    close: async () => undefined,
  };
}
