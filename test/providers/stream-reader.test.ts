/**
 * The shared SSE reader (src/providers/stream-reader.ts) behind the OpenAI relay, the Anthropic translation and
 * the native pass-throughs: reads already received are translated at once (one batch for the edge), the
 * stream ends at its terminal event without waiting for the body, and the body is still read to its end.
 */
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import { anthropicStream } from '../../src/providers/anthropic/stream.js';
import { openAiStream } from '../../src/providers/openai/stream.js';
import { UpstreamClient } from '../../src/providers/upstream.js';
import { ollamaStream } from '../../src/providers/ollama/stream.js';
import { DRAIN_AFTER_END_MS, sseStream, type StreamTranslator } from '../../src/providers/stream-reader.js';
import type { ChunkStream, StreamChunk } from '../../src/providers/provider.js';
import { GatewayError } from '../../src/wire/errors.js';

/** A body whose reads all arrived before the reader asked (the first by `next()`, the rest by `takeQueued`). */
function queued(parts: string[]): AsyncIterable<Uint8Array> {
  const q = parts.map((p) => Buffer.from(p));
  const reader = {
    takeQueued: () => q.shift(),
    next: () => Promise.resolve(q.length > 0 ? { done: false as const, value: q.shift()! } : { done: true as const, value: undefined }),
    [Symbol.asyncIterator]() {
      return reader;
    },
  };
  return reader;
}

/** Drains as the edges do (takeReady until empty, then next()): the batches, and the error that ended it. */
async function batches(s: ChunkStream): Promise<{ batches: StreamChunk[][]; error?: GatewayError }> {
  const out: StreamChunk[][] = [];
  try {
    for (;;) {
      const r = await s.next();
      if (r.done) return { batches: out };
      const batch = [r.value];
      for (let c = s.takeReady?.(); c !== undefined; c = s.takeReady?.()) batch.push(c);
      out.push(batch);
    }
  } catch (err) {
    return { batches: out, error: err as GatewayError };
  }
}

const ev = (type: string, data: object) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
const START = ev('message_start', { message: { id: 'msg_1', model: 'claude-x', usage: { input_tokens: 3 } } });
const text = (t: string) => ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: t } });
const STOP = ev('message_delta', { delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 2 } }) + ev('message_stop', {});

/** Each line's `data:` event names the translator sees; `end` is terminal, `bad` throws a plain Error. */
const echo: StreamTranslator = {
  event(data, _name, out) {
    if (data === 'end') return true;
    if (data === 'bad') throw new Error('a bug in a translator');
    out.push({ data });
    return false;
  },
  unterminated: () => new GatewayError('UPSTREAM_STREAM_ERROR', 'ended without end'),
};

const content = (text: string) => `{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":${JSON.stringify(text)}}}]}`;
const DONE = 'data: [DONE]\n\n';
const datas = (r: { batches: StreamChunk[][]; error?: GatewayError }) => ({ batches: r.batches.map((b) => b.map((c) => c.data)), error: r.error?.code });

describe('the upstream stream reader', () => {
  it('OpenAI: every queued read is parsed at once, one batch for many upstream writes, an event split across two included', async () => {
    const [a, b, c] = [content('a'), content('b'), content('c')];
    const third = `data: ${c}\n\n`;
    expect(datas(await batches(openAiStream(queued([`data: ${a}\n\n`, `data: ${b}\n\n`, third.slice(0, 9), third.slice(9), DONE]), 'oa')))).toEqual({
      batches: [[a, b, c]],
      error: undefined,
    });
  });

  it('OpenAI: a failing event in a queued read ends the stream after the chunks before it, none behind it handed over', async () => {
    const [a, b] = [content('a'), content('b')];
    expect(datas(await batches(openAiStream(queued([`data: ${a}\n\n`, `data: ${a.slice(0, -1)}\n\n`, `data: ${b}\n\n`, DONE]), 'oa')))).toEqual({
      batches: [[a]],
      error: 'UPSTREAM_BAD_RESPONSE',
    });
    // and a body that ends without [DONE] still fails, after every queued chunk
    expect(datas(await batches(openAiStream(queued([`data: ${a}\n\n`, `data: ${b}\n\n`]), 'oa')))).toEqual({
      batches: [[a, b]],
      error: 'UPSTREAM_STREAM_ERROR',
    });
  });

  it('over a real socket: an upstream that writes each event on its own hands the gateway one batch per network read', async () => {
    const events = Array.from({ length: 20 }, (_, i) => content(`w${i}`));
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      // corked: the 21 writes (each its own chunk of the chunked body) leave in one segment, so they arrive in one read
      res.cork();
      for (const e of events) res.write(`data: ${e}\n\n`);
      res.write(DONE);
      res.end();
      res.uncork();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = new UpstreamClient({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, label: 'socket' });
    try {
      const res = await client.send('/stream', { headers: {}, body: '{}', signal: new AbortController().signal });
      expect(datas(await batches(openAiStream(res.body, 'socket')))).toEqual({ batches: [events], error: undefined });
    } finally {
      await client.close();
      await new Promise((r) => server.close(r));
    }
  });

  it('over a real socket: a body left open after its terminal event is dropped after DRAIN_AFTER_END_MS; one that ends keeps its connection', async () => {
    const closed: Socket[] = [];
    const servedBy = new Map<string, Socket[]>();
    const server = createServer((req, res) => {
      servedBy.set(req.url!, [...(servedBy.get(req.url!) ?? []), req.socket]);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${content('x')}\n\n`);
      res.write(DONE);
      if (req.url === '/ends') res.end();
      // '/held': an upstream that never ends its body after [DONE]
    });
    server.keepAliveTimeout = 60_000; // no idle connection closes during the test: every close is the drain's
    server.on('connection', (sock: Socket) => sock.once('close', () => closed.push(sock)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = new UpstreamClient({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, label: 'socket', bodyTimeoutMs: 60_000 });
    const read = async (path: string) => {
      const res = await client.send(path, { headers: {}, body: '{}', signal: new AbortController().signal });
      return datas(await batches(openAiStream(res.body, 'socket')));
    };
    try {
      const one = { batches: [[content('x')]], error: undefined };
      expect(await read('/ends')).toEqual(one);
      const started = Date.now();
      expect(await read('/held')).toEqual(one); // the reader is done at [DONE], not at the body's end
      await vi.waitFor(() => expect(closed).toHaveLength(1), { timeout: DRAIN_AFTER_END_MS + 3000, interval: 50 });
      // the held body's connection, dropped by the drain bound long before the channel's body timeout (60 s)
      expect(closed[0]).toBe(servedBy.get('/held')![0]);
      expect(Date.now() - started).toBeGreaterThanOrEqual(DRAIN_AFTER_END_MS - 100);
      // the connection whose body ended is still open, and the pool serves the next request on it
      expect(servedBy.get('/ends')![0]!.destroyed).toBe(false);
      expect(await read('/ends')).toEqual(one);
      expect(servedBy.get('/ends')![1]).toBe(servedBy.get('/ends')![0]);
    } finally {
      await client.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('Anthropic: the events of every queued read are translated at once, one batch for the edge', async () => {
    const { batches: b, error } = await batches(anthropicStream(queued([START, text('Hel'), text('lo'), STOP]), 'an', { model: 'claude-requested' }, 1));
    expect(error).toBeUndefined();
    expect(b).toHaveLength(1);
    const chunks = b[0]!.map((c) => JSON.parse(c.data) as { choices: Array<{ delta: { content?: string }; finish_reason: string | null }> });
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? c.choices[0]?.finish_reason ?? 'usage')).toEqual(['', 'Hel', 'lo', 'stop', 'usage']);
    expect(b[0]!.at(-1)!.usage).toMatchObject({ prompt_tokens: 3, completion_tokens: 2 });
  });

  it('Ollama (NDJSON): the lines of every queued read, one split across two, are translated at once', async () => {
    const line = (o: object) => JSON.stringify({ model: 'llama3', created_at: '2026-11-29T00:00:00Z', ...o }) + '\n';
    const last = line({ message: { role: 'assistant', content: '' }, done: true, done_reason: 'stop', prompt_eval_count: 4, eval_count: 2 });
    const reads = [line({ message: { role: 'assistant', content: 'Hel' }, done: false }), line({ message: { role: 'assistant', content: 'lo' }, done: false })];
    const { batches: b, error } = await batches(ollamaStream(queued([...reads, last.slice(0, 10), last.slice(10)]), 'ol', 'llama3'));
    expect(error).toBeUndefined();
    expect(b).toHaveLength(1);
    const chunks = b[0]!.map((c) => JSON.parse(c.data) as { choices: Array<{ delta: { content?: string }; finish_reason: string | null }> });
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? c.choices[0]?.finish_reason ?? 'usage')).toEqual(['Hel', 'lo', 'stop', 'usage']);
    expect(b[0]!.at(-1)!.usage).toMatchObject({ prompt_tokens: 4, completion_tokens: 2 });
  });

  it('ends at the terminal event without waiting for the body, then reads the body to its end', async () => {
    let finishBody!: () => void;
    const bodyMayEnd = new Promise<void>((r) => (finishBody = r));
    let bodyRead!: () => void;
    const bodyReadToEnd = new Promise<void>((r) => (bodyRead = r));
    const body = (async function* () {
      yield 'data: a\n\ndata: end\n\n';
      await bodyMayEnd; // an upstream that keeps the body open after its last event
      yield 'data: after\n\n';
      bodyRead();
    })();
    const s = sseStream(body, echo, 'held');
    expect(await batches(s)).toEqual({ batches: [[{ data: 'a' }]] });
    finishBody();
    await bodyReadToEnd; // the rest was read (not abandoned), and nothing of it was handed over
    expect(s.takeReady?.()).toBeUndefined();
    expect(await s.next()).toEqual({ done: true, value: undefined });
  });

  it('an error a translator throws ends the stream mid-stream after the chunks before it; the stream then reports done', async () => {
    const s = sseStream(queued(['data: a\n\n', 'data: bad\n\ndata: c\n\n', 'data: end\n\n']), echo, 'x');
    const { batches: b, error } = await batches(s);
    expect(b).toEqual([[{ data: 'a' }]]);
    expect(error).toBeInstanceOf(GatewayError);
    expect(error!.code).toBe('UPSTREAM_STREAM_ERROR');
    expect(await s.next()).toEqual({ done: true, value: undefined });
  });

  it('a body that ends before the terminal event fails with the translator’s error, after every chunk', async () => {
    const { batches: b, error } = await batches(sseStream(queued(['data: a\n\n', 'data: b\n\n']), echo, 'x'));
    expect(b).toEqual([[{ data: 'a' }, { data: 'b' }]]);
    expect(error?.message).toBe('ended without end');
  });
});
