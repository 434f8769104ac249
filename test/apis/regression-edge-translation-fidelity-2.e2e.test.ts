/**
 * Regression, a second round on what the translating edges changed on the way to a chat upstream and back.
 *
 * - `/v1/responses`: an answer cut short (`finish_reason: "length"`, the client's `max_output_tokens`) was an
 *   `incomplete` response whose last output item, the one being written when it was cut, still said `completed`;
 *   the API (and the openai SDK's types) mark that item `incomplete` too, streamed (its `output_item.done` and the
 *   final output) or not. The items before it stay `completed`.
 * - Empty names: an Anthropic `tool_use.name` or `tool_choice.name`, a Gemini `functionCall.name`,
 *   `functionResponse.name` or `allowedFunctionNames` entry, a Responses `function_call` item's `name` or `tool_choice.name` of `""` went upstream
 *   (which refuses it under a field the client never sent); they are `invalid_request` naming the field, as an
 *   empty name in a tool definition is.
 * - Inline image data of a length no base64 encoder makes (`"x"`, `"abc=="`) went upstream as an image; it is
 *   `invalid_request` naming `…source.data` / `…inlineData.data`.
 * - `/v1/messages` streamed: tool arguments that start with `{` but are not JSON (a regex's `\.` escape, a stray
 *   closing `}`, unquoted keys) went out as `input_json_delta` pieces no JSON parser takes, so the Anthropic SDK threw
 *   on the message. Arguments that do not open as an object (`{city: …}`) are now sent whole as `{"input": …}`; those
 *   that do are streamed while they are JSON, and those that then break fail the answer, streamed or not, with the
 *   same error (test/apis/regression-broken-tool-arguments.e2e.test.ts).
 *
 * One gateway in process over an OpenAI-compatible upstream that records each request; the official SDKs as
 * clients where they send such a body.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { startFixedReplyUpstream, type FixedReplyUpstream } from '../fakes/fixed-reply-upstream.js';
import { call, cleanupDirs, expectAnthropicInvalid, expectGeminiInvalid, expectOpenAiError, sseData, startGw } from '../helpers/env.js';

let gw: Gateway;
let up: FixedReplyUpstream;
let openai: OpenAI;
let anthropic: Anthropic;
/** the chat requests the upstream received, oldest first */
const seen: Array<Record<string, any>> = [];

const usage = { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11 };

/** An SSE body of chat chunks, each choice delta with its finish reason, then the usage chunk and [DONE]. */
function sse(deltas: Array<[object, string | null]>): string {
  const chunk = (delta: object, finish_reason: string | null) => ({
    id: 'chatcmpl-1',
    object: 'chat.completion.chunk',
    created: 1,
    model: 'm',
    choices: [{ index: 0, delta, finish_reason }],
  });
  return (
    [...deltas.map(([d, f]) => chunk(d, f)), { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [], usage }]
      .map((c) => `data: ${JSON.stringify(c)}\n\n`)
      .join('') + 'data: [DONE]\n\n'
  );
}

const completion = (message: object, finish_reason: string) =>
  JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, message, finish_reason }], usage });

/** Tool arguments a model wrote that start as a JSON object but are not one, as streamed. */
const BROKEN_ARGS: Record<string, string[]> = {
  // `\.` is no JSON escape (a regex written as is)
  'bad escape': ['{"pattern": "a', '\\.b", "path": "src"}'],
  'stray brace': ['{"path":', ' "src"}}'],
  'unquoted key': ['{', 'path: "src"}'],
};

/**
 * The user's last text decides the answer: a key of BROKEN_ARGS is a call with those arguments, "cut text" is reasoning then text cut by the token limit, "cut call" a
 * text then a tool call whose arguments were cut, anything else a whole answer.
 */
function answer(raw: string): string {
  const body = JSON.parse(raw) as { stream?: boolean; messages: Array<{ content: unknown }> };
  seen.push(body);
  const last = body.messages[body.messages.length - 1]!.content;
  const stream = body.stream === true;
  if (last === 'cut text') {
    if (!stream) return completion({ role: 'assistant', reasoning_content: 'Think.', content: 'Once upon' }, 'length');
    return sse([
      [{ role: 'assistant', reasoning_content: 'Think.' }, null],
      [{ content: 'Once' }, null],
      [{ content: ' upon' }, 'length'],
    ]);
  }
  if (last === 'cut call') {
    const args = '{"city": "Pa';
    if (!stream)
      return completion(
        { role: 'assistant', content: 'Looking.', tool_calls: [{ id: 'call_w', type: 'function', function: { name: 'weather', arguments: args } }] },
        'length',
      );
    return sse([
      [{ role: 'assistant', content: 'Looking.' }, null],
      [{ tool_calls: [{ index: 0, id: 'call_w', type: 'function', function: { name: 'weather', arguments: '' } }] }, null],
      [{ tool_calls: [{ index: 0, function: { arguments: args } }] }, 'length'],
    ]);
  }
  const pieces = BROKEN_ARGS[String(last)];
  if (pieces) {
    if (!stream)
      return completion(
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_g', type: 'function', function: { name: 'grep', arguments: pieces.join('') } }] },
        'tool_calls',
      );
    return sse([
      [{ role: 'assistant', tool_calls: [{ index: 0, id: 'call_g', type: 'function', function: { name: 'grep', arguments: '' } }] }, null],
      ...pieces.map((arguments_): [object, null] => [{ tool_calls: [{ index: 0, function: { arguments: arguments_ } }] }, null]),
      [{}, 'tool_calls'],
    ]);
  }
  if (!stream) return completion({ role: 'assistant', content: 'Some' }, 'stop');
  return sse([
    [{ role: 'assistant', content: 'So' }, null],
    [{ content: 'me' }, 'stop'],
  ]);
}

beforeAll(async () => {
  up = await startFixedReplyUpstream(answer, 'text/event-stream');
  gw = await startGw({
    gateway: { routing: { retries: 0 } },
    channels: [{ name: 'oai', provider: 'openai', baseUrl: up.baseUrl, apiKey: 'sk-oai-0123456789', models: ['m'] }],
  });
  openai = new OpenAI({ apiKey: 'none', baseURL: `${gw.url}/v1`, maxRetries: 0, timeout: 15_000 });
  anthropic = new Anthropic({ apiKey: 'none', baseURL: gw.url, maxRetries: 0, timeout: 15_000 });
});
afterAll(async () => {
  await gw?.close();
  await up?.close();
  cleanupDirs();
});

const GEN = '/v1beta/models/m:generateContent';
const hi = [{ role: 'user', parts: [{ text: 'hi' }] }];

describe('/v1/responses: an answer cut short', () => {
  const tools: OpenAI.Responses.Tool[] = [{ type: 'function', name: 'weather', strict: false, parameters: { type: 'object', properties: {} } }];

  it('marks the item it was writing incomplete, the ones before it completed, streamed or not', async () => {
    for (const [input, types] of [
      ['cut text', ['reasoning', 'message']],
      ['cut call', ['message', 'function_call']],
    ] as const) {
      const whole = await openai.responses.create({ model: 'm', input, max_output_tokens: 16, tools });
      expect(whole.status).toBe('incomplete');
      expect(whole.incomplete_details).toEqual({ reason: 'max_output_tokens' });
      expect(whole.output.map((o) => o.type)).toEqual(types);
      // the reasoning item's status is optional in the API: absent when whole, `incomplete` when it was cut
      expect(whole.output.map((o) => (o as { status?: string }).status)).toEqual([types[0] === 'reasoning' ? undefined : 'completed', 'incomplete']);

      const stream = openai.responses.stream({ model: 'm', input, max_output_tokens: 16, tools });
      const done: OpenAI.Responses.ResponseOutputItemDoneEvent[] = [];
      const kinds: string[] = [];
      stream.on('response.output_item.done', (e) => done.push(e));
      stream.on('event', (e) => kinds.push(e.type));
      const final = await stream.finalResponse();
      expect(kinds[kinds.length - 1]).toBe('response.incomplete');
      expect(final.status).toBe('incomplete');
      expect(done.map((e) => (e.item as { status?: string }).status)).toEqual(whole.output.map((o) => (o as { status?: string }).status));
      expect(final.output.map((o) => (o as { status?: string }).status)).toEqual(whole.output.map((o) => (o as { status?: string }).status));
    }
    // a whole answer's items stay completed
    const r = await openai.responses.create({ model: 'm', input: 'whole' });
    expect(r.status).toBe('completed');
    expect(r.output).toEqual([expect.objectContaining({ type: 'message', status: 'completed' })]);
  });
});

describe('empty names and impossible base64 are invalid_request naming the field', () => {
  it('on /v1/messages', async () => {
    const before = seen.length;
    const tools = [{ name: 'f', input_schema: { type: 'object' } }];
    const cases: Array<[object, string]> = [
      [
        {
          messages: [
            { role: 'user', content: 'go' },
            { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: '', input: {} }] },
            { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: 'ok' }] },
          ],
        },
        'messages.1.content.0.name',
      ],
      [{ messages: [{ role: 'user', content: 'go' }], tools, tool_choice: { type: 'tool', name: '' } }, 'tool_choice.name'],
      [{ messages: [{ role: 'user', content: 'go' }], tools: [{ name: '', input_schema: { type: 'object' } }] }, 'tools.0.name'],
    ];
    for (const data of ['x', 'abcde', 'abc==', '='])
      cases.push([
        { messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data } }] }] },
        'messages.0.content.0.source.data',
      ]);
    for (const [body, param] of cases) expectAnthropicInvalid(await call(gw, '/v1/messages', { body: { model: 'm', max_tokens: 16, ...body } }), param);
    expect(seen.length).toBe(before);
    // base64 of every possible length still goes up
    for (const data of ['iVBORw0KGgo=', 'iVBORw0KGgo', 'iVBORw0KGg==', 'iVBORw0KGg']) {
      const r = await call(gw, '/v1/messages', {
        body: {
          model: 'm',
          max_tokens: 16,
          messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data } }] }],
        },
      });
      expect(r.status, r.text).toBe(200);
    }
  });

  it('on Gemini', async () => {
    const before = seen.length;
    const cases: Array<[object, string]> = [
      [{ contents: [{ role: 'model', parts: [{ functionCall: { name: '', args: {} } }] }, ...hi] }, 'contents[0].parts[0].functionCall.name'],
      [
        {
          contents: [
            { role: 'model', parts: [{ functionCall: { name: 'f', args: {} } }] },
            { role: 'user', parts: [{ functionResponse: { name: '', response: {} } }] },
          ],
        },
        'contents[1].parts[0].functionResponse.name',
      ],
      [{ contents: hi, tools: [{ functionDeclarations: [{ name: '' }] }] }, 'tools[0].functionDeclarations[0].name'],
      [
        {
          contents: hi,
          tools: [{ functionDeclarations: [{ name: 'f' }] }],
          toolConfig: { functionCallingConfig: { mode: 'ANY', allowedFunctionNames: [''] } },
        },
        'toolConfig.functionCallingConfig.allowedFunctionNames[0]',
      ],
      [{ contents: [{ role: 'user', parts: [{ inlineData: { mimeType: 'image/png', data: 'x' } }] }] }, 'contents[0].parts[0].inlineData.data'],
      [{ contents: [{ role: 'user', parts: [{ inlineData: { mimeType: 'image/png', data: 'iVBORw0KGgo==' } }] }] }, 'contents[0].parts[0].inlineData.data'],
    ];
    for (const [body, param] of cases) expectGeminiInvalid(await call(gw, GEN, { body }), param);
    expect(seen.length).toBe(before);
  });

  it('on /v1/responses', async () => {
    const before = seen.length;
    const tools = [{ type: 'function', name: 'f', parameters: {} }];
    const cases: Array<[object, string]> = [
      [
        {
          input: [
            { type: 'function_call', call_id: 'c', name: '', arguments: '{}' },
            { type: 'function_call_output', call_id: 'c', output: 'ok' },
          ],
        },
        'input[0].name',
      ],
      [{ input: 'go', tools, tool_choice: { type: 'function', name: '' } }, 'tool_choice.name'],
      [{ input: 'go', tools: [{ type: 'function', name: '', parameters: {} }] }, 'tools[0].name'],
    ];
    for (const [body, param] of cases) expectOpenAiError(await call(gw, '/v1/responses', { body: { model: 'm', ...body } }), 400, 'invalid_request', param);
    expect(seen.length).toBe(before);
  });
});

describe('/v1/messages: streamed tool arguments that start with { but are not JSON', () => {
  const tools = [{ name: 'grep', input_schema: { type: 'object' as const, properties: { pattern: { type: 'string' }, path: { type: 'string' } } } }];
  const ask = (content: string) => ({ model: 'm', max_tokens: 64, messages: [{ role: 'user' as const, content }], tools });

  it('reach the SDK as the object the non-streaming answer has, never as pieces it cannot parse', async () => {
    // no JSON object at all: whole, as arguments in plain text are
    const whole = await anthropic.messages.create(ask('unquoted key'));
    expect(whole.content).toEqual([{ type: 'tool_use', id: 'call_g', name: 'grep', input: { input: '{path: "src"}' } }]);
    const streamed = await anthropic.messages.stream(ask('unquoted key')).finalMessage();
    expect(streamed.content).toEqual(whole.content);
    expect(streamed.stop_reason).toBe('tool_use');
  });

  it('an object that breaks (a bad escape, a stray brace) is the same error streamed and not, never a call without what followed the break', async () => {
    // where each breaks: the `.` after the backslash; the second `}`
    const at: Record<string, number> = { 'bad escape': 15, 'stray brace': 15 };
    for (const [content, offset] of Object.entries(at)) {
      const want = { type: 'error', error: { type: 'api_error', code: 'upstream_bad_response' } };
      const message = `tool "grep" whose arguments open as a JSON object and stop being JSON at offset ${offset}`;
      const outcomes = [
        await anthropic.messages.create(ask(content)).then(
          () => undefined,
          (e: unknown) => e,
        ),
        await anthropic.messages
          .stream(ask(content))
          .finalMessage()
          .then(
            () => undefined,
            (e: unknown) => e,
          ),
      ];
      for (const e of outcomes) {
        expect(e, content).toBeInstanceOf(Anthropic.APIError);
        const body = (e as InstanceType<typeof Anthropic.APIError>).error as { error: { message: string } };
        expect(body, content).toMatchObject(want);
        expect(body.error.message, content).toContain(message);
      }
      expect((outcomes[0] as InstanceType<typeof Anthropic.APIError>).status).toBe(502);
    }
  });

  it('the pieces that go out are the arguments while they are JSON, piece by piece; the piece that breaks them is the error', async () => {
    const pieces = async (content: string) => {
      const raw = await call(gw, '/v1/messages', { body: { ...ask(content), stream: true } });
      expect(raw.status, raw.text).toBe(200);
      return sseData(raw.text)
        .map((d) => JSON.parse(d))
        .filter((e) => e.delta?.type === 'input_json_delta')
        .map((e) => e.delta.partial_json);
    };
    // the piece with the `.` after the backslash, and the one with the stray brace, break the object: not sent
    expect(await pieces('bad escape')).toEqual(['{"pattern": "a']);
    expect(await pieces('stray brace')).toEqual(['{"path":']);
    expect(await pieces('unquoted key')).toEqual([JSON.stringify({ input: '{path: "src"}' })]);
  });
});
