/**
 * Regression: an upstream `usage` that holds no number (`{}`, `{"prompt_tokens": null, …}`, as some
 * OpenAI-compatible servers send) was taken as the upstream's count and charged 0 tokens, so such a channel
 * spent no budget and no tokens per minute. It is charged the estimate an answer without `usage` is, on every
 * inbound API, streamed (the usage chunk) and not, for /acp/rpc gateway chat tasks, and on both sides of a
 * bridge (the serving side's served-for record, the requesting side's served-by one). A stream's output is
 * estimated one token per content chunk: the usage chunk that counted nothing was charged as one more output
 * token too (6 for 5 content chunks), on every edge, for chat tasks and on both sides of a bridge. Real gateway
 * processes, the official SDKs, the fake OpenAI upstream sending the number-less usage.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import { channelOf, cleanupDirs, startProcess, waitFor, type GatewayProcess } from '../helpers/env.js';
import { rpc } from '../agents/acp-rpc.js';
import { admin, ask, chat, createKey, startPeerPair } from './helpers.js';

const ACP = 'usage-without-numbers-acp-token-1618';
const BRIDGE = 'usage-without-numbers-bridge-token-1618';
const reply = 'alpha beta gamma';
/** what some servers send in place of a count: alternated over the cases */
const NUMBERLESS: Array<Record<string, unknown>> = [{}, { prompt_tokens: null, completion_tokens: null, total_tokens: null }];

let up: OpenAiFake;
let gw: GatewayProcess;

beforeAll(async () => {
  up = await startOpenAiUpstream({ reply });
  gw = await startProcess({
    gateway: { keys: { refreshMs: 100 }, usage: { flushIntervalMs: 50 } },
    channels: [channelOf(up, 'oa', ['gpt-4o-mini'], { pricing: { input: 1, output: 2 } })],
    acp: { tokens: [ACP], gateways: [{ id: 'chat', label: 'Chat', kind: 'channels', model: 'gpt-4o-mini' }] },
  });
});

afterAll(async () => {
  await gw?.stop();
  await up?.close();
  cleanupDirs();
});

const hi = [{ role: 'user' as const, content: 'hi' }];
const anthropic = (secret: string) => new Anthropic({ apiKey: secret, baseURL: gw.url, maxRetries: 0, timeout: 15_000 });
const openai = (secret: string) => new OpenAI({ apiKey: secret, baseURL: `${gw.url}/v1`, maxRetries: 0, timeout: 15_000 });
const geminiBody = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] });
const gemini = (secret: string, call: string) =>
  fetch(`${gw.url}/v1beta/models/gpt-4o-mini:${call}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-goog-api-key': secret },
    body: geminiBody,
  });

async function totalOf(url: string, keyId: string) {
  return (await admin(url, 'GET', `/admin/usage?key=${keyId}&by=model`)).json.total;
}

describe('an upstream usage without a number is charged an estimate', () => {
  it('on every inbound API, streamed and not', async () => {
    const cases: Array<[string, (secret: string) => Promise<void>]> = [
      [
        'chat',
        async (s) => {
          const c = await openai(s).chat.completions.create({ model: 'gpt-4o-mini', messages: hi });
          expect(c.choices[0]!.message.content).toBe(reply);
        },
      ],
      [
        'chat-stream',
        async (s) => {
          let text = '';
          for await (const c of await openai(s).chat.completions.create({ model: 'gpt-4o-mini', messages: hi, stream: true }))
            text += c.choices[0]?.delta?.content ?? '';
          expect(text).toBe(reply);
        },
      ],
      ['messages', async (s) => expect((await anthropic(s).messages.create({ model: 'gpt-4o-mini', max_tokens: 64, messages: hi })).content).toHaveLength(1)],
      [
        'messages-stream',
        async (s) => expect(await anthropic(s).messages.stream({ model: 'gpt-4o-mini', max_tokens: 64, messages: hi }).finalText()).toBe(reply),
      ],
      ['responses', async (s) => expect((await openai(s).responses.create({ model: 'gpt-4o-mini', input: 'hi' })).output_text).toBe(reply)],
      [
        'responses-stream',
        async (s) => {
          let text = '';
          for await (const e of await openai(s).responses.create({ model: 'gpt-4o-mini', input: 'hi', stream: true }))
            if (e.type === 'response.output_text.delta') text += e.delta;
          expect(text).toBe(reply);
        },
      ],
      ['gemini', async (s) => expect(await (await gemini(s, 'generateContent')).text()).toContain(reply)],
      ['gemini-stream', async (s) => expect(await (await gemini(s, 'streamGenerateContent?alt=sse')).text()).toContain('"finishReason":"STOP"')],
    ];
    const got: Record<string, unknown> = {};
    const want: Record<string, unknown> = {};
    for (const [i, [name, run]] of cases.entries()) {
      const k = await createKey(gw.url, { name: `numberless-${name}` });
      up.enqueue({ reply, usageObject: NUMBERLESS[i % 2] });
      await run(k.secret);
      const t = await totalOf(gw.url, k.id);
      got[name] = { requests: t.requests, inputCharged: t.inputTokens > 0, outputTokens: t.outputTokens, priced: t.cost > 0, estimated: t.estimated };
      // an answer: its text at ~4 characters a token; a stream: one token per content chunk (role, three words,
      // finish), not the usage chunk that counted nothing
      want[name] = { requests: 1, inputCharged: true, outputTokens: name.endsWith('-stream') ? 5 : Math.ceil(reply.length / 4), priced: true, estimated: 1 };
    }
    expect(got).toEqual(want);
  });

  it("the estimate counts against the key's tokens per minute: the next request waits", async () => {
    const k = await createKey(gw.url, { name: 'numberless-tpm', limits: { tokensPerMin: 50 } });
    up.enqueue({ reply, usageObject: {} });
    const big = ask('gpt-4o-mini', { messages: [{ role: 'user', content: 'word '.repeat(400) }] }); // ~500 tokens by the estimate
    expect((await chat(gw.url, k.secret, big)).status).toBe(200);
    const next = await chat(gw.url, k.secret, ask('gpt-4o-mini'));
    expect(next.status, next.text).toBe(429);
    expect(next.json.error.details).toMatchObject({ reason: 'tokens' });
  });

  it('for an /acp/rpc gateway chat task', async () => {
    const k = await createKey(gw.url, { name: 'numberless-chat-task', acp: true });
    const prompt = 'word '.repeat(80); // 400 characters: ~100 tokens by the estimate
    up.enqueue({ reply: 'one two three', usageObject: {} });
    const done = await rpc(gw.url, k.secret, 'session.start', {
      sessionId: 'numberless-task',
      taskPrompt: prompt,
      routing: { explicitExecutionTarget: 'gateway', preferredGatewayProviderId: 'chat' },
    });
    expect(done.result).toMatchObject({ success: true, output: 'one two three' });
    const t = await totalOf(gw.url, k.id);
    expect(t.requests).toBe(1);
    expect(t.inputTokens).toBeGreaterThan(prompt.length / 4);
    expect(t.outputTokens).toBe(5); // one per content chunk taken: role, three words, finish (not the usage chunk)
    expect(t.estimated).toBe(1);
  });
});

describe('across a bridge', () => {
  let upA: OpenAiFake;
  let upB: OpenAiFake;
  let a: GatewayProcess;
  let b: GatewayProcess;

  beforeAll(async () => {
    upA = await startOpenAiUpstream({ reply: 'from A' });
    upB = await startOpenAiUpstream({ reply });
    ({ a, b } = await startPeerPair({ token: BRIDGE, upA, upB, peerLimits: {} }));
  });

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await Promise.all([upA?.close(), upB?.close()]);
  });

  /** B's served-for row of A, and A's served-by row of B */
  async function rows() {
    const row = async (url: string, group: string) =>
      ((await admin(url, 'GET', '/admin/usage?by=peer')).json.rows as any[]).find((x) => x.group === group) ?? { requests: 0, inputTokens: 0, outputTokens: 0 };
    return { servedFor: await row(b.url, 'served-for gw_a'), servedBy: await row(a.url, 'served-by gw_b') };
  }

  it("a forward whose upstream's usage holds no number is charged the estimate on the serving side and on the requesting side, streamed and not", async () => {
    for (const stream of [false, true]) {
      const before = await rows();
      upB.enqueue({ reply, usageObject: NUMBERLESS[stream ? 1 : 0] });
      const r = await chat(a.url, undefined, ask('m', { stream }));
      expect(r.status, r.text).toBe(200);
      expect(r.headers.get('x-switchyard-peer')).toBe('b');
      const after = await waitFor(async () => {
        const x = await rows();
        return x.servedFor.requests > before.servedFor.requests && x.servedBy.requests > before.servedBy.requests ? x : undefined;
      }, 'both records of the forward');
      const output = stream ? 5 : Math.ceil(reply.length / 4); // a stream: its 5 content chunks, not the usage chunk
      for (const side of ['servedFor', 'servedBy'] as const) {
        expect({ side, stream, requests: after[side].requests - before[side].requests, output: after[side].outputTokens - before[side].outputTokens }).toEqual({
          side,
          stream,
          requests: 1,
          output,
        });
        expect(after[side].inputTokens).toBeGreaterThan(before[side].inputTokens);
        expect(after[side].estimated - (before[side].estimated ?? 0)).toBe(1);
      }
    }
  });
});
