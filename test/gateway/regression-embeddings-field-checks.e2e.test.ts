/**
 * Regression: /v1/embeddings checked only `model` and `input`. `encoding_format: "bogus"` went to an OpenAI
 * upstream (which refused it: a 400 upstream_client_error for the client's own mistake), and a channel that
 * builds the answer itself (ollama, mock) answered floats to it without a word; `dimensions: "8"` or `-1` went
 * up too (ollama dropped the string). Both are now 400 invalid_request naming the field, and nothing goes
 * upstream (an OpenAI-compatible fake that records every request). The official openai SDK, and raw fetch for
 * what it would not send.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, channelOf, cleanupDirs, expectOpenAiError, startProcess, type GatewayProcess } from '../helpers/env.js';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';

let gw: GatewayProcess;
let up: OpenAiFake;

beforeAll(async () => {
  up = await startOpenAiUpstream({ reply: 'unused' });
  gw = await startProcess({ channels: [channelOf(up, 'oai', ['emb']), { name: 'm', provider: 'mock', models: ['mock-emb'] }] });
}, 30_000);
afterAll(async () => {
  await gw?.stop();
  await up?.close();
  cleanupDirs();
});

describe('/v1/embeddings field checks', () => {
  it('a bad encoding_format or dimensions is refused before any upstream, on every channel kind', async () => {
    const before = up.count('/embeddings');
    for (const model of ['emb', 'mock-emb']) {
      for (const [extra, param] of [
        [{ encoding_format: 'bogus' }, 'encoding_format'],
        [{ encoding_format: 5 }, 'encoding_format'],
        [{ dimensions: '8' }, 'dimensions'],
        [{ dimensions: -1 }, 'dimensions'],
        [{ dimensions: 1.5 }, 'dimensions'],
      ] as const) {
        expectOpenAiError(await call(gw, '/v1/embeddings', { body: { model, input: 'hi', ...extra } }), 400, 'invalid_request', param);
      }
    }
    const sdk = new OpenAI({ apiKey: 'unused', baseURL: `${gw.url}/v1`, maxRetries: 0 });
    const err = await sdk.embeddings.create({ model: 'mock-emb', input: 'hi', dimensions: 0 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('dimensions');
    expect(up.count('/embeddings')).toBe(before);

    // the valid forms still pass, to the upstream and on the mock
    expect((await sdk.embeddings.create({ model: 'emb', input: 'hi', encoding_format: 'float', dimensions: 8 })).data).toHaveLength(1);
    expect(up.count('/embeddings')).toBe(before + 1);
    const b64 = await call(gw, '/v1/embeddings', { body: { model: 'mock-emb', input: 'hi', encoding_format: 'base64', dimensions: null } });
    expect(b64.status).toBe(200);
    expect(typeof b64.json.data[0].embedding).toBe('string');
  });
});
