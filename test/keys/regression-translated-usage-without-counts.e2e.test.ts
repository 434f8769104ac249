/**
 * Regression: a translated upstream's missing count was made 0 before the usage was judged, so its answer was
 * charged 0 tokens as the upstream's count instead of the estimate: an Anthropic answer without `usage`
 * (translated on /v1/chat/completions, passed through natively on /v1/messages), a native Responses answer
 * without `usage` (/v1/responses over `responsesApi`), and an Ollama answer without `prompt_eval_count` (what
 * Ollama sends on a prompt-cache hit: charged 0 input, and reported `input_tokens: 0` on /v1/messages). A side
 * the upstream did not count is now estimated, the side it counted kept, and the record is `estimated`,
 * streamed and not. Real gateway process, the official SDKs, fake upstreams speaking each wire format.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAnthropicUpstream, type AnthropicScenario } from '../fakes/anthropic-upstream.js';
import { startOllamaUpstream, type OllamaScenario } from '../fakes/ollama-upstream.js';
import { startResponsesUpstream, type ResponsesFake } from '../fakes/responses-upstream.js';
import type { FakeUpstream } from '../providers/conformance.js';
import { channelOf, cleanupDirs, startProcess, type GatewayProcess } from '../helpers/env.js';
import { admin, createKey } from './helpers.js';

const reply = 'alpha beta gamma delta';
/** ~500 characters: the input estimate is over 125 tokens, where the defect charged 0 */
const prompt = 'word '.repeat(100);
const anthropicScenario: AnthropicScenario = { reply };
const ollamaScenario: OllamaScenario = { reply, omitPromptEvalCount: true };

let ant: FakeUpstream;
let oll: FakeUpstream;
let rs: ResponsesFake;
let gw: GatewayProcess;

beforeAll(async () => {
  ant = await startAnthropicUpstream(anthropicScenario);
  oll = await startOllamaUpstream(ollamaScenario);
  rs = await startResponsesUpstream({ omitUsage: true });
  const pricing = { input: 1, output: 2 };
  gw = await startProcess({
    gateway: { keys: { refreshMs: 100 }, usage: { flushIntervalMs: 50 } },
    channels: [
      channelOf(ant, 'ant', ['claude-x'], { pricing }),
      channelOf(oll, 'oll', ['llama', 'embed-x'], { pricing }),
      { name: 'rs', provider: 'openai', baseUrl: rs.baseUrl, apiKey: 'sk-up', models: ['gpt-rs'], options: { responsesApi: true }, pricing },
    ],
  });
});

afterAll(async () => {
  await gw?.stop();
  await Promise.all([ant?.close(), oll?.close(), rs?.close()]);
  cleanupDirs();
});

const openai = (secret: string) => new OpenAI({ apiKey: secret, baseURL: `${gw.url}/v1`, maxRetries: 0, timeout: 15_000 });
const anthropic = (secret: string) => new Anthropic({ apiKey: secret, baseURL: gw.url, maxRetries: 0, timeout: 15_000 });
const asked = [{ role: 'user' as const, content: prompt }];

async function totalOf(keyId: string) {
  return (await admin(gw.url, 'GET', `/admin/usage?key=${keyId}&by=model`)).json.total;
}

async function chatText(secret: string, model: string, stream: boolean): Promise<string> {
  if (!stream) return (await openai(secret).chat.completions.create({ model, messages: asked })).choices[0]!.message.content ?? '';
  let text = '';
  for await (const c of await openai(secret).chat.completions.create({ model, messages: asked, stream: true })) text += c.choices[0]?.delta?.content ?? '';
  return text;
}

describe("a translated upstream's missing count is charged the estimate, not 0", () => {
  it('Anthropic without counts (usage left out, or null counts): translated (/v1/chat/completions) and native (/v1/messages), streamed and not', async () => {
    const cases: Array<[string, AnthropicScenario['uncounted'], (s: string) => Promise<unknown>]> = [
      ['chat', 'omitted', (s) => chatText(s, 'claude-x', false)],
      ['chat-stream', 'omitted', (s) => chatText(s, 'claude-x', true)],
      ['chat-null', 'null', (s) => chatText(s, 'claude-x', false)],
      ['chat-stream-null', 'null', (s) => chatText(s, 'claude-x', true)],
      [
        'messages',
        'omitted',
        async (s) => ((await anthropic(s).messages.create({ model: 'claude-x', max_tokens: 64, messages: asked })).content[0] as { text: string }).text,
      ],
      // the SDK's stream reader needs message_delta's usage object: its counts are null
      ['messages-stream', 'null', (s) => anthropic(s).messages.stream({ model: 'claude-x', max_tokens: 64, messages: asked }).finalText()],
    ];
    const got: Record<string, unknown> = {};
    const want: Record<string, unknown> = {};
    for (const [name, uncounted, run] of cases) {
      anthropicScenario.uncounted = uncounted;
      const k = await createKey(gw.url, { name: `ant-${name}` });
      expect(await run(k.secret)).toBe(reply);
      const t = await totalOf(k.id);
      got[name] = {
        requests: t.requests,
        inputEstimated: t.inputTokens > prompt.length / 4,
        outputCharged: t.outputTokens > 0,
        priced: t.cost > 0,
        estimated: t.estimated,
      };
      want[name] = { requests: 1, inputEstimated: true, outputCharged: true, priced: true, estimated: 1 };
    }
    expect(got).toEqual(want);
  });

  it('Ollama without prompt_eval_count (a prompt-cache hit): the input is estimated, the output its eval_count; embeddings too', async () => {
    const evalCount = reply.split(' ').length; // the fake's eval_count: one per word
    const got: Record<string, unknown> = {};
    const want: Record<string, unknown> = {};
    for (const stream of [false, true]) {
      const k = await createKey(gw.url, { name: `oll-${stream}` });
      expect(await chatText(k.secret, 'llama', stream)).toBe(reply);
      const t = await totalOf(k.id);
      got[`chat ${stream}`] = { inputEstimated: t.inputTokens > prompt.length / 4, outputTokens: t.outputTokens, estimated: t.estimated };
      want[`chat ${stream}`] = { inputEstimated: true, outputTokens: evalCount, estimated: 1 };
    }
    const e = await createKey(gw.url, { name: 'oll-embed' });
    const emb = await openai(e.secret).embeddings.create({ model: 'embed-x', input: prompt });
    expect(emb.data).toHaveLength(1);
    const t = await totalOf(e.id);
    got.embeddings = { inputEstimated: t.inputTokens > prompt.length / 4, estimated: t.estimated };
    want.embeddings = { inputEstimated: true, estimated: 1 };
    expect(got).toEqual(want);
  });

  it('Ollama without prompt_eval_count on /v1/messages: the client is told the estimated input, not 0, and its count of output', async () => {
    for (const stream of [false, true]) {
      const k = await createKey(gw.url, { name: `oll-messages-${stream}` });
      const m = stream
        ? await anthropic(k.secret).messages.stream({ model: 'llama', max_tokens: 64, messages: asked }).finalMessage()
        : await anthropic(k.secret).messages.create({ model: 'llama', max_tokens: 64, messages: asked });
      expect({ stream, inputEstimated: m.usage.input_tokens > prompt.length / 4, output: m.usage.output_tokens }).toEqual({
        stream,
        inputEstimated: true,
        output: reply.split(' ').length,
      });
    }
  });

  it('native Responses without usage (/v1/responses over responsesApi), streamed and not', async () => {
    const got: Record<string, unknown> = {};
    for (const stream of [false, true]) {
      const k = await createKey(gw.url, { name: `rs-${stream}` });
      if (stream) {
        let done = false;
        for await (const ev of await openai(k.secret).responses.create({ model: 'gpt-rs', input: prompt, stream: true }))
          if (ev.type === 'response.completed') done = true;
        expect(done).toBe(true);
      } else expect((await openai(k.secret).responses.create({ model: 'gpt-rs', input: prompt })).output_text).toBe('Hi there!');
      const t = await totalOf(k.id);
      got[String(stream)] = {
        requests: t.requests,
        inputEstimated: t.inputTokens > prompt.length / 4,
        outputCharged: t.outputTokens > 0,
        estimated: t.estimated,
      };
    }
    const want = { requests: 1, inputEstimated: true, outputCharged: true, estimated: 1 };
    expect(got).toEqual({ false: want, true: want });
  });
});
