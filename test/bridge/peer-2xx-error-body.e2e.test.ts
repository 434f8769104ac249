/**
 * A bridge peer's upstream that answers a non-streaming request with 200 and an error object as the body: the
 * peer reads it as the error it reports (src/providers/reported-error.ts) and answers with that error
 * (bridge-error), never with the body as a bridge-response, so the requesting gateway's client gets the same
 * code as a client of the peer, prefixed with the peer's name (docs/errors.md, "An error object as a 2xx
 * answer"). Two real gateway processes, fake OpenAI and vLLM upstreams, the official SDK as the client.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupDirs, rejectionOf, startProcess, startRequesterProcess, type GatewayProcess } from '../helpers/env.js';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';

const BRIDGE_TOKEN = 'peer-2xx-bridge-token-5e8a1c';
const ADMIN = 'peer-2xx-admin-token-9d4b7f';
const RATE_MESSAGE = 'Rate limit reached for gpt-4.1 on tokens per min (TPM). Please try again in 1.5s.';

let a: GatewayProcess;
let b: GatewayProcess;
let oa: OpenAiFake;
let vl: OpenAiFake;
let openai: OpenAI;

beforeAll(async () => {
  oa = await startOpenAiUpstream({ errorInReply: { message: RATE_MESSAGE, type: 'requests', param: null, code: 'rate_limit_exceeded' } });
  vl = await startOpenAiUpstream(
    { errorInReply: { message: 'prompt too long', type: 'BadRequestError', param: null, code: 400 }, vllmTopLevelErrors: true },
    { provider: 'vllm' },
  );
  b = await startProcess({
    gateway: {
      id: 'gw_b',
      name: 'dc',
      admin: { token: ADMIN },
      routing: { retries: 0 },
      bridge: { enabled: true, allowedTokens: [BRIDGE_TOKEN], shareChannels: ['oa', 'vl'], acceptSessions: false },
    },
    channels: [
      { name: 'oa', provider: 'openai', baseUrl: oa.channel.baseUrl, apiKey: oa.channel.apiKey, models: ['oa-m'] },
      { name: 'vl', provider: 'vllm', baseUrl: vl.channel.baseUrl, models: ['vl-m'] },
    ],
  });
  a = await startRequesterProcess(b.url, { token: BRIDGE_TOKEN, admin: ADMIN });
  openai = new OpenAI({ apiKey: 'x', baseURL: `${a.url}/v1`, maxRetries: 0 });
});
afterAll(async () => {
  await a?.stop();
  await b?.stop();
  await oa?.close();
  await vl?.close();
  cleanupDirs();
});

const chat = (model: string) => openai.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] });

describe('through a bridge peer, a 200 whose body is an error object', () => {
  it('{"error": …} rate_limit_exceeded: rate_limited (429) on the requesting gateway, with the peer’s name and the upstream’s message', async () => {
    for (const err of [await rejectionOf(chat('oa-m')), await rejectionOf(openai.embeddings.create({ model: 'oa-m', input: 'hi' }))]) {
      expect(err).toBeInstanceOf(OpenAI.RateLimitError);
      expect(err).toMatchObject({ status: 429, code: 'rate_limited' });
      expect((err as Error).message).toContain(`via peer dc: channel oa: upstream reported rate_limit_exceeded in a 2xx reply: ${RATE_MESSAGE}`);
    }
  });

  it('vLLM’s {"object":"error", "code": 400}: upstream_client_error (400)', async () => {
    for (const err of [await rejectionOf(chat('vl-m')), await rejectionOf(openai.embeddings.create({ model: 'vl-m', input: 'hi' }))]) {
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect(err).toMatchObject({ status: 400, code: 'upstream_client_error' });
      expect((err as Error).message).toContain('via peer dc: channel vl: upstream reported status 400 in a 2xx reply: prompt too long');
    }
  });
});
