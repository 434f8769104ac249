/**
 * Each provider tells "the upstream does not have this model" apart from any other 404 (`UpstreamOptions.modelMissing`):
 * the former is MODEL_NOT_FOUND (404, retryable: the router tries another candidate and skips this one for the
 * model, src/router/router.ts), the latter stays UPSTREAM_ERROR (a wrong base URL is the channel's fault and counts
 * against it). Fake upstreams answer with the real servers' bodies.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createOllamaProvider } from '../../src/providers/ollama/index.js';
import { createOpenAiProvider } from '../../src/providers/openai/index.js';
import { createAnthropicProvider } from '../../src/providers/anthropic/index.js';
import type { ChannelProvider } from '../../src/providers/provider.js';
import type { GatewayError } from '../../src/wire/errors.js';
import { startOllamaUpstream } from '../fakes/ollama-upstream.js';
import { startOpenAiUpstream } from '../fakes/openai-upstream.js';
import { startAnthropicUpstream } from '../fakes/anthropic-upstream.js';
import { gatewayErrorOf } from '../helpers/gateway-error.js';

const open: Array<{ close(): Promise<unknown> }> = [];
const provs: ChannelProvider[] = [];
afterEach(async () => {
  await Promise.all(provs.splice(0).map((p) => p.close()));
  await Promise.all(open.splice(0).map((u) => u.close()));
});

const opts = () => ({ signal: new AbortController().signal, requestId: 'req_mm', hops: [], deadline: Date.now() + 10_000 });
const chat = (p: ChannelProvider, model: string, stream = false) => p.chat({ model, messages: [{ role: 'user', content: 'hi' }], stream }, opts());
const keep = <T extends ChannelProvider>(p: T): T => (provs.push(p), p);

function expectMissing(e: GatewayError, text: string): void {
  expect(e.code).toBe('MODEL_NOT_FOUND');
  expect(e.status).toBe(404);
  expect(e.retryable, 'another candidate may have the model').toBe(true);
  expect(e.param).toBe('model');
  expect(e.message).toContain(text);
}

function expectChannelFault(e: GatewayError): void {
  expect(e.code).toBe('UPSTREAM_ERROR');
  expect(e.details).toMatchObject({ upstreamStatus: 404 });
}

describe('an upstream 404 that says the model is missing', () => {
  it('ollama: "model \\"x\\" not found, try pulling it first", for chat (streamed or not) and embeddings; a wrong path is not', async () => {
    const up = await startOllamaUpstream({ pulled: ['llama-a'] });
    open.push(up);
    const p = keep(createOllamaProvider(up.channel));
    expectMissing(await gatewayErrorOf(chat(p, 'llama-b')), 'model "llama-b" not found, try pulling it first');
    expectMissing(await gatewayErrorOf(chat(p, 'llama-b', true)), 'not found');
    expectMissing(await gatewayErrorOf(p.embeddings!({ model: 'llama-b', input: 'x' }, opts())), 'not found');
    // behind a proxy path the server does not have: Go's plain-text 404, a misconfigured channel
    const wrong = keep(createOllamaProvider({ ...up.channel, baseUrl: `${up.channel.baseUrl}/nope` }));
    expectChannelFault(await gatewayErrorOf(chat(wrong, 'llama-a')));
  });

  it("openai: code model_not_found; a wrong base URL's 404 is not", async () => {
    const up = await startOpenAiUpstream({ servedModels: ['gpt-a'] }, { provider: 'openai' });
    open.push(up);
    const p = keep(createOpenAiProvider(up.channel));
    expectMissing(await gatewayErrorOf(chat(p, 'gpt-b')), 'The model `gpt-b` does not exist or you do not have access to it.');
    expectMissing(await gatewayErrorOf(chat(p, 'gpt-b', true)), 'does not exist');
    const wrong = keep(createOpenAiProvider({ ...up.channel, baseUrl: up.baseUrl.replace(/\/v1$/, '/v2') }));
    expectChannelFault(await gatewayErrorOf(chat(wrong, 'gpt-a')));
  });

  it('vllm: NotFoundError "The model `x` does not exist." (under `error`, and at the top level as older vLLM sends it)', async () => {
    for (const vllmTopLevelErrors of [false, true]) {
      const up = await startOpenAiUpstream({ servedModels: ['m-a'], vllmTopLevelErrors }, { provider: 'vllm' });
      open.push(up);
      const p = keep(createOpenAiProvider(up.channel));
      expectMissing(await gatewayErrorOf(chat(p, 'm-b')), 'does not exist');
    }
  });

  it('anthropic: not_found_error "model: x"; a not_found_error that names no model is not', async () => {
    const up = await startAnthropicUpstream({ failStatus: 404, failMessage: 'model: claude-missing' });
    open.push(up);
    const p = keep(createAnthropicProvider(up.channel));
    expectMissing(await gatewayErrorOf(chat(p, 'claude-missing')), 'model: claude-missing');
    const other = await startAnthropicUpstream({ failStatus: 404, failMessage: 'Not found' });
    open.push(other);
    expectChannelFault(await gatewayErrorOf(chat(keep(createAnthropicProvider(other.channel)), 'claude-x')));
  });

  it('a 401 stays UPSTREAM_ERROR (a wrong key counts against the channel)', async () => {
    const up = await startOpenAiUpstream({ servedModels: ['gpt-a'] }, { provider: 'openai' });
    open.push(up);
    const e = await gatewayErrorOf(chat(keep(createOpenAiProvider({ ...up.channel, apiKey: 'sk-wrong' })), 'gpt-b'));
    expect(e.code).toBe('UPSTREAM_ERROR');
    expect(e.details).toMatchObject({ upstreamStatus: 401 });
  });
});
