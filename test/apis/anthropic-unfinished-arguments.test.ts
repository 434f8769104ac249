/**
 * Tool arguments that never close, in the Messages translator (src/apis/anthropic/stream.ts, response.ts), for the
 * shapes the fake upstreams do not make: parallel calls, and arguments that never got past `{`. Only the answer's
 * last call can be the one a cut-short answer (`length`, `content_filter`) ended inside; an earlier call that never
 * closed, or any call in an answer that ended otherwise, fails the answer, streamed and not, with the same error.
 */
import { describe, expect, it } from 'vitest';
import type { ChatCompletion, ChatCompletionChunk } from '../../src/wire/openai.js';
import { AnthropicStreamWriter } from '../../src/apis/anthropic/stream.js';
import { toAnthropicMessage } from '../../src/apis/anthropic/response.js';

type Call = [name: string, args: string];

const chunk = (delta: Record<string, unknown>, finish: string | null = null): ChatCompletionChunk =>
  ({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta, finish_reason: finish }] }) as ChatCompletionChunk;

/** the stream of `calls` (each opened, then its arguments in two pieces), then `finish`: what the writer sends */
function streamed(calls: Call[], finish: string): { text: string; failure: string | undefined } {
  const w = new AnthropicStreamWriter('m', 5);
  let text = w.start('c1');
  calls.forEach(([name, args], i) => {
    text += w.chunk(chunk({ tool_calls: [{ index: i, id: `call_${i}`, type: 'function', function: { name, arguments: '' } }] }));
    const half = Math.ceil(args.length / 2);
    for (const piece of [args.slice(0, half), args.slice(half)])
      if (piece) text += w.chunk(chunk({ tool_calls: [{ index: i, function: { arguments: piece } }] }));
  });
  text += w.chunk(chunk({}, finish));
  text += w.end();
  return { text, failure: w.failure?.message };
}

function whole(calls: Call[], finish: string): Record<string, unknown> {
  const completion = {
    id: 'c1',
    object: 'chat.completion',
    created: 1,
    model: 'm',
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: null,
          tool_calls: calls.map(([name, args], i) => ({ id: `call_${i}`, type: 'function', function: { name, arguments: args } })),
        },
        finish_reason: finish,
      },
    ],
  } as ChatCompletion;
  return toAnthropicMessage(completion, 'm', 5);
}

const events = (text: string) => [...text.matchAll(/^event: (.+)$/gm)].map((m) => m[1]);
const inputs = (m: Record<string, unknown>) => (m.content as Array<{ input: unknown }>).map((b) => b.input);
const unfinished = (tool: string, at: number) => `tool "${tool}" whose arguments open as a JSON object and end at offset ${at} before it closes`;

describe('Messages: tool arguments that never close', () => {
  it('parallel calls cut by the token limit: the last call is read up to its last complete member, the ones before it are whole', () => {
    const calls: Call[] = [
      ['read', '{"path": "a"}'],
      ['write', '{"path": "b", "text": "hel'],
    ];
    const m = whole(calls, 'length');
    expect(m.stop_reason).toBe('max_tokens');
    expect(inputs(m)).toEqual([{ path: 'a' }, { path: 'b' }]);
    const s = streamed(calls, 'length');
    expect(s.failure).toBeUndefined();
    expect(events(s.text).slice(-2)).toEqual(['message_delta', 'message_stop']);
  });

  it('an earlier call that never closed fails the answer even when the answer was cut (only the last call can be the cut one)', () => {
    const calls: Call[] = [
      ['read', '{"path": "a'],
      ['write', '{"path": "b"}'],
    ];
    expect(() => whole(calls, 'length')).toThrow(unfinished('read', 11));
    const s = streamed(calls, 'length');
    expect(s.failure).toContain(unfinished('read', 11));
    expect(events(s.text).at(-1)).toBe('error');
    expect(events(s.text)).not.toContain('message_delta');
  });

  it('arguments that never got past `{`: an error unless the answer was cut inside them, then `{}`', () => {
    for (const finish of ['tool_calls', 'stop']) {
      expect(() => whole([['read', '{ ']], finish), finish).toThrow(unfinished('read', 2));
      const s = streamed([['read', '{ ']], finish);
      expect(s.failure, finish).toContain(unfinished('read', 2));
      expect(events(s.text).at(-1)).toBe('error');
    }
    for (const finish of ['length', 'content_filter']) {
      expect(inputs(whole([['read', '{ ']], finish)), finish).toEqual([{}]);
      const s = streamed([['read', '{ ']], finish);
      expect(s.failure, finish).toBeUndefined();
      expect(events(s.text).at(-1)).toBe('message_stop');
    }
  });
});
