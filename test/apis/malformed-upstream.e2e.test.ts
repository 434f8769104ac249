/**
 * An OpenAI-compatible upstream whose 2xx answers have fields of the wrong types, behind every translating
 * edge: the client gets its API's bad-answer error (502 before the answer, the error event in a stream), never
 * an empty "successful" answer or a tool call the upstream did not make.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { startFixedReplyUpstream, type FixedReplyUpstream } from '../fakes/fixed-reply-upstream.js';
import { call, cleanupDirs, startGw } from '../helpers/env.js';

let gw: Gateway;
let up: FixedReplyUpstream;

// non-stream: content that is a number; stream: tool_calls that is a string
const answer = (body: string): string =>
  (JSON.parse(body) as { stream?: boolean }).stream
    ? `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { role: 'assistant', tool_calls: 'abc' }, finish_reason: null }] })}\n\ndata: [DONE]\n\n`
    : JSON.stringify({
        id: 'c',
        object: 'chat.completion',
        created: 1,
        model: 'm',
        choices: [{ index: 0, message: { role: 'assistant', content: 42 }, finish_reason: 'stop' }],
      });

beforeAll(async () => {
  up = await startFixedReplyUpstream(answer, 'text/event-stream');
  gw = await startGw({
    gateway: { routing: { retries: 0 } },
    channels: [{ name: 'odd', provider: 'openai', baseUrl: up.baseUrl, apiKey: 'sk-odd-0123456789', models: ['odd-1'] }],
  });
});
afterAll(async () => {
  await gw?.close();
  await up?.close();
  cleanupDirs();
});

describe('malformed answers behind the translating edges', () => {
  it('non-stream: 502 in each API format, naming the field', async () => {
    const messages = await call(gw, '/v1/messages', { body: { model: 'odd-1', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] } });
    expect(messages.status).toBe(502);
    expect(messages.json.error.message).toContain('choices[0].message.content is not a string');
    const responses = await call(gw, '/v1/responses', { body: { model: 'odd-1', input: 'hi' } });
    expect(responses.status).toBe(502);
    expect(responses.json.error.code).toBe('upstream_bad_response');
    const gemini = await call(gw, '/v1beta/models/odd-1:generateContent', { body: { contents: [{ parts: [{ text: 'hi' }] }] } });
    expect(gemini.status).toBe(502);
    expect(gemini.json.error.status).toBe('UNAVAILABLE');
  });

  it('stream: the error event, never a tool call the upstream did not make nor a normal end', async () => {
    const messages = await call(gw, '/v1/messages', { body: { model: 'odd-1', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'hi' }] } });
    expect(messages.text).toContain('event: error');
    expect(messages.text).not.toContain('tool_use');
    expect(messages.text).not.toContain('message_stop');
    const responses = await call(gw, '/v1/responses', { body: { model: 'odd-1', input: 'hi', stream: true } });
    expect(responses.text).toContain('response.failed');
    expect(responses.text).not.toContain('function_call');
    const gemini = await call(gw, '/v1beta/models/odd-1:streamGenerateContent?alt=sse', { body: { contents: [{ parts: [{ text: 'hi' }] }] } });
    expect(gemini.text).toContain('"status":"UNAVAILABLE"');
    expect(gemini.text).not.toContain('functionCall');
  });

  it('stream: the attempt ends with the bad chunk: its channel slot is given back and the failure counts against its health', async () => {
    const id = 'local/odd';
    const before = gw.router.healthOf(id).windowFailures;
    const messages = await call(gw, '/v1/messages', { body: { model: 'odd-1', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'hi' }] } });
    const responses = await call(gw, '/v1/responses', { body: { model: 'odd-1', input: 'hi', stream: true } });
    const gemini = await call(gw, '/v1beta/models/odd-1:streamGenerateContent?alt=sse', { body: { contents: [{ parts: [{ text: 'hi' }] }] } });
    expect([messages.text, responses.text, gemini.text].map((t) => t.includes('malformed'))).toEqual([true, true, true]);
    expect(gw.router.inflightOf(id)).toBe(0);
    const after = gw.router.healthOf(id);
    expect(after.windowFailures - before).toBe(3);
    expect(after.lastError).toContain('UPSTREAM_BAD_RESPONSE');
  });
});
