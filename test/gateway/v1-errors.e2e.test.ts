/**
 * /v1 errors end to end: bad input and upstream faults each get the documented status and an OpenAI error
 * body `{ error: { message, type, code, param } }`, and the process stays up (a good request right after
 * succeeds). Single candidate per model and `retries: 0`, so each fault surfaces as it is.
 */
import { request } from 'node:http';
import { connect } from 'node:net';
import OpenAI from 'openai';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { startAnthropicUpstream } from '../fakes/anthropic-upstream.js';
import { startOllamaUpstream } from '../fakes/ollama-upstream.js';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import type { FakeUpstream } from '../providers/conformance.js';
import { call, channelOf, chatBody, expectOpenAiError, sdk, sseData, startGw, waitForInflight, within } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';

const MAX_BODY = 4096;
const FIRST_BYTE_MS = 300;

let gw: Gateway;
let hangOa: OpenAiFake;
let hangAn: FakeUpstream;
let hangEmb: OpenAiFake;
const { ups: fakes, trackGateway } = stopAfterAll();

beforeAll(async () => {
  const fail500 = await startOpenAiUpstream({ failStatus: 500 });
  const garbage = await startOpenAiUpstream({ garbage: true });
  hangOa = await startOpenAiUpstream({ hang: true });
  const limited = await startOpenAiUpstream({ failStatus: 429, retryAfter: '7' });
  hangAn = await startAnthropicUpstream({ hang: true });
  const olFail = await startOllamaUpstream({ failStatus: 500 });
  const anGarbage = await startAnthropicUpstream({ garbage: true });
  hangEmb = await startOpenAiUpstream({ hang: true });
  fakes.push(fail500, garbage, hangOa, limited, hangAn, olFail, anGarbage, hangEmb);
  gw = await startGw({
    gateway: { maxBodyBytes: MAX_BODY, shutdownGraceMs: 500, routing: { retries: 0, firstByteTimeoutMs: FIRST_BYTE_MS } },
    channels: [
      { name: 'mk', provider: 'mock', models: ['mock-1', 'mock-2'] },
      channelOf(fail500, 'fail500', ['m-500']),
      channelOf(garbage, 'garbage', ['m-garbage']),
      channelOf(hangOa, 'hang', ['m-hang']),
      channelOf(limited, 'limited', ['m-429']),
      channelOf(hangAn, 'an-hang', ['claude-hang']),
      channelOf(olFail, 'ol-500', ['llama-500']),
      channelOf(anGarbage, 'an-garbage', ['claude-garbage']),
      channelOf(hangEmb, 'emb-hang', ['emb-hang']),
      { name: 'mk-busy', provider: 'mock', models: ['busy'], maxConcurrent: 1, options: { reply: 'a b c d e f g h', chunkDelayMs: 100 } },
    ],
  });
  trackGateway(gw);
});

/** the process stays up: a good request right after the bad one succeeds */
afterEach(async () => {
  const r = await call(gw, '/v1/chat/completions', { body: chatBody('mock-1', 'still alive?') });
  expect(r.status).toBe(200);
  expect(r.json.choices[0].message.content).toContain('still alive?');
});

const chat = (body: unknown, headers: Record<string, string> = {}) => call(gw, '/v1/chat/completions', { body, headers });

const withTool = {
  model: 'mock-1',
  messages: [{ role: 'user', content: 'x' }],
  tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: {} } } }],
};

describe('bad input', () => {
  it('invalid JSON → 400 invalid_json', async () => {
    const r = await chat('{"model": "mock-1", "messages": [');
    expectOpenAiError(r, 400, 'invalid_json', null);
    expect(r.json.error.type).toBe('invalid_request_error');
    expectOpenAiError(await chat(''), 400, 'invalid_json');
    expectOpenAiError(await chat('not json at all'), 400, 'invalid_json');
    // no body and no type: a missing body, not a wrong type
    const bare = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST' });
    expect(bare.status).toBe(400);
    expect(((await bare.json()) as { error: { code: string } }).error.code).toBe('invalid_json');
  });

  it.each([
    ['missing model', { messages: [{ role: 'user', content: 'x' }] }, 'model'],
    ['model of the wrong type', { model: 42, messages: [{ role: 'user', content: 'x' }] }, 'model'],
    ['missing messages', { model: 'mock-1' }, 'messages'],
    ['messages not an array', { model: 'mock-1', messages: 'hello' }, 'messages'],
    ['empty messages', { model: 'mock-1', messages: [] }, 'messages'],
    ['a message with a bad role', { model: 'mock-1', messages: [{ role: 'wizard', content: 'x' }] }, 'messages[0].role'],
    ['content of the wrong type', { model: 'mock-1', messages: [{ role: 'user', content: 7 }] }, 'messages[0].content'],
    [
      'a tool message without tool_call_id',
      {
        model: 'mock-1',
        messages: [
          { role: 'user', content: 'x' },
          { role: 'tool', content: 'r' },
        ],
      },
      'messages[1].tool_call_id',
    ],
    ['stream not a boolean', { model: 'mock-1', messages: [{ role: 'user', content: 'x' }], stream: 'yes' }, 'stream'],
    ['temperature not a number', { model: 'mock-1', messages: [{ role: 'user', content: 'x' }], temperature: 'hot' }, 'temperature'],
    ['max_tokens not a number', { model: 'mock-1', messages: [{ role: 'user', content: 'x' }], max_tokens: '100' }, 'max_tokens'],
    ['a malformed tool', { model: 'mock-1', messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function' }] }, 'tools[0]'],
    ['n > 1 with streaming', { model: 'mock-1', messages: [{ role: 'user', content: 'x' }], stream: true, n: 2 }, 'n'],
    ['a JSON array body', [{ model: 'mock-1' }], 'body'],
    ['tool_choice not one of the three words', { ...withTool, tool_choice: 'bogus' }, 'tool_choice'],
    ['tool_choice an empty object', { ...withTool, tool_choice: {} }, 'tool_choice'],
    ['tool_choice an array', { ...withTool, tool_choice: ['auto'] }, 'tool_choice'],
    ['tool_choice a function without a name', { ...withTool, tool_choice: { type: 'function' } }, 'tool_choice.function.name'],
    // JSON.parse reads 1e999 as Infinity
    ['temperature that is not finite', '{"model":"mock-1","messages":[{"role":"user","content":"x"}],"temperature":1e999}', 'temperature'],
    ['max_tokens that is not finite', '{"model":"mock-1","messages":[{"role":"user","content":"x"}],"max_tokens":-1e999}', 'max_tokens'],
  ])('%s → 400 naming the field', async (_what, body, param) => {
    const r = await chat(body);
    expectOpenAiError(r, 400, 'invalid_request', param);
    expect(r.json.error.type).toBe('invalid_request_error');
    expect(r.json.error.message).toContain(param);
  });

  it('tool_choice: null is taken as absent; a form newer than the translators is refused where it must be translated', async () => {
    const absent = await chat({ ...withTool, tool_choice: null });
    expect(absent.status).toBe(200);
    expect(absent.json.choices[0].message.tool_calls[0].function.name).toBe('lookup');
    const newer = { type: 'allowed_tools', allowed_tools: { mode: 'auto', tools: [{ type: 'function', name: 'lookup' }] } };
    expect((await chat({ ...withTool, tool_choice: newer })).status).toBe(200); // the mock: as auto
    for (const model of ['claude-garbage', 'llama-500']) {
      const r = await chat({ ...withTool, model, tool_choice: newer });
      expectOpenAiError(r, 400, 'unsupported', 'tool_choice');
      expect(r.json.error.message).toBe('tool_choice type "allowed_tools" is not supported by this channel');
    }
  });

  it('embeddings: token arrays must hold integers; a flat token array is one input', async () => {
    const emb = (input: unknown) => call(gw, '/v1/embeddings', { body: { model: 'mock-1', input } });
    for (const input of [[[{}]], [[null]], [[]], [1.5, 2]]) expectOpenAiError(await emb(input), 400, 'invalid_request', 'input');
    const one = await emb([1, 2, 3, 4]);
    expect(one.status).toBe(200);
    expect(one.json.data).toHaveLength(1);
    expect(one.json.usage.prompt_tokens).toBe(4);
    expect((await emb([[1, 2], [3]])).json.data).toHaveLength(2);
  });

  it('requests the HTTP parser refuses get a JSON error too (400 / 431), and the connection is closed', async () => {
    const { port } = new URL(gw.url);
    const raw = (text: string) =>
      new Promise<string>((resolve, reject) => {
        const sock = connect(Number(port), '127.0.0.1', () => sock.write(text));
        let out = '';
        sock.on('data', (d) => (out += d.toString()));
        sock.on('close', () => resolve(out));
        sock.on('error', reject);
      });
    const cases: Array<[string, number, string]> = [
      ['GET /v1/models HTTP/1.1 extra\r\nhost: x\r\n\r\n', 400, 'invalid_request'],
      ['POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n', 400, 'invalid_request'],
      [`GET /v1/models HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'headers_too_large'],
    ];
    for (const [text, status, code] of cases) {
      const res = await raw(text);
      expect(res, text.slice(0, 40)).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
      expect(res.toLowerCase()).toContain('connection: close');
      expect(res.toLowerCase()).toContain('content-type: application/json');
      expect(JSON.parse(res.slice(res.indexOf('\r\n\r\n') + 4))).toMatchObject({ error: { code } });
    }
  });

  it('the SDK sees a BadRequestError with param', async () => {
    const e = await sdk(gw)
      .chat.completions.create({ model: 'mock-1', messages: [{ role: 'user', content: 'x' }], temperature: 'hot' as unknown as number })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    expect(e).toMatchObject({ status: 400, param: 'temperature', code: 'invalid_request' });
  });

  it('unknown model → 404 model_not_found listing the available models', async () => {
    const r = await chat(chatBody('gpt-99-ultra'));
    expectOpenAiError(r, 404, 'model_not_found', 'model');
    expect(r.json.error.message).toContain('gpt-99-ultra');
    for (const m of ['mock-1', 'mock-2', 'm-500', 'claude-hang', 'llama-500']) expect(r.json.error.message).toContain(m);
    const e = await sdk(gw)
      .chat.completions.create({ model: 'gpt-99-ultra', messages: [{ role: 'user', content: 'x' }], stream: true })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('body over gateway.maxBodyBytes → 413 (with content-length)', async () => {
    const r = await chat(chatBody('mock-1', 'x'.repeat(MAX_BODY * 3)));
    expectOpenAiError(r, 413, 'payload_too_large');
  });

  it('body over gateway.maxBodyBytes → 413 (chunked, no content-length)', async () => {
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(
        `${gw.url}/v1/chat/completions`,
        { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } },
        (res) => {
          let t = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (t += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: t }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      const piece = 'y'.repeat(1024);
      req.write(`{"model":"mock-1","messages":[{"role":"user","content":"`);
      for (let i = 0; i < 8; i++) req.write(piece);
      req.end(`"}]}`);
    });
    expect(status).toBe(413);
    expect(JSON.parse(text)).toMatchObject({ error: { code: 'payload_too_large', type: 'invalid_request_error' } });
  });

  it('a body that arrived whole with its headers (one socket write) is read whole and held to the same limits', async () => {
    // one write holds the request line, the headers and the whole body, so the server has all of it before the
    // route reads it: with content-length that is the read that needs no listeners (src/http/body.ts `received`)
    const raw = (json: string, framing: 'length' | 'chunked') =>
      new Promise<string>((resolve, reject) => {
        const s = connect(Number(new URL(gw.url).port), '127.0.0.1');
        let out = '';
        s.setEncoding('utf8');
        s.on('data', (d: string) => (out += d));
        s.on('end', () => resolve(out));
        s.on('error', reject);
        const n = Buffer.byteLength(json);
        const head = 'POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\nconnection: close\r\n';
        s.write(
          framing === 'length'
            ? `${head}content-length: ${n}\r\n\r\n${json}`
            : `${head}transfer-encoding: chunked\r\n\r\n${n.toString(16)}\r\n${json}\r\n0\r\n\r\n`,
        );
      });
    const bodyOf = (r: string) => JSON.parse(r.slice(r.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
    // multi-byte text: the body is bytes until it is whole, then decoded once
    const ok = await raw(JSON.stringify(chatBody('mock-1', 'héllo wörld ✓ '.repeat(100))), 'length');
    expect(ok).toMatch(/^HTTP\/1\.1 200 /);
    expect(bodyOf(ok)).toMatchObject({ object: 'chat.completion', model: 'mock-1' });
    const bad = await raw('{"model":"mock-1","messages":[', 'length');
    expect(bad).toMatch(/^HTTP\/1\.1 400 /);
    expect(bodyOf(bad)).toMatchObject({ error: { code: 'invalid_json' } });
    const over = await raw(JSON.stringify(chatBody('mock-1', 'z'.repeat(MAX_BODY * 2))), 'chunked');
    expect(over).toMatch(/^HTTP\/1\.1 413 /);
    expect(bodyOf(over)).toMatchObject({ error: { code: 'payload_too_large' } });
  });

  it('unknown route → 404; wrong method → 405', async () => {
    expectOpenAiError(await call(gw, '/v1/nope', { body: {} }), 404, 'not_found');
    expectOpenAiError(await call(gw, '/v1/chat/completions/extra', { body: {} }), 404, 'not_found');
    expectOpenAiError(await call(gw, '/definitely-not-here'), 404, 'not_found');
    const get = await call(gw, '/v1/chat/completions');
    expectOpenAiError(get, 405, 'method_not_allowed');
    expect(get.json.error.message).toContain('POST');
    const del = await call(gw, '/v1/models', { method: 'DELETE' });
    expectOpenAiError(del, 405, 'method_not_allowed');
    expect(del.headers.get('allow')).toBe('GET, HEAD');
    // HEAD is GET without the body: same status and length
    const head = await fetch(`${gw.url}/v1/models`, { method: 'HEAD' });
    const got = await fetch(`${gw.url}/v1/models`);
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toBe('application/json');
    expect(head.headers.get('content-length')).toBe(got.headers.get('content-length'));
    expect(await head.text()).toBe('');
    expect(((await got.json()) as { object: string }).object).toBe('list');
    expectOpenAiError(await call(gw, '/v1/embeddings', { method: 'GET' }), 405, 'method_not_allowed');
  });
});

describe('upstream faults', () => {
  it('upstream 500 → 502 upstream_error (non-stream and stream, other providers too)', async () => {
    const r = await chat(chatBody('m-500'));
    expectOpenAiError(r, 502, 'upstream_error', null);
    expect(r.json.error.type).toBe('upstream_error');
    expect(r.json.error.message).toContain('fail500');
    const s = await chat(chatBody('m-500', 'x', { stream: true }));
    expectOpenAiError(s, 502, 'upstream_error');
    expectOpenAiError(await chat(chatBody('llama-500')), 502, 'upstream_error');
    const e = await sdk(gw)
      .chat.completions.create({ model: 'm-500', messages: [{ role: 'user', content: 'x' }] })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.InternalServerError);
    expect((e as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
  });

  it('upstream returning garbage → 502 (non-stream and stream)', async () => {
    expectOpenAiError(await chat(chatBody('m-garbage')), 502, 'upstream_bad_response');
    const s = await chat(chatBody('m-garbage', 'x', { stream: true }));
    expect(s.status).toBe(502);
    expect(s.json.error.type).toBe('upstream_error');
    expectOpenAiError(await chat(chatBody('claude-garbage')), 502, 'upstream_bad_response');
  });

  it('upstream hanging → 504 after firstByteTimeoutMs, and the upstream request is cancelled', async () => {
    const t0 = Date.now();
    const r = await chat(chatBody('m-hang'));
    const took = Date.now() - t0;
    expectOpenAiError(r, 504, 'upstream_timeout');
    expect(r.json.error.type).toBe('timeout_error');
    expect(took).toBeGreaterThanOrEqual(FIRST_BYTE_MS - 20);
    expect(took).toBeLessThan(FIRST_BYTE_MS + 2_000);
    await within(hangOa.aborted(), 2_000, 'the hanging upstream request to be aborted');
  });

  it('upstream hanging on a stream (anthropic) → 504, upstream aborted', async () => {
    const t0 = Date.now();
    const r = await chat(chatBody('claude-hang', 'x', { stream: true }));
    expectOpenAiError(r, 504, 'upstream_timeout');
    expect(Date.now() - t0).toBeLessThan(FIRST_BYTE_MS + 2_000);
    await within(hangAn.aborted(), 2_000, 'the hanging anthropic request to be aborted');
  });

  it('upstream 429 with Retry-After → 429 with Retry-After (single channel, retries 0)', async () => {
    const r = await chat(chatBody('m-429'));
    expectOpenAiError(r, 429, 'rate_limited');
    expect(r.json.error.type).toBe('rate_limit_error');
    expect(r.headers.get('retry-after')).toBe('7');
    const s = await chat(chatBody('m-429', 'x', { stream: true }));
    expect(s.status).toBe(429);
    expect(s.headers.get('retry-after')).toBe('7');
    const e = await sdk(gw)
      .chat.completions.create({ model: 'm-429', messages: [{ role: 'user', content: 'x' }] })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.RateLimitError);
    expect((e as InstanceType<typeof OpenAI.RateLimitError>).headers.get('retry-after')).toBe('7');
  });

  it('embeddings: an upstream hanging → 504 after firstByteTimeoutMs, upstream aborted', async () => {
    const t0 = Date.now();
    const r = await within(
      call(gw, '/v1/embeddings', { body: { model: 'emb-hang', input: 'x' } }),
      FIRST_BYTE_MS + 3_000,
      'the embeddings request to time out',
    );
    expectOpenAiError(r, 504, 'upstream_timeout');
    expect(Date.now() - t0).toBeLessThan(FIRST_BYTE_MS + 2_000);
    await within(hangEmb.aborted(), 2_000, 'the hanging embeddings request to be aborted');
  });
});

describe('capacity', () => {
  it('every candidate at maxConcurrent → 503 overloaded with Retry-After', async () => {
    // a slow stream holds the only slot for ~800 ms
    const first = call(gw, '/v1/chat/completions', { body: chatBody('busy', 'one', { stream: true }) });
    await waitForInflight(gw.url, 'mk-busy');
    const second = await call(gw, '/v1/chat/completions', { body: chatBody('busy', 'two') });
    expectOpenAiError(second, 503, 'overloaded');
    expect(Number(second.headers.get('retry-after'))).toBeGreaterThan(0);
    const done = await first;
    expect(done.status).toBe(200);
    expect(sseData(done.text).at(-1)).toBe('[DONE]');
    // the slot is free again
    expect((await call(gw, '/v1/chat/completions', { body: chatBody('busy', 'three') })).status).toBe(200);
  });
});
