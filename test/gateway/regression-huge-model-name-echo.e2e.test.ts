/**
 * Regression: a model name the gateway does not serve (or a key may not use) was quoted whole in the error:
 * a 30 000-character `model` (5 000 in a Gemini path) came back as a 30 000-character message on /v1, /v1/messages (and its
 * count_tokens), /v1beta (generate, countTokens, the model GET) and in the log line, and a huge
 * `previous_response_id` likewise. Each now quotes at most 256 characters of it (`quotedName`,
 * src/wire/openai.ts), marked with `…`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, cleanupDirs, startProcess, type GatewayProcess } from '../helpers/env.js';
import { createKey } from '../keys/helpers.js';

const ADMIN = 'admin-token-5d2e';
let gw: GatewayProcess;
let secret: string;

beforeAll(async () => {
  gw = await startProcess({ gateway: { admin: { token: ADMIN } }, channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }] });
  secret = (await createKey(gw.url, { name: 'narrow', models: ['mock-*'] }, ADMIN)).secret;
}, 30_000);
afterAll(async () => {
  await gw?.stop();
  cleanupDirs();
});

const HUGE = 'z'.repeat(30_000);
/** in a path: what fits in Node's 16 KiB of request head */
const LONG = 'z'.repeat(5_000);

describe('a huge model name is not quoted back whole', () => {
  it('on every surface that names an unknown model', async () => {
    const answers = [
      await call(gw, '/v1/chat/completions', { body: { model: HUGE, messages: [{ role: 'user', content: 'hi' }] } }),
      await call(gw, '/v1/embeddings', { body: { model: HUGE, input: 'hi' } }),
      await call(gw, '/v1/messages', { body: { model: HUGE, max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] } }),
      await call(gw, '/v1/messages/count_tokens', { body: { model: HUGE, messages: [{ role: 'user', content: 'hi' }] } }),
      await call(gw, '/v1/responses', { body: { model: HUGE, input: 'hi' } }),
      await call(gw, `/v1beta/models/${LONG}:generateContent`, { body: { contents: [{ parts: [{ text: 'hi' }] }] } }),
      await call(gw, `/v1beta/models/${LONG}:countTokens`, { body: { contents: [{ parts: [{ text: 'hi' }] }] } }),
      await call(gw, `/v1beta/models/${LONG}`),
      await call(gw, `/v1beta/models/${LONG}`, { body: {} }),
      // a key whose globs do not allow it
      await call(gw, '/v1/chat/completions', {
        body: { model: `x${HUGE}`, messages: [{ role: 'user', content: 'hi' }] },
        headers: { authorization: `Bearer ${secret}` },
      }),
    ];
    for (const r of answers) {
      expect(r.status, r.text.slice(0, 200)).toBeGreaterThanOrEqual(400);
      expect(r.text.length, r.text.slice(0, 200)).toBeLessThan(1000);
      expect(r.text).toContain('zzz…');
    }
  });
});
