/**
 * The chat form a translating edge reads (src/apis/common/chat-shape.ts): an upstream's answer whose fields are
 * not of their types is UPSTREAM_BAD_RESPONSE naming the field, never an invented tool call or an empty answer;
 * content as text parts is taken as its text.
 */
import { describe, expect, it } from 'vitest';
import { checkedCompletion, parsedChunk } from '../../src/apis/common/chat-shape.js';
import { toChatCompletion } from '../../src/providers/anthropic/response.js';
import type { ChatCompletion } from '../../src/wire/openai.js';
import { gatewayErrorOfCall } from '../helpers/gateway-error.js';

const completion = (message: unknown): ChatCompletion =>
  ({ id: 'c', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, message, finish_reason: 'stop' }] }) as ChatCompletion;
const chunk = (delta: unknown) =>
  JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta, finish_reason: null }] });

/** `f` refuses the answer with UPSTREAM_BAD_RESPONSE naming `field` */
function expectMalformed(f: () => unknown, field: string): void {
  const e = gatewayErrorOfCall(f);
  expect(e.code).toBe('UPSTREAM_BAD_RESPONSE');
  expect(e.message).toBe(`the upstream's answer is malformed: ${field}`);
}

describe('checkedCompletion', () => {
  it('passes a well-formed answer as it is, and takes text parts as their text', () => {
    const ok = completion({ role: 'assistant', content: 'hi', tool_calls: [{ id: 't1', type: 'function', function: { name: 'f', arguments: '{}' } }] });
    expect(checkedCompletion(ok)).toBe(ok);
    const parts = checkedCompletion(
      completion({
        role: 'assistant',
        content: [
          { type: 'text', text: 'Hel' },
          { type: 'text', text: 'lo' },
        ],
      }),
    );
    expect(parts.choices[0]!.message.content).toBe('Hello');
  });

  it.each([
    ['content a number', { role: 'assistant', content: 42 }, 'choices[0].message.content is not a string'],
    ['content an object', { role: 'assistant', content: { a: 1 } }, 'choices[0].message.content is not a string'],
    ['tool_calls a string', { role: 'assistant', content: null, tool_calls: 'abc' }, 'choices[0].message.tool_calls is not an array'],
    [
      'a tool call without function',
      { role: 'assistant', content: null, tool_calls: [{ id: 't1' }] },
      'choices[0].message.tool_calls[0].function.name is not a name',
    ],
    [
      'arguments an object',
      { role: 'assistant', content: null, tool_calls: [{ id: 't1', function: { name: 'f', arguments: {} } }] },
      'choices[0].message.tool_calls[0].function.arguments is not a string',
    ],
    [
      'an id that is a number',
      { role: 'assistant', content: null, tool_calls: [{ id: 7, function: { name: 'f', arguments: '{}' } }] },
      'choices[0].message.tool_calls[0].id is not a string',
    ],
  ])('%s → UPSTREAM_BAD_RESPONSE naming the field', (_what, message, field) => {
    expectMalformed(() => checkedCompletion(completion(message)), field);
  });

  it('choices that are not messages are refused', () => {
    for (const choices of [[null], [5], 'x'])
      expect(gatewayErrorOfCall(() => checkedCompletion({ ...completion({}), choices } as unknown as ChatCompletion)).code).toBe('UPSTREAM_BAD_RESPONSE');
  });
});

describe('parsedChunk', () => {
  it('passes a well-formed chunk, a first tool-call delta and a later one', () => {
    expect(parsedChunk(chunk({ content: 'x' })).choices[0]!.delta.content).toBe('x');
    expect(parsedChunk(chunk({ tool_calls: [{ index: 0, id: 't', type: 'function', function: { name: 'f', arguments: '' } }] })).choices).toHaveLength(1);
    expect(parsedChunk(chunk({ tool_calls: [{ index: 0, function: { arguments: '{"a"' } }] })).choices).toHaveLength(1);
    expect(parsedChunk(JSON.stringify({ id: 'u', choices: [], usage: { prompt_tokens: 1 } })).choices).toEqual([]);
  });

  it.each([
    ['delta a string', 'abc', 'choices[0].delta is not an object'],
    ['content a number', { content: 42 }, 'choices[0].delta.content is not a string'],
    ['tool_calls a string', { tool_calls: 'abc' }, 'choices[0].delta.tool_calls is not an array'],
    ['a tool call without index', { tool_calls: [{ function: { arguments: '{}' } }] }, 'choices[0].delta.tool_calls[0].index is not an index'],
    [
      'arguments an object',
      { tool_calls: [{ index: 0, function: { arguments: { a: 1 } } }] },
      'choices[0].delta.tool_calls[0].function.arguments is not a string',
    ],
  ])('%s → UPSTREAM_BAD_RESPONSE naming the field', (_what, delta, field) => {
    expectMalformed(() => parsedChunk(chunk(delta)), field);
  });
});

describe("an Anthropic upstream's blocks, read by their types", () => {
  it.each([
    [{ type: 'text', text: { a: 1 } }, 'a text block whose text is not a string'],
    [{ type: 'tool_use', input: {} }, 'a tool_use block without its id and name'],
    [null, 'a content block that is not an object'],
  ])('%j → UPSTREAM_BAD_RESPONSE, not "[object Object]" or a nameless tool call', (block, what) => {
    const e = gatewayErrorOfCall(() => toChatCompletion({ id: 'm', content: [block], stop_reason: 'end_turn', usage: {} } as never, 'an', 'claude-requested'));
    expect(e).toMatchObject({ code: 'UPSTREAM_BAD_RESPONSE', message: `channel an: upstream reply has ${what}` });
  });
});
