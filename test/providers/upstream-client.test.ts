/**
 * The upstream client's contract (src/providers/upstream.ts, src/providers/upstream-body.ts), over a real
 * socket: a call is one promise that resolves only with a 2xx answer (at its headers for `send`, at its body's
 * end for `sendReply` / `sendJson`); any other status rejects with the mapped GatewayError once the upstream's
 * message is read; a transport failure rejects with its own mapping, whether before the headers or while a
 * whole body is read.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UpstreamClient } from '../../src/providers/upstream.js';
import { ERROR_BODY_MAX } from '../../src/providers/upstream-body.js';
import { openAiStream } from '../../src/providers/openai/stream.js';
import { ollamaStream } from '../../src/providers/ollama/stream.js';
import type { StreamChunk } from '../../src/providers/provider.js';
import { GatewayError } from '../../src/wire/errors.js';
import { writeEndless } from '../fakes/endless-body.js';
import { gatewayErrorOf } from '../helpers/gateway-error.js';

const HI_EVENT = 'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n';
/** Each path is one upstream behaviour. `/held` answers its headers and a first read, then waits for `release`. */
let releaseHeld: (() => void) | undefined;
let requests = 0;
/** bytes each endless answer wrote before the client closed it */
const endlessWritten: number[] = [];

function endless(res: ServerResponse, status: number, type: string, prefix: string, piece: string): void {
  res.writeHead(status, { 'content-type': type });
  void writeEndless(res, prefix, piece).then((written) => endlessWritten.push(written));
}
const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => void> = {
  '/split': (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"choices":[');
    setImmediate(() => {
      res.write('{"index":0}');
      setImmediate(() => res.end('],"usage":{"prompt_tokens":1}}'));
    });
  },
  '/not-json': (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('not json'),
  '/deep': (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(`{"choices":${'['.repeat(100_000)}${']'.repeat(100_000)}}`),
  // an event over the 4 KiB bound that arrives whole, in one write, after one within it
  '/big-sse-event': (_req, res) =>
    res
      .writeHead(200, { 'content-type': 'text/event-stream' })
      .end(
        `data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\ndata: {"choices":[{"index":0,"delta":{"content":"${'x'.repeat(4200)}"}}]}\n\ndata: [DONE]\n\n`,
      ),
  // Retry-After as the upstream sent it, from the path: /retry-after/<value>
  '/retry-after': (req, res) => res.writeHead(429, { 'retry-after': decodeURIComponent(req.url!.split('/').pop()!) }).end('{"error":{"message":"later"}}'),
  '/limited': (_req, res) =>
    res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '7' }).end(JSON.stringify({ error: { message: 'slow   down\nplease' } })),
  '/plain-500': (_req, res) => res.writeHead(500, { 'content-type': 'text/plain' }).end('database on fire'),
  // an error status whose body breaks: the status is what the caller hears
  '/error-cut': (_req, res) => {
    res.writeHead(502, { 'content-type': 'application/json', 'content-length': '100' });
    res.write('{"error":');
    setImmediate(() => res.socket?.destroy());
  },
  // a 2xx whose body breaks before its end: a transport failure
  '/ok-cut': (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
    res.write('{"choices":');
    setImmediate(() => res.socket?.destroy());
  },
  '/hints': (_req, res) => {
    res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"choices":[]}');
  },
  // an unsolicited 100 Continue (the gateway sends no Expect), then the answer
  '/continue': (_req, res) => {
    res.writeContinue();
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"choices":[]}');
  },
  // a status line that is not HTTP
  '/garbage-status': (req) => req.socket.end('HTTP/1.1 two hundred OK\r\n\r\n'),
  // a chunked 2xx whose chunk size is not hex
  '/garbage-chunk': (req) =>
    req.socket.end(
      'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n' + `${HI_EVENT.length.toString(16)}\r\n${HI_EVENT}\r\nzz\r\n`,
    ),
  '/big': (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(`{"data":"${'x'.repeat(10_000)}"}`),
  '/endless-ok': (_req, res) => endless(res, 200, 'application/json', '{"data":"', 'x'.repeat(4096)),
  '/endless-error': (_req, res) => endless(res, 500, 'application/json', '{"error":{"message":"overloaded"},"pad":"', 'x'.repeat(4096)),
  // an SSE event whose one line never ends, one made of data lines that never meet their blank line, an NDJSON line
  '/endless-sse-line': (_req, res) =>
    endless(res, 200, 'text/event-stream', 'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\ndata: {"choices":"', 'x'.repeat(1024)),
  '/endless-sse-lines': (_req, res) =>
    endless(res, 200, 'text/event-stream', 'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n', 'data: xxxxxxxxxxxxxxxxxxxxxxxx\n'),
  '/endless-ndjson': (_req, res) =>
    endless(
      res,
      200,
      'application/x-ndjson',
      '{"model":"m","created_at":"2026-01-01T00:00:00Z","message":{"role":"assistant","content":"hi"},"done":false}\n{"model":"',
      'x'.repeat(1024),
    ),
  '/held': (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: first\n\n');
    releaseHeld = () => res.end('data: last\n\n');
  },
};

let server: Server;
let client: UpstreamClient;
/** the same upstream with a 4 KiB maxResponseBytes */
let small: UpstreamClient;
const init = (signal = new AbortController().signal) => ({ headers: { 'content-type': 'application/json' }, body: '{}', signal });
/** `sendReply`'s read that keeps the body's text as received */
const asText = (text: string): string => text;

beforeAll(async () => {
  server = createServer((req, res) => {
    requests++;
    const url = req.url ?? '';
    routes[url.startsWith('/retry-after/') ? '/retry-after' : url]!(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  client = new UpstreamClient({ baseUrl, label: 'chan' });
  small = new UpstreamClient({ baseUrl, label: 'chan', maxResponseBytes: 4096 });
});

afterAll(async () => {
  await client.close();
  await small.close();
  await new Promise((r) => server.close(r));
});

describe('UpstreamClient: one promise per call, settled by the status', () => {
  it('sendReply resolves with the whole 2xx body however many reads it took; sendJson parses it', async () => {
    expect(await client.sendReply('/split', init(), asText)).toBe('{"choices":[{"index":0}],"usage":{"prompt_tokens":1}}');
    expect(await client.sendJson('/split', init())).toEqual({ choices: [{ index: 0 }], usage: { prompt_tokens: 1 } });
  });

  it('sendReply and sendJson hand the whole body and the 2xx answer’s headers to `read`; a throw from it rejects the call', async () => {
    const seen: Array<[string, string | undefined]> = [];
    const out = await client.sendReply('/split', init(), (text, headers) => {
      seen.push([text, headers['content-type']]);
      return text.length;
    });
    expect(out).toBe(seen[0]![0].length);
    expect(seen).toEqual([['{"choices":[{"index":0}],"usage":{"prompt_tokens":1}}', 'application/json']]);
    expect(await client.sendJson('/split', init(), (v: { choices: unknown[] }, headers) => [v.choices.length, headers['content-type']])).toEqual([
      1,
      'application/json',
    ]);
    const boom = new Error('read refused it');
    await expect(
      client.sendReply('/split', init(), () => {
        throw boom;
      }),
    ).rejects.toBe(boom);
    // the parse comes first: a body that is not JSON never reaches `read`
    expect((await gatewayErrorOf(client.sendJson('/not-json', init(), () => 'read'))).code).toBe('UPSTREAM_BAD_RESPONSE');
  });

  it('sendJson: a 2xx body nested past 1024 levels is UPSTREAM_BAD_RESPONSE (the gateway would serialise it again)', async () => {
    const e = await gatewayErrorOf(client.sendJson('/deep', init()));
    expect(e.code).toBe('UPSTREAM_BAD_RESPONSE');
    expect(e.message).toBe('channel chan: upstream returned JSON nested deeper than 1024 levels');
  });

  it('sendJson: a 2xx body that is not JSON is UPSTREAM_BAD_RESPONSE', async () => {
    const e = await gatewayErrorOf(client.sendJson('/not-json', init()));
    expect(e.code).toBe('UPSTREAM_BAD_RESPONSE');
    expect(e.message).toBe('channel chan: upstream returned a body that is not JSON');
  });

  it('a non-2xx status rejects every kind of call with its mapped error, the upstream message read from the body', async () => {
    for (const call of [() => client.send('/limited', init()), () => client.sendReply('/limited', init(), asText), () => client.sendJson('/limited', init())]) {
      const e = await gatewayErrorOf(call());
      expect(e.code).toBe('RATE_LIMITED');
      expect(e.retryAfterSec).toBe(7);
      expect(e.details).toEqual({ upstreamStatus: 429 });
      expect(e.message).toBe('channel chan: upstream answered 429: slow down please');
    }
    const plain = await gatewayErrorOf(client.send('/plain-500', init()));
    expect(plain.code).toBe('UPSTREAM_ERROR');
    expect(plain.message).toBe('channel chan: upstream answered 500: database on fire');
  });

  it("an upstream's Retry-After is taken as delay-seconds or an HTTP date, at most a day; anything else is none", async () => {
    const after = async (v: string) => (await gatewayErrorOf(client.send(`/retry-after/${encodeURIComponent(v)}`, init()))).retryAfterSec;
    expect(await after('12')).toBe(12);
    expect(await after('99999999999999999999999')).toBe(86_400);
    expect(await after(new Date(Date.now() + 30_000).toUTCString())).toBeGreaterThanOrEqual(28);
    for (const odd of ['0x10', '1e3', '-5', '1.5', 'soon']) expect(await after(odd), odd).toBeUndefined();
  });

  it('an error status whose body breaks is still that status (no message), not a transport failure', async () => {
    const e = await gatewayErrorOf(client.sendReply('/error-cut', init(), asText));
    expect(e.code).toBe('UPSTREAM_ERROR');
    expect(e.details).toEqual({ upstreamStatus: 502 });
    expect(e.message).toBe('channel chan: upstream answered 502');
  });

  it('a 2xx body that breaks before its end rejects sendReply as a transport failure', async () => {
    const e = await gatewayErrorOf(client.sendReply('/ok-cut', init(), asText));
    expect(e.code).toBe('UPSTREAM_ERROR');
    expect(e.message).toBe('channel chan: upstream closed the connection');
  });

  it('an informational 1xx before the answer is skipped', async () => {
    expect(await client.sendReply('/hints', init(), asText)).toBe('{"choices":[]}');
  });

  it('an answer that is not HTTP is upstream_bad_response, named so, not "closed the connection"', async () => {
    // undici refuses an unsolicited 100 Continue (the gateway sends no `Expect`) as a bad response; RFC 9110 asks a
    // client to skip it, so this names undici's choice (docs/channels.md)
    for (const path of ['/continue', '/garbage-status']) {
      const e = await gatewayErrorOf(client.sendReply(path, init(), asText));
      expect(e.code, path).toBe('UPSTREAM_BAD_RESPONSE');
      expect(e.message, path).toBe('channel chan: upstream sent a malformed HTTP response');
    }
    // mid-stream: one whole event, then a chunk size that is not hex
    const chunks: StreamChunk[] = [];
    const e = await gatewayErrorOf(
      (async () => {
        for await (const c of openAiStream((await client.send('/garbage-chunk', init())).body, 'chan')) chunks.push(c);
      })(),
    );
    expect(chunks.map((c) => c.data)).toEqual([HI_EVENT.slice(6, -2)]);
    expect(e.code).toBe('UPSTREAM_STREAM_ERROR');
    expect(e.message).toBe('channel chan: upstream sent malformed HTTP mid-stream');
  });

  it('send resolves at the headers, the body still arriving; its reads follow as they come', async () => {
    releaseHeld = undefined;
    const res = await client.send('/held', init());
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream');
    const reads = res.body[Symbol.asyncIterator]();
    expect(String((await reads.next()).value)).toBe('data: first\n\n');
    expect(releaseHeld).toBeTypeOf('function'); // the upstream has not ended its body: send did not wait for it
    releaseHeld!();
    let rest = '';
    for (let r = await reads.next(); !r.done; r = await reads.next()) rest += String(r.value);
    expect(rest).toBe('data: last\n\n');
  });

  it('a signal aborted before the call sends nothing and rejects CANCELLED; one aborted while a body is collected rejects CANCELLED', async () => {
    const before = requests;
    const gone = new AbortController();
    gone.abort();
    expect((await gatewayErrorOf(client.sendReply('/split', init(gone.signal), asText))).code).toBe('CANCELLED');
    expect(requests).toBe(before);

    releaseHeld = undefined;
    const ac = new AbortController();
    const pending = client.sendReply('/held', init(ac.signal), asText);
    await expect.poll(() => releaseHeld).toBeTypeOf('function'); // the upstream answered its headers and a first read
    ac.abort();
    expect((await gatewayErrorOf(pending)).code).toBe('CANCELLED');
  });
});

describe('UpstreamClient: what is held of an answer is bounded', () => {
  it('a 2xx body over maxResponseBytes rejects UPSTREAM_BAD_RESPONSE; an endless one is cut there; the client goes on', async () => {
    expect(await client.sendReply('/big', init(), asText)).toHaveLength(10_011); // the default bound is far above it
    for (const path of ['/big', '/endless-ok']) {
      const e = await gatewayErrorOf(small.sendReply(path, init(), asText));
      expect(e.code).toBe('UPSTREAM_BAD_RESPONSE');
      expect(e.message).toBe('channel chan: upstream answer exceeds maxResponseBytes (4096)');
      expect(e.details).toEqual({ maxResponseBytes: 4096 });
    }
    expect(await small.sendReply('/split', init(), asText)).toBe('{"choices":[{"index":0}],"usage":{"prompt_tokens":1}}');
  });

  it("an error status's endless body: the status rejects once ERROR_BODY_MAX is read, with the message at its start", async () => {
    endlessWritten.length = 0;
    for (const c of [client, small]) {
      const e = await gatewayErrorOf(c.sendReply('/endless-error', init(), asText));
      expect(e.code).toBe('UPSTREAM_ERROR');
      expect(e.details).toEqual({ upstreamStatus: 500 });
      // the body was cut, so it is not JSON: its start is the message, cut to RELAYED_TEXT_MAX characters
      expect(e.message).toMatch(/^channel chan: upstream answered 500: \{"error":\{"message":"overloaded"\},"pad":"x+…$/);
    }
    await expect.poll(() => endlessWritten.length).toBe(2);
    // what was read, plus what the sockets' buffers took
    for (const w of endlessWritten) expect(w).toBeLessThan(ERROR_BODY_MAX + 16 * 1024 * 1024);
  });

  it('a stream event or line over the bound (never ending, or whole in one read) fails the stream after the chunks before it', async () => {
    const cases: Array<[string, (body: AsyncIterable<Buffer>) => AsyncIterable<StreamChunk>]> = [
      ['/endless-sse-line', (b) => openAiStream(b, 'chan')],
      ['/endless-sse-lines', (b) => openAiStream(b, 'chan')],
      ['/endless-ndjson', (b) => ollamaStream(b, 'chan', 'm')],
      ['/big-sse-event', (b) => openAiStream(b, 'chan')],
    ];
    for (const [path, read] of cases) {
      const chunks: StreamChunk[] = [];
      let failure: unknown;
      try {
        for await (const c of read((await small.send(path, init())).body)) chunks.push(c);
      } catch (err) {
        failure = err;
      }
      expect(chunks.length, path).toBeGreaterThanOrEqual(1); // the event before the endless one was relayed
      expect(failure, path).toBeInstanceOf(GatewayError);
      expect((failure as GatewayError).code).toBe('UPSTREAM_BAD_RESPONSE');
      expect((failure as GatewayError).message).toBe('channel chan: upstream stream event exceeds maxResponseBytes (4096)');
    }
  });
});
