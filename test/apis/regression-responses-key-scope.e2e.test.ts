/**
 * Regression: a stored response belongs to the virtual key that made it. Key B once read key A's stored
 * response by id (`GET /v1/responses/{id}`) and continued A's conversation with `previous_response_id` (A's
 * prompt then went upstream under B's key, and B's answer could repeat it). Now another key, or a caller
 * without a key, gets the 404 an unknown id gets, and the owner still reads and continues its own. A malformed
 * or huge id is unknown without a store read, and the error does not echo it whole.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, cleanupDirs, expectOpenAiError, startProcess, type GatewayProcess } from '../helpers/env.js';
import { createKey } from '../keys/helpers.js';

const ADMIN = 'admin-token-3f9a1c';
let gw: GatewayProcess;
let a: OpenAI;
let b: OpenAI;
let aSecret: string;

beforeAll(async () => {
  gw = await startProcess({
    gateway: { admin: { token: ADMIN }, auth: { tokens: ['static-token-77e0'] } },
    channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
  });
  aSecret = (await createKey(gw.url, { name: 'key-a' }, ADMIN)).secret;
  const bSecret = (await createKey(gw.url, { name: 'key-b' }, ADMIN)).secret;
  a = new OpenAI({ apiKey: aSecret, baseURL: `${gw.url}/v1`, maxRetries: 0, timeout: 15_000 });
  b = new OpenAI({ apiKey: bSecret, baseURL: `${gw.url}/v1`, maxRetries: 0, timeout: 15_000 });
}, 30_000);
afterAll(async () => {
  await gw?.stop();
  cleanupDirs();
});

describe('stored responses are scoped to their key', () => {
  it("another key can neither read nor continue a key's stored response; the owner can", async () => {
    const first = await a.responses.create({ model: 'mock-1', input: 'the launch code is 0000' });
    expect(first.id).toMatch(/^resp_/);

    const read = await b.responses.retrieve(first.id).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(read).toBeInstanceOf(OpenAI.NotFoundError);
    expect((read as InstanceType<typeof OpenAI.NotFoundError>).message).not.toContain('launch code');

    const cont = await b.responses.create({ model: 'mock-1', input: 'repeat it', previous_response_id: first.id }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(cont).toBeInstanceOf(OpenAI.NotFoundError);
    expect((cont as InstanceType<typeof OpenAI.NotFoundError>).param).toBe('previous_response_id');

    // a static token is not the key either
    const tok = await call(gw, `/v1/responses/${first.id}`, { headers: { authorization: 'Bearer static-token-77e0' } });
    expectOpenAiError(tok, 404, 'not_found', 'response_id');

    // the owner still has it, and continues from it
    expect((await a.responses.retrieve(first.id)).id).toBe(first.id);
    const next = await a.responses.create({ model: 'mock-1', input: 'and now?', previous_response_id: first.id });
    expect(next.status).toBe('completed');
  });

  it('a malformed or huge previous_response_id is unknown, and not echoed whole', async () => {
    const huge = 'r'.repeat(20_000);
    const r = await call(gw, '/v1/responses', {
      body: { model: 'mock-1', input: 'hi', previous_response_id: huge },
      headers: { authorization: `Bearer ${aSecret}` },
    });
    expectOpenAiError(r, 404, 'not_found', 'previous_response_id');
    expect(r.text.length).toBeLessThan(1000);
    const odd = await call(gw, '/v1/responses', {
      body: { model: 'mock-1', input: 'hi', previous_response_id: '../x' },
      headers: { authorization: `Bearer ${aSecret}` },
    });
    expectOpenAiError(odd, 404, 'not_found', 'previous_response_id');
  });
});
