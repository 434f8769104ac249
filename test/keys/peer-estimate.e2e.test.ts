/**
 * The serving side of a bridge charges a peer's forward that ended without its upstream's count an estimate
 * (docs/keys.md), as a local key is charged: a stream the requesting client left mid-way, an answer whose
 * upstream never counts (no usage chunk; no `usage`). Real processes: A forwards to B (B's shared channel is
 * tier 0, A's own channel tier 1); B holds A to `peerLimits.tokensPerMin`, so the estimates B charges make it
 * refuse A's next forward, and A fails over to its own channel.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../helpers/env.js';
import { cleanupDirs, waitFor } from '../helpers/env.js';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import { admin, ask, chat, startPeerPair } from './helpers.js';

const BRIDGE = 'peer-estimate-bridge-token-2718';
/** what B lets A use per minute: far more than the first forwards are charged, far less than the last */
const TOKENS_PER_MIN = 200;
let upA: OpenAiFake;
let upB: OpenAiFake;
let a: GatewayProcess;
let b: GatewayProcess;

beforeAll(async () => {
  upA = await startOpenAiUpstream({ reply: 'from A' });
  upB = await startOpenAiUpstream({ reply: 'from B' });
  ({ a, b } = await startPeerPair({ token: BRIDGE, upA, upB, peerLimits: { peers: { gw_a: { tokensPerMin: TOKENS_PER_MIN } } } }));
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await Promise.all([upA?.close(), upB?.close()]);
  cleanupDirs();
});

interface Row {
  requests: number;
  inputTokens: number;
  outputTokens: number;
  cost: number;
}

/** B's served-for usage of A so far */
async function servedForA(): Promise<Row> {
  const r = (await admin(b.url, 'GET', '/admin/usage?by=peer')).json;
  return r.rows.find((x: { group: string }) => x.group === 'served-for gw_a') ?? { requests: 0, inputTokens: 0, outputTokens: 0, cost: 0 };
}

/** The record B added for A's next forward: waits for it (B settles a forward when its serving ends). */
async function nextRecord(before: Row): Promise<Row> {
  const now = await waitFor(async () => {
    const r = await servedForA();
    return r.requests > before.requests ? r : undefined;
  }, "B's served-for record");
  expect(now.requests).toBe(before.requests + 1);
  return { requests: 1, inputTokens: now.inputTokens - before.inputTokens, outputTokens: now.outputTokens - before.outputTokens, cost: now.cost - before.cost };
}

const sdkA = () => new OpenAI({ apiKey: 'unused', baseURL: `${a.url}/v1`, maxRetries: 0, timeout: 15_000 });

describe("a peer's forward without its upstream's count, on the serving side", () => {
  it('a stream the requesting client leaves mid-way is charged the peer an estimate and recorded served-for', async () => {
    const prompt = 'word '.repeat(20); // 100 characters: ~25 tokens by the estimate
    upB.enqueue({ reply: 'one two three four five six seven eight nine ten', chunkDelayMs: 300, usage: { input: 5000, output: 1000 } });
    const before = await servedForA();
    const ac = new AbortController();
    const res = await fetch(`${a.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(ask('m', { stream: true, messages: [{ role: 'user', content: prompt }] })),
      signal: ac.signal,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-switchyard-peer')).toBe('b');
    const reader = res.body!.getReader();
    let seen = '';
    while (!seen.includes('"content":"one"')) seen += new TextDecoder().decode((await reader.read()).value);
    ac.abort();
    // B's upstream was released long before its usage chunk: the estimate, not the upstream's 5000 + 1000
    await upB.aborted();
    const r = await nextRecord(before);
    expect(r.inputTokens).toBeGreaterThan(prompt.length / 4);
    expect(r.inputTokens).toBeLessThan(1000);
    expect(r.outputTokens).toBeGreaterThanOrEqual(1);
    expect(r.outputTokens).toBeLessThan(10);
    expect(r.cost).toBeGreaterThan(0); // priced at oa-b's table
  });

  it("an answer whose upstream never counts is charged the peer an estimate, streamed or not, and B's tokens per minute refuse the next", async () => {
    // not streamed: the answer's text at ~4 characters a token
    const reply = 'an answer nobody counted';
    upB.enqueue({ reply, noUsage: true });
    let before = await servedForA();
    const plain = await chat(a.url, undefined, ask('m'));
    expect(plain.status, plain.text).toBe(200);
    expect(plain.headers.get('x-switchyard-peer')).toBe('b');
    expect(plain.json.usage).toBeUndefined();
    const r1 = await nextRecord(before);
    expect(r1.outputTokens).toBe(Math.ceil(reply.length / 4));
    expect(r1.inputTokens).toBeGreaterThan(0);

    // streamed, ended normally without a usage chunk: a prompt whose estimate alone is past B's tokens per minute
    const prompt = 'word '.repeat(400); // 2,000 characters: ~500 tokens by the estimate
    upB.enqueue({ reply: 'one two three', noUsage: true });
    before = await servedForA();
    const stream = await sdkA()
      .chat.completions.create({ model: 'm', messages: [{ role: 'user', content: prompt }], stream: true, stream_options: { include_usage: true } })
      .withResponse();
    expect(stream.response.headers.get('x-switchyard-peer')).toBe('b');
    let text = '';
    for await (const c of stream.data) text += c.choices[0]?.delta?.content ?? '';
    expect(text).toBe('one two three');
    const r2 = await nextRecord(before);
    expect(r2.inputTokens).toBeGreaterThan(prompt.length / 4);
    expect(r2.outputTokens).toBe(5); // role chunk, three words, finish chunk
    expect(r1.inputTokens + r1.outputTokens + r2.inputTokens + r2.outputTokens).toBeGreaterThan(TOKENS_PER_MIN);

    // A's side charged what it relayed too (its served-by record), by the same estimate
    const byPeerA = (await admin(a.url, 'GET', '/admin/usage?by=peer')).json;
    const servedBy = byPeerA.rows.find((x: { group: string }) => x.group === 'served-by gw_b');
    expect(servedBy.inputTokens).toBeGreaterThan(prompt.length / 4);

    // B refuses A's next forward (tokens per minute spent by the estimates); A's own channel answers
    const served = upB.count('/chat/completions');
    const next = await chat(a.url, undefined, ask('m'));
    expect(next.status, next.text).toBe(200);
    expect(next.headers.get('x-switchyard-peer')).toBeNull();
    expect(next.headers.get('x-switchyard-channel')).toBe('oa-a');
    expect(upB.count('/chat/completions')).toBe(served);
    const refused = a
      .logs()
      .split('\n')
      .find((l) => l.includes('attempt failed') && l.includes('RATE_LIMITED') && l.includes('tokens'));
    expect(refused).toBeDefined();
  });
});
