/**
 * `pump`'s guard covers the response's head too: from the moment a route holds a routed stream, whatever throws
 * before the first chunk goes out (here a header value Node refuses) ends the router's attempt without a verdict
 * on the channel (return, not throw) and settles the key's ticket, so no channel slot or concurrency lease is
 * held for good. Before, routes wrote the head outside the guard: a peer's name with a control character in
 * `x-switchyard-peer` left one slot held per stream (test/faults/regression-peer-name-header.test.ts).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { pump, startSse, type ApiContext, type Exchange } from '../../src/apis/common/exchange.js';
import type { StreamChunk } from '../../src/providers/provider.js';

const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

/** A routed stream of two chunks that records how the attempt was ended, and an Exchange that records settles. */
function exchange() {
  const calls: string[] = [];
  const chunks: StreamChunk[] = [{ data: '{"choices":[]}' }];
  const rest = {
    next: () => Promise.resolve(chunks.length > 0 ? { done: false as const, value: chunks.shift()! } : { done: true as const, value: undefined }),
    return: () => {
      calls.push('return');
      return Promise.resolve({ done: true as const, value: undefined });
    },
    throw: (err: unknown) => {
      calls.push(`throw ${String(err)}`);
      return Promise.resolve({ done: true as const, value: undefined });
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
  const ex = {
    routed: { stream: true, first: { data: '{"choices":[]}' }, rest, candidate: { id: 'local/x' }, attempts: 1 },
    headers: {},
    timedOut: () => false,
    dispose: () => void calls.push('dispose'),
    settle: (usage: unknown, ok: boolean, _reply: unknown, sent: number) => {
      calls.push(`settle ${ok} ${JSON.stringify(usage)} sent=${sent}`);
      return Promise.resolve();
    },
  } as unknown as Exchange;
  return { ex, calls };
}

/** Runs `handle` for one real request; resolves with the status the client got and the body. */
async function serve(handle: (res: http.ServerResponse) => Promise<void>): Promise<{ status: number; body: string }> {
  const server = http.createServer((_req, res) => void handle(res));
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
  return { status: res.status, body: await res.text() };
}

const ctx = { timeoutMs: 60_000 } as unknown as ApiContext;

describe('pump', () => {
  it('a head that cannot be written ends the attempt (return, no verdict), settles the ticket and rejects with the head not sent', async () => {
    const { ex, calls } = exchange();
    let failure: unknown;
    const got = await serve(async (res) => {
      try {
        await pump(
          ctx,
          res,
          ex,
          () => startSse(res, { 'x-switchyard-peer': 'bell\u0007' }),
          () => 'data: x\n\n',
        );
      } catch (err) {
        failure = err;
        expect(res.headersSent).toBe(false);
        res.writeHead(500).end('the route answers in its own format');
      }
    });
    expect(got).toEqual({ status: 500, body: 'the route answers in its own format' });
    expect(failure).toBeDefined();
    // settled as failed with nothing sent: the key is charged the request's estimate (Exchange.settle)
    expect(calls).toEqual(['return', 'settle false undefined sent=0', 'dispose']);
  });

  it('a head that goes out is followed by the chunks, and a normal end settles with ok', async () => {
    const { ex, calls } = exchange();
    const got = await serve(async (res) => {
      const end = await pump(
        ctx,
        res,
        ex,
        () => startSse(res, {}),
        (c) => `data: ${c.data}\n\n`,
      );
      expect(end).toBe('done');
      res.end();
    });
    expect(got.status).toBe(200);
    expect(got.body).toBe('data: {"choices":[]}\n\ndata: {"choices":[]}\n\n');
    expect(calls).toEqual(['settle true undefined sent=2', 'dispose']);
  });
});
