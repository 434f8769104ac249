import { describe, expect, it } from 'vitest';
import { contractAsks, contractRefusal, refusedAsk } from '../../src/wire/chat-contract.js';
import type { ChatRequest } from '../../src/wire/openai.js';

const req = (extra: Record<string, unknown>): ChatRequest => ({ model: 'm', messages: [{ role: 'user', content: 'hi' }], ...extra });
const tools = [{ type: 'function' as const, function: { name: 'f' } }];
const fields = (extra: Record<string, unknown>) => contractAsks(req(extra)).map((a) => [a.field, a.param]);

describe('contractAsks', () => {
  it('the values that ask for nothing, and the tool fields without tools, ask for nothing (one shared empty list)', () => {
    const none = contractAsks(req({}));
    expect(none).toEqual([]);
    for (const extra of [
      { n: 1 },
      { n: null },
      { logprobs: false },
      { logprobs: false, top_logprobs: 0 },
      { response_format: { type: 'text' } },
      { response_format: null },
      { modalities: ['text'] },
      { audio: null },
      { tools, tool_choice: 'auto' },
      { tools, tool_choice: 'none', parallel_tool_calls: true },
      { tools, tool_choice: { type: 'allowed_tools' } },
      { tool_choice: 'required', parallel_tool_calls: false },
      { tools: [], tool_choice: { type: 'function', function: { name: 'f' } } },
      { seed: 7, presence_penalty: 1, logit_bias: { 1: 2 }, user: 'u', metadata: { a: 'b' }, service_tier: 'flex', store: true },
    ])
      expect(contractAsks(req(extra)), JSON.stringify(extra)).toBe(none);
  });

  it('each contract field, in order, with the request field it names', () => {
    expect(fields({ n: 2 })).toEqual([['n', 'n']]);
    expect(fields({ logprobs: true, top_logprobs: 3 })).toEqual([['logprobs', 'logprobs']]);
    expect(fields({ top_logprobs: 3 })).toEqual([['logprobs', 'top_logprobs']]);
    expect(fields({ response_format: { type: 'json_object' } })).toEqual([['response_format.json_object', 'response_format']]);
    expect(fields({ response_format: { type: 'json_schema', json_schema: { name: 'x' } } })).toEqual([['response_format.json_schema', 'response_format']]);
    expect(fields({ tools, tool_choice: 'required' })).toEqual([['tool_choice.required', 'tool_choice']]);
    expect(fields({ modalities: ['text', 'audio'], audio: { voice: 'alloy', format: 'wav' } })).toEqual([['audio', 'modalities']]);
    expect(fields({ audio: { voice: 'alloy', format: 'wav' } })).toEqual([['audio', 'audio']]);
    expect(fields({ tools, tool_choice: { type: 'function', function: { name: 'f' } }, parallel_tool_calls: false, n: 4 })).toEqual([
      ['n', 'n'],
      ['tool_choice.function', 'tool_choice'],
      ['parallel_tool_calls', 'parallel_tool_calls'],
    ]);
  });

  it('refusedAsk finds the first refused one; the refusal is UNSUPPORTED naming the field first', () => {
    const asks = contractAsks(req({ n: 2, tools, tool_choice: 'required' }));
    expect(refusedAsk(asks, undefined)).toBeUndefined();
    expect(refusedAsk(asks, ['logprobs'])).toBeUndefined();
    expect(refusedAsk(asks, ['tool_choice.required', 'n'])?.field).toBe('n');
    const e = contractRefusal(asks[1]!, 'channel "c" (ollama) cannot');
    expect(e).toMatchObject({ code: 'UNSUPPORTED', status: 400, param: 'tool_choice' });
    expect(e.message).toBe(
      'tool_choice: channel "c" (ollama) cannot give a forced tool call (tool_choice "required"); docs/apis.md lists what each provider honours',
    );
  });
});
