/**
 * Regression: `/v1/messages/count_tokens` checked only that `model` was a string and `messages` an array. A body
 * the Messages API refuses (`messages: [null]`, a role "system", a `text` block without text, a tool with an
 * empty name) was answered with an estimate (200) when no anthropic channel serves the model, and sent to the
 * upstream's counter when one does. It is now held to the same rules as `/v1/messages` (the same translator,
 * leniently: a block only Anthropic takes, such as `document`, still goes to the upstream's counter), 400
 * invalid_request naming the field, in Anthropic's format, before any upstream call.
 */
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, channelOf, cleanupDirs, startProcess, type GatewayProcess } from '../helpers/env.js';
import { startAnthropicUpstream } from '../fakes/anthropic-upstream.js';
import type { FakeUpstream } from '../providers/conformance.js';

let gw: GatewayProcess;
let up: FakeUpstream;

beforeAll(async () => {
  up = await startAnthropicUpstream({ reply: 'hey' });
  gw = await startProcess({ channels: [channelOf(up, 'ant', ['claude']), { name: 'm', provider: 'mock', models: ['mock-1'] }] });
}, 30_000);
afterAll(async () => {
  await gw?.stop();
  await up?.close();
  cleanupDirs();
});

const COUNT = '/v1/messages/count_tokens';

describe('count_tokens is held to the Messages rules', () => {
  it('a malformed body is 400 naming the field, on the estimate and the upstream path alike', async () => {
    for (const model of ['mock-1', 'claude']) {
      for (const [body, field] of [
        [{ model, messages: [null] }, 'messages.0'],
        [{ model, messages: [] }, 'messages'],
        [{ model, messages: [{ role: 'system', content: 'x' }] }, 'messages.0.role'],
        [{ model, messages: [{ role: 'user', content: [{ type: 'text' }] }] }, 'messages.0.content.0.text'],
        [{ model, messages: [{ role: 'user', content: 'hi' }], tools: [{ name: '', input_schema: { type: 'object' } }] }, 'tools.0.name'],
      ] as const) {
        const r = await call(gw, COUNT, { body });
        expect(r.status, `${model} ${r.text}`).toBe(400);
        expect(r.json).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', code: 'invalid_request' } });
        expect(r.json.error.message.startsWith(`${field}: `), r.json.error.message).toBe(true);
      }
    }
    expect(up.lastPath()).toBeUndefined(); // the upstream's counter was never asked
  });

  it('a valid body is counted as before; a block only Anthropic takes still reaches its counter', async () => {
    const sdk = new Anthropic({ apiKey: 'unused', baseURL: gw.url, maxRetries: 0 });
    const est = await sdk.messages.countTokens({ model: 'mock-1', messages: [{ role: 'user', content: 'hi' }] }).withResponse();
    expect(est.response.headers.get('x-switchyard-token-count')).toBe('estimate');
    const doc = await sdk.messages
      .countTokens({
        model: 'claude',
        messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'a page' } }] }],
      })
      .withResponse();
    expect(doc.response.headers.get('x-switchyard-token-count')).toBe('upstream');
    expect(up.lastPath()).toBe(COUNT);
  });
});
