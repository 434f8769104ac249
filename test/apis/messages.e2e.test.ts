/**
 * POST /v1/messages driven by the official @anthropic-ai/sdk over every channel kind — openai, anthropic
 * (native pass-through), ollama — and a model only the bridged peer (a real second gateway process) serves:
 * text and tool calls, stream and non-stream, system prompts, multi-turn with tool results, usage, the
 * exact event sequence, stream cuts, and errors in Anthropic's shape.
 */
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call } from '../helpers/env.js';
import { KINDS, REPLY, TOOL, USAGE, startMesh, type Mesh } from './mesh.js';

let mesh: Mesh;
let client: Anthropic;

beforeAll(async () => {
  mesh = await startMesh();
  client = new Anthropic({ apiKey: 'sk-ant-client', baseURL: mesh.a.url, maxRetries: 0, timeout: 15_000 });
}, 60_000);
afterAll(async () => mesh?.close());

const weatherTool = {
  name: TOOL.name,
  description: 'Weather for a city',
  input_schema: { type: 'object' as const, properties: { city: { type: 'string' }, unit: { type: 'string' } }, required: ['city'] },
};

/** the event types of a raw SSE body, in order */
function eventTypes(text: string): string[] {
  return [...text.matchAll(/^event: (.+)$/gm)].map((m) => m[1]!);
}

describe.each(KINDS)('/v1/messages over %s', (kind) => {
  it('non-stream: system prompt, multi-turn, text, stop_reason and real usage', async () => {
    const { data, response } = await client.messages
      .create({
        model: kind,
        max_tokens: 256,
        system: [{ type: 'text', text: 'Be brief.' }],
        messages: [
          { role: 'user', content: 'Hi' },
          { role: 'assistant', content: 'Hello.' },
          { role: 'user', content: 'Tell me about foxes' },
        ],
      })
      .withResponse();
    expect(data.type).toBe('message');
    expect(data.role).toBe('assistant');
    expect(data.content).toEqual([expect.objectContaining({ type: 'text', text: REPLY })]);
    expect(data.stop_reason).toBe('end_turn');
    expect(data.usage.input_tokens).toBeGreaterThan(0);
    expect(data.usage.output_tokens).toBe(USAGE.output);
    if (kind === 'peer') expect(response.headers.get('x-switchyard-peer')).toBe('gpu-box');
  });

  it('stream: the exact Anthropic event sequence, text chunk by chunk, real usage in message_delta', async () => {
    const r = await call(mesh.a, '/v1/messages', {
      body: { model: kind, max_tokens: 64, stream: true, system: 'Be brief.', messages: [{ role: 'user', content: 'Tell me about foxes' }] },
    });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const types = eventTypes(r.text);
    expect(types[0]).toBe('message_start');
    expect(types).toContain('ping');
    expect(types.at(-2)).toBe('message_delta');
    expect(types.at(-1)).toBe('message_stop');
    expect(types.filter((t) => t === 'content_block_delta').length).toBeGreaterThan(1);
    expect(types.indexOf('content_block_start')).toBeLessThan(types.indexOf('content_block_delta'));
    expect(types.lastIndexOf('content_block_stop')).toBeLessThan(types.indexOf('message_delta'));
    const start = JSON.parse(/^event: message_start\ndata: (.+)$/m.exec(r.text)![1]!);
    expect(start.message.usage.input_tokens).toBeGreaterThan(0);
    const delta = JSON.parse(/^event: message_delta\ndata: (.+)$/m.exec(r.text)![1]!);
    expect(delta.delta.stop_reason).toBe('end_turn');
    expect(delta.usage.output_tokens).toBe(USAGE.output);

    const stream = client.messages.stream({ model: kind, max_tokens: 64, messages: [{ role: 'user', content: 'Tell me about foxes' }] });
    const pieces: string[] = [];
    stream.on('text', (t) => pieces.push(t));
    const final = await stream.finalMessage();
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.join('')).toBe(REPLY);
    expect(final.content[0]).toMatchObject({ type: 'text', text: REPLY });
    expect(final.usage.output_tokens).toBe(USAGE.output);
  });

  it('tools: tool_use back (stream and non-stream), tool_choice, then a tool_result turn reaches the upstream', async () => {
    const model = `${kind}-tools`;
    const msg = await client.messages.create({
      model,
      max_tokens: 128,
      tools: [weatherTool],
      tool_choice: { type: 'auto' },
      messages: [{ role: 'user', content: 'Weather in Paris?' }],
    });
    expect(msg.stop_reason).toBe('tool_use');
    const use = msg.content.find((b) => b.type === 'tool_use');
    // Ollama's API has no call ids: the gateway makes one up
    const id = kind === 'ollama' ? expect.stringMatching(/.+/) : TOOL.id;
    expect(use).toMatchObject({ type: 'tool_use', id, name: TOOL.name, input: JSON.parse(TOOL.arguments) });

    const raw = await call(mesh.a, '/v1/messages', {
      body: { model, max_tokens: 64, stream: true, tools: [weatherTool], messages: [{ role: 'user', content: 'Weather in Paris?' }] },
    });
    expect(raw.text).toContain('"type":"input_json_delta"');
    const streamed = await client.messages
      .stream({ model, max_tokens: 128, tools: [weatherTool], messages: [{ role: 'user', content: 'Weather in Paris?' }] })
      .finalMessage();
    expect(streamed.stop_reason).toBe('tool_use');
    expect(streamed.content.find((b) => b.type === 'tool_use')).toMatchObject({ id, name: TOOL.name, input: JSON.parse(TOOL.arguments) });

    const next = await client.messages.create({
      model,
      max_tokens: 128,
      tools: [weatherTool],
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: [{ type: 'tool_use', id: TOOL.id, name: TOOL.name, input: { city: 'Paris' } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: TOOL.id, content: '18 C, sunny' }] },
      ],
    });
    expect(next.type).toBe('message');
    const seen = JSON.stringify(mesh.fakes[model]!.lastRequest());
    expect(seen).toContain('18 C, sunny');
    if (kind !== 'ollama') expect(seen).toContain(TOOL.id);
  });

  it('an upstream cut mid-stream ends with an Anthropic error event, never message_stop', async () => {
    const r = await call(mesh.a, '/v1/messages', { body: { model: `${kind}-cut`, max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'go' }] } });
    const types = eventTypes(r.text);
    expect(types[0]).toBe('message_start');
    expect(types.at(-1)).toBe('error');
    expect(types).not.toContain('message_stop');
    const err = JSON.parse(/^event: error\ndata: (.+)$/m.exec(r.text)![1]!);
    expect(err).toMatchObject({ type: 'error', error: { type: expect.any(String), message: expect.any(String) } });
    await expect(
      client.messages.stream({ model: `${kind}-cut`, max_tokens: 64, messages: [{ role: 'user', content: 'go' }] }).finalMessage(),
    ).rejects.toThrow();
  });
});

describe('/v1/messages native pass-through to an anthropic channel', () => {
  it('cache_control, thinking blocks, anthropic-beta and anthropic-version reach the upstream untouched', async () => {
    const body = {
      model: 'anthropic',
      max_tokens: 512,
      system: [{ type: 'text', text: 'You are a fox expert.', cache_control: { type: 'ephemeral' } }],
      thinking: { type: 'enabled', budget_tokens: 256 },
      messages: [
        { role: 'user', content: 'Hi' },
        {
          role: 'assistant',
          content: [
            { type: 'thinking', thinking: 'greet back', signature: 'sig-Xyz==' },
            { type: 'text', text: 'Hello.' },
          ],
        },
        { role: 'user', content: [{ type: 'text', text: 'Foxes?', cache_control: { type: 'ephemeral' } }] },
      ],
    };
    const r = await call(mesh.a, '/v1/messages', { body, headers: { 'anthropic-version': '2023-06-01', 'anthropic-beta': 'prompt-caching-2024-07-31' } });
    expect(r.status, r.text).toBe(200);
    const up = mesh.fakes.anthropic!;
    expect(up.lastRequest()).toEqual(body);
    expect(up.lastHeaders()!['anthropic-beta']).toBe('prompt-caching-2024-07-31');
    expect(up.lastHeaders()!['x-api-key']).toBe('sk-ant-fake');
    expect(r.json).toMatchObject({ id: 'msg_01FakeXk3TJj8q5sZbq9vA2', content: [{ type: 'text', text: REPLY }] });
  });

  it('server tools and document blocks go natively, untouched; where the model has no anthropic channel they are refused', async () => {
    const body = {
      model: 'anthropic',
      max_tokens: 256,
      tools: [{ type: 'web_search_20250305', name: 'web_search', max_uses: 2 }, weatherTool],
      messages: [
        {
          role: 'user',
          content: [
            { type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'The fox report.' } },
            { type: 'text', text: 'Summarise, and search if needed.' },
          ],
        },
      ],
    };
    const r = await call(mesh.a, '/v1/messages', { body });
    expect(r.status, r.text).toBe(200);
    expect(mesh.fakes.anthropic!.lastRequest()).toEqual(body);
    for (const model of ['openai', 'peer']) {
      const refused = await call(mesh.a, '/v1/messages', { body: { ...body, model } });
      expect(refused.status, model).toBe(400);
      expect(refused.json.error).toMatchObject({
        type: 'invalid_request_error',
        message: expect.stringMatching(/^messages\.0\.content\.0\.type: content block type "document"/),
      });
    }
  });

  it('a stream is relayed event by event, verbatim', async () => {
    const r = await call(mesh.a, '/v1/messages', { body: { model: 'anthropic', max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'x' }] } });
    expect(r.text).toContain('"id":"msg_01FakeXk3TJj8q5sZbq9vA2"');
    expect(r.text).toContain('"service_tier":"standard"');
  });

  it('count_tokens: the upstream endpoint on an anthropic channel, an estimate elsewhere, saying which', async () => {
    const messages = [{ role: 'user' as const, content: 'How many tokens is this?' }];
    const up = await client.messages.countTokens({ model: 'anthropic', messages }).withResponse();
    expect(up.data.input_tokens).toBe(1000 + JSON.stringify(messages).length);
    expect(up.response.headers.get('x-switchyard-token-count')).toBe('upstream');
    const est = await client.messages.countTokens({ model: 'openai', messages }).withResponse();
    expect(est.data.input_tokens).toBeGreaterThan(0);
    expect(est.response.headers.get('x-switchyard-token-count')).toBe('estimate');
  });
});

describe('/v1/messages content and upstream refusals', () => {
  it('an image block reaches an openai channel as an image part, with stop_sequences and tool_choice none', async () => {
    const r = await call(mesh.a, '/v1/messages', {
      body: {
        model: 'openai',
        max_tokens: 32,
        stop_sequences: ['END'],
        tools: [weatherTool],
        tool_choice: { type: 'none' },
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'What is this?' },
              { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
            ],
          },
        ],
      },
    });
    expect(r.status, r.text).toBe(200);
    const sent = mesh.fakes.openai!.lastRequest() as any;
    expect(sent.messages[0].content).toEqual([
      { type: 'text', text: 'What is this?' },
      { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
    ]);
    expect(sent.stop).toEqual(['END']);
    expect(sent.tool_choice).toBe('none');
  });

  it('natively, the upstream judges the body: its 400 comes back as an Anthropic invalid_request_error', async () => {
    const r = await call(mesh.a, '/v1/messages', {
      body: { model: 'anthropic', max_tokens: 16, not_a_field: true, messages: [{ role: 'user', content: 'x' }] },
    });
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({
      type: 'error',
      error: { type: 'invalid_request_error', message: expect.stringContaining('not_a_field: Extra inputs are not permitted') },
    });
  });
});

describe('/v1/messages errors in Anthropic shape', () => {
  it('bad input: 400 invalid_request_error naming the field', async () => {
    const r = await call(mesh.a, '/v1/messages', { body: { model: 'openai', messages: [{ role: 'user', content: 'x' }] } });
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringContaining('max_tokens') } });
    const bad = await call(mesh.a, '/v1/messages', { body: '{"model":' });
    expect(bad.status).toBe(400);
    expect(bad.json.type).toBe('error');
    await expect(client.messages.create({ model: 'openai', max_tokens: 10, messages: [{ role: 'system' as 'user', content: 'x' }] })).rejects.toBeInstanceOf(
      Anthropic.BadRequestError,
    );
  });

  it('unknown model: 404 not_found_error (the SDK raises NotFoundError)', async () => {
    await expect(client.messages.create({ model: 'nope', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] })).rejects.toBeInstanceOf(
      Anthropic.NotFoundError,
    );
  });

  it('wrong method: 405 in Anthropic shape', async () => {
    const r = await call(mesh.a, '/v1/messages', { method: 'GET' });
    expect(r.status).toBe(405);
    expect(r.json).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
  });
});
