/**
 * Regression: a non-streaming 200 whose body is the upstream's error object, on the channels that are not an
 * OpenAI-compatible chat relay:
 * - an Anthropic channel, Anthropic's error shape `{"type":"error","error":{"type":"overloaded_error",…}}`:
 *   was `upstream_bad_response` "upstream reply has no content array" (502), on the translated path and on the
 *   native /v1/messages pass-through alike;
 * - an `openai` channel with `responsesApi` (the native Responses pass-through), `{"error":{…}}`: was
 *   `upstream_bad_response` "upstream response has no output array";
 * - an Ollama channel, Ollama's `{"error":"…"}`: on /api/embed was `upstream_bad_response` "embed reply has no
 *   embeddings" (on /api/chat it was already its own check's UPSTREAM_ERROR).
 * Now each is the error it reports, by the one mechanism the OpenAI-compatible reply uses (`replyError`): its
 * `code`, else its `type`, names the status (OpenAI's table, Anthropic's ERROR_STATUS) and the error is the one
 * an HTTP answer of that status is. One real gateway process, upstreams that answer 200 with each provider's
 * error body as its wire format has it, the official SDKs as clients.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupDirs, rejectionOf, startProcess, type GatewayProcess } from '../helpers/env.js';
import { startFixedReplyUpstream, type FixedReplyUpstream } from '../fakes/fixed-reply-upstream.js';

const OVERLOADED = { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } };
const TOO_LONG = { type: 'error', error: { type: 'invalid_request_error', message: 'prompt is too long: 210342 tokens > 200000 maximum' } };
const CONTEXT_MESSAGE = "This model's maximum context length is 128000 tokens. However, your messages resulted in 130417 tokens.";
const RS_CONTEXT = { error: { message: CONTEXT_MESSAGE, type: 'invalid_request_error', param: 'input', code: 'context_length_exceeded' } };
const OLLAMA_MISSING = { error: "model 'llama9' not found, try pulling it first" };

let gw: GatewayProcess;
const fakes: FixedReplyUpstream[] = [];
let openai: OpenAI;
let anthropic: Anthropic;

beforeAll(async () => {
  const fixed = async (body: unknown) => {
    const f = await startFixedReplyUpstream(() => JSON.stringify(body));
    fakes.push(f);
    return f.baseUrl;
  };
  // an Anthropic or Ollama channel's baseUrl is the server's root; the fake answers every path
  const root = (url: string) => url.replace(/\/v1$/, '');
  gw = await startProcess({
    // no retry: each test sees the one channel's answer
    gateway: { routing: { retries: 0 } },
    channels: [
      { name: 'an-busy', provider: 'anthropic', baseUrl: root(await fixed(OVERLOADED)), apiKey: 'sk-ant-x', models: ['an-busy'] },
      { name: 'an-long', provider: 'anthropic', baseUrl: root(await fixed(TOO_LONG)), apiKey: 'sk-ant-x', models: ['an-long'] },
      { name: 'rs-ctx', provider: 'openai', baseUrl: await fixed(RS_CONTEXT), apiKey: 'sk-x', models: ['rs-ctx'], options: { responsesApi: true } },
      { name: 'ol-missing', provider: 'ollama', baseUrl: root(await fixed(OLLAMA_MISSING)), models: ['ol-missing'] },
    ],
  });
  openai = new OpenAI({ apiKey: 'x', baseURL: `${gw.url}/v1`, maxRetries: 0 });
  anthropic = new Anthropic({ apiKey: 'x', baseURL: gw.url, maxRetries: 0 });
});
afterAll(async () => {
  await gw?.stop();
  for (const f of fakes) await f.close();
  cleanupDirs();
});

const chat = (model: string) => ({ model, messages: [{ role: 'user' as const, content: 'hi' }] });

describe('Anthropic: a 200 whose body is {"type":"error","error":{…}}', () => {
  it('overloaded_error on /v1/chat/completions: overloaded (503) with the upstream’s message, as an upstream 529 is', async () => {
    const err = await rejectionOf(openai.chat.completions.create(chat('an-busy')));
    expect(err).toBeInstanceOf(OpenAI.InternalServerError);
    expect(err).toMatchObject({ status: 503, code: 'upstream_error', error: { details: { upstreamErrorType: 'overloaded_error' } } });
    expect((err as Error).message).toContain('channel an-busy: upstream reported overloaded_error in a 2xx reply: Overloaded');
  });

  it('overloaded_error on the native /v1/messages pass-through: the same error, in Anthropic’s format', async () => {
    const err = await rejectionOf(anthropic.messages.create({ ...chat('an-busy'), max_tokens: 16 }));
    expect(err).toBeInstanceOf(Anthropic.InternalServerError);
    const e = err as InstanceType<typeof Anthropic.InternalServerError>;
    expect(e.status).toBe(503);
    expect(e.message).toContain('upstream reported overloaded_error in a 2xx reply: Overloaded');
  });

  it('invalid_request_error: a 400 upstream_client_error with the upstream’s message', async () => {
    const err = await rejectionOf(openai.chat.completions.create(chat('an-long')));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err).toMatchObject({ status: 400, code: 'upstream_client_error' });
    expect((err as Error).message).toContain(`channel an-long: upstream reported invalid_request_error in a 2xx reply: ${TOO_LONG.error.message}`);
  });
});

describe('native Responses pass-through: a 200 whose body is {"error":{…}}', () => {
  it('context_length_exceeded: a 400 upstream_client_error with the upstream’s message', async () => {
    const err = await rejectionOf(openai.responses.create({ model: 'rs-ctx', input: 'hi' }));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err).toMatchObject({ status: 400 });
    expect((err as Error).message).toContain(`channel rs-ctx: upstream reported context_length_exceeded in a 2xx reply: ${CONTEXT_MESSAGE}`);
  });
});

describe('Ollama: a 200 whose body is {"error":"…"}', () => {
  it('on /api/embed: the error it reports, not "embed reply has no embeddings"', async () => {
    const err = await rejectionOf(openai.embeddings.create({ model: 'ol-missing', input: 'hi' }));
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(err).toMatchObject({ status: 502, code: 'upstream_error' });
    expect((err as Error).message).toContain(`channel ol-missing: upstream reported an error in a 2xx reply: ${OLLAMA_MISSING.error}`);
  });

  it('on /api/chat: the same error, by the same mechanism', async () => {
    const err = await rejectionOf(openai.chat.completions.create(chat('ol-missing')));
    expect(err).toMatchObject({ status: 502, code: 'upstream_error' });
    expect((err as Error).message).toContain(`channel ol-missing: upstream reported an error in a 2xx reply: ${OLLAMA_MISSING.error}`);
  });
});
