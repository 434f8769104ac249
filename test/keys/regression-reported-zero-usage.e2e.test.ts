/**
 * Regression: an upstream's reported usage of 0 input and 0 output tokens was read two ways. Accounting took it
 * for the count it is (charged 0/0, not estimated), while the Anthropic, Responses and Gemini edges took 0/0 for
 * "no count" and showed the client their estimate instead (input from the request size, output 1): the client
 * was shown tokens it was never charged. A reported 0 is a count on both sides now (shownCounts, countOf): the
 * client sees 0/0 and the record is 0/0, not estimated. Real gateway process, the official SDKs (Anthropic,
 * openai for Responses; Gemini raw, no SDK here), a fake OpenAI upstream that reports 0/0.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import { call, channelOf, cleanupDirs, startProcess, type GatewayProcess } from '../helpers/env.js';
import { parseSse } from '../../src/util/lines.js';
import { admin, createKey } from './helpers.js';

let up: OpenAiFake;
let gw: GatewayProcess;
let key: { id: string; secret: string };
/** the answers the key got so far (each one a usage record) */
let answered = 0;

beforeAll(async () => {
  up = await startOpenAiUpstream({ reply: 'alpha beta gamma', usage: { input: 0, output: 0 } });
  gw = await startProcess({
    gateway: { keys: { refreshMs: 100 }, usage: { flushIntervalMs: 50 } },
    channels: [channelOf(up, 'zero', ['zero-m'], { pricing: { input: 1, output: 2 } })],
  });
  key = await createKey(gw.url, { name: 'zero' });
});

afterAll(async () => {
  await gw?.stop();
  await up?.close();
  cleanupDirs();
});

/** a prompt whose size estimate is well above 0 tokens, so an estimate cannot pass for the count */
const prompt = 'word '.repeat(100);

describe('a reported 0/0 usage is a count: shown as 0/0 and charged 0/0', () => {
  it('/v1/messages, non-streamed and streamed (message_delta)', async () => {
    const client = new Anthropic({ apiKey: key.secret, baseURL: gw.url, maxRetries: 0, timeout: 15_000 });
    const ask = { model: 'zero-m', max_tokens: 64, messages: [{ role: 'user' as const, content: prompt }] };
    const msg = await client.messages.create(ask);
    answered++;
    expect(msg.usage).toMatchObject({ input_tokens: 0, output_tokens: 0 });
    let last: unknown;
    for await (const ev of await client.messages.create({ ...ask, stream: true })) if (ev.type === 'message_delta') last = ev.usage;
    answered++;
    expect(last).toMatchObject({ input_tokens: 0, output_tokens: 0 });
  });

  it('/v1/responses, non-streamed and streamed (response.completed)', async () => {
    const client = new OpenAI({ apiKey: key.secret, baseURL: `${gw.url}/v1`, maxRetries: 0, timeout: 15_000 });
    const r = await client.responses.create({ model: 'zero-m', input: prompt });
    answered++;
    expect(r.usage).toMatchObject({ input_tokens: 0, output_tokens: 0, total_tokens: 0 });
    let done: unknown;
    for await (const ev of await client.responses.create({ model: 'zero-m', input: prompt, stream: true }))
      if (ev.type === 'response.completed') done = ev.response.usage;
    answered++;
    expect(done).toMatchObject({ input_tokens: 0, output_tokens: 0, total_tokens: 0 });
  });

  it('/v1beta generateContent, non-streamed and streamed (the last chunk)', async () => {
    const body = { contents: [{ role: 'user', parts: [{ text: prompt }] }] };
    const headers = { 'x-goog-api-key': key.secret };
    const r = await call(gw, '/v1beta/models/zero-m:generateContent', { body, headers });
    expect(r.status).toBe(200);
    answered++;
    expect(JSON.parse(r.text).usageMetadata).toEqual({ promptTokenCount: 0, candidatesTokenCount: 0, totalTokenCount: 0 });
    const s = await call(gw, '/v1beta/models/zero-m:streamGenerateContent?alt=sse', { body, headers });
    expect(s.status).toBe(200);
    answered++;
    const chunks: string[] = [];
    for await (const e of parseSse(
      (async function* () {
        yield s.text;
      })(),
    ))
      chunks.push(e.data);
    expect(JSON.parse(chunks.at(-1)!).usageMetadata).toEqual({ promptTokenCount: 0, candidatesTokenCount: 0, totalTokenCount: 0 });
  });

  it('and the key is charged exactly that: 0/0, no estimate, no cost', async () => {
    const t = (await admin(gw.url, 'GET', `/admin/usage?key=${key.id}&by=model`)).json.total;
    expect({ requests: t.requests, estimated: t.estimated, inputTokens: t.inputTokens, outputTokens: t.outputTokens, cost: t.cost }).toEqual({
      requests: answered,
      estimated: 0,
      inputTokens: 0,
      outputTokens: 0,
      cost: 0,
    });
  });
});
