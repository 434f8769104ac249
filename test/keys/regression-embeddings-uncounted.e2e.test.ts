/**
 * Regression: /v1/embeddings whose upstream answered without `usage` (or with one that holds no number) was
 * charged nothing: no tokens against the key's tokens per minute or budget, and a usage record of 0 tokens. It is
 * charged the input estimate every other API's uncounted answer is charged (the request's size, ~4 characters a
 * token), recorded with the cost it makes at the channel's price; on the serving side of a bridge too (the
 * peer's served-for record and its peerLimits tokens). Token arrays (`[1, 2, 3]`, `[[1, 2], [3]]`) were
 * estimated from the size of their JSON, not the tokens they hold. Real gateway processes, the fake OpenAI
 * upstream.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import { call, channelOf, cleanupDirs, startProcess, waitFor, type GatewayProcess } from '../helpers/env.js';
import { admin, createKey, startPeerPair } from './helpers.js';

const MODEL = 'text-embedding-3-small';
const BRIDGE = 'embeddings-uncounted-bridge-token-1414';
let up: OpenAiFake;
let gw: GatewayProcess;

beforeAll(async () => {
  up = await startOpenAiUpstream({});
  gw = await startProcess({
    gateway: { keys: { refreshMs: 100 }, usage: { flushIntervalMs: 50 } },
    channels: [channelOf(up, 'emb', [MODEL], { pricing: { input: 1, output: 2 } })],
  });
});

afterAll(async () => {
  await gw?.stop();
  await up?.close();
  cleanupDirs();
});

const embed = (secret: string, body: Record<string, unknown>) => call(gw, '/v1/embeddings', { body, headers: { authorization: `Bearer ${secret}` } });
/** the estimate: the request's JSON at ~4 characters a token */
const estimate = (body: Record<string, unknown>) => Math.ceil(JSON.stringify(body).length / 4);

describe('/v1/embeddings without the upstream count', () => {
  it('no usage, or a usage without a number: the request size is charged and recorded, priced; a counted answer is charged its count', async () => {
    const body = { model: MODEL, input: ['the quick brown fox', 'jumps over the lazy dog'] };
    const got: Record<string, unknown> = {};
    for (const [name, scenario] of [
      ['no usage', { noUsage: true }],
      ['empty usage', { usageObject: {} }],
      ['null counts', { usageObject: { prompt_tokens: null, total_tokens: null } }],
      ['counted', {}],
    ] as const) {
      const k = await createKey(gw.url, { name: `emb-${name.replace(' ', '-')}` });
      up.enqueue(scenario);
      const r = await embed(k.secret, body);
      expect(r.status, r.text).toBe(200);
      expect(r.json.data).toHaveLength(2);
      const t = (await admin(gw.url, 'GET', `/admin/usage?key=${k.id}&by=model`)).json.total;
      got[name] = { requests: t.requests, inputTokens: t.inputTokens, outputTokens: t.outputTokens, cost: t.cost, estimated: t.estimated };
    }
    const charged = estimate(body);
    expect(got).toEqual({
      'no usage': { requests: 1, inputTokens: charged, outputTokens: 0, cost: charged / 1e6, estimated: 1 },
      'empty usage': { requests: 1, inputTokens: charged, outputTokens: 0, cost: charged / 1e6, estimated: 1 },
      'null counts': { requests: 1, inputTokens: charged, outputTokens: 0, cost: charged / 1e6, estimated: 1 },
      // the fake counts one token per word: the upstream's count, not the estimate
      counted: { requests: 1, inputTokens: 9, outputTokens: 0, cost: 9 / 1e6, estimated: 0 },
    });
  });

  it('token arrays without the count are charged the tokens they hold, not the size of their JSON', async () => {
    // 40 four-digit ids: ~55 tokens by the JSON size, 40 tokens given
    const ids = Array.from({ length: 40 }, (_, i) => 1000 + i);
    const got: Record<string, unknown> = {};
    for (const [name, input, tokens] of [
      ['one array', ids, 40],
      ['several arrays', [ids.slice(0, 30), ids.slice(30), [7]], 41],
    ] as const) {
      const k = await createKey(gw.url, { name: `emb-tokens-${name.replace(' ', '-')}` });
      up.enqueue({ noUsage: true });
      const body = { model: MODEL, input };
      const r = await embed(k.secret, body);
      expect(r.status, r.text).toBe(200);
      expect(estimate(body)).toBeGreaterThan(tokens); // what the defect charged
      const t = (await admin(gw.url, 'GET', `/admin/usage?key=${k.id}&by=model`)).json.total;
      got[name] = { inputTokens: t.inputTokens, estimated: t.estimated, want: tokens };
    }
    expect(got).toEqual({ 'one array': { inputTokens: 40, estimated: 1, want: 40 }, 'several arrays': { inputTokens: 41, estimated: 1, want: 41 } });
  });

  it("the estimate counts against the key's tokens per minute and budget: the next request is refused", async () => {
    const big = { model: MODEL, input: 'word '.repeat(400) }; // ~500 tokens by the estimate
    for (const [name, extra, reason] of [
      ['emb-tpm', { limits: { tokensPerMin: 50 } }, 'rate_limited'],
      ['emb-budget', { budget: { period: 'day', tokens: 50 } }, 'budget_exceeded'],
    ] as const) {
      const k = await createKey(gw.url, { name, ...extra });
      up.enqueue({ noUsage: true });
      expect((await embed(k.secret, big)).status).toBe(200);
      const next = await embed(k.secret, { model: MODEL, input: 'again' });
      expect({ name, status: next.status, code: next.json?.error?.code }).toEqual({ name, status: 429, code: reason });
    }
  });
});

describe('embeddings across a bridge', () => {
  let upA: OpenAiFake;
  let upB: OpenAiFake;
  let a: GatewayProcess;
  let b: GatewayProcess;

  beforeAll(async () => {
    upA = await startOpenAiUpstream({});
    upB = await startOpenAiUpstream({});
    ({ a, b } = await startPeerPair({ token: BRIDGE, upA, upB, peerLimits: {} }));
  });

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await Promise.all([upA?.close(), upB?.close()]);
  });

  it("a forward whose upstream did not count is charged the estimate on B (served-for, priced at B's table) and on A (served-by)", async () => {
    upB.enqueue({ noUsage: true });
    const input = 'a sentence for the peer to embed';
    const { data, response } = await new OpenAI({ apiKey: 'unused', baseURL: `${a.url}/v1`, maxRetries: 0, timeout: 15_000 }).embeddings
      .create({ model: 'm', input })
      .withResponse();
    expect(data.data).toHaveLength(1);
    expect(response.headers.get('x-switchyard-peer')).toBe('b');
    const row = async (url: string, group: string) =>
      ((await admin(url, 'GET', '/admin/usage?by=peer')).json.rows as any[]).find((x) => x.group === group) as
        { requests: number; inputTokens: number; cost: number; estimated: number } | undefined;
    const servedFor = await waitFor(() => row(b.url, 'served-for gw_a'), "B's served-for record");
    const servedBy = await waitFor(() => row(a.url, 'served-by gw_b'), "A's served-by record");
    for (const r of [servedFor, servedBy]) {
      expect(r).toMatchObject({ requests: 1, estimated: 1 });
      expect(r.inputTokens).toBeGreaterThan(input.length / 4);
    }
    expect(servedFor.cost).toBeGreaterThan(0); // oa-b's price
  });
});
