/**
 * The OpenAI relay (src/providers/openai/stream.ts): content chunks go through byte-identical (never
 * re-serialised), while everything the gateway must see — in-band errors, the usage chunk, malformed or
 * choice-less chunks, `event: error` — is caught, whatever the chat content says. A malformed chunk shaped like
 * a content chunk is caught too: every chunk is validated in full (the scanner in src/wire/json-scan.ts accepts
 * exactly what JSON.parse accepts; a shape-only scan that skipped validation was taken back out for this).
 */
import { describe, expect, it } from 'vitest';
import { openAiStream } from '../../src/providers/openai/stream.js';
import type { StreamChunk } from '../../src/providers/provider.js';
import { GatewayError } from '../../src/wire/errors.js';
import { gatewayErrorOf } from '../helpers/gateway-error.js';

async function* body(text: string): AsyncGenerator<Uint8Array> {
  yield Buffer.from(text);
}

async function run(sse: string): Promise<StreamChunk[]> {
  const out: StreamChunk[] = [];
  for await (const c of openAiStream(body(sse), 'scan')) out.push(c);
  return out;
}

async function failsWith(sse: string): Promise<string> {
  return (await gatewayErrorOf(run(sse))).code;
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

  it('beside choices, an `error` that reads as none ({}, false, "") is relayed: the non-streaming reply’s rule', async () => {
    for (const error of ['{}', '{"message":null}', 'false', '""']) {
      const chunk = `{"choices":[{"index":0,"delta":{"content":"a"}}],"error":${error}}`;
      expect((await run(`data: ${chunk}\n\n${DONE}`)).map((c) => c.data)).toEqual([chunk]);
    }
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

  it('reads the members however they are spelled: escaped keys, repeated keys (the last wins, as in JSON.parse)', async () => {
    const escapedUsage = '{"\\u0063hoices":[],"us\\u0061ge":{"total_tokens":4}}';
    expect(await run(`data: ${escapedUsage}\n\n${DONE}`)).toEqual([{ data: escapedUsage, usage: { total_tokens: 4 } }]);
    const repeated = '{"choices":[],"usage":{"total_tokens":1},"usage":{"total_tokens":2}}';
    expect(await run(`data: ${repeated}\n\n${DONE}`)).toEqual([{ data: repeated, usage: { total_tokens: 2 } }]);
    expect(await failsWith(`data: {"choices":[],"\\u0065rror":{"message":"boom"}}\n\n${DONE}`)).toBe('UPSTREAM_STREAM_ERROR');
    expect(await failsWith(`data: {"choices":[{}],"choices":"gone"}\n\n${DONE}`)).toBe('UPSTREAM_BAD_RESPONSE');
    expect((await run(`data: {"choices":[],"error":{"message":"x"},"error":null}\n\n${DONE}`)).length).toBe(1);
  });

  it('a usage chunk with spaces, and a usage that is not an object, are told apart', async () => {
    const spaced = '{ "choices" : [ ] , "usage" : { "total_tokens" : 9 } }';
    expect(await run(`data: ${spaced}\n\n${DONE}`)).toEqual([{ data: spaced, usage: { total_tokens: 9 } }]);
    const nullUsage = '{"choices":[],"usage":null}';
    expect(await run(`data: ${nullUsage}\n\n${DONE}`)).toEqual([{ data: nullUsage }]);
  });

  it('the in-band error message is the scrubbed upstream text', async () => {
    const err = await run(`data: {"error":{"message":"quota   exceeded\\nfor key"}}\n\n${DONE}`).then(
      () => undefined,
      (e: unknown) => e as GatewayError,
    );
    expect(err?.code).toBe('UPSTREAM_STREAM_ERROR');
    expect(err?.message).toContain('quota exceeded for key');
  });

  it.each([
    // [error object, code, status]: the status its code (first) or type names, mapped as that HTTP answer is
    [{ type: 'requests', code: 'rate_limit_exceeded' }, 'RATE_LIMITED', 429],
    [{ type: 'insufficient_quota', code: 'insufficient_quota' }, 'RATE_LIMITED', 429],
    [{ type: 'rate_limit_error' }, 'RATE_LIMITED', 429],
    [{ type: 'server_error', code: null }, 'UPSTREAM_ERROR', 502],
    // Anthropic's 500, as servers in front of Claude relay it
    [{ type: 'api_error' }, 'UPSTREAM_ERROR', 502],
    [{ type: 'overloaded_error' }, 'UPSTREAM_ERROR', 503],
    [{ type: 'invalid_request_error', code: 'context_length_exceeded' }, 'UPSTREAM_CLIENT_ERROR', 400],
    [{ type: 'invalid_request_error', code: 'invalid_value' }, 'UPSTREAM_CLIENT_ERROR', 400],
    [{ type: 'request_too_large' }, 'UPSTREAM_CLIENT_ERROR', 413],
    [{ type: 'timeout_error' }, 'UPSTREAM_TIMEOUT', 504],
    // vLLM's: the status itself as the code
    [{ type: 'ServiceUnavailableError', code: 503 }, 'UPSTREAM_ERROR', 503],
    [{ type: 'BadRequestError', code: 400 }, 'UPSTREAM_CLIENT_ERROR', 400],
    // nothing that names a status: as before
    [{ type: 'some_future_error' }, 'UPSTREAM_STREAM_ERROR', 502],
    [{ type: 'BadRequestError', code: 200 }, 'UPSTREAM_STREAM_ERROR', 502],
    [{ type: 'constructor', code: 'toString' }, 'UPSTREAM_STREAM_ERROR', 502],
    [{}, 'UPSTREAM_STREAM_ERROR', 502],
  ])('an in-band error %j is the error of the status it names: %s %d', async (e, code, status) => {
    const err = await gatewayErrorOf(run(`data: ${content('a')}\n\ndata: ${JSON.stringify({ error: { message: 'no', ...e } })}\n\n${DONE}`));
    expect({ code: err.code, status: err.status }).toEqual({ code, status });
  });

  it('a mapped in-band error names what it mapped from, with the scrubbed message', async () => {
    const err = await gatewayErrorOf(run(`data: {"error":{"message":"slow   down","type":"requests","code":"rate_limit_exceeded"}}\n\n${DONE}`));
    expect(err.message).toBe('channel scan: upstream reported rate_limit_exceeded mid-stream: slow down');
    expect(err.details).toEqual({ upstreamErrorType: 'rate_limit_exceeded' });
    const vllm = await gatewayErrorOf(run(`data: {"error":{"message":"full","type":"X","code":503}}\n\n${DONE}`));
    expect(vllm.message).toBe('channel scan: upstream reported status 503 mid-stream: full');
    expect(vllm.details).toEqual({ upstreamStatus: 503 });
  });

  it('older vLLM’s error at the top level of the chunk ({"object":"error",…,"code"}) is mapped as the nested one is', async () => {
    const flat = (e: Record<string, unknown>) => JSON.stringify({ object: 'error', message: 'too   long', type: 'BadRequestError', param: null, ...e });
    const mid = await gatewayErrorOf(run(`data: ${content('a')}\n\ndata: ${flat({ code: 400 })}\n\n`));
    expect({ code: mid.code, status: mid.status, details: mid.details }).toEqual({
      code: 'UPSTREAM_CLIENT_ERROR',
      status: 400,
      details: { upstreamStatus: 400 },
    });
    expect(mid.message).toBe('channel scan: upstream reported status 400 mid-stream: too long');
    const busy = await gatewayErrorOf(run(`data: ${flat({ type: 'ServiceUnavailableError', code: 503 })}\n\n`));
    expect({ code: busy.code, status: busy.status }).toEqual({ code: 'UPSTREAM_ERROR', status: 503 });
    // no status named: the stream broke, with the upstream's message (not "a chunk without choices")
    const none = await gatewayErrorOf(run(`data: ${flat({ code: null })}\n\n`));
    expect({ code: none.code, message: none.message }).toEqual({
      code: 'UPSTREAM_STREAM_ERROR',
      message: 'channel scan: upstream reported an error mid-stream: too long',
    });
    // as an `event: error` too
    const named = await gatewayErrorOf(run(`event: error\ndata: ${flat({ code: 429 })}\n\n`));
    expect({ code: named.code, message: named.message }).toEqual({
      code: 'RATE_LIMITED',
      message: 'channel scan: upstream reported status 429 mid-stream: too long',
    });
    // anything else without choices is still a bad answer
    for (const v of ['{"object":"chat.completion.chunk"}', '{"object":"errors","message":"x"}', '{"error":null,"message":"x"}'])
      expect(await failsWith(`data: ${v}\n\n${DONE}`), v).toBe('UPSTREAM_BAD_RESPONSE');
  });

  it('a malformed error event is a bad response; an error event with no error member says "error event"', async () => {
    expect(await failsWith(`event: error\ndata: {oops\n\n${DONE}`)).toBe('UPSTREAM_BAD_RESPONSE');
    const err = await run(`event: error\ndata: [1]\n\n${DONE}`).then(
      () => undefined,
      (e: unknown) => e as GatewayError,
    );
    expect(err?.code).toBe('UPSTREAM_STREAM_ERROR');
    expect(err?.message).toContain('error event');
  });

  it('JSON that is valid but not an object is a chunk without choices', async () => {
    for (const v of ['[]', '"choices"', '1', 'null', '[{"choices":[]}]']) expect(await failsWith(`data: ${v}\n\n${DONE}`), v).toBe('UPSTREAM_BAD_RESPONSE');
  });

  it('every malformed variant of a content chunk is caught, in whatever spelling (trailing garbage, bad number, bad escape)', async () => {
    const bad = [
      '{"choices":[{"delta":{"content":"a"}}]} x',
      '{"choices":[{"index":01}]}',
      '{"choices":[{"index":1.}]}',
      '{"choices":[{"delta":{"content":"\\x41"}}]}',
      '{"choices":[{"delta":{"content":"\\u12"}}]}',
      '{"choices":[{"delta":{"content":"tab\there"}}]}',
      '{"choices":[{"delta":{"content":"a"}}]',
      '\uFEFF{"choices":[]}',
      '',
    ];
    for (const b of bad) expect(await failsWith(`data: ${content('ok')}\n\ndata: ${b}\n\n${DONE}`), b).toBe('UPSTREAM_BAD_RESPONSE');
  });

  it('deeply nested chunks are validated too (past the scanner depth, JSON.parse decides)', async () => {
    const deep = `{"choices":[${'['.repeat(300)}${']'.repeat(300)}],"usage":null}`;
    expect((await run(`data: ${deep}\n\n${DONE}`)).map((c) => c.data)).toEqual([deep]);
    const deepUsage = `{"choices":[],"usage":{"x":${'['.repeat(300)}${']'.repeat(300)},"total_tokens":2}}`;
    expect((await run(`data: ${deepUsage}\n\n${DONE}`))[0]!.usage).toMatchObject({ total_tokens: 2 });
    expect(await failsWith(`data: {"choices":[${'['.repeat(300)}${']'.repeat(299)}]}\n\n${DONE}`)).toBe('UPSTREAM_BAD_RESPONSE');
  });

  it('events after [DONE] are read but ignored, even errors and garbage; a body without [DONE] fails', async () => {
    expect((await run(`data: ${content('a')}\n\n${DONE}event: error\ndata: {oops\n\ndata: {"error":"x"}\n\n`)).length).toBe(1);
    expect(await failsWith(`data: ${content('a')}\n\n`)).toBe('UPSTREAM_STREAM_ERROR');
    // The last event counts even without its blank line.
    expect((await run(`data: ${content('a')}\n\ndata: [DONE]`)).length).toBe(1);
  });

  it('many events in one network read, and one event split over many reads, give the same chunks', async () => {
    const sse =
      [content('a'), content('b\\n"c"'), '{"choices":[],"usage":{"total_tokens":3}}'].map((d) => `data: ${d}\r\n\r\n`).join('') + 'data: [DONE]\r\n\r\n';
    async function* bytes(size: number): AsyncGenerator<Uint8Array> {
      const b = Buffer.from(sse);
      for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
    }
    const whole: StreamChunk[] = [];
    for await (const c of openAiStream(bytes(1 << 20), 'scan')) whole.push(c);
    expect(whole).toHaveLength(3);
    expect(whole[2]!.usage).toEqual({ total_tokens: 3 });
    for (const size of [1, 2, 5, 13]) {
      const out: StreamChunk[] = [];
      for await (const c of openAiStream(bytes(size), 'scan')) out.push(c);
      expect(out, `${size}-byte reads`).toEqual(whole);
    }
  });
});

describe('openAiStream as a ChunkStream (takeReady)', () => {
  async function* reads(parts: string[]): AsyncGenerator<Uint8Array> {
    for (const p of parts) yield Buffer.from(p);
  }

  /** Drains the way the edges do: takeReady until empty, then next(); records which read each chunk came in. */
  async function drain(parts: string[]): Promise<{ batches: string[][]; error?: string }> {
    const s = openAiStream(reads(parts), 'ready');
    const batches: string[][] = [];
    try {
      for (;;) {
        const r = await s.next();
        if (r.done) return { batches };
        const batch = [r.value.data];
        for (let c = s.takeReady?.(); c !== undefined; c = s.takeReady?.()) batch.push(c.data);
        batches.push(batch);
      }
    } catch (err) {
      return { batches, error: (err as GatewayError).code };
    }
  }

  it('hands over the chunks of one read together, and an event split across reads once complete', async () => {
    const [a, b, c] = [content('a'), content('b'), content('c')];
    const split = `data: ${c}\n\n${DONE}`;
    const { batches, error } = await drain([`data: ${a}\n\ndata: ${b}\n\n${split.slice(0, 20)}`, split.slice(20)]);
    expect(error).toBeUndefined();
    expect(batches).toEqual([[a, b], [c]]);
  });

  it('a failing event in a read ends the stream after the chunks before it, never after the ones behind it', async () => {
    const [a, b] = [content('a'), content('b')];
    const { batches, error } = await drain([`data: ${a}\n\ndata: ${a.slice(0, -1)}\n\ndata: ${b}\n\n${DONE}`]);
    expect(batches).toEqual([[a]]);
    expect(error).toBe('UPSTREAM_BAD_RESPONSE');
  });

  it('nothing after [DONE] in the same read is handed over, and a stream without it fails after its chunks', async () => {
    const [a, b] = [content('a'), content('b')];
    expect(await drain([`data: ${a}\n\n${DONE}data: ${b}\n\n`])).toEqual({ batches: [[a]] });
    expect(await drain([`data: ${a}\n\ndata: ${b}\n\n`])).toEqual({ batches: [[a, b]], error: 'UPSTREAM_STREAM_ERROR' });
  });
});
