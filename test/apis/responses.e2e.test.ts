/**
 * POST /v1/responses driven by the official openai SDK (`responses.create` / `responses.stream`) over every
 * channel kind and a model only the bridged peer (a real second gateway process) serves: text and function
 * calls, stream and non-stream, instructions, function_call_output turns, previous_response_id with the
 * gateway's store, GET /v1/responses/{id}, stream cuts ending in response.failed, and errors.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, sseData } from '../helpers/env.js';
import { KINDS, REPLY, TOOL, USAGE, startMesh, type Mesh } from './mesh.js';

let mesh: Mesh;
let client: OpenAI;

beforeAll(async () => {
  mesh = await startMesh({ responses: { storeTtlMs: 60_000 } });
  client = new OpenAI({ apiKey: 'sk-client', baseURL: `${mesh.a.url}/v1`, maxRetries: 0, timeout: 15_000 });
}, 60_000);
afterAll(async () => mesh?.close());

const tools: OpenAI.Responses.Tool[] = [
  {
    type: 'function',
    name: TOOL.name,
    description: 'Weather for a city',
    strict: false,
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
];

function eventTypes(text: string): string[] {
  return [...text.matchAll(/^event: (.+)$/gm)].map((m) => m[1]!);
}

describe.each(KINDS)('/v1/responses over %s', (kind) => {
  it('non-stream: instructions and string input → one message item, usage, status completed', async () => {
    const r = await client.responses.create({ model: kind, instructions: 'Be brief.', input: 'Tell me about foxes' });
    expect(r.object).toBe('response');
    expect(r.status).toBe('completed');
    expect(r.output_text).toBe(REPLY);
    expect(r.output[0]).toMatchObject({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: REPLY }] });
    expect(r.usage).toMatchObject({ output_tokens: USAGE.output });
    expect(r.usage!.input_tokens).toBeGreaterThan(0);
  });

  it('stream: the Responses event sequence, text chunk by chunk, usage in response.completed', async () => {
    const raw = await call(mesh.a, '/v1/responses', {
      body: { model: kind, input: [{ role: 'user', content: [{ type: 'input_text', text: 'foxes?' }] }], stream: true },
    });
    const types = eventTypes(raw.text);
    expect(types.slice(0, 4)).toEqual(['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added']);
    expect(types.filter((t) => t === 'response.output_text.delta').length).toBeGreaterThan(1);
    expect(types.slice(-4)).toEqual(['response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.completed']);
    const seqs = sseData(raw.text).map((d) => JSON.parse(d).sequence_number);
    expect(seqs).toEqual(seqs.map((_, i) => i));

    const stream = client.responses.stream({ model: kind, input: 'foxes?' });
    const deltas: string[] = [];
    stream.on('response.output_text.delta', (e) => deltas.push(e.delta));
    const final = await stream.finalResponse();
    expect(deltas.join('')).toBe(REPLY);
    expect(final.output_text).toBe(REPLY);
    expect(final.usage?.output_tokens).toBe(USAGE.output);
  });

  it('function calls: function_call items (stream and non-stream), then a function_call_output turn reaches the upstream', async () => {
    const model = `${kind}-tools`;
    // parallel_tool_calls: false (Codex sends it for models it does not know) is honoured by openai (passed on) and
    // anthropic (disable_parallel_tool_use), and served by Ollama, which cannot hold a model to one call (docs/apis.md)
    const r = await client.responses.create({ model, input: 'Weather in Paris?', tools, tool_choice: 'auto', parallel_tool_calls: false });
    if (kind === 'anthropic') expect(mesh.fakes[model]!.lastRequest()!.tool_choice).toEqual({ type: 'auto', disable_parallel_tool_use: true });
    if (kind === 'openai') expect(mesh.fakes[model]!.lastRequest()!.parallel_tool_calls).toBe(false);
    const call0 = r.output.find((o) => o.type === 'function_call');
    const callId = kind === 'ollama' ? expect.stringMatching(/.+/) : TOOL.id;
    expect(call0).toMatchObject({ type: 'function_call', name: TOOL.name, arguments: TOOL.arguments, call_id: callId });

    const raw = await call(mesh.a, '/v1/responses', { body: { model, input: 'Weather in Paris?', tools, stream: true } });
    expect(eventTypes(raw.text)).toContain('response.function_call_arguments.delta');
    const final = await client.responses.stream({ model, input: 'Weather in Paris?', tools }).finalResponse();
    expect(final.output.find((o) => o.type === 'function_call')).toMatchObject({ name: TOOL.name, arguments: TOOL.arguments });

    const c = call0 as OpenAI.Responses.ResponseFunctionToolCall;
    const next = await client.responses.create({
      model,
      tools,
      input: [
        { role: 'user', content: 'Weather in Paris?' },
        { type: 'function_call', call_id: c.call_id, name: c.name, arguments: c.arguments },
        { type: 'function_call_output', call_id: c.call_id, output: '18 C, sunny' },
      ],
    });
    expect(next.status).toBe('completed');
    expect(JSON.stringify(mesh.fakes[model]!.lastRequest())).toContain('18 C, sunny');
  });

  it('previous_response_id continues from the stored conversation; GET /v1/responses/{id} returns it', async () => {
    const first = await client.responses.create({ model: kind, input: 'My name is Ada.' });
    const again = await client.responses.retrieve(first.id);
    expect(again.id).toBe(first.id);
    expect(again.output_text).toBe(REPLY);
    const second = await client.responses.create({ model: kind, input: 'What is my name?', previous_response_id: first.id });
    expect(second.previous_response_id).toBe(first.id);
    const sent = JSON.stringify(mesh.fakes[kind]!.lastRequest());
    expect(sent).toContain('My name is Ada.');
    expect(sent).toContain(REPLY);
    expect(sent).toContain('What is my name?');
  });

  it('an upstream cut mid-stream ends with response.failed, never response.completed', async () => {
    const raw = await call(mesh.a, '/v1/responses', { body: { model: `${kind}-cut`, input: 'go', stream: true } });
    const types = eventTypes(raw.text);
    expect(types[0]).toBe('response.created');
    expect(types.at(-1)).toBe('response.failed');
    expect(types).not.toContain('response.completed');
    const failed = JSON.parse(sseData(raw.text).at(-1)!);
    expect(failed.response).toMatchObject({ status: 'failed', error: { code: expect.any(String), message: expect.any(String) } });
    // the SDK hands back the failed response (it throws only on transport errors); Codex fails the turn on it
    const viaSdk = await client.responses.stream({ model: `${kind}-cut`, input: 'go' }).finalResponse();
    expect(viaSdk.status).toBe('failed');
    expect(viaSdk.error?.message).toMatch(/upstream/);
  });
});

describe('/v1/responses store and errors', () => {
  it('store: false keeps nothing; an unknown previous_response_id is a 404 naming the field', async () => {
    const r = await client.responses.create({ model: 'openai', input: 'x', store: false });
    await expect(client.responses.retrieve(r.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const bad = await call(mesh.a, '/v1/responses', { body: { model: 'openai', input: 'x', previous_response_id: 'resp_nope' } });
    expect(bad.status).toBe(404);
    expect(bad.json.error).toMatchObject({ param: 'previous_response_id', type: 'not_found_error' });
  });

  it('bad input gets an OpenAI error naming the field', async () => {
    const r = await call(mesh.a, '/v1/responses', { body: { model: 'openai', input: 42 } });
    expect(r.status).toBe(400);
    expect(r.json.error).toMatchObject({ param: 'input', type: 'invalid_request_error' });
    const item = await call(mesh.a, '/v1/responses', { body: { model: 'openai', input: [{ type: 'computer_call', id: 'x' }] } });
    expect(item.status).toBe(400);
    expect(item.json.error.param).toBe('input[0].type');
    await expect(client.responses.create({ model: 'nope', input: 'x' })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('tools with no chat form are dropped and named in a header', async () => {
    const r = await call(mesh.a, '/v1/responses', {
      body: { model: 'openai', input: 'x', tools: [...tools, { type: 'web_search' }, { type: 'custom', name: 'apply\r\npatch' }] },
    });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-switchyard-dropped-tools')).toBe('web_search,applypatch');
    expect((mesh.fakes.openai!.lastRequest() as { tools: unknown[] }).tools).toHaveLength(1);
  });
});
