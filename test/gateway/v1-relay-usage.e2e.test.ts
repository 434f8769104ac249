/**
 * /v1/chat/completions, non-streaming, OpenAI-compatible upstream: the gateway relays the upstream's body without
 * parsing it (its usage is read by a scan), and that usage still reaches the key's usage records and the token
 * metrics. The gateway runs in this process, so every JSON.parse it makes of the upstream's body is counted.
 * Bad bodies keep their errors; a usage that is not an object is no usage: the key is charged an estimate of the
 * answer (docs/keys.md), the token metrics count nothing.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { cleanupDirs, expectOpenAiError, call, startGw } from '../helpers/env.js';
import { admin, createKey } from '../keys/helpers.js';
import { startFixedReplyUpstream, type FixedReplyUpstream } from '../fakes/fixed-reply-upstream.js';
import { parseProm, value } from '../ops/prom-text.js';

const STATIC = 'static-relay-token-2718';
const SCRAPE = 'relay-scrape-token-1618';

const answer = (model: string, usage: unknown) =>
  JSON.stringify(
    {
      id: `chatcmpl-${model}`,
      object: 'chat.completion',
      created: 1_700_000_000,
      model,
      choices: [{ index: 0, message: { role: 'assistant', content: `from ${model}` }, finish_reason: 'stop' }],
      usage,
    },
    null,
    1,
  );

/** What the upstream answers, by the model it was asked for. */
const BODIES: Record<string, string> = {
  'good-model': answer('good-model', { prompt_tokens: 21, completion_tokens: 8, total_tokens: 29 }),
  'usage-number': answer('usage-number', 12),
  'usage-array': answer('usage-array', [3, 4]),
  'no-json': '<html>502 from a proxy</html>',
  'no-choices': '{"id":"x","object":"chat.completion","usage":{"prompt_tokens":1}}',
  trailing: answer('trailing', { prompt_tokens: 1, completion_tokens: 1 }) + '\n{"again":1}',
};

let upstream: FixedReplyUpstream;
let gw: Gateway & { logs: string[] };

beforeAll(async () => {
  // what the upstream answers depends on the model it was asked for
  upstream = await startFixedReplyUpstream((text) => BODIES[(JSON.parse(text) as { model: string }).model] ?? '{}');
  gw = await startGw({
    gateway: { auth: { tokens: [STATIC] }, keys: { refreshMs: 100 }, metrics: { token: SCRAPE } },
    channels: [{ name: 'relay', provider: 'openai', baseUrl: upstream.baseUrl, apiKey: 'sk-up', models: Object.keys(BODIES) }],
  });
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  cleanupDirs();
});

afterEach(() => {
  vi.restoreAllMocks();
});

async function tokens(model: string, direction: 'in' | 'out'): Promise<number | undefined> {
  const res = await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${SCRAPE}` } });
  expect(res.status).toBe(200);
  return value(parseProm(await res.text()), 'switchyard_tokens_total', { model, channel: 'relay', direction });
}

/** POSTs a chat with the key and reads the answer as text (no parse in this process while the gateway works). */
async function ask(secret: string, model: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }),
  });
  return { status: res.status, text: await res.text() };
}

describe('non-streaming relay without parsing', () => {
  it("relays the upstream's bytes, parses none of them, and records the scanned usage for the key and the metrics", async () => {
    const k = await createKey(gw.url, { name: 'relay-key', models: ['good-model', 'usage-number', 'usage-array'] });
    const body = BODIES['good-model']!;
    const real = JSON.parse.bind(JSON);
    let parsedBody = 0;
    vi.spyOn(JSON, 'parse').mockImplementation((s: string, reviver?: (this: unknown, key: string, value: unknown) => unknown) => {
      if (s === body) parsedBody++;
      return real(s, reviver);
    });
    const r = await ask(k.secret, 'good-model');
    expect(r.status).toBe(200);
    expect(r.text).toBe(body);
    expect(parsedBody).toBe(0);
    vi.restoreAllMocks();

    const u = await admin(gw.url, 'GET', `/admin/usage?key=${k.id}&by=model`);
    expect(u.status).toBe(200);
    expect(u.json.total).toMatchObject({ requests: 1, inputTokens: 21, outputTokens: 8 });
    expect(await tokens('good-model', 'in')).toBe(21);
    expect(await tokens('good-model', 'out')).toBe(8);
  });

  it('a usage that is not an object is relayed as sent and counts as no usage: an estimate for the key, nothing in the metrics', async () => {
    const k = await createKey(gw.url, { name: 'odd-usage', models: ['usage-number', 'usage-array'] });
    for (const model of ['usage-number', 'usage-array']) {
      const r = await ask(k.secret, model);
      expect(r.status).toBe(200);
      expect(r.text).toBe(BODIES[model]);
    }
    const u = await admin(gw.url, 'GET', `/admin/usage?key=${k.id}&by=model`);
    // the answers' text at ~4 characters a token: "from usage-number" (17) and "from usage-array" (16)
    expect(u.json.total).toMatchObject({ requests: 2, outputTokens: 5 + 4 });
    expect(u.json.total.inputTokens).toBeGreaterThan(0);
    for (const model of ['usage-number', 'usage-array']) for (const d of ['in', 'out'] as const) expect((await tokens(model, d)) ?? 0).toBe(0);
  });

  it.each([
    ['no-json', 'upstream returned a body that is not JSON'],
    ['trailing', 'upstream returned a body that is not JSON'],
    ['no-choices', 'upstream reply has no choices'],
  ])('a 200 body from %s is a 502 upstream error: %s', async (model, message) => {
    const r = await call(gw, '/v1/chat/completions', {
      body: { model, messages: [{ role: 'user', content: 'hi' }] },
      headers: { authorization: `Bearer ${STATIC}` },
    });
    expectOpenAiError(r, 502, 'upstream_bad_response');
    expect(r.json.error.message).toContain(`channel relay: ${message}`);
  });
});
