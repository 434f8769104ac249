/**
 * Regression: refusals on the Anthropic, Responses and Gemini edges came back in another format or with a
 * misleading type or message.
 * - /v1/messages answered a wrong content-type (415) as `api_error`, Anthropic's type for a server error (the
 *   SDK's generic APIError, and a client that retries server errors retried it); any client error the table
 *   has no Anthropic type for is now `invalid_request_error`.
 * - A path under /v1/messages/ or /v1beta/ that is not a route (`/v1/messages/`, `/v1beta/files`) was the
 *   OpenAI-shaped 404; it is now the 404 of the API the path belongs to.
 * - `GET /v1/responses/{id}/input_items` was "no stored response "{id}/input_items"", and
 *   `POST /v1/responses/{id}/cancel` "method POST not allowed; use GET": both are a route the gateway does not
 *   serve, and now say so.
 * - `HEAD /v1beta/models/{model}` was 404 "no Gemini method"; it is answered as GET, as /v1/models is.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, cleanupDirs, expectOpenAiError, startProcess, type GatewayProcess } from '../helpers/env.js';

let gw: GatewayProcess;

beforeAll(async () => {
  gw = await startProcess({ channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }] });
}, 30_000);
afterAll(async () => {
  await gw?.stop();
  cleanupDirs();
});

const msg = { model: 'mock-1', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] };

describe('edge refusals in the edge’s own format', () => {
  it('/v1/messages: a client error without an Anthropic type of its own is invalid_request_error', async () => {
    const r = await call(gw, '/v1/messages', { body: JSON.stringify(msg), headers: { 'content-type': 'text/plain' } });
    expect(r.status).toBe(415);
    expect(r.json).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', code: 'unsupported_media_type' } });
  });

  it('an unknown path under /v1/messages/ or /v1beta/ is that API’s 404', async () => {
    for (const path of ['/v1/messages/', '/v1/messages/count_tokens/x', '/v1/messages/batches']) {
      const r = await call(gw, path, { body: msg });
      expect(r.status, path).toBe(404);
      expect(r.json, path).toMatchObject({ type: 'error', error: { type: 'not_found_error', code: 'not_found' } });
    }
    for (const path of ['/v1beta/files', '/v1beta', '/v1beta/cachedContents/x']) {
      const r = await call(gw, path);
      expect(r.status, path).toBe(404);
      expect(r.json, path).toMatchObject({ error: { code: 404, status: 'NOT_FOUND', details: [{ reason: 'NOT_FOUND' }] } });
    }
  });

  it('/v1/responses/{id}/… is a route the gateway does not serve, not a missing response or a wrong method', async () => {
    const got = await call(gw, '/v1/responses/resp_abc/input_items');
    expectOpenAiError(got, 404, 'not_found', null);
    expect(got.json.error.message).toMatch(/^no route GET \/v1\/responses\/resp_abc\/input_items/);
    const cancel = await call(gw, '/v1/responses/resp_abc/cancel', { body: {} });
    expectOpenAiError(cancel, 404, 'not_found', null);
    expect(cancel.json.error.message).toMatch(/^no route POST /);
  });

  it('HEAD on a Gemini model or the model list is answered as GET', async () => {
    for (const path of ['/v1beta/models/mock-1', '/v1beta/models']) {
      const res = await fetch(gw.url + path, { method: 'HEAD' });
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    }
    const unknown = await fetch(gw.url + '/v1beta/models/nope', { method: 'HEAD' });
    expect(unknown.status).toBe(404);
  });
});
