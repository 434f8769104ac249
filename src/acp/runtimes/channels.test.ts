import { describe, expect, it } from 'vitest';
import { createChannelsRuntime, type ChatRouter } from './channels.js';
import type { ChatRequest } from '../../wire/openai.js';
import type { StreamChunk } from '../../providers/provider.js';
import type { UpdateEvent } from '../runtime.js';

const chunk = (content: string | undefined, finish: string | null = null) =>
  ({
    data: JSON.stringify({
      id: 'c',
      object: 'chat.completion.chunk',
      created: 0,
      model: 'm',
      choices: [{ index: 0, delta: content === undefined ? {} : { content }, finish_reason: finish }],
    }),
  }) as StreamChunk;

function fakeRouter(chunks: StreamChunk[], seen: ChatRequest[], delayMs = 0): ChatRouter {
  return {
    async chat(req, opts) {
      seen.push(req);
      const list = chunks.slice(1);
      let i = 0;
      return {
        stream: true,
        first: chunks[0],
        attempts: 1,
        candidate: {} as never,
        rest: {
          async next() {
            if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
            if (opts.signal?.aborted) throw Object.assign(new Error('aborted'), { name: 'AbortError' });
            return i < list.length ? { done: false, value: list[i++]! } : { done: true, value: undefined };
          },
          async return() {
            return { done: true, value: undefined };
          },
        },
      };
    },
  };
}

describe('channels runtime', () => {
  it('sends the session history plus the new prompt, streams deltas, maps finish_reason', async () => {
    const seen: ChatRequest[] = [];
    const rt = createChannelsRuntime({
      router: fakeRouter([chunk(''), chunk('Hel'), chunk('lo'), chunk(undefined, 'length')], seen),
      model: 'm',
      sessionId: 's',
      timeoutMs: 10_000,
    });
    const ups: UpdateEvent[] = [];
    const history = [
      { role: 'user' as const, content: 'zebra' },
      { role: 'assistant' as const, content: 'ok zebra' },
    ];
    const out = await rt.prompt({ turnId: 't', text: 'which word?', history }, (u) => ups.push(u), new AbortController().signal);
    expect(seen[0]!.messages).toEqual([...history, { role: 'user', content: 'which word?' }]);
    expect(seen[0]!.stream).toBe(true);
    expect(seen[0]!.model).toBe('m');
    expect(ups).toEqual([
      { type: 'delta', event: 'delta', delta: 'Hel', text: 'Hel' },
      { type: 'delta', event: 'delta', delta: 'lo', text: 'lo' },
    ]);
    expect(out).toMatchObject({
      output: 'Hello',
      stopReason: 'max_tokens',
      messages: [
        { role: 'user', content: 'which word?' },
        { role: 'assistant', content: 'Hello' },
      ],
    });
  });
  it('abort ends the turn with stopReason cancelled and the partial output', async () => {
    const ac = new AbortController();
    const rt = createChannelsRuntime({
      router: fakeRouter([chunk('a'), chunk('b'), chunk('c'), chunk('d'), chunk(undefined, 'stop')], [], 30),
      model: 'm',
      sessionId: 's',
      timeoutMs: 10_000,
    });
    // abort once the first delta has reached the caller: mid-stream, whatever the machine's speed
    const p = rt.prompt({ turnId: 't', text: 'x', history: [] }, () => ac.abort(), ac.signal);
    const out = await p;
    expect(out.stopReason).toBe('cancelled');
    expect(out.output.length).toBeLessThan(4);
    expect(out.output.length).toBeGreaterThan(0);
  });
});
