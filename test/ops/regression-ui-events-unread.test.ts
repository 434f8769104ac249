/**
 * A status page stream (`/ui/events`) whose client stopped reading holds one snapshot for it, not one per interval.
 * Before, every snapshot was written whatever the client had taken: a tab the browser froze, or a laptop asleep with
 * its connection up, had a snapshot more wait in the response's buffer each interval, for as long as the connection
 * stayed up. Here the snapshots are 2 MiB (the overview is replaced by one that large) and come every 200 ms to a
 * real client socket whose read side is paused: what the sockets cannot take (the kernel's own maximum, read from
 * /proc) is passed within seconds, and from then on the response's buffer must still hold no more than one.
 */
import http from 'node:http';
import { connect, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { OverviewDeps } from '../../src/http/overview.js';
import { waitFor } from '../helpers/env.js';
import { uiRoutes } from '../../src/http/routes/ui.js';

/** the snapshots made (`buildOverview` calls); each is 2 MiB */
const made = vi.hoisted(() => ({ builds: 0, size: 2 * 1024 * 1024 }));
vi.mock('../../src/http/overview.js', () => ({
  buildOverview: () => {
    made.builds++;
    return Promise.resolve({ pad: 'o'.repeat(made.size) });
  },
}));
const SNAPSHOT = made.size;

const servers: http.Server[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

/** The most a TCP socket pair may buffer here: the receiver's and the sender's autotuning maxima, in bytes. */
const kernelMax = (): number =>
  ['tcp_rmem', 'tcp_wmem'].map((f) => Number(readFileSync(`/proc/sys/net/ipv4/${f}`, 'utf8').trim().split(/\s+/)[2])).reduce((a, b) => a + b);

describe('/ui/events and a client that stopped reading', () => {
  it('holds one snapshot for it: the next is made once the client has taken the last', async () => {
    const deps = {
      config: { gateway: { host: '127.0.0.1', admin: {} } },
      obs: { draining: false, onDrain: () => () => undefined },
    } as unknown as OverviewDeps;
    const route = uiRoutes(deps);
    // the most the response's buffer held, and what was written in all
    let maxBuffered = 0;
    let written = 0;
    const server = http.createServer((req, res) => {
      const write = res.write.bind(res) as (chunk: string) => boolean;
      res.write = ((chunk: string) => {
        const ok = write(chunk);
        written += chunk.length;
        maxBuffered = Math.max(maxBuffered, res.writableLength);
        return ok;
      }) as typeof res.write;
      void route(req, res, '/ui/events', 'r1');
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));

    const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
    sockets.push(socket);
    socket.on('error', () => undefined);
    const first = new Promise<string>((resolve) => socket.once('data', (b: Buffer) => (socket.pause(), resolve(b.toString('latin1')))));
    socket.write('GET /ui/events?interval=200 HTTP/1.1\r\nhost: x\r\n\r\n');
    expect((await first).startsWith('HTTP/1.1 200')).toBe(true);

    // snapshots well past what the sockets take, had every one been written (before, they were: one each 200 ms)
    const past = kernelMax() + 16 * SNAPSHOT;
    const ticks = Math.ceil(past / SNAPSHOT);
    const start = Date.now();
    await waitFor(() => Date.now() - start >= ticks * 200 + 1000 || maxBuffered > 2 * SNAPSHOT, `${ticks} ticks of 200 ms`, ticks * 200 + 10_000);
    // one snapshot at most waits in the response (with the chunk framing and a head), never one per interval
    expect(maxBuffered).toBeLessThan(SNAPSHOT + 64 * 1024);
    expect(written).toBeLessThan(past);
    // snapshots stopped being made once the sockets were full
    expect(made.builds).toBeLessThan(ticks);

    // and a client that reads again gets the stream going on
    const seen = made.builds;
    socket.resume();
    await waitFor(() => made.builds > seen + 2, 'snapshots made again for a client that reads');
  }, 60_000);
});
