/**
 * Regression: on a native /v1/messages stream to an `anthropic` channel whose upstream did not count, extended
 * thinking's `signature_delta` was charged as one estimated output token: every `content_block_delta` was a
 * content chunk, and a signature (an opaque check of the thinking block, sent back unchanged on later turns) is
 * not text the model wrote. The output estimate is now the deltas that carry output: the thinking and text
 * deltas. Real gateway process, the official Anthropic SDK, a fake upstream that sends the signature and leaves
 * the count out.
 */
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_SIGNATURE, startAnthropicUpstream } from '../fakes/anthropic-upstream.js';
import type { FakeUpstream } from '../providers/conformance.js';
import { channelOf, cleanupDirs, startProcess, type GatewayProcess } from '../helpers/env.js';
import { admin, createKey } from './helpers.js';

const thinking = 'Two words, then four more.';
const reply = 'alpha beta gamma';

let ant: FakeUpstream;
let gw: GatewayProcess;

beforeAll(async () => {
  // `null`: message_delta keeps its usage object (the SDK's stream reader needs one), with null counts
  ant = await startAnthropicUpstream({ reply, thinking, uncounted: 'null' });
  gw = await startProcess({
    gateway: { keys: { refreshMs: 100 }, usage: { flushIntervalMs: 50 } },
    channels: [channelOf(ant, 'ant', ['claude-x'])],
  });
});

afterAll(async () => {
  await gw?.stop();
  await ant?.close();
  cleanupDirs();
});

describe('an uncounted native stream with extended thinking', () => {
  it('is charged its thinking and text deltas, not the signature', async () => {
    const k = await createKey(gw.url, { name: 'thinking' });
    const client = new Anthropic({ apiKey: k.secret, baseURL: gw.url, maxRetries: 0, timeout: 15_000 });
    const deltas: string[] = [];
    let signature = '';
    let thought = '';
    for await (const ev of await client.messages.create({ model: 'claude-x', max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'hi' }] })) {
      if (ev.type !== 'content_block_delta') continue;
      deltas.push(ev.delta.type);
      if (ev.delta.type === 'signature_delta') signature += ev.delta.signature;
      if (ev.delta.type === 'thinking_delta') thought += ev.delta.thinking;
    }
    // the client got the signature, as sent
    expect(signature).toBe(FAKE_SIGNATURE);
    expect(thought).toBe(thinking);
    const output = deltas.filter((t) => t !== 'signature_delta').length;
    expect(deltas.length).toBe(output + 1);
    const t = (await admin(gw.url, 'GET', `/admin/usage?key=${k.id}&by=model`)).json.total;
    expect({ requests: t.requests, estimated: t.estimated, outputTokens: t.outputTokens }).toEqual({ requests: 1, estimated: 1, outputTokens: output });
  });
});
