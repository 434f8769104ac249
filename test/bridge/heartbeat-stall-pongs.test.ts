/**
 * A stall of this process is not a peer that answers no ping. The heartbeat closes a link whose oldest unanswered
 * ping has waited deadPeerMisses intervals; after this process was blocked past that (a long synchronous task, a GC
 * pause, a throttled CPU), the peer's pong may wait unread in the socket behind more of its frames than the event
 * loop reads in one turn (libuv reads at most 32 × 64 KiB per socket per turn), so judging the wait by the clock
 * alone, even after one turn of reads, closed a live link. The wait does not count the time the ticks ran late.
 * A peer that goes on sending but answers no ping is still closed.
 *
 * The peer is a real child process on a real TCP socket: it writes a byte every 10 ms (its frames; the link calls
 * `seen()` on every frame), and answers each ping ('p') with 8 MiB of other frames and then its pong ('P'): what
 * a peer busy streaming to us had written before it read the ping.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { Heartbeat } from '../../src/bridge/heartbeat.js';
import type { LinkContext } from '../../src/bridge/link-types.js';
import { CLOSE } from '../../src/wire/bridge-frames.js';
import { waitFor } from '../helpers/env.js';

let server: Server | undefined;
let peer: ChildProcess | undefined;
let hb: Heartbeat | undefined;

afterAll(async () => {
  hb?.stop();
  peer?.kill('SIGKILL');
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
});

const quiet = { warn: () => undefined, info: () => undefined, debug: () => undefined, error: () => undefined };

const PEER = `
const s = require('net').connect(+process.argv[1], '127.0.0.1', () => setInterval(() => s.write('f'), 10));
const filler = Buffer.alloc(8 * 1024 * 1024, 'f');
let mute = false;
s.on('data', (d) => {
  for (const c of d.toString('latin1')) {
    if (c === 'm') mute = true;
    else if (c === 'p' && !mute) { s.write(filler); s.write('P'); }
  }
});
`;

describe('the bridge heartbeat: unanswered pings after a stall of this process', () => {
  it('a pong that waits unread behind the peer’s frames after a stall keeps the link; a peer that stops answering is closed', async () => {
    let socket: Socket | undefined;
    let pongs = 0;
    let pings = 0;
    const closes: number[] = [];
    /** the ts of our pings the peer has not answered yet, oldest first */
    const sentTs: number[] = [];
    const link = {
      open: true,
      // a link before protocol 1.2: pings carry no nonce, a pong is matched on its ts
      peer: { id: 'gw_peer', version: '1.1' },
      limits: { heartbeatIntervalMs: 200, deadPeerMisses: 3 },
      logger: quiet,
      send: (f: { ts: number }) => {
        pings++;
        sentTs.push(f.ts);
        return socket!.write('p');
      },
    };
    server = createServer((s) => {
      socket = s;
      s.on('data', (d: Buffer) => {
        hb?.seen();
        for (let i = d.indexOf(0x50); i !== -1; i = d.indexOf(0x50, i + 1)) {
          pongs++;
          // the peer answers in order: its n-th 'P' echoes our n-th ping's ts
          hb?.pong(sentTs.shift()!);
        }
      });
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    peer = spawn(process.execPath, ['-e', PEER, String(port)]);
    await waitFor(() => socket, 'the peer connected');
    hb = new Heartbeat(link as unknown as LinkContext, (code) => closes.push(code));
    await waitFor(() => pongs >= 5, 'the peer answering pings', 10_000, 10);

    // a ping, then a 2 s stall at once (over three times the 600 ms window): its pong comes after 8 MiB the
    // peer writes meanwhile, more than one turn of the event loop reads
    const answered = pongs;
    hb.ping();
    const until = Date.now() + 2000;
    while (Date.now() < until);
    await waitFor(() => pongs > answered + 5, 'the peer answered again', 10_000, 10);
    expect(closes).toEqual([]);

    // the peer goes on sending but answers no ping: the link is closed as a dead peer's
    const before = pings;
    socket!.write('m');
    await waitFor(() => closes.length > 0, 'the peer that answers no ping closed', 5000, 10);
    expect(closes).toEqual([CLOSE.HEARTBEAT_TIMEOUT]);
    expect(pings).toBeGreaterThan(before + 2);
  });
});
