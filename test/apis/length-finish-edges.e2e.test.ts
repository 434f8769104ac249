/**
 * An answer the upstream stopped at the output-token limit says so on every edge, in that API's own words,
 * streamed and not:
 * - an OpenAI-compatible upstream's `finish_reason: "length"` → `/v1/messages` `stop_reason: "max_tokens"` (in
 *   `message_delta` when streamed), Gemini `finishReason: "MAX_TOKENS"` (the last chunk's when streamed, in both
 *   stream forms), `/v1/responses` `status: "incomplete"` with `incomplete_details.reason: "max_output_tokens"`;
 *   also when the answer was cut inside a tool call (a cut call is not the model's finished turn: not `tool_use`);
 * - the reverse: an Anthropic channel's `stop_reason: "max_tokens"` → `/v1/chat/completions`
 *   `finish_reason: "length"`.
 * A real gateway in this process over the project's fake upstreams; the official SDKs where they apply, raw SSE
 * for what they hide (the event that carries the reason).
 */
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { startAnthropicUpstream } from '../fakes/anthropic-upstream.js';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import type { FakeUpstream } from '../providers/conformance.js';
import { call, channelOf, cleanupDirs, sdk, sseData, startGw } from '../helpers/env.js';

let gw: Gateway;
let cutText: OpenAiFake;
let cutCall: OpenAiFake;
let claude: FakeUpstream;
let anthropic: Anthropic;

beforeAll(async () => {
  cutText = await startOpenAiUpstream({ reply: 'The answer is cut', finishReason: 'length' });
  cutCall = await startOpenAiUpstream({ toolCall: { id: 'call_cut1', name: 'read_file', arguments: '{"path": "src/ma' }, finishReason: 'length' });
  claude = await startAnthropicUpstream({ reply: 'The answer is cut', stopReason: 'max_tokens' });
  gw = await startGw({
    gateway: { routing: { retries: 0 } },
    channels: [channelOf(cutText, 'oai-text', ['cut-text']), channelOf(cutCall, 'oai-call', ['cut-call']), channelOf(claude, 'claude', ['claude-cut'])],
  });
  anthropic = new Anthropic({ apiKey: 'x', baseURL: gw.url, maxRetries: 0, timeout: 15_000 });
});
afterAll(async () => {
  await gw?.close();
  for (const f of [cutText, cutCall, claude]) await f?.close();
  cleanupDirs();
});

const TOOLS = [{ name: 'read_file', description: 'read', input_schema: { type: 'object' as const, properties: { path: { type: 'string' } } } }];
const events = (text: string) =>
  text
    .split('\n\n')
    .filter((b) => b.startsWith('event: '))
    .map((b) => ({ event: b.slice(7, b.indexOf('\n')), data: JSON.parse(sseData(b)[0]!) as Record<string, any> }));

describe('OpenAI-compatible upstream, finish_reason "length"', () => {
  for (const model of ['cut-text', 'cut-call'])
    it(`/v1/messages (${model}): stop_reason max_tokens, non-streamed and in the stream's message_delta`, async () => {
      const body = { model, max_tokens: 5, messages: [{ role: 'user' as const, content: 'hi' }], ...(model === 'cut-call' ? { tools: TOOLS } : {}) };
      const m = await anthropic.messages.create(body);
      expect(m.stop_reason).toBe('max_tokens');

      const final = await anthropic.messages.stream(body).finalMessage();
      expect(final.stop_reason).toBe('max_tokens');

      const raw = await call(gw, '/v1/messages', { body: { ...body, stream: true } });
      const evs = events(raw.text);
      const delta = evs.filter((e) => e.event === 'message_delta');
      expect(delta).toHaveLength(1);
      expect(delta[0]!.data.delta).toEqual({ stop_reason: 'max_tokens', stop_sequence: null });
      expect(evs.at(-1)!.event).toBe('message_stop');
    });

  for (const model of ['cut-text', 'cut-call'])
    it(`Gemini (${model}): finishReason MAX_TOKENS, non-streamed, as SSE and as one JSON array (the last chunk only)`, async () => {
      const body = { contents: [{ role: 'user', parts: [{ text: 'hi' }] }], generationConfig: { maxOutputTokens: 5 } };
      const one = await call(gw, `/v1beta/models/${model}:generateContent`, { body });
      expect(one.status, one.text).toBe(200);
      expect(JSON.parse(one.text).candidates[0].finishReason).toBe('MAX_TOKENS');

      const sse = await call(gw, `/v1beta/models/${model}:streamGenerateContent?alt=sse`, { body });
      // Gemini frames its events with CRLF (`data: …\r\n\r\n`)
      const chunks = sseData(sse.text.replaceAll('\r\n', '\n')).map((d) => JSON.parse(d) as { candidates: Array<{ finishReason?: string }> });
      expect(chunks.map((c) => c.candidates[0]!.finishReason ?? null)).toEqual([...chunks.slice(1).map(() => null), 'MAX_TOKENS']);

      const arr = await call(gw, `/v1beta/models/${model}:streamGenerateContent`, { body });
      const list = JSON.parse(arr.text) as Array<{ candidates: Array<{ finishReason?: string }> }>;
      expect(list.at(-1)!.candidates[0]!.finishReason).toBe('MAX_TOKENS');
      expect(list.slice(0, -1).every((c) => c.candidates[0]!.finishReason === undefined)).toBe(true);
    });

  it('/v1/responses: incomplete with reason max_output_tokens, non-streamed and streamed (openai SDK)', async () => {
    const client = sdk(gw);
    const r = await client.responses.create({ model: 'cut-text', input: 'hi', max_output_tokens: 5 });
    expect(r.status).toBe('incomplete');
    expect(r.incomplete_details).toEqual({ reason: 'max_output_tokens' });
    const seen: string[] = [];
    let last: { status?: string; incomplete_details?: unknown } | undefined;
    for await (const e of await client.responses.create({ model: 'cut-text', input: 'hi', max_output_tokens: 5, stream: true })) {
      seen.push(e.type);
      if (e.type === 'response.incomplete') last = e.response;
    }
    expect(seen.at(-1)).toBe('response.incomplete');
    expect(last).toMatchObject({ status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } });
  });
});

describe('Anthropic channel, stop_reason "max_tokens", behind /v1/chat/completions', () => {
  it('finish_reason length, non-streamed and streamed (openai SDK)', async () => {
    const client = sdk(gw);
    const r = await client.chat.completions.create({ model: 'claude-cut', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] });
    expect(r.choices[0]!.finish_reason).toBe('length');
    const finishes: Array<string | null> = [];
    for await (const c of await client.chat.completions.create({
      model: 'claude-cut',
      max_tokens: 5,
      stream: true,
      messages: [{ role: 'user', content: 'hi' }],
    }))
      for (const ch of c.choices) finishes.push(ch.finish_reason);
    expect(finishes.filter((f) => f !== null)).toEqual(['length']);
    expect(finishes.at(-1)).toBe('length');
  });
});
