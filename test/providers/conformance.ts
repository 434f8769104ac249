/**
 * The shared provider conformance suite. Every adapter runs through it via a fixture that starts a small
 * local fake upstream speaking that provider's real wire format, driven by a Scenario. A new adapter is
 * tested exactly like the old ones (hono's common.case.test.ts idea).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ChannelProvider, ChatOutcome, ProviderChannelConfig, StreamChunk } from '../../src/providers/provider.js';
import { GatewayError } from '../../src/wire/errors.js';
import { waitFor } from '../helpers/env.js';
import type { ChatCompletionChunk, ChatRequest } from '../../src/wire/openai.js';

/** What the fake upstream should do for the next requests. */
export interface Scenario {
  /** assistant text to answer with (split into several chunks when streaming) */
  reply?: string;
  /** answer with one tool call instead of text */
  toolCall?: { id: string; name: string; arguments: string };
  /** answer every request with this HTTP status and a provider-shaped error body */
  failStatus?: number;
  /** Retry-After header to send with failStatus */
  retryAfter?: string;
  /** stream: send this many content chunks, then destroy the socket (no proper end) */
  cutAfterChunks?: number;
  /** stream: after the first content chunk, send a provider-shaped in-band error event */
  inbandError?: boolean;
  /** stream: after the first content chunk, send a chunk that is not valid JSON */
  malformedChunk?: boolean;
  /** never answer (headers never sent) */
  hang?: boolean;
  /** answer 200 with a body that is not JSON (non-stream) */
  garbage?: boolean;
  /** usage the upstream reports */
  usage?: { input: number; output: number };
}

export interface FakeUpstream {
  /** channel config pointing at the fake (baseUrl set) */
  channel: ProviderChannelConfig;
  /** last request body the fake received, parsed */
  lastRequest(): Record<string, unknown> | undefined;
  /** last request path */
  lastPath(): string | undefined;
  /** last request headers */
  lastHeaders(): Record<string, string | string[] | undefined> | undefined;
  /** resolves when the fake saw a client connection close before it finished answering */
  aborted(): Promise<void>;
  close(): Promise<void>;
}

export interface ConformanceFixture {
  name: string;
  create(cfg: ProviderChannelConfig): ChannelProvider;
  start(scenario: Scenario): Promise<FakeUpstream>;
  supportsEmbeddings: boolean;
  /** true when the provider reports cache token usage (Anthropic) */
  reportsCacheUsage?: boolean;
}

const ctl = () => {
  const ac = new AbortController();
  return { ac, opts: { signal: ac.signal, requestId: 'req_test' } };
};

const baseReq = (over: Partial<ChatRequest> = {}): ChatRequest => ({
  model: 'm-upstream',
  messages: [
    { role: 'system', content: 'be brief' },
    { role: 'user', content: 'hello there' },
  ],
  ...over,
});

export async function collect(outcome: ChatOutcome): Promise<{ chunks: ChatCompletionChunk[]; raw: StreamChunk[] }> {
  if (!outcome.stream) throw new Error('expected a stream');
  const raw: StreamChunk[] = [];
  for await (const c of outcome.chunks) raw.push(c);
  return { raw, chunks: raw.map((c) => JSON.parse(c.data) as ChatCompletionChunk) };
}

function textOf(chunks: ChatCompletionChunk[]): string {
  return chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
}

async function expectGatewayError(p: Promise<unknown>, codes: string[]): Promise<GatewayError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    expect(codes).toContain((err as GatewayError).code);
    return err as GatewayError;
  }
  throw new Error(`expected a GatewayError (${codes.join('|')}), got success`);
}

export function runConformance(fx: ConformanceFixture): void {
  describe(`provider conformance: ${fx.name}`, () => {
    const open: Array<{ close(): Promise<void> }> = [];
    afterEach(async () => {
      while (open.length) await open.pop()!.close();
    });
    const setup = async (s: Scenario) => {
      const up = await fx.start(s);
      const p = fx.create(up.channel);
      open.push(up, p);
      return { up, p };
    };

    it('answers a non-streaming chat with text, finish_reason and usage', async () => {
      const { up, p } = await setup({ reply: 'Hi there, friend!', usage: { input: 11, output: 5 } });
      const out = await p.chat(baseReq(), ctl().opts);
      expect(out.stream).toBe(false);
      if (out.stream) return;
      expect(out.completion.object).toBe('chat.completion');
      expect(out.completion.choices[0]!.message.role).toBe('assistant');
      expect(out.completion.choices[0]!.message.content).toBe('Hi there, friend!');
      expect(out.completion.choices[0]!.finish_reason).toBe('stop');
      expect(out.completion.usage).toMatchObject({ prompt_tokens: 11, completion_tokens: 5, total_tokens: 16 });
      expect(up.lastRequest()).toBeDefined();
    });

    it('streams text chunk by chunk, then a usage chunk, and ends normally', async () => {
      const { p } = await setup({ reply: 'one two three four', usage: { input: 7, output: 4 } });
      const out = await p.chat(baseReq({ stream: true }), ctl().opts);
      const { chunks, raw } = await collect(out);
      expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
      expect(textOf(chunks)).toBe('one two three four');
      const contentChunks = chunks.filter((c) => (c.choices[0]?.delta.content ?? '') !== '');
      expect(contentChunks.length).toBeGreaterThan(1);
      expect(chunks.some((c) => c.choices[0]?.finish_reason === 'stop')).toBe(true);
      const last = raw[raw.length - 1]!;
      expect(last.usage).toMatchObject({ prompt_tokens: 7, completion_tokens: 4, total_tokens: 11 });
      expect(JSON.parse(last.data).choices).toEqual([]);
    });

    it('maps a tool call (non-streaming) with its arguments', async () => {
      const { p } = await setup({ toolCall: { id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}' } });
      const req = baseReq({
        tools: [
          { type: 'function', function: { name: 'get_weather', description: 'w', parameters: { type: 'object', properties: { city: { type: 'string' } } } } },
        ],
      });
      const out = await p.chat(req, ctl().opts);
      if (out.stream) throw new Error('expected json');
      const msg = out.completion.choices[0]!.message;
      expect(out.completion.choices[0]!.finish_reason).toBe('tool_calls');
      expect(msg.tool_calls?.[0]?.function.name).toBe('get_weather');
      expect(JSON.parse(msg.tool_calls![0]!.function.arguments)).toEqual({ city: 'Paris' });
    });

    it('streams a tool call: name first, arguments reassemble to the JSON sent', async () => {
      const { p } = await setup({ toolCall: { id: 'call_2', name: 'lookup', arguments: '{"q":"a b c","n":3}' } });
      const out = await p.chat(
        baseReq({ stream: true, tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object' } } }] }),
        ctl().opts,
      );
      const { chunks } = await collect(out);
      const calls = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
      expect(calls.find((c) => c.function?.name)?.function?.name).toBe('lookup');
      const args = calls.map((c) => c.function?.arguments ?? '').join('');
      expect(JSON.parse(args)).toEqual({ q: 'a b c', n: 3 });
      expect(chunks.some((c) => c.choices[0]?.finish_reason === 'tool_calls')).toBe(true);
    });

    it('sends tool results back upstream in the provider format without losing them', async () => {
      const { up, p } = await setup({ reply: 'It is sunny.' });
      await p.chat(
        baseReq({
          messages: [
            { role: 'user', content: 'weather?' },
            {
              role: 'assistant',
              content: null,
              tool_calls: [{ id: 'call_9', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }],
            },
            { role: 'tool', tool_call_id: 'call_9', content: 'sunny, 21C' },
          ],
        }),
        ctl().opts,
      );
      const sent = JSON.stringify(up.lastRequest());
      expect(sent).toContain('call_9');
      expect(sent).toContain('sunny, 21C');
      expect(sent).toContain('Oslo');
    });

    it('maps an upstream 500 to a retryable UPSTREAM_ERROR', async () => {
      const { p } = await setup({ failStatus: 500 });
      const e = await expectGatewayError(p.chat(baseReq(), ctl().opts), ['UPSTREAM_ERROR']);
      expect(e.retryable).toBe(true);
    });

    it('maps an upstream 429 to RATE_LIMITED with Retry-After', async () => {
      const { p } = await setup({ failStatus: 429, retryAfter: '7' });
      const e = await expectGatewayError(p.chat(baseReq({ stream: true }), ctl().opts), ['RATE_LIMITED']);
      expect(e.retryAfterSec).toBe(7);
    });

    it('rejects a non-JSON success body as UPSTREAM_BAD_RESPONSE', async () => {
      const { p } = await setup({ garbage: true });
      await expectGatewayError(p.chat(baseReq(), ctl().opts), ['UPSTREAM_BAD_RESPONSE']);
    });

    it('throws (never returns) when the stream is cut mid-way', async () => {
      const { p } = await setup({ reply: 'a b c d e f g h', cutAfterChunks: 2 });
      const out = await p.chat(baseReq({ stream: true }), ctl().opts);
      await expectGatewayError(collect(out), ['UPSTREAM_STREAM_ERROR']);
    });

    it('throws on an in-band error event in the stream', async () => {
      const { p } = await setup({ reply: 'a b c d', inbandError: true });
      const out = await p.chat(baseReq({ stream: true }), ctl().opts);
      await expectGatewayError(collect(out), ['UPSTREAM_STREAM_ERROR', 'UPSTREAM_ERROR', 'RATE_LIMITED']);
    });

    it('throws on a malformed chunk in the stream', async () => {
      const { p } = await setup({ reply: 'a b c d', malformedChunk: true });
      const out = await p.chat(baseReq({ stream: true }), ctl().opts);
      await expectGatewayError(collect(out), ['UPSTREAM_BAD_RESPONSE', 'UPSTREAM_STREAM_ERROR']);
    });

    it('aborts the upstream request when the caller aborts', async () => {
      const { up, p } = await setup({ hang: true });
      const { ac, opts } = ctl();
      const pending = p.chat(baseReq({ stream: true }), opts);
      await waitFor(() => up.lastPath() !== undefined, 'the request to reach the upstream');
      ac.abort();
      await expectGatewayError(pending, ['CANCELLED']);
      await up.aborted();
    });

    it('declares the embeddings capability exactly when it has an embeddings API, and is not synthetic', async () => {
      const { p } = await setup({});
      expect(p.capabilities.embeddings).toBe(fx.supportsEmbeddings);
      expect(typeof p.embeddings === 'function').toBe(fx.supportsEmbeddings);
      expect(p.capabilities.synthetic).toBe(false);
    });

    if (fx.supportsEmbeddings) {
      it('creates embeddings in the OpenAI shape', async () => {
        const { p } = await setup({});
        expect(p.embeddings).toBeTypeOf('function');
        const res = await p.embeddings!({ model: 'emb-upstream', input: ['alpha', 'beta'] }, ctl().opts);
        expect(res.object).toBe('list');
        expect(res.data).toHaveLength(2);
        expect(res.data[1]!.index).toBe(1);
        expect(Array.isArray(res.data[0]!.embedding)).toBe(true);
        expect((res.data[0]!.embedding as number[]).length).toBeGreaterThan(0);
      });
    }
  });
}
