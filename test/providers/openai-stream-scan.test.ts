/**
 * The OpenAI relay (src/providers/openai/stream.ts): content chunks go through byte-identical (never
 * re-serialised), while everything the gateway must see — in-band errors, the usage chunk, malformed or
 * choice-less chunks, `event: error` — is caught, whatever the chat content says. A malformed chunk shaped like
 * a content chunk is caught too: that is why every chunk is still parsed once (no scan-only fast path).
 */
import { describe, expect, it } from 'vitest';
import { openAiStream } from '../../src/providers/openai/stream.js';
import type { StreamChunk } from '../../src/providers/provider.js';
import { GatewayError } from '../../src/wire/errors.js';

async function* body(text: string): AsyncGenerator<Uint8Array> {
  yield Buffer.from(text);
}

async function run(sse: string): Promise<StreamChunk[]> {
  const out: StreamChunk[] = [];
  for await (const c of openAiStream(body(sse), 'scan')) out.push(c);
  return out;
}

async function failsWith(sse: string): Promise<string> {
  const err = await run(sse).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GatewayError);
  return (err as GatewayError).code;
}

const content = (text: string) => `{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":${JSON.stringify(text)}}}]}`;
const DONE = 'data: [DONE]\n\n';

describe('openAiStream scan', () => {
  it('relays content chunks byte for byte, even when the content quotes the keys the scan looks for', async () => {
    const tricky = ['plain', '"error": nope', '{"usage":{"total_tokens":1}}', 'event: error'];
    const out = await run(tricky.map((t) => `data: ${content(t)}\n\n`).join('') + DONE);
    expect(out.map((c) => c.data)).toEqual(tricky.map(content));
    expect(out.every((c) => c.usage === undefined)).toBe(true);
  });

  it('still reads the usage chunk', async () => {
    const usage = '{"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}';
    const out = await run(`data: ${content('hi')}\n\ndata: ${usage}\n\n${DONE}`);
    expect(out[1]).toEqual({ data: usage, usage: { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 } });
  });

  it('still throws on an in-band error next to choices', async () => {
    const chunk = '{"choices":[{"index":0,"delta":{}}],"error":{"message":"overloaded"}}';
    expect(await failsWith(`data: ${content('a')}\n\ndata: ${chunk}\n\n${DONE}`)).toBe('UPSTREAM_STREAM_ERROR');
  });

  it('still throws on an error event whose data looks like a content chunk', async () => {
    expect(await failsWith(`data: ${content('a')}\n\nevent: error\ndata: ${content('b')}\n\n${DONE}`)).toBe('UPSTREAM_STREAM_ERROR');
  });

  it('still throws on malformed and choice-less chunks', async () => {
    expect(await failsWith(`data: {not json\n\n${DONE}`)).toBe('UPSTREAM_BAD_RESPONSE');
    expect(await failsWith(`data: ${content('a').slice(0, -1)}\n\n${DONE}`)).toBe('UPSTREAM_BAD_RESPONSE');
    expect(await failsWith(`data: {"id":"c1"}\n\n${DONE}`)).toBe('UPSTREAM_BAD_RESPONSE');
  });

  it('parses chunks in another spelling (spaces after colons) instead of trusting the scan', async () => {
    const spaced = '{"choices": [{"index": 0, "delta": {"content": "x"}}]}';
    expect((await run(`data: ${spaced}\n\n${DONE}`)).map((c) => c.data)).toEqual([spaced]);
    expect(await failsWith(`data: {"choices": [{"index": 0}], "error": "boom"}\n\n${DONE}`)).toBe('UPSTREAM_STREAM_ERROR');
  });

  it('a malformed chunk shaped like a content chunk ends the stream with an error, never relayed', async () => {
    const ok = content('fine');
    for (const bad of ['{"choices":[{"delta": oops}]}', '{"choices":[{"delta":{"content":"a"}}],}', '{"choices":[{"delta":{"content":"a"}}]}}']) {
      expect(await failsWith(`data: ${ok}\n\ndata: ${bad}\n\ndata: [DONE]\n\n`), bad).toBe('UPSTREAM_BAD_RESPONSE');
    }
  });
});
