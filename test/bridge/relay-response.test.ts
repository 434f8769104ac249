/**
 * A non-streaming answer that B relays from its OpenAI-compatible upstream crosses the bridge and leaves A as
 * the upstream's bytes: A splits the bridge-response frame without parsing it (`splitRelayFrame`) and relays
 * the payload, validated by a scan, like an upstream's body. Both gateways run in this process, so every
 * JSON.parse either makes of the answer is counted. The answer's usage still reaches A's usage records.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { adminGet, cleanupDirs, startBridgedPair, waitFor } from '../helpers/env.js';
import { startFixedReplyUpstream, type FixedReplyUpstream } from '../fakes/fixed-reply-upstream.js';

const TOKEN = 'relay-bridge-token-31415';
const ADMIN = 'relay-admin-token-27182';
// indented on purpose: an answer parsed and serialised again on the way would lose the layout
const BODY = JSON.stringify(
  {
    id: 'chatcmpl-relay',
    object: 'chat.completion',
    created: 1_700_000_000,
    model: 'relay-model',
    choices: [{ index: 0, message: { role: 'assistant', content: 'relayed through two gateways' }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 13, completion_tokens: 5, total_tokens: 18 },
  },
  null,
  1,
);

let upstream: FixedReplyUpstream;
let a: Gateway & { logs: string[] };
let b: Gateway & { logs: string[] };

beforeAll(async () => {
  upstream = await startFixedReplyUpstream(() => BODY);
  ({ a, b } = await startBridgedPair(
    'relay',
    { provider: 'openai', baseUrl: upstream.baseUrl, apiKey: 'sk-up', models: ['relay-model'] },
    { token: TOKEN, admin: ADMIN },
  ));
});

afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await upstream?.close();
  cleanupDirs();
});

describe("a peer's relayed answer", () => {
  it('leaves A byte for byte as B received it, with no JSON.parse of it on either gateway, and its usage recorded on A', async () => {
    const real = JSON.parse.bind(JSON);
    let parsedAnswer = 0;
    vi.spyOn(JSON, 'parse').mockImplementation((s: string, reviver?: (this: unknown, key: string, value: unknown) => unknown) => {
      if (typeof s === 'string' && s.includes('relayed through two gateways')) parsedAnswer++;
      return real(s, reviver);
    });
    let status: number;
    let text: string;
    let peer: string | null;
    try {
      const res = await fetch(`${a.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'relay-model', messages: [{ role: 'user', content: 'hi' }] }),
      });
      status = res.status;
      peer = res.headers.get('x-switchyard-peer');
      text = await res.text();
    } finally {
      vi.restoreAllMocks();
    }
    expect(status).toBe(200);
    expect(peer).toBe('b');
    expect(text).toBe(BODY);
    expect(parsedAnswer).toBe(0);
    const u = await waitFor(async () => {
      const r = await adminGet(a.url, '/admin/usage?by=model', ADMIN);
      return r.total?.requests >= 1 ? r : undefined;
    }, 'usage recorded on A');
    expect(u.total).toMatchObject({ inputTokens: 13, outputTokens: 5 });
  });
});
