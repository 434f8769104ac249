/**
 * Regression: what the translating edges lost or changed on the way to a chat upstream and back.
 *
 * - `/v1/responses`: an upstream answer cut by its content filter (`finish_reason: "content_filter"`) was a
 *   `completed` response; the API makes it `incomplete` with `incomplete_details.reason: "content_filter"` (the
 *   openai SDK's types name both reasons), streamed as `response.incomplete`.
 * - `/v1/responses` streamed: `response.function_call_arguments.done` had no `name`, which the API reference (and the
 *   SDK's ResponseFunctionCallArgumentsDoneEvent) has.
 * - `/v1/responses`: a `function_call_output` whose `output` is content parts (what Codex sends for an image a tool
 *   returned) kept only the text: its `input_image` parts, and any part that was not a text part (an `input_file`,
 *   a number), were dropped without a word. Images now follow the tool messages as a user message (as on
 *   `/v1/messages`); an `input_file` is `unsupported` and a malformed part `invalid_request`, naming the part.
 * - Gemini: a `parameters` schema's upper-case types inside `anyOf` went up as `"STRING"` (JSON Schema has no such
 *   type); a `functionCall.args` that is not an object went up as arguments no tool takes; a `toolConfig` that is
 *   not an object, or a mode the API does not have when no tool was declared, was ignored.
 * - Gemini: `nullable: true` in a `parameters` schema (OpenAPI's keyword) went up as is; JSON Schema has no such
 *   keyword, so upstreams ignore it and the field could not be null. It is a `null` type now (and enum value).
 * - Gemini: `candidatesTokenCount` was the upstream's completion tokens, reasoning included, next to
 *   `thoughtsTokenCount` holding the reasoning again; Gemini counts thoughts apart (total = prompt + candidates +
 *   thoughts), so a client adding them up (Gemini CLI's stats do) counted the reasoning twice.
 * - `/v1/responses` `conversation` (the Conversations API) and `prompt` (a stored prompt template) name content kept on
 *   OpenAI's servers; they were left out and the model answered without it. Both are `unsupported` (a native
 *   channel's).
 * - An output shape the chat form has no place for was dropped, and the answer came back as prose: a Responses
 *   `text.format` of another type (`grammar`), a Gemini `responseMimeType` other than JSON or plain text
 *   (`text/x.enum`). Both are `unsupported`.
 * - `/v1/messages`: `tool_choice` without `tools` went up as `tool_choice` (`"required"` for `any`) with no tools,
 *   which an OpenAI upstream refuses; `auto`/`none` are now left out and `any`/`tool` refused as `invalid_request`.
 *   A `tool_result` text block whose `text` is not a string was `unsupported` ("block type text cannot be
 *   translated"), now `invalid_request` naming the field.
 *
 * - `/v1/messages`: an answer with tool calls that the upstream finished with `stop` (vLLM does, for a forced
 *   `tool_choice`) was `stop_reason: "end_turn"`, so a client that runs tools on `tool_use` ended its turn; it is
 *   `tool_use`, streamed or not, as the Messages API says whenever it calls a tool.
 * - `/v1/messages` streamed: tool arguments that are not a JSON object (`Paris`, as small models write them) went out
 *   as `input_json_delta` pieces no JSON parser takes, so the SDK's stream threw, where the non-streaming answer
 *   has `{"input": "Paris"}`; they are now held and sent whole, as that. JSON arguments still stream piece by piece.
 * - `/v1/responses` `parallel_tool_calls: "false"` and `user: 5`, `/v1/messages` `disable_parallel_tool_use: "true"`
 *   were left out for their type (so the model could make several calls the client asked it not to); they are
 *   `invalid_request`. A Responses `tool_choice` the chat form has no place for (`allowed_tools`) was
 *   `invalid_request` ("must be auto, none, …"), though the API takes it: it is `unsupported`, a native channel's.
 * - `/v1/messages`: a tool call the upstream gave no id became `toolu_1` (streamed: the same in every answer, which
 *   the Messages API refuses in one conversation) or `""` (not streamed, an empty id); it gets a unique id. On
 *   `/v1/responses` an empty id became an empty `call_id`.
 * - A tool `description` that is not a string (every edge), an Anthropic `tool_result` `is_error` that is not a
 *   boolean (`"true"`: the model never saw the error marker), a Gemini `responseSchema` that is not an object (the
 *   answer was held to any JSON instead) were left out for their type; they are `invalid_request`.
 * - An upstream answer whose `id` is not a string (a number) made `/v1/messages` throw: a 500 (`internal error`), or
 *   an `internal` error event for a stream; Gemini relayed it as `responseId`. It is taken as no id, as a missing one.
 * - Every edge: a non-streaming answer with `choices: []` (no answer at all) became an empty successful message
 *   (`end_turn`, `completed`, `STOP`); it is now the edge's bad-answer error (502 upstream_bad_response).
 * - Inline media that is not an image (a Gemini `inlineData` PDF, which Gemini CLI sends for a PDF file; an Anthropic
 *   `image` block with a PDF media type) went up as an image part, for the upstream to refuse under a field the
 *   client never sent: Gemini's is `unsupported`, Anthropic's (whose API takes only images there) `invalid_request`,
 *   naming the media type field. A Responses input item with neither `type` nor `role` was `unsupported` ("item type
 *   undefined"), now `invalid_request` naming `input[i].type`.
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

/** The user's last text decides the answer: "filtered" is cut by the content filter, anything else answered whole. */
function answer(raw: string): string {
  const body = JSON.parse(raw) as { stream?: boolean; messages: Array<{ content: unknown }> };
  seen.push(body);
  const last = body.messages[body.messages.length - 1]!.content;
  const finish = last === 'filtered' ? 'content_filter' : 'stop';
  const usage = { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11 };
  if (!body.stream && last === 'no choices') return JSON.stringify({ id: 'chatcmpl-0', object: 'chat.completion', created: 1, model: 'm', choices: [], usage });
  if (last === 'forced call') return forcedCall(body.stream === true);
  if (last === 'plain args') return forcedCall(body.stream === true, ['Par', 'is']);
  if (last === 'no call id') return forcedCall(body.stream === true, undefined, '');
  // an OpenAI-compatible server's answer id of another type than a string
  const id: unknown = last === 'numeric id' ? 42 : 'chatcmpl-1';
  if (last === 'think first' && !body.stream)
    return JSON.stringify({
      id: 'chatcmpl-3',
      object: 'chat.completion',
      created: 1,
      model: 'm',
      choices: [{ index: 0, message: { role: 'assistant', reasoning_content: 'The user greets.', content: 'Hello!' }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 9, completion_tokens: 14, total_tokens: 23, completion_tokens_details: { reasoning_tokens: 10 } },
    });
  if (!body.stream)
    return JSON.stringify({
      id,
      object: 'chat.completion',
      created: 1,
      model: 'm',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Some' }, finish_reason: finish }],
      usage,
    });
  const chunk = (delta: object, finish_reason: string | null) => ({
    id,
    object: 'chat.completion.chunk',
    created: 1,
    model: 'm',
    choices: [{ index: 0, delta, finish_reason }],
  });
  return (
    [
      chunk({ role: 'assistant', content: 'So' }, null),
      chunk({ content: 'me' }, finish),
      { id, object: 'chat.completion.chunk', created: 1, model: 'm', choices: [], usage },
    ]
      .map((c) => `data: ${JSON.stringify(c)}\n\n`)
      .join('') + 'data: [DONE]\n\n'
  );
}

/**
 * A tool call finished with `stop`, as vLLM answers a request whose tool_choice forces a call; `pieces`: its
 * arguments as streamed (joined when not streamed).
 */
function forcedCall(stream: boolean, pieces = ['{"city":', '"Paris"}'], id = 'call_w'): string {
  const call = { id, type: 'function', function: { name: 'weather', arguments: pieces.join('') } };
  if (!stream)
    return JSON.stringify({
      id: 'chatcmpl-2',
      object: 'chat.completion',
      created: 1,
      model: 'm',
      choices: [{ index: 0, message: { role: 'assistant', content: null, tool_calls: [call] }, finish_reason: 'stop' }],
    });
  const chunk = (delta: object, finish_reason: string | null) => ({
    id: 'chatcmpl-2',
    object: 'chat.completion.chunk',
    created: 1,
    model: 'm',
    choices: [{ index: 0, delta, finish_reason }],
  });
  return (
    [
      // no id at all when it has none (a streamed call's id is optional)
      chunk({ role: 'assistant', tool_calls: [{ index: 0, ...(id ? { id } : {}), type: 'function', function: { name: 'weather', arguments: '' } }] }, null),
      ...pieces.map((arguments_) => chunk({ tool_calls: [{ index: 0, function: { arguments: arguments_ } }] }, null)),
      chunk({}, 'stop'),
    ]
      .map((c) => `data: ${JSON.stringify(c)}\n\n`)
      .join('') + 'data: [DONE]\n\n'
  );
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

const lastSeen = () => seen[seen.length - 1]!;

describe('/v1/responses', () => {
  it('an answer cut by the content filter is incomplete (reason content_filter), streamed or not', async () => {
    const r = await openai.responses.create({ model: 'm', input: 'filtered' });
    expect(r.status).toBe('incomplete');
    expect(r.incomplete_details).toEqual({ reason: 'content_filter' });
    expect(r.output_text).toBe('Some');

    const stream = openai.responses.stream({ model: 'm', input: 'filtered' });
    const types: string[] = [];
    stream.on('event', (e) => types.push(e.type));
    const final = await stream.finalResponse();
    expect(types[types.length - 1]).toBe('response.incomplete');
    expect(final.status).toBe('incomplete');
    expect(final.incomplete_details).toEqual({ reason: 'content_filter' });
    expect(final.output_text).toBe('Some');
    expect(final.usage).toMatchObject({ input_tokens: 9, output_tokens: 2, total_tokens: 11 });

    // a whole answer stays completed
    expect((await openai.responses.create({ model: 'm', input: 'whole' })).status).toBe('completed');
  });

  it('response.function_call_arguments.done names the function, as the API reference has it', async () => {
    const tools: OpenAI.Responses.Tool[] = [
      { type: 'function', name: 'weather', strict: false, parameters: { type: 'object', properties: { city: { type: 'string' } } } },
    ];
    const stream = openai.responses.stream({ model: 'm', input: 'forced call', tools, tool_choice: 'required' });
    const done: OpenAI.Responses.ResponseFunctionCallArgumentsDoneEvent[] = [];
    stream.on('response.function_call_arguments.done', (e) => done.push(e));
    const final = await stream.finalResponse();
    expect(done).toEqual([expect.objectContaining({ name: 'weather', arguments: '{"city":"Paris"}', output_index: 0 })]);
    expect(final.output).toEqual([expect.objectContaining({ type: 'function_call', name: 'weather', call_id: 'call_w', arguments: '{"city":"Paris"}' })]);
  });

  it('a function_call_output with content parts: its text is the tool message, its images follow the tool messages', async () => {
    const img = 'data:image/png;base64,iVBORw0KGgo=';
    await openai.responses.create({
      model: 'm',
      input: [
        { type: 'function_call', call_id: 'call_a', name: 'view_image', arguments: '{"path":"a.png"}' },
        { type: 'function_call', call_id: 'call_b', name: 'view_image', arguments: '{"path":"b.png"}' },
        {
          type: 'function_call_output',
          call_id: 'call_a',
          output: [
            { type: 'input_text', text: 'a.png:' },
            { type: 'input_image', image_url: img, detail: 'low' },
          ],
        },
        { type: 'function_call_output', call_id: 'call_b', output: 'b.png is missing' },
        { role: 'user', content: 'What do you see?' },
      ],
    });
    expect(lastSeen().messages).toEqual([
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'call_a', type: 'function', function: { name: 'view_image', arguments: '{"path":"a.png"}' } },
          { id: 'call_b', type: 'function', function: { name: 'view_image', arguments: '{"path":"b.png"}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_a', content: 'a.png:' },
      { role: 'tool', tool_call_id: 'call_b', content: 'b.png is missing' },
      { role: 'user', content: [{ type: 'image_url', image_url: { url: img, detail: 'low' } }] },
      { role: 'user', content: 'What do you see?' },
    ]);
  });

  it('a function_call_output part the chat form cannot carry is refused naming it, never dropped', async () => {
    const before = seen.length;
    const call0 = { type: 'function_call', call_id: 'c', name: 'f', arguments: '{}' };
    const cases: Array<[unknown, string, string]> = [
      [
        [
          { type: 'input_text', text: 'x' },
          { type: 'input_file', file_data: 'data:application/pdf;base64,JVBER' },
        ],
        'unsupported',
        'input[1].output[1].type',
      ],
      [[7], 'invalid_request', 'input[1].output[0]'],
      [[{ type: 'input_text', text: 5 }], 'invalid_request', 'input[1].output[0].text'],
      [[{ type: 'input_image', image_url: { url: 'https://example.com/a.png' } }], 'invalid_request', 'input[1].output[0].image_url'],
    ];
    for (const [output, code, param] of cases) {
      const r = await call(gw, '/v1/responses', { body: { model: 'm', input: [call0, { type: 'function_call_output', call_id: 'c', output }] } });
      expectOpenAiError(r, 400, code, param);
    }
    expect(seen.length).toBe(before);
  });
});

describe('wrong-typed flags the translation read by type, and left out when the type was wrong', () => {
  it('are refused naming the field, before any upstream is called', async () => {
    const before = seen.length;
    const fn = { type: 'function', name: 'f', parameters: { type: 'object', properties: {} } };
    const responses: Array<[object, string, string]> = [
      [{ parallel_tool_calls: 'false', tools: [fn] }, 'invalid_request', 'parallel_tool_calls'],
      [{ user: 5 }, 'invalid_request', 'user'],
      // a choice the Responses API has and the chat form has not: a native channel's, unsupported here
      [{ tools: [fn], tool_choice: { type: 'allowed_tools', mode: 'required', tools: [{ type: 'function', name: 'f' }] } }, 'unsupported', 'tool_choice'],
    ];
    // content the request names (a stored conversation, a prompt template) was left out: the model answered without it
    responses.push([{ conversation: 'conv_689667905b048191b4740501625afd940c7533ace33a2dab' }, 'unsupported', 'conversation']);
    responses.push([{ prompt: { id: 'pmpt_123', variables: { city: 'Paris' } } }, 'unsupported', 'prompt']);
    // an output format the translation does not know was dropped: the answer came back as prose
    responses.push([{ text: { format: { type: 'grammar', syntax: 'lark', definition: 'start: "x"' } } }, 'unsupported', 'text.format.type']);
    for (const [extra, code, param] of responses)
      expectOpenAiError(await call(gw, '/v1/responses', { body: { model: 'm', input: 'hi', ...extra } }), 400, code, param);
    const tools = [{ name: 'f', input_schema: { type: 'object', properties: {} } }];
    const m = await call(gw, '/v1/messages', {
      body: {
        model: 'm',
        max_tokens: 16,
        messages: [{ role: 'user', content: 'hi' }],
        tools,
        tool_choice: { type: 'auto', disable_parallel_tool_use: 'true' },
      },
    });
    expectAnthropicInvalid(m, 'tool_choice.disable_parallel_tool_use');
    expect(seen.length).toBe(before);
  });
});

const GEN = '/v1beta/models/m:generateContent';
const hi = [{ role: 'user', parts: [{ text: 'hi' }] }];

describe('a tool description, an is_error flag or a response schema of the wrong type', () => {
  it('is invalid_request naming it, instead of being left out', async () => {
    const before = seen.length;
    const user = [{ role: 'user', content: 'hi' }];
    expectAnthropicInvalid(
      await call(gw, '/v1/messages', {
        body: { model: 'm', max_tokens: 16, messages: user, tools: [{ name: 'f', description: 5, input_schema: { type: 'object' } }] },
      }),
      'tools.0.description',
    );
    const turn = [
      { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: 'f', input: {} }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: 'disk full', is_error: 'true' }] },
    ];
    expectAnthropicInvalid(await call(gw, '/v1/messages', { body: { model: 'm', max_tokens: 16, messages: turn } }), 'messages.1.content.0.is_error');
    expectOpenAiError(
      await call(gw, '/v1/responses', {
        body: { model: 'm', input: 'hi', tools: [{ type: 'function', name: 'f', description: ['weather'], parameters: {} }] },
      }),
      400,
      'invalid_request',
      'tools[0].description',
    );
    expectGeminiInvalid(
      await call(gw, GEN, { body: { contents: hi, tools: [{ functionDeclarations: [{ name: 'f', description: { text: 'weather' } }] }] } }),
      'tools[0].functionDeclarations[0].description',
    );
    expectGeminiInvalid(
      await call(gw, GEN, { body: { contents: hi, generationConfig: { responseMimeType: 'application/json', responseSchema: 'OBJECT' } } }),
      'generationConfig.responseSchema',
    );
    expect(seen.length).toBe(before);
    // a description and is_error of the right types still go up
    await call(gw, '/v1/messages', {
      body: {
        model: 'm',
        max_tokens: 16,
        messages: [...turn.slice(0, 1), { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: 'disk full', is_error: true }] }],
      },
    });
    expect(lastSeen().messages[1]).toEqual({ role: 'tool', tool_call_id: 't1', content: '[tool error] disk full' });
  });
});

describe('Gemini', () => {
  it('upper-case types inside anyOf are lowered like every other type of a parameters schema', async () => {
    const r = await call(gw, GEN, {
      body: {
        contents: hi,
        tools: [
          {
            functionDeclarations: [
              {
                name: 'find',
                parameters: {
                  type: 'OBJECT',
                  properties: { q: { anyOf: [{ type: 'STRING' }, { type: 'ARRAY', items: { type: 'STRING' } }, { type: 'NULL' }] } },
                },
              },
            ],
          },
        ],
      },
    });
    expect(r.status, r.text).toBe(200);
    expect(lastSeen().tools[0].function.parameters).toEqual({
      type: 'object',
      properties: { q: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }, { type: 'null' }] } },
    });
  });

  it('thoughts are counted apart from the candidates, as Gemini counts them (total = prompt + candidates + thoughts)', async () => {
    const r = await call(gw, GEN, { body: { contents: [{ role: 'user', parts: [{ text: 'think first' }] }] } });
    expect(r.status, r.text).toBe(200);
    expect(r.json.candidates[0].content.parts).toEqual([{ text: 'The user greets.', thought: true }, { text: 'Hello!' }]);
    expect(r.json.usageMetadata).toEqual({ promptTokenCount: 9, candidatesTokenCount: 4, thoughtsTokenCount: 10, totalTokenCount: 23 });
  });

  it('nullable (OpenAPI, which Gemini schemas speak) becomes a null type, which JSON Schema has', async () => {
    const parameters = {
      type: 'OBJECT',
      properties: {
        city: { type: 'STRING', nullable: true },
        unit: { type: 'STRING', format: 'enum', enum: ['C', 'F'], nullable: true },
        when: { anyOf: [{ type: 'STRING' }, { type: 'INTEGER' }], nullable: true },
        days: { type: 'INTEGER', nullable: false },
      },
      required: ['city'],
    };
    const r = await call(gw, GEN, { body: { contents: hi, tools: [{ functionDeclarations: [{ name: 'forecast', parameters }] }] } });
    expect(r.status, r.text).toBe(200);
    expect(lastSeen().tools[0].function.parameters).toEqual({
      type: 'object',
      properties: {
        city: { type: ['string', 'null'] },
        unit: { type: ['string', 'null'], format: 'enum', enum: ['C', 'F', null] },
        when: { anyOf: [{ type: 'string' }, { type: 'integer' }, { type: 'null' }] },
        days: { type: 'integer', nullable: false },
      },
      required: ['city'],
    });
  });

  it('a functionCall whose args is not an object, or a toolConfig the gateway cannot read, is invalid_request', async () => {
    const before = seen.length;
    const tools = [{ functionDeclarations: [{ name: 'f' }] }];
    const cases: Array<[object, string]> = [
      [{ contents: [{ role: 'model', parts: [{ functionCall: { name: 'f', args: 'city=Paris' } }] }, ...hi] }, 'contents[0].parts[0].functionCall.args'],
      [{ contents: [{ role: 'model', parts: [{ functionCall: { name: 'f', args: [1] } }] }, ...hi] }, 'contents[0].parts[0].functionCall.args'],
      [{ contents: hi, tools, toolConfig: 'ANY' }, 'toolConfig'],
      [{ contents: hi, tools, toolConfig: { functionCallingConfig: 'ANY' } }, 'toolConfig.functionCallingConfig'],
      [{ contents: hi, toolConfig: { functionCallingConfig: { mode: 'ALWAYS' } } }, 'toolConfig.functionCallingConfig.mode'],
      [{ contents: hi, generationConfig: { responseMimeType: 5 } }, 'generationConfig.responseMimeType'],
    ];
    for (const [body, param] of cases) expectGeminiInvalid(await call(gw, GEN, { body }), param);
    // an answer shape the chat form cannot ask for was dropped (the answer came back as prose): unsupported
    const enumAsked = await call(gw, GEN, {
      body: { contents: hi, generationConfig: { responseMimeType: 'text/x.enum', responseSchema: { type: 'STRING', enum: ['yes', 'no'] } } },
    });
    expect(enumAsked.status, enumAsked.text).toBe(400);
    expect(enumAsked.json.error).toMatchObject({ details: [{ reason: 'UNSUPPORTED', metadata: { param: 'generationConfig.responseMimeType' } }] });
    expect(seen.length).toBe(before);
    // what the API takes still goes up
    const ok = await call(gw, GEN, { body: { contents: hi, tools, toolConfig: { functionCallingConfig: { mode: 'MODE_UNSPECIFIED' } } } });
    expect(ok.status, ok.text).toBe(200);
    expect(lastSeen().tool_choice).toBe('auto');
  });
});

describe('/v1/messages', () => {
  const user = [{ role: 'user' as const, content: 'hi' }];

  it('tool_choice auto or none without tools asks for nothing: left out, with disable_parallel_tool_use', async () => {
    for (const tool_choice of [{ type: 'auto', disable_parallel_tool_use: true }, { type: 'none' }] as const) {
      const m = await anthropic.messages.create({ model: 'm', max_tokens: 16, messages: user, tool_choice });
      expect(m.content).toEqual([{ type: 'text', text: 'Some' }]);
      expect(lastSeen()).not.toHaveProperty('tool_choice');
      expect(lastSeen()).not.toHaveProperty('parallel_tool_calls');
    }
    // with tools, both still go up
    const tools = [{ name: 'f', input_schema: { type: 'object' as const, properties: {} } }];
    await anthropic.messages.create({ model: 'm', max_tokens: 16, messages: user, tools, tool_choice: { type: 'any', disable_parallel_tool_use: true } });
    expect(lastSeen()).toMatchObject({ tool_choice: 'required', parallel_tool_calls: false });
  });

  it('tool_choice any or tool without tools is invalid_request: no call could be made', async () => {
    const before = seen.length;
    for (const tool_choice of [{ type: 'any' }, { type: 'tool', name: 'f' }] as const) {
      const e = await anthropic.messages.create({ model: 'm', max_tokens: 16, messages: user, tool_choice }).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(Anthropic.BadRequestError);
      expect((e as InstanceType<typeof Anthropic.BadRequestError>).error).toMatchObject({ error: { type: 'invalid_request_error', code: 'invalid_request' } });
      expect((e as Error).message).toContain('tool_choice: ');
    }
    expect(seen.length).toBe(before);
  });

  it('an answer with a tool call is stop_reason tool_use, also when the upstream finished it with "stop"', async () => {
    const tools = [{ name: 'weather', input_schema: { type: 'object' as const, properties: { city: { type: 'string' } } } }];
    const ask = { model: 'm', max_tokens: 64, messages: [{ role: 'user' as const, content: 'forced call' }], tools, tool_choice: { type: 'any' as const } };
    const m = await anthropic.messages.create(ask);
    expect(m.stop_reason).toBe('tool_use');
    expect(m.content).toEqual([{ type: 'tool_use', id: 'call_w', name: 'weather', input: { city: 'Paris' } }]);
    const streamed = await anthropic.messages.stream(ask).finalMessage();
    expect(streamed.stop_reason).toBe('tool_use');
    expect(streamed.content).toEqual([{ type: 'tool_use', id: 'call_w', name: 'weather', input: { city: 'Paris' } }]);
    // an answer without a call still ends the turn
    expect((await anthropic.messages.create({ ...ask, messages: [{ role: 'user', content: 'hi' }] })).stop_reason).toBe('end_turn');
  });

  it('streamed tool arguments that are not a JSON object arrive as the non-streaming answer has them', async () => {
    const tools = [{ name: 'weather', input_schema: { type: 'object' as const, properties: { city: { type: 'string' } } } }];
    const ask = { model: 'm', max_tokens: 64, messages: [{ role: 'user' as const, content: 'plain args' }], tools };
    const whole = await anthropic.messages.create(ask);
    expect(whole.content).toEqual([{ type: 'tool_use', id: 'call_w', name: 'weather', input: { input: 'Paris' } }]);
    // the SDK parses the input_json_delta pieces: "Paris" made it throw
    const streamed = await anthropic.messages.stream(ask).finalMessage();
    expect(streamed.content).toEqual(whole.content);
    // arguments that are a JSON object still stream piece by piece
    const raw = await call(gw, '/v1/messages', { body: { ...ask, stream: true, messages: [{ role: 'user', content: 'forced call' }] } });
    const pieces = sseData(raw.text)
      .map((d) => JSON.parse(d))
      .filter((e) => e.delta?.type === 'input_json_delta')
      .map((e) => e.delta.partial_json);
    expect(pieces).toEqual(['{"city":', '"Paris"}']);
  });

  it('a call the upstream gave no id gets one unique across answers, never an empty or repeated tool_use id', async () => {
    const tools = [{ name: 'weather', input_schema: { type: 'object' as const, properties: { city: { type: 'string' } } } }];
    const ask = { model: 'm', max_tokens: 64, messages: [{ role: 'user' as const, content: 'no call id' }], tools };
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const whole = await anthropic.messages.create(ask);
      const streamed = await anthropic.messages.stream(ask).finalMessage();
      for (const m of [whole, streamed]) {
        expect(m.content).toEqual([{ type: 'tool_use', id: expect.stringMatching(/^toolu_\w+$/), name: 'weather', input: { city: 'Paris' } }]);
        ids.push((m.content[0] as Anthropic.ToolUseBlock).id);
      }
    }
    expect(new Set(ids).size).toBe(ids.length);
    // the Responses edge answers such a call by its item's id, never an empty call_id
    const r = await openai.responses.create({ model: 'm', input: 'no call id', tools: [{ type: 'function', name: 'weather', strict: false, parameters: {} }] });
    expect(r.output[0]).toMatchObject({ type: 'function_call', call_id: expect.stringMatching(/^fc_/) });
  });

  it('a tool_result text block whose text is not a string is invalid_request naming it', async () => {
    const r = await call(gw, '/v1/messages', {
      body: {
        model: 'm',
        max_tokens: 16,
        messages: [
          { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: 'f', input: {} }] },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: [{ type: 'text', text: 5 }] }] },
        ],
      },
    });
    expectAnthropicInvalid(r, 'messages.1.content.0.content.0.text');
  });
});

describe('every edge', () => {
  it('an upstream answer id that is not a string is no id: the answer gets one of its own, never a 500', async () => {
    const ask = { model: 'm', max_tokens: 16, messages: [{ role: 'user' as const, content: 'numeric id' }] };
    const m = await anthropic.messages.create(ask);
    expect(m.id).toMatch(/^msg_\w+$/);
    expect(m.content).toEqual([{ type: 'text', text: 'Some' }]);
    const streamed = await anthropic.messages.stream(ask).finalMessage();
    expect(streamed.id).toMatch(/^msg_\w+$/);
    expect(streamed.content).toEqual([{ type: 'text', text: 'Some' }]);
    for (const path of [GEN, '/v1beta/models/m:streamGenerateContent?alt=sse']) {
      const g = await call(gw, path, { body: { contents: [{ role: 'user', parts: [{ text: 'numeric id' }] }] } });
      expect(g.status, g.text).toBe(200);
      const answers: unknown[] =
        path === GEN
          ? [g.json]
          : g.text
              .split(/\r?\n\r?\n/)
              .filter((e) => e.startsWith('data: '))
              .map((e) => JSON.parse(e.slice(6)));
      expect(answers.length).toBeGreaterThan(1 - Number(path === GEN));
      for (const c of answers) expect(c).not.toHaveProperty('responseId', 42);
    }
  });

  it('an upstream answer with no choice is the bad-answer error, not an empty successful message', async () => {
    const m = await call(gw, '/v1/messages', { body: { model: 'm', max_tokens: 16, messages: [{ role: 'user', content: 'no choices' }] } });
    expect(m.status, m.text).toBe(502);
    expect(m.json).toMatchObject({ type: 'error', error: { type: 'api_error', code: 'upstream_bad_response' } });
    expect(m.json.error.message).toContain('choices is empty');
    expectOpenAiError(await call(gw, '/v1/responses', { body: { model: 'm', input: 'no choices' } }), 502, 'upstream_bad_response');
    const g = await call(gw, GEN, { body: { contents: [{ role: 'user', parts: [{ text: 'no choices' }] }] } });
    expect(g.status, g.text).toBe(502);
    expect(g.json.error).toMatchObject({ code: 502, status: 'UNAVAILABLE', details: [{ reason: 'UPSTREAM_BAD_RESPONSE' }] });
  });

  it('inline data that is not an image is refused naming its media type; a Responses item without a type is invalid_request', async () => {
    const before = seen.length;
    const pdf = 'JVBERi0xLjQK';
    const gem = await call(gw, GEN, {
      body: { contents: [{ role: 'user', parts: [{ text: 'sum up' }, { inlineData: { mimeType: 'application/pdf', data: pdf } }] }] },
    });
    expect(gem.status, gem.text).toBe(400);
    expect(gem.json.error).toMatchObject({
      status: 'INVALID_ARGUMENT',
      details: [{ reason: 'UNSUPPORTED', metadata: { param: 'contents[0].parts[1].inlineData.mimeType' } }],
    });
    // counted all the same, as any part without a chat form
    const count = await call(gw, '/v1beta/models/m:countTokens', {
      body: { contents: [{ role: 'user', parts: [{ inlineData: { mimeType: 'application/pdf', data: pdf } }] }] },
    });
    expect(count.status, count.text).toBe(200);

    const e = await anthropic.messages
      .create({
        model: 'm',
        max_tokens: 16,
        messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'application/pdf' as 'image/png', data: pdf } }] }],
      })
      .catch((err: unknown) => err);
    expect(e).toBeInstanceOf(Anthropic.BadRequestError);
    expect((e as Error).message).toContain('messages.0.content.0.source.media_type: ');

    for (const item of [{ content: 'hi' }, { type: 5, role: 'user', content: 'hi' }])
      expectOpenAiError(await call(gw, '/v1/responses', { body: { model: 'm', input: [item] } }), 400, 'invalid_request', 'input[0].type');
    expect(seen.length).toBe(before);
    // an image still goes up as one
    const png = 'iVBORw0KGgo=';
    const ok = await call(gw, GEN, {
      body: { contents: [{ role: 'user', parts: [{ text: 'what is it?' }, { inlineData: { mimeType: 'image/png', data: png } }] }] },
    });
    expect(ok.status, ok.text).toBe(200);
    expect(lastSeen().messages[0].content[1]).toEqual({ type: 'image_url', image_url: { url: `data:image/png;base64,${png}` } });
  });
});
