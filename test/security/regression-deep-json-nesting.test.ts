/**
 * Regression (issue 10.9): deep JSON nesting in a pass-through field gave 500 "unhandled error" (the stack
 * overflow of JSON.stringify when the request was serialised for an OpenAI-compatible upstream). Depth is
 * now bounded when the body is parsed (`gateway.maxJsonDepth`, default 64): 400 naming the field.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, channelOf, cleanupDirs, expectOpenAiError, startGw } from '../helpers/env.js';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import type { Gateway } from '../../src/gateway.js';

let up: OpenAiFake;
let gw: Gateway & { logs: string[] };
let strict: Gateway & { logs: string[] };

beforeAll(async () => {
  up = await startOpenAiUpstream({});
  gw = await startGw({ channels: [channelOf(up, 'oa', ['gpt-x'])] });
  strict = await startGw({ gateway: { maxJsonDepth: 16 }, channels: [channelOf(up, 'oa', ['gpt-x'])] });
});
afterAll(async () => {
  await Promise.all([gw?.close(), strict?.close()]);
  await up?.close();
  cleanupDirs();
});

/** A chat body (as text) with `field` set to `depth` nested arrays. */
function nestedChat(field: string, depth: number): string {
  return `{"model":"gpt-x","messages":[{"role":"user","content":"hi"}],"${field}":${'['.repeat(depth)}${']'.repeat(depth)}}`;
}

/** `{"a":{"a":…{}}}` nested `depth` objects deep. */
const nestedObject = (depth: number): string => '{"a":'.repeat(depth) + '{}' + '}'.repeat(depth);

describe('deeply nested JSON bodies', () => {
  it('100,000 levels in a pass-through field → 400 naming the field, not 500; the gateway serves on', async () => {
    const before = up.count('/chat/completions');
    const r = await call(gw, '/v1/chat/completions', { body: nestedChat('metadata_blob', 100_000) });
    expectOpenAiError(r, 400, 'invalid_request');
    expect(r.json.error.param).toMatch(/^metadata_blob\[0\]/);
    expect(r.json.error.message).toContain('nested deeper than 64 levels');
    expect(up.count('/chat/completions')).toBe(before); // refused before any upstream call
    expect(gw.logs.join('')).not.toContain('unhandled error');
    const ok = await call(gw, '/v1/chat/completions', { body: { model: 'gpt-x', messages: [{ role: 'user', content: 'after' }] } });
    expect(ok.status).toBe(200);
  });

  it('nested objects inside a known field are named by their path', async () => {
    const body = `{"model":"gpt-x","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":${nestedObject(200)}}}]}`;
    const r = await call(gw, '/v1/chat/completions', { body });
    expectOpenAiError(r, 400, 'invalid_request');
    expect(r.json.error.param).toMatch(/^tools\[0\]\.function\.parameters/);
  });

  it('64 levels pass (a deep JSON schema is fine); 65 do not', async () => {
    // the body object is level 0, the field's outer array level 1: 63 more arrays reach depth 64
    const ok = await call(gw, '/v1/chat/completions', { body: nestedChat('extra', 63) });
    expect(ok.status, ok.text).toBe(200);
    const last = up.requests.at(-1)!.body!;
    expect(JSON.stringify(last.extra)).toBe('['.repeat(63) + ']'.repeat(63));
    const over = await call(gw, '/v1/chat/completions', { body: nestedChat('extra', 64) });
    expect(over.status).toBe(400);
  });

  it('embeddings and admin bodies are bounded too; the limit is configurable', async () => {
    const emb = await call(gw, '/v1/embeddings', { body: `{"model":"gpt-x","input":"x","deep":${nestedObject(1000)}}` });
    expectOpenAiError(emb, 400, 'invalid_request');
    const adm = await call(gw, '/admin/bridges', { body: `{"url":"ws://127.0.0.1:9/bridge","token":"tttttttt","x":${nestedObject(1000)}}` });
    expectOpenAiError(adm, 400, 'invalid_request');
    expect(gw.mesh.list()).toHaveLength(0);
    const r = await call(strict, '/v1/chat/completions', { body: nestedChat('extra', 20) });
    expectOpenAiError(r, 400, 'invalid_request');
    expect(r.json.error.message).toContain('deeper than 16 levels');
    // the key admin route reads with the configured limit as well (it used the default of 64)
    const key = await call(strict, '/admin/keys', { body: `{"name":"deep","meta":${nestedObject(20)}}` });
    expectOpenAiError(key, 400, 'invalid_request');
    expect(key.json.error.message).toContain('deeper than 16 levels');
  });

  it('the inbound APIs use the configured limit too, and answer in their own format', async () => {
    const body = `{"model":"gpt-x","max_tokens":8,"messages":[{"role":"user","content":"hi"}],"metadata":{"extra":${'['.repeat(20)}${']'.repeat(20)}}}`;
    const m = await call(strict, '/v1/messages', { body, headers: { 'x-api-key': 'unused' } });
    expect(m.status).toBe(400);
    expect(m.json).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
    expect(m.json.error.message).toContain('nested deeper than 16 levels');
    const g = await call(strict, '/v1beta/models/gpt-x:generateContent', {
      body: `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"x":${'['.repeat(20)}${']'.repeat(20)}}`,
    });
    expect(g.status).toBe(400);
    expect(g.json).toMatchObject({ error: { code: 400, status: 'INVALID_ARGUMENT' } });
    const r = await call(strict, '/v1/responses', { body: `{"model":"gpt-x","input":"hi","metadata":${'['.repeat(20)}${']'.repeat(20)}}` });
    expect(r.status).toBe(400);
    expect(r.json.error.message).toContain('nested deeper than 16 levels');
  });
});
