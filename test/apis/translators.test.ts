/**
 * Byte-level tests of the three inbound translators, both directions, against recorded vendor sequences
 * (test/apis/fixtures/README.md cites each source):
 * - format → internal: request mapping pinned field by field;
 * - internal → format: the recorded chat chunks (or a recorded Anthropic stream read by the anthropic
 *   provider) through each stream writer, compared with the exact bytes expected;
 * - native pass-through: a recorded upstream stream relayed byte for byte.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { ChatCompletionChunk } from '../../src/wire/openai.js';
import { anthropicStream } from '../../src/providers/anthropic/stream.js';
import { anthropicNativeStream } from '../../src/providers/anthropic/native.js';
import { responsesNativeStream } from '../../src/providers/openai/responses-native.js';
import { anthropicToChat } from '../../src/apis/anthropic/request.js';
import { AnthropicStreamWriter, nativeStart } from '../../src/apis/anthropic/stream.js';
import { inputItems, responsesToChat, validateResponses } from '../../src/apis/responses/request.js';
import { ResponsesStreamWriter } from '../../src/apis/responses/stream.js';
import { skeleton } from '../../src/apis/responses/response.js';
import { geminiToChat } from '../../src/apis/gemini/request.js';
import { GeminiStreamWriter } from '../../src/apis/gemini/stream.js';
import { parseSse } from '../../src/util/lines.js';
import { isOutputChunk, wasRelayed, type StreamChunk } from '../../src/providers/provider.js';
import { GatewayError } from '../../src/wire/errors.js';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');
const chatChunks = (): ChatCompletionChunk[] =>
  fixture('openai-chat-tool.chunks.jsonl')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
/** the recorded bytes cut at awkward places, as a socket may deliver them */
function* pieces(text: string, size = 37): Generator<Uint8Array> {
  const b = Buffer.from(text);
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}
async function* bytes(text: string): AsyncGenerator<Uint8Array> {
  yield* pieces(text);
}
/** A stream read to its failure: the last chunk's raw event before it, and what it threw. */
async function failedRelay(stream: AsyncIterable<StreamChunk>): Promise<{ last: string | undefined; error: unknown }> {
  let last: string | undefined;
  try {
    for await (const c of stream) last = c.raw;
  } catch (error) {
    return { last, error };
  }
  throw new Error('the stream ended without failing');
}
async function* once(text: string): AsyncGenerator<string> {
  yield text;
}
async function events(text: string): Promise<Array<{ event: string | undefined; data: any }>> {
  const out: Array<{ event: string | undefined; data: any }> = [];
  for await (const e of parseSse(once(text))) out.push({ event: e.event, data: JSON.parse(e.data) });
  return out;
}

describe('Anthropic Messages translator', () => {
  it('request → chat form: system blocks, tool_use / tool_result turns, images, tool_choice, stop_sequences', () => {
    // the multi-turn tool-use request of Anthropic's "Tool use" guide, with a system block and an image
    const chat = anthropicToChat({
      model: 'claude-sonnet-4-5',
      max_tokens: 1024,
      system: [{ type: 'text', text: 'You are a weather bot.', cache_control: { type: 'ephemeral' } }],
      tools: [
        {
          name: 'get_weather',
          description: 'Get the current weather in a given location',
          input_schema: { type: 'object', properties: { location: { type: 'string' } }, required: ['location'] },
        },
      ],
      tool_choice: { type: 'any', disable_parallel_tool_use: true },
      stop_sequences: ['###'],
      temperature: 0.5,
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is the weather like in San Francisco?' },
            { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
          ],
        },
        {
          role: 'assistant',
          content: [
            { type: 'thinking', thinking: 'Need the tool.', signature: 'EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds' },
            { type: 'text', text: '<thinking>I need to use get_weather</thinking>' },
            { type: 'tool_use', id: 'toolu_01A09q90qw90lq917835lq9', name: 'get_weather', input: { location: 'San Francisco, CA' } },
          ],
        },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'toolu_01A09q90qw90lq917835lq9', content: '15 degrees' },
            { type: 'text', text: 'Thanks!' },
          ],
        },
      ],
    });
    expect(chat).toEqual({
      model: 'claude-sonnet-4-5',
      max_tokens: 1024,
      temperature: 0.5,
      stop: ['###'],
      parallel_tool_calls: false,
      tool_choice: 'required',
      tools: [
        {
          type: 'function',
          function: {
            name: 'get_weather',
            description: 'Get the current weather in a given location',
            parameters: { type: 'object', properties: { location: { type: 'string' } }, required: ['location'] },
          },
        },
      ],
      messages: [
        { role: 'system', content: 'You are a weather bot.' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is the weather like in San Francisco?' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
          ],
        },
        {
          role: 'assistant',
          content: '<thinking>I need to use get_weather</thinking>',
          tool_calls: [
            { id: 'toolu_01A09q90qw90lq917835lq9', type: 'function', function: { name: 'get_weather', arguments: '{"location":"San Francisco, CA"}' } },
          ],
        },
        { role: 'tool', tool_call_id: 'toolu_01A09q90qw90lq917835lq9', content: '15 degrees' },
        { role: 'user', content: 'Thanks!' },
      ],
    });
  });

  it('a recorded Anthropic stream, read into chat chunks by the anthropic provider and written back, keeps every event', async () => {
    const rec = fixture('anthropic-messages-tool.sse');
    const w = new AnthropicStreamWriter('claude-3-haiku-20240307', 9);
    let out = '';
    let started = false;
    for await (const c of anthropicStream(bytes(rec), 'rec', { model: 'claude-requested' }, 0)) {
      const chunk = JSON.parse(c.data) as ChatCompletionChunk;
      if (!started) {
        started = true;
        out += w.start(chunk.id);
      }
      out += w.chunk(chunk);
    }
    out += w.end();
    expect(out).toBe(
      [
        'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-3-haiku-20240307","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":9,"output_tokens":1}}}',
        'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}',
        'event: ping\ndata: {"type":"ping"}',
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Okay"}}',
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":", let\'s check the weather."}}',
        'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}',
        'event: content_block_start\ndata: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}',
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\\"location\\":"}}',
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" \\"San Francisco, CA\\"}"}}',
        'event: content_block_stop\ndata: {"type":"content_block_stop","index":1}',
        'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":472,"output_tokens":89}}',
        'event: message_stop\ndata: {"type":"message_stop"}',
        '',
      ].join('\n\n'),
    );
    // the same events as recorded, apart from the empty input_json_delta (nothing to carry) and usage
    // placement: the estimate at the start, the upstream's real counts at the end
    const ours = (await events(out)).map((e) => e.event);
    const theirs = (await events(rec)).filter((e) => e.data.delta?.partial_json !== '').map((e) => e.event);
    expect(ours).toEqual(theirs);
  });

  it('chat chunks (recorded OpenAI stream) → Anthropic events', () => {
    const w = new AnthropicStreamWriter('gpt-4o-mini', 12);
    const [first, ...rest] = chatChunks();
    let out = w.start(first!.id) + w.chunk(first!);
    for (const c of rest) out += w.chunk(c);
    out += w.end();
    expect(out).toContain('"message":{"id":"msg_chatcmpl-AQ5z2x"');
    const ev = out
      .split('\n\n')
      .filter(Boolean)
      .map((b) => b.split('\n')[0]!.slice(7));
    expect(ev).toEqual([
      'message_start',
      'content_block_start',
      'ping',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    expect(out).toContain(
      'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":82,"output_tokens":27}}\n\n',
    );
  });

  it('native pass-through relays a recorded stream byte for byte, usage on the last chunk', async () => {
    const rec = fixture('anthropic-messages-tool.sse');
    let raw = '';
    let usage: unknown;
    for await (const c of anthropicNativeStream(bytes(rec), 'rec')) {
      raw += c.raw;
      if (c.usage) usage = c.usage;
    }
    expect(raw).toBe(rec);
    expect(usage).toMatchObject({ prompt_tokens: 472, completion_tokens: 89 });
  });

  it('native pass-through: a signature or citations delta is no output (no token of an estimate); every other delta is, even one whose text names them', async () => {
    const rec = fixture('anthropic-messages-tool.sse');
    const head = rec.slice(0, rec.indexOf('event: content_block_start'));
    const delta = (d: Record<string, unknown>) =>
      `event: content_block_delta\ndata: ${JSON.stringify({ type: 'content_block_delta', index: 0, delta: d })}\n\n`;
    const deltas = [
      [delta({ type: 'thinking_delta', thinking: 'Let me think' }), true],
      [delta({ type: 'signature_delta', signature: 'EqQBCkYIBxgC' }), false],
      [delta({ type: 'citations_delta', citation: { type: 'char_location', cited_text: 'a fact', document_index: 0 } }), false],
      [delta({ type: 'text_delta', text: 'a "signature_delta" is not one' }), true],
      [delta({ type: 'input_json_delta', partial_json: '{"citations_delta": 1' }), true],
    ] as const;
    const stop =
      'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n';
    const output = new Map<string, boolean>();
    for await (const c of anthropicNativeStream(bytes(head + deltas.map(([d]) => d).join('') + stop), 'rec')) output.set(c.raw!, isOutputChunk(c));
    for (const [d, isOutput] of deltas) expect(output.get(d), d).toBe(isOutput);
  });

  it('native pass-through: a stream that ends without message_stop throws', async () => {
    const rec = fixture('anthropic-messages-tool.sse');
    const cut = rec.slice(0, rec.indexOf('event: message_delta'));
    await expect(
      (async () => {
        for await (const _ of anthropicNativeStream(bytes(cut), 'rec')) void _;
      })(),
    ).rejects.toMatchObject({ code: 'UPSTREAM_STREAM_ERROR' });
  });

  it('native pass-through: an error event after message_start is the last chunk, as sent (scrubbed), before its error; before it, or not in Anthropic’s shape, only thrown', async () => {
    const rec = fixture('anthropic-messages-tool.sse');
    const started = rec.slice(0, rec.indexOf('event: content_block_start'));
    const overloaded = 'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded for Bearer abcdefgh12345678"}}\n\n';
    const after = await failedRelay(anthropicNativeStream(bytes(started + overloaded), 'rec'));
    expect(after.last).toBe('event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded for Bearer [REDACTED]"}}\n\n');
    expect(after.error).toMatchObject({ code: 'UPSTREAM_ERROR', status: 503 });
    expect(wasRelayed(after.error)).toBe(true);
    for (const text of [overloaded, started + 'event: error\ndata: {"type":"error","error":"overloaded"}\n\n', started + 'event: error\ndata: null\n\n']) {
      const only = await failedRelay(anthropicNativeStream(bytes(text), 'rec'));
      expect(only.last ?? '').not.toMatch(/^event: error/);
      expect(only.error).toBeInstanceOf(GatewayError);
      expect(wasRelayed(only.error)).toBe(false);
    }
  });
});

describe('OpenAI Responses translator', () => {
  it('request → chat form: the Codex request shape (instructions, developer/user messages, reasoning, function_call and its output, tools)', () => {
    // field set of codex-rs ResponsesApiRequest (codex-api/src/common.rs) with items as Codex sends them
    const body = validateResponses({
      model: 'gpt-5-codex',
      instructions: 'You are Codex, a coding agent.',
      input: [
        { type: 'message', role: 'developer', content: [{ type: 'input_text', text: '<permissions>workspace-write</permissions>' }] },
        { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'List the files.' }] },
        { type: 'reasoning', id: 'rs_1', summary: [{ type: 'summary_text', text: 'Run ls.' }], encrypted_content: 'gAAAA' },
        { type: 'function_call', name: 'shell', arguments: '{"command":["ls"]}', call_id: 'call_1' },
        { type: 'function_call_output', call_id: 'call_1', output: 'a.txt\nb.txt' },
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Two files.' }] },
      ],
      tools: [
        {
          type: 'function',
          name: 'shell',
          description: 'Runs a shell command',
          strict: false,
          parameters: { type: 'object', properties: { command: { type: 'array', items: { type: 'string' } } }, required: ['command'] },
        },
        { type: 'local_shell' },
        { type: 'web_search' },
      ],
      tool_choice: 'auto',
      parallel_tool_calls: false,
      reasoning: { effort: 'medium', summary: 'auto' },
      store: false,
      stream: true,
      include: ['reasoning.encrypted_content'],
      prompt_cache_key: 'c0ffee',
      max_output_tokens: 2048,
    });
    const { chat, dropped } = responsesToChat(body, inputItems(body.input));
    expect(dropped).toEqual(['local_shell', 'web_search']);
    expect(chat).toEqual({
      model: 'gpt-5-codex',
      stream: true,
      max_tokens: 2048,
      tool_choice: 'auto',
      parallel_tool_calls: false,
      tools: [
        {
          type: 'function',
          function: {
            name: 'shell',
            description: 'Runs a shell command',
            strict: false,
            parameters: { type: 'object', properties: { command: { type: 'array', items: { type: 'string' } } }, required: ['command'] },
          },
        },
      ],
      messages: [
        { role: 'system', content: 'You are Codex, a coding agent.' },
        { role: 'system', content: '<permissions>workspace-write</permissions>' },
        { role: 'user', content: 'List the files.' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'shell', arguments: '{"command":["ls"]}' } }] },
        { role: 'tool', tool_call_id: 'call_1', content: 'a.txt\nb.txt' },
        { role: 'assistant', content: 'Two files.' },
      ],
    });
  });

  it('chat chunks (recorded OpenAI stream) → the Responses event sequence, numbered, with the whole output at the end', () => {
    const shell = skeleton('resp_test', { model: 'gpt-4o-mini' }, 'gpt-4o-mini');
    const w = new ResponsesStreamWriter(shell, 5);
    let out = w.start();
    for (const c of chatChunks()) out += w.chunk(c);
    const end = w.end();
    out += end.text;
    const norm = out.replace(/"(msg|fc)_[0-9a-f]+_[0-9a-z]+"/g, '"$1_X"').replace(/"created_at":\d+/g, '"created_at":0');
    const blocks = norm.split('\n\n').filter(Boolean);
    expect(blocks.map((b) => b.split('\n')[0])).toEqual([
      'event: response.created',
      'event: response.in_progress',
      'event: response.output_item.added',
      'event: response.content_part.added',
      'event: response.output_text.delta',
      'event: response.output_text.delta',
      'event: response.output_text.done',
      'event: response.content_part.done',
      'event: response.output_item.done',
      'event: response.output_item.added',
      'event: response.function_call_arguments.delta',
      'event: response.function_call_arguments.delta',
      'event: response.function_call_arguments.delta',
      'event: response.function_call_arguments.done',
      'event: response.output_item.done',
      'event: response.completed',
    ]);
    expect(blocks[2]).toBe(
      'event: response.output_item.added\ndata: {"type":"response.output_item.added","output_index":0,"item":{"type":"message","id":"msg_X","status":"in_progress","role":"assistant","content":[]},"sequence_number":2}',
    );
    expect(blocks[4]).toBe(
      'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","item_id":"msg_X","output_index":0,"content_index":0,"delta":"Let me","logprobs":[],"sequence_number":4}',
    );
    expect(blocks[9]).toBe(
      'event: response.output_item.added\ndata: {"type":"response.output_item.added","output_index":1,"item":{"type":"function_call","id":"fc_X","call_id":"call_DdmO9pD3xa9XTPNJ32zg2hcA","name":"get_weather","arguments":"","status":"in_progress"},"sequence_number":9}',
    );
    expect(blocks[13]).toBe(
      'event: response.function_call_arguments.done\ndata: {"type":"response.function_call_arguments.done","item_id":"fc_X","output_index":1,"name":"get_weather","arguments":"{\\"location\\":\\"Paris, France\\"}","sequence_number":13}',
    );
    expect(end.response).toMatchObject({
      status: 'completed',
      output: [
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Let me check.' }] },
        {
          type: 'function_call',
          call_id: 'call_DdmO9pD3xa9XTPNJ32zg2hcA',
          name: 'get_weather',
          arguments: '{"location":"Paris, France"}',
          status: 'completed',
        },
      ],
      usage: {
        input_tokens: 82,
        output_tokens: 27,
        total_tokens: 109,
        input_tokens_details: { cached_tokens: 0 },
        output_tokens_details: { reasoning_tokens: 0 },
      },
    });
    // the recorded Responses stream has the same envelope: type, sequence_number from 0, response in created/completed
    const recorded = fixture('openai-responses-text.sse')
      .split('\n\n')
      .filter(Boolean)
      .map((b) => JSON.parse(b.split('\ndata: ')[1]!));
    const ours = blocks.map((b) => JSON.parse(b.split('\ndata: ')[1]!));
    expect(Object.keys(ours[0].response).sort()).toEqual(Object.keys(recorded[0].response).sort());
    expect(Object.keys(ours[3]).sort()).toEqual(Object.keys(recorded[3]).sort());
    expect(Object.keys(ours[4]).sort()).toEqual(Object.keys(recorded[4]).sort());
  });

  it('native pass-through relays a recorded Responses stream byte for byte', async () => {
    const rec = fixture('openai-responses-text.sse');
    let raw = '';
    let usage: unknown;
    for await (const c of responsesNativeStream(bytes(rec), 'rec')) {
      raw += c.raw;
      if (c.usage) usage = c.usage;
    }
    expect(raw).toBe(rec);
    expect(usage).toMatchObject({ prompt_tokens: 37, completion_tokens: 11 });
    const cut = rec.slice(0, rec.indexOf('event: response.completed'));
    await expect(
      (async () => {
        for await (const _ of responsesNativeStream(bytes(cut), 'rec')) void _;
      })(),
    ).rejects.toMatchObject({ code: 'UPSTREAM_STREAM_ERROR' });
  });

  it('native pass-through: an error event is the last chunk, as sent (scrubbed), before its error, in either shape; one that is not an object is only thrown', async () => {
    const rec = fixture('openai-responses-text.sse');
    const head = rec.slice(0, rec.indexOf('event: response.output_item.added'));
    const flat =
      'event: error\ndata: {"type":"error","sequence_number":2,"code":"server_error","message":"boom for sk-proj-abcdefghijklmnop1234","param":null}\n\n';
    const nested =
      'event: error\ndata: {"type":"error","sequence_number":2,"error":{"type":"too_many_requests","code":"too_many_requests","message":"Too Many Requests","param":null}}\n\n';
    const a = await failedRelay(responsesNativeStream(bytes(head + flat), 'rec'));
    expect(a.last).toBe(flat.replace('sk-proj-abcdefghijklmnop1234', '[REDACTED]'));
    expect(a.error).toMatchObject({ code: 'UPSTREAM_ERROR', message: 'channel rec: upstream reported server_error mid-stream: boom for [REDACTED]' });
    expect(wasRelayed(a.error)).toBe(true);
    const b = await failedRelay(responsesNativeStream(bytes(head + nested), 'rec'));
    expect(b.last).toBe(nested);
    expect(b.error).toMatchObject({ code: 'RATE_LIMITED', message: 'channel rec: upstream reported too_many_requests mid-stream: Too Many Requests' });
    const c = await failedRelay(responsesNativeStream(bytes(head + 'event: error\ndata: null\n\n'), 'rec'));
    expect(c.last).not.toMatch(/^event: error/);
    expect(c.error).toMatchObject({ code: 'UPSTREAM_STREAM_ERROR' });
    expect(wasRelayed(c.error)).toBe(false);
  });

  it('native pass-through: a response.completed or response.incomplete whose data is no object ends the stream as a bad answer', async () => {
    const rec = fixture('openai-responses-text.sse');
    const head = rec.slice(0, rec.indexOf('event: response.completed'));
    for (const type of ['response.completed', 'response.incomplete'])
      for (const data of ['null', '3', '"done"']) {
        await expect(
          (async () => {
            for await (const _ of responsesNativeStream(bytes(`${head}event: ${type}\ndata: ${data}\n\n`), 'rec')) void _;
          })(),
        ).rejects.toMatchObject({ code: 'UPSTREAM_BAD_RESPONSE', message: `channel rec: upstream sent a ${type} event that is not an object` });
      }
  });
});

describe('Gemini translator', () => {
  it('request → chat form: systemInstruction, functionCall / functionResponse pairing, inlineData, generationConfig, toolConfig', () => {
    const chat = geminiToChat(
      'gemini-2.5-flash',
      {
        systemInstruction: { parts: [{ text: 'You are a helpful assistant.' }] },
        contents: [
          {
            role: 'user',
            parts: [{ text: 'What is in this picture, and the weather in Boston?' }, { inlineData: { mimeType: 'image/jpeg', data: '/9j/4AAQ' } }],
          },
          {
            role: 'model',
            parts: [
              { text: 'thinking…', thought: true },
              { functionCall: { name: 'get_weather', args: { location: 'Boston, MA' } }, thoughtSignature: 'CiQB' },
            ],
          },
          { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: { temperature: 21 } } }] },
        ],
        tools: [
          {
            functionDeclarations: [
              {
                name: 'get_weather',
                description: 'Weather',
                parameters: { type: 'OBJECT', properties: { location: { type: 'STRING' } }, required: ['location'] },
              },
            ],
          },
          { googleSearch: {} },
        ],
        toolConfig: { functionCallingConfig: { mode: 'ANY', allowedFunctionNames: ['get_weather'] } },
        generationConfig: { temperature: 0.1, topP: 0.9, topK: 40, maxOutputTokens: 500, stopSequences: ['END'], thinkingConfig: { thinkingBudget: 0 } },
      },
      true,
    );
    expect(chat).toEqual({
      model: 'gemini-2.5-flash',
      stream: true,
      temperature: 0.1,
      top_p: 0.9,
      max_tokens: 500,
      stop: ['END'],
      tools: [
        {
          type: 'function',
          function: {
            name: 'get_weather',
            description: 'Weather',
            parameters: { type: 'object', properties: { location: { type: 'string' } }, required: ['location'] },
          },
        },
      ],
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
      messages: [
        { role: 'system', content: 'You are a helpful assistant.' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is in this picture, and the weather in Boston?' },
            { type: 'image_url', image_url: { url: 'data:image/jpeg;base64,/9j/4AAQ' } },
          ],
        },
        {
          role: 'assistant',
          content: null,
          tool_calls: [{ id: 'call_1_1', type: 'function', function: { name: 'get_weather', arguments: '{"location":"Boston, MA"}' } }],
        },
        { role: 'tool', tool_call_id: 'call_1_1', content: '{"temperature":21}' },
      ],
    });
  });

  it('chat chunks (recorded OpenAI stream) → Gemini chunks; the shape of the recorded Gemini stream', async () => {
    const w = new GeminiStreamWriter('gpt-4o-mini', 3);
    const out: string[] = [];
    for (const c of chatChunks()) out.push(...w.chunk(c));
    out.push(w.end());
    expect(out).toEqual([
      '{"candidates":[{"content":{"role":"model","parts":[{"text":"Let me"}]},"index":0}],"modelVersion":"gpt-4o-mini","responseId":"chatcmpl-AQ5z2x"}',
      '{"candidates":[{"content":{"role":"model","parts":[{"text":" check."}]},"index":0}],"modelVersion":"gpt-4o-mini","responseId":"chatcmpl-AQ5z2x"}',
      '{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"id":"call_DdmO9pD3xa9XTPNJ32zg2hcA","name":"get_weather","args":{"location":"Paris, France"}}}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":82,"candidatesTokenCount":27,"totalTokenCount":109},"modelVersion":"gpt-4o-mini","responseId":"chatcmpl-AQ5z2x"}',
    ]);
    const recorded = (await events(fixture('gemini-stream.sse'))).map((e) => e.data);
    const last = JSON.parse(out.at(-1)!);
    expect(
      Object.keys(last)
        .filter((k) => k !== 'responseId')
        .sort(),
    ).toEqual(Object.keys(recorded.at(-1)).sort());
    expect(Object.keys(last.candidates[0]).sort()).toEqual(Object.keys(recorded.at(-1).candidates[0]).sort());
    expect(Object.keys(last.usageMetadata).sort()).toEqual(Object.keys(recorded.at(-1).usageMetadata).sort());
  });
});

describe('reasoning from the channel', () => {
  // vLLM / DeepSeek / Ollama-through-the-gateway stream reasoning as `reasoning_content` deltas before the
  // answer (vLLM docs, "Reasoning Outputs", streaming example)
  const base = { id: 'chatcmpl-r1', object: 'chat.completion.chunk' as const, created: 0, model: 'qwq' };
  const chunks: ChatCompletionChunk[] = [
    { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] },
    { ...base, choices: [{ index: 0, delta: { reasoning_content: 'The user greets.' }, finish_reason: null }] },
    { ...base, choices: [{ index: 0, delta: { reasoning_content: ' Greet back.' }, finish_reason: null }] },
    { ...base, choices: [{ index: 0, delta: { content: 'Hello!' }, finish_reason: null }] },
    { ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] },
    { ...base, choices: [], usage: { prompt_tokens: 9, completion_tokens: 14, total_tokens: 23, completion_tokens_details: { reasoning_tokens: 10 } } },
  ];

  it('Anthropic: a thinking block with thinking_delta, then the text block', async () => {
    const w = new AnthropicStreamWriter('qwq', 4);
    let out = w.start('chatcmpl-r1');
    for (const c of chunks) out += w.chunk(c);
    out += w.end();
    const ev = await events(out);
    expect(ev.map((e) => e.event)).toEqual([
      'message_start',
      'content_block_start',
      'ping',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'content_block_start',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    expect(ev[1]!.data.content_block).toEqual({ type: 'thinking', thinking: '', signature: '' });
    expect(ev[3]!.data.delta).toEqual({ type: 'thinking_delta', thinking: 'The user greets.' });
    expect(ev[7]!.data.delta).toEqual({ type: 'text_delta', text: 'Hello!' });
    expect(ev[9]!.data.usage).toEqual({ input_tokens: 9, output_tokens: 14 });
  });

  it('Responses: a reasoning item (reasoning_text) before the message; Gemini: thought parts', () => {
    const w = new ResponsesStreamWriter(skeleton('resp_r', {}, 'qwq'), 4);
    let out = w.start();
    for (const c of chunks) out += w.chunk(c);
    const end = w.end();
    out += end.text;
    expect(out).toContain('"type":"response.reasoning_text.delta","item_id":"rs_');
    expect(end.response.output).toMatchObject([
      { type: 'reasoning', summary: [], content: [{ type: 'reasoning_text', text: 'The user greets. Greet back.' }] },
      { type: 'message', content: [{ type: 'output_text', text: 'Hello!' }] },
    ]);
    expect(end.response.usage).toMatchObject({ output_tokens_details: { reasoning_tokens: 10 } });

    const g = new GeminiStreamWriter('qwq', 4);
    const parts = chunks.flatMap((c) => g.chunk(c)).map((j) => JSON.parse(j).candidates[0].content.parts[0]);
    expect(parts).toEqual([{ text: 'The user greets.', thought: true }, { text: ' Greet back.', thought: true }, { text: 'Hello!' }]);
    // Gemini counts thoughts apart from the candidates: 14 completion tokens are 10 of thoughts and 4 of answer
    expect(JSON.parse(g.end()).usageMetadata).toEqual({ promptTokenCount: 9, candidatesTokenCount: 4, totalTokenCount: 23, thoughtsTokenCount: 10 });
  });
});

describe('nativeStart: a native message_start without its id or model', () => {
  const frame = (message: Record<string, unknown>) => `event: message_start\ndata: ${JSON.stringify({ type: 'message_start', message })}\n\n`;
  const messageOf = (raw: string) => JSON.parse(raw.split('\n')[1]!.slice('data: '.length)).message;

  it('fills an empty or absent id and model (the model the client asked for), keeps the rest', () => {
    const out = messageOf(
      nativeStart(frame({ id: '', type: 'message', role: 'assistant', model: '', content: [], usage: { input_tokens: 3, output_tokens: 1 } }), 'claude-x'),
    );
    expect(out).toMatchObject({ type: 'message', role: 'assistant', model: 'claude-x', content: [], usage: { input_tokens: 3, output_tokens: 1 } });
    expect(out.id).toMatch(/^msg_[0-9a-z]+$/);
    expect(messageOf(nativeStart(frame({ type: 'message', model: 'up-model' }), 'claude-x'))).toMatchObject({
      id: expect.stringMatching(/^msg_/),
      model: 'up-model',
    });
  });

  it('each message it fills in gets its own id, however many come in one millisecond', () => {
    const ids = Array.from({ length: 100 }, () => messageOf(nativeStart(frame({ type: 'message' }), 'claude-x')).id as string);
    expect(new Set(ids).size).toBe(100);
  });

  it('relays a complete message_start and every other event byte for byte', () => {
    const full = frame({ id: 'msg_1', type: 'message', model: 'up-model' });
    expect(nativeStart(full, 'claude-x')).toBe(full);
    for (const raw of ['event: ping\ndata: {"type":"ping"}\n\n', 'event: message_start\ndata: not json\n\n']) expect(nativeStart(raw, 'claude-x')).toBe(raw);
  });
});
