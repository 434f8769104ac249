/**
 * An embeddings answer is passed on only when it is one: one embedding per input, each a vector of finite
 * numbers or base64 text (src/providers/embeddings-shape.ts). Through a real OpenAI-compatible channel too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkedEmbeddings, inputCount } from '../../src/providers/embeddings-shape.js';
import { createOpenAiProvider } from '../../src/providers/openai/index.js';
import { startFixedReplyUpstream, type FixedReplyUpstream } from '../fakes/fixed-reply-upstream.js';
import { gatewayErrorOf } from '../helpers/gateway-error.js';

const answer = (data: unknown) => ({ object: 'list', data, model: 'e', usage: { prompt_tokens: 2, total_tokens: 2 } });
const vec = (embedding: unknown, index = 0) => ({ object: 'embedding', index, embedding });

describe('checkedEmbeddings', () => {
  it('counts inputs as OpenAI does', () => {
    expect(inputCount('a')).toBe(1);
    expect(inputCount([1, 2, 3])).toBe(1);
    expect(inputCount(['a', 'b'])).toBe(2);
    expect(inputCount([[1], [2], [3]])).toBe(3);
  });

  it('passes one vector (or base64 text) per input', () => {
    const ok = answer([vec([0.1, -0.2]), vec('AAAA', 1)]);
    expect(checkedEmbeddings(ok, { model: 'e', input: ['a', 'b'] }, 'ch')).toBe(ok);
  });

  it.each([
    ['no data', { object: 'list' }, 'has no data'],
    ['a null entry', answer([null, vec([1])]), 'has an embedding that is not a vector of numbers'],
    ['an embedding that is a word', answer([vec('abc'), vec({ a: 1 })]), 'has an embedding that is not a vector of numbers'],
    ['a vector holding null (1e400 after a parse and a serialisation)', answer([vec([1, null]), vec([1])]), 'has an embedding that is not a vector of numbers'],
    ['five embeddings for two inputs', answer([vec([1]), vec([1]), vec([1]), vec([1]), vec([1])]), 'has 5 embeddings for 2 inputs'],
  ])('%s → UPSTREAM_BAD_RESPONSE', (_what, out, message) => {
    expect(() => checkedEmbeddings(out, { model: 'e', input: ['a', 'b'] }, 'ch')).toThrow(`channel ch: embeddings reply ${message}`);
  });
});

describe('an OpenAI-compatible channel', () => {
  let up: FixedReplyUpstream;
  beforeAll(async () => {
    up = await startFixedReplyUpstream(() => JSON.stringify(answer([vec([1, 2]), vec([1, 2]), vec([1, 2])])));
  });
  afterAll(() => up?.close());

  it('refuses an answer with more embeddings than inputs', async () => {
    const p = createOpenAiProvider({ name: 'emb', provider: 'openai', baseUrl: up.baseUrl, apiKey: 'sk-x' });
    const e = await gatewayErrorOf(p.embeddings!({ model: 'e', input: ['a', 'b'] }, { signal: new AbortController().signal, requestId: 'r1' }));
    expect(e.code).toBe('UPSTREAM_BAD_RESPONSE');
    expect(e.message).toBe('channel emb: embeddings reply has 3 embeddings for 2 inputs');
    await p.close();
  });
});
