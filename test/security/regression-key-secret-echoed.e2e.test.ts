/**
 * Regression: a virtual key's secret is not registered with the scrubber (there can be millions of keys), so a
 * client that put its key where the gateway echoes a value got it back in clear: as the `model` of a request
 * (`model "sy-…" is not served here`), in a Gemini model path, and in `x-request-id`, which the gateway echoed in
 * the answer's header, sent upstream and wrote into its log lines.
 *
 * One real gateway process with a key store; the secret is one it issued, sent as the client's credential too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import { call, channelOf, cleanupDirs, startProcess, waitFor, type GatewayProcess } from '../helpers/env.js';
import { createKey } from '../keys/helpers.js';
import { REDACTED } from '../../src/util/redact.js';

/** never retry: the one failed attempt is logged once, and the upstream is asked once */
const ROUTING = { retries: 0, health: { consecutiveFailures: 1000, failureRatio: 1, minRequests: 1000 } };

let up: OpenAiFake;
let gw: GatewayProcess;
let secret: string;

/** the secret whole, or any 16 characters of its random part */
function expectClean(surface: string, text: string): void {
  expect(text.includes(secret), `${surface} holds the key secret:\n${text.slice(0, 2000)}`).toBe(false);
  for (let i = 3; i + 16 <= secret.length; i++) expect(text.includes(secret.slice(i, i + 16)), `${surface} holds a piece of the key secret`).toBe(false);
}

beforeAll(async () => {
  up = await startOpenAiUpstream({ reply: 'hello' });
  gw = await startProcess({ gateway: { id: 'gw_keyecho', routing: ROUTING }, channels: [channelOf(up, 'oa', ['m'])] });
  ({ secret } = await createKey(gw.url, { name: 'echo-app' }));
}, 60_000);

afterAll(async () => {
  await gw?.stop(3000);
  await up?.close();
  cleanupDirs();
});

describe('a key secret the client puts where the gateway echoes a value', () => {
  it('as the model: the 404 names the model as [REDACTED]', async () => {
    const r = await call(gw, '/v1/chat/completions', {
      body: { model: secret, messages: [{ role: 'user', content: 'hi' }] },
      headers: { authorization: `Bearer ${secret}` },
    });
    expect(r.status, r.text).toBe(404);
    expect(r.json.error.message).toContain(`model "${REDACTED}" is not served here`);
    expectClean('the /v1 answer', r.text);
  });

  it('in a Gemini model path: the 404 names it as [REDACTED]', async () => {
    const r = await call(gw, `/v1beta/models/${secret}:generateContent`, {
      body: { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] },
      headers: { 'x-goog-api-key': secret },
    });
    expect(r.status, r.text).toBe(404);
    expect(r.text).toContain(REDACTED);
    expectClean('the Gemini answer', r.text);
  });

  it('as x-request-id: not echoed, not sent upstream, not logged', async () => {
    up.enqueue({ failStatus: 500 });
    const r = await call(gw, '/v1/chat/completions', {
      body: { model: 'm', messages: [{ role: 'user', content: 'hi' }] },
      headers: { authorization: `Bearer ${secret}`, 'x-request-id': secret },
    });
    expect(r.status, r.text).toBe(502);
    const id = r.headers.get('x-request-id') ?? '';
    expect(id).toMatch(/^req_/);
    expectClean('the answer', r.text);
    const sent = up.requests.at(-1)!.headers['x-request-id'];
    expect(sent).toBe(id);
    await waitFor(() => gw.logs().includes(`"requestId":"${id}"`) && gw.logs().includes('attempt failed'), 'the failed attempt to be logged');
  });

  it("the gateway's log holds the key secret nowhere", async () => {
    await waitFor(() => gw.logs().includes('attempt failed'), 'the failed attempt to be logged');
    expectClean("the gateway's log", gw.logs());
  });
});
