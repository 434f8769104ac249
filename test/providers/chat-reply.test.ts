/**
 * ChatReply (src/providers/chat-reply.ts): an OpenAI-compatible upstream's non-streaming body is validated by a
 * scan and its usage read from its own slice; the whole body is parsed only when `completion` is read, once.
 * The scan must accept and refuse exactly what the former parse-then-check did, with the same messages: a
 * table of edge bodies is run through both, and the openai provider is driven against a real server.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ChatReply } from '../../src/providers/chat-reply.js';
import { createOpenAiProvider } from '../../src/providers/openai/index.js';
import type { ChatCompletion } from '../../src/wire/openai.js';
import { MAX_DEPTH } from '../../src/wire/json-scan.js';
import { startFixedReplyUpstream, type FixedReplyUpstream } from '../fakes/fixed-reply-upstream.js';

const BODY = JSON.stringify({
  id: 'chatcmpl-lazy-1',
  object: 'chat.completion',
  created: 1_700_000_000,
  model: 'm',
  choices: [{ index: 0, message: { role: 'assistant', content: 'lazy' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 9, completion_tokens: 4, total_tokens: 13 },
});

/** Counts JSON.parse calls whose argument is exactly `text` (the usage slice is a different string). */
function countParses(text: string): { count(): number } {
  const real = JSON.parse.bind(JSON);
  let n = 0;
  vi.spyOn(JSON, 'parse').mockImplementation((s: string, reviver?: (this: unknown, key: string, value: unknown) => unknown) => {
    if (s === text) n++;
    return real(s, reviver);
  });
  return { count: () => n };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('ChatReply.relayed', () => {
  it('keeps the bytes, reads usage without parsing the body, and parses it on the first completion read only', () => {
    const parses = countParses(BODY);
    const r = ChatReply.relayed(BODY, 'c1');
    expect(r.stream).toBe(false);
    expect(r.raw).toBe(BODY);
    expect(r.usage).toEqual({ prompt_tokens: 9, completion_tokens: 4, total_tokens: 13 });
    expect(parses.count()).toBe(0);
    const first = r.completion;
    expect(parses.count()).toBe(1);
    expect(first.choices[0]!.message.content).toBe('lazy');
    expect(r.completion).toBe(first);
    expect(parses.count()).toBe(1);
  });

  it('an answer with `choices` and an `error` that reads as one is that error, as the same stream chunk is', () => {
    const withError = (error: unknown) => JSON.stringify({ ...(JSON.parse(BODY) as object), error });
    for (const [error, code] of [
      [{ message: 'slow down', type: 'requests', code: 'rate_limit_exceeded' }, 'RATE_LIMITED'],
      [{ message: 'full', code: 503 }, 'UPSTREAM_ERROR'],
      [{ type: 'server_error' }, 'UPSTREAM_ERROR'],
      ['boom', 'UPSTREAM_ERROR'],
    ] as const) {
      expect(() => ChatReply.relayed(withError(error), 'c1'), JSON.stringify(error)).toThrow(expect.objectContaining({ code }));
    }
    expect(() => ChatReply.relayed(withError({ message: 'slow down', code: 'rate_limit_exceeded' }), 'c1')).toThrow(
      'channel c1: upstream reported rate_limit_exceeded in a 2xx reply: slow down',
    );
    // an `error` that reads as none is relayed as sent (parsed once, since the scan saw it)
    for (const error of [{}, { message: null }, false, '']) {
      const text = withError(error);
      const r = ChatReply.relayed(text, 'c1');
      expect(r.raw).toBe(text);
      expect(r.completion.choices[0]!.message.content).toBe('lazy');
    }
    // `error: null` is no error, and costs no parse
    const nullError = withError(null);
    const parses = countParses(nullError);
    expect(ChatReply.relayed(nullError, 'c1').raw).toBe(nullError);
    expect(parses.count()).toBe(0);
  });

  it('a body nested past 1024 levels is refused by name, one at the limit is relayed', () => {
    const nest = (n: number) => `{"choices":[],"x":${'['.repeat(n)}${']'.repeat(n)}}`;
    expect(ChatReply.relayed(nest(1023), 'c1').raw).toBe(nest(1023));
    expect(() => ChatReply.relayed(nest(1024), 'c1')).toThrow('channel c1: upstream returned JSON nested deeper than 1024 levels');
    expect(() => ChatReply.relayed(nest(100_000), 'c1')).toThrow('nested deeper than 1024 levels');
  });

  it('an answer built by an adapter is wrapped as it is: no raw, the same object, its usage', () => {
    const c = JSON.parse(BODY) as ChatCompletion;
    const r = ChatReply.of(c);
    expect(r.raw).toBeUndefined();
    expect(r.completion).toBe(c);
    expect(r.usage).toBe(c.usage);
  });

  // The check the provider made before the scan: parse, then an object with a `choices` array.
  function former(text: string): { error: string } | { usage: unknown } {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      return { error: 'channel c1: upstream returned a body that is not JSON' };
    }
    const o = v as { choices?: unknown; usage?: unknown } | null;
    if (!o || typeof o !== 'object' || !Array.isArray(o.choices)) return { error: 'channel c1: upstream reply has no choices' };
    // every consumer treated a usage that is not an object as no usage (tokensOf, noteUsage)
    const u = o.usage;
    return { usage: typeof u === 'object' && u !== null && !Array.isArray(u) ? u : undefined };
  }
  function now(text: string): { error: string } | { usage: unknown } {
    try {
      return { usage: ChatReply.relayed(text, 'c1').usage };
    } catch (err) {
      expect(err).toMatchObject({ code: 'UPSTREAM_BAD_RESPONSE', status: 502 });
      return { error: (err as Error).message };
    }
  }
  const answerWith = (content: string) =>
    JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }], usage: { prompt_tokens: 1 } });
  const deep = '['.repeat(MAX_DEPTH + 5) + ']'.repeat(MAX_DEPTH + 5);
  const table: Array<[string, string]> = [
    ['plain', BODY],
    ['not JSON', '<html>bad gateway</html>'],
    ['empty', ''],
    ['trailing garbage', BODY + ' x'],
    ['two values', BODY + BODY],
    ['cut short', BODY.slice(0, -1)],
    ['byte order mark', '\ufeff' + BODY],
    ['surrounding whitespace', `\n\t ${BODY} \r\n`],
    ['no choices', '{"id":"x","object":"chat.completion"}'],
    ['choices an object', '{"choices":{}}'],
    ['choices null', '{"choices":null}'],
    ['an array', '[{"choices":[]}]'],
    ['null', 'null'],
    ['a string', '"choices"'],
    ['choices repeated, last not an array', '{"choices":[],"choices":1}'],
    ['choices repeated, last an array', '{"choices":1,"choices":[]}'],
    ['escaped key', '{"\\u0063hoices":[]}'],
    ['usage a number', '{"choices":[],"usage":5}'],
    ['usage null', '{"choices":[],"usage":null}'],
    ['usage an array', '{"choices":[],"usage":[1,2]}'],
    ['usage a string', '{"choices":[],"usage":"{\\"prompt_tokens\\":1}"}'],
    ['usage repeated', '{"usage":{"prompt_tokens":1},"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":3}}'],
    ['usage with escapes and exponents', '{"choices":[1,"a"],"usage":{"prompt_tokens":1e2,"n\\u0061me":"\\ud800x"}}'],
    ['usage nested deeper than the scanner follows', `{"choices":[],"usage":{"prompt_tokens":3,"x":${deep}}}`],
    ['choices nested deeper than the scanner follows', `{"choices":[${deep}],"usage":{"completion_tokens":2}}`],
    ['invalid escape', '{"choices":[],"x":"\\q"}'],
    ['control character in a string', '{"choices":[],"x":"a\nb"}'],
    ['leading zero', '{"choices":[],"x":01}'],
    // string bodies with escapes: the plain runs between them are skipped natively (walkString)
    ['long content with escapes', answerWith('line one\nline "two"\t\\ \u00e9\ud83d\ude00 '.repeat(200) + '\n')],
    ['a control character after an escape', '{"choices":[],"x":"ab\\ncd\u0001ef"}'],
    ['unterminated after an escape', '{"choices":[],"x":"ab\\ncd'],
    ['only an escaped quote before the end', '{"choices":[],"x":"ab\\"}'],
    ['a later string after an escaped one', '{"choices":[],"x":"a\\nb","usage":{"prompt_tokens":5,"k":"\\"q\\""}}'],
    ['a bad escape after a long plain run', `{"choices":[],"x":"${'p'.repeat(500)}\\n${'p'.repeat(500)}\\x"}`],
  ];
  it.each(table)('%s: accepted or refused exactly as before, with the same message and usage', (_name, text) => {
    expect(now(text)).toEqual(former(text));
  });
});

describe('the openai provider against a real server', () => {
  let body = BODY;
  let server: FixedReplyUpstream;
  beforeAll(async () => {
    server = await startFixedReplyUpstream(() => body);
  });
  afterAll(async () => {
    await server.close();
  });
  const ask = async () => {
    const p = createOpenAiProvider({ name: 'c1', provider: 'openai', baseUrl: server.baseUrl, apiKey: 'sk-x' });
    try {
      return await p.chat({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }, { signal: new AbortController().signal, requestId: 'req_1' });
    } finally {
      await p.close();
    }
  };

  it('hands over the body unparsed, with its usage', async () => {
    body = BODY;
    const parses = countParses(BODY);
    const out = await ask();
    if (out.stream) throw new Error('expected a non-stream answer');
    expect(out.raw).toBe(BODY);
    expect(out.usage).toMatchObject({ prompt_tokens: 9, completion_tokens: 4 });
    expect(parses.count()).toBe(0);
    expect(out.completion.choices[0]!.finish_reason).toBe('stop');
    expect(parses.count()).toBe(1);
  });

  it.each([
    ['<html>oops</html>', 'channel c1: upstream returned a body that is not JSON'],
    [BODY + '}', 'channel c1: upstream returned a body that is not JSON'],
    ['{"object":"chat.completion"}', 'channel c1: upstream reply has no choices'],
    ['[]', 'channel c1: upstream reply has no choices'],
  ])('a 200 body %j is UPSTREAM_BAD_RESPONSE: %s', async (b, message) => {
    body = b;
    await expect(ask()).rejects.toMatchObject({ code: 'UPSTREAM_BAD_RESPONSE', status: 502, retryable: true, message });
  });
});
