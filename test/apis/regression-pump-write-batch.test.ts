/**
 * `pump` moves at most WRITE_BATCH_CHARS of a stream's ready chunks into the response per write. It took every
 * chunk the stream held in one write: a client that read slower than a bridged stream arrived got the stream's
 * whole backlog moved from the stream's queue (where the bridge's flow control counts what waits for the client)
 * into the response's buffer (where nothing does). The queue then looked read: the peer was resumed and the
 * link's budget for unconfirmed pauses given back while all of it still waited for the client, so a peer that
 * answers no ping was never abandoned (test/bridge/stream-pause.e2e.test.ts failed so under load) and what the
 * gateway held for one slow client had no bound. Here a stream far larger than the sockets between server and
 * client take (the kernel's own maximum, read from /proc) is pumped to a real client: what waits beyond the
 * sockets stays in the queue, so its low-water watch (what resumes a paused peer) fires only once the client has
 * read nearly all of it; the response's buffer never holds more than a batch; the stream arrives whole, in order.
 */
import http from 'node:http';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { pump, startSse, WRITE_BATCH_CHARS, type ApiContext, type Exchange } from '../../src/apis/common/exchange.js';
import { STREAM_RESUME_CHARS } from '../../src/bridge/forwarding.js';
import type { StreamChunk } from '../../src/providers/provider.js';
import { AsyncQueue } from '../../src/util/async-queue.js';
import { sseData } from '../helpers/env.js';

const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

/** The most a TCP socket pair may buffer here: the receiver's and the sender's autotuning maxima, in bytes. */
const kernelMax = (): number =>
  ['tcp_rmem', 'tcp_wmem'].map((f) => Number(readFileSync(`/proc/sys/net/ipv4/${f}`, 'utf8').trim().split(/\s+/)[2])).reduce((a, b) => a + b);

const MI = 1024 * 1024;
const PIECE = 32 * 1024;

describe('pump and a slow client', () => {
  it('what the sockets cannot take stays in the stream: a write carries at most a batch, and the queue reads low only once the client has read nearly all', async () => {
    const socketsTake = kernelMax();
    // everything the sockets may hold, and 16 Mi more that can only wait in the gateway
    const count = Math.ceil((socketsTake + 16 * MI) / PIECE);
    const pad = 'p'.repeat(PIECE - 20);
    const queue = new AsyncQueue<StreamChunk>((c) => c.data.length);
    for (let i = 0; i < count; i++) queue.push({ data: `{"i":${i},"p":"${pad}"}` });
    queue.end();
    const first = queue.takeReady()!;
    const total = queue.held + first.data.length;

    // what the client has read so far, and what it had read when the queue first held STREAM_RESUME_CHARS or less
    let clientRead = 0;
    let readAtLow: number | undefined;
    queue.whenHeldAtMost(STREAM_RESUME_CHARS, () => (readAtLow = clientRead));

    let maxBuffered = 0;
    let end: string | undefined;
    const ex = {
      routed: { stream: true, first, rest: queue, candidate: { id: 'local/x' }, attempts: 1 },
      headers: {},
      timedOut: () => false,
      dispose: () => undefined,
      settle: () => Promise.resolve(),
    } as unknown as Exchange;
    const server = http.createServer((_req, res) => {
      const write = res.write.bind(res) as (chunk: string) => boolean;
      res.write = ((chunk: string) => {
        const ok = write(chunk);
        maxBuffered = Math.max(maxBuffered, res.writableLength);
        return ok;
      }) as typeof res.write;
      void pump(
        { timeoutMs: 600_000 } as unknown as ApiContext,
        res,
        ex,
        () => startSse(res, {}),
        (c) => `data: ${c.data}\n\n`,
      ).then((e) => {
        end = e;
        res.end();
      });
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));

    const body = await new Promise<string>((resolve, reject) => {
      http
        .get(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, (res) => {
          const parts: string[] = [];
          res.setEncoding('utf8');
          res.on('data', (d: string) => {
            clientRead += d.length;
            parts.push(d);
          });
          res.on('end', () => resolve(parts.join('')));
          res.on('error', reject);
        })
        .on('error', reject);
    });

    expect(end).toBe('done');
    const events = sseData(body).map((d) => (JSON.parse(d) as { i: number }).i);
    expect(events).toEqual(Array.from({ length: count }, (_, i) => i));
    // the response's buffer holds a batch (one chunk past WRITE_BATCH_CHARS at most), with the head or what was
    // left of a write that returned true (less than the high-water mark), never the backlog
    expect(maxBuffered).toBeLessThan(WRITE_BATCH_CHARS + PIECE + 16 * 1024);
    // the queue read low only once the client had read all but what the sockets, a batch and the low mark hold
    // (before, the first write took the whole backlog: it read low with nothing read)
    expect(readAtLow).toBeGreaterThanOrEqual(total - socketsTake - WRITE_BATCH_CHARS - PIECE - STREAM_RESUME_CHARS - MI);
    expect(total - socketsTake).toBeGreaterThan(15 * MI);
  }, 60_000);
});
