/**
 * A stall of this process is not the peer's silence. Node runs due timers before it reads the sockets, so after
 * this process was blocked past the dead-peer window (a long synchronous task, a GC pause, a throttled CPU) the
 * heartbeat's tick came first and closed the link while the peer's frames of that time waited unread. The verdict
 * is now taken after the pending reads. A peer that is really silent is still closed.
 *
 * The peer is a real child process writing to a real TCP socket every 10 ms; its bytes stand for its frames
 * (the link calls `seen()` on every frame it reads).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { Heartbeat } from '../../src/bridge/heartbeat.js';
import type { LinkContext } from '../../src/bridge/link-types.js';
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

describe('the bridge heartbeat after a stall of this process', () => {
  it('reads what the peer sent during the stall before it judges the peer silent; a silent peer is still closed', async () => {
    let reads = 0;
    let stall = false;
    // a link before protocol 1.2 (no ping nonce): what this test reads is the peer's bytes, not its pongs
    const link = {
      open: true,
      peer: { id: 'gw_peer', version: '1.1' },
      limits: { heartbeatIntervalMs: 200, deadPeerMisses: 3 },
      logger: quiet,
      send: () => undefined,
    };
    const closes: number[] = [];
    server = createServer((socket) =>
      socket.on('data', () => {
        reads++;
        hb?.seen();
        if (!stall) return;
        // a long synchronous task in an I/O callback (say, a request handler parsing a huge body): 2 s, over three
        // times the dead-peer window (3 × 200 ms, wide enough that a loaded machine does not starve the peer that long)
        stall = false;
        const until = Date.now() + 2000;
        while (Date.now() < until);
      }),
    );
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    peer = spawn(process.execPath, ['-e', `const s = require('net').connect(${port}, '127.0.0.1', () => setInterval(() => s.write('f'), 10));`]);
    await waitFor(() => reads >= 5, 'the peer writing');
    hb = new Heartbeat(link as unknown as LinkContext, (code) => closes.push(code));
    await waitFor(() => reads >= 15, 'the peer writing with the heartbeat on');

    stall = true;
    await waitFor(() => !stall, 'the stall');
    const after = reads;
    await waitFor(() => reads >= after + 10, 'the peer read again');
    expect(closes).toEqual([]);

    // the peer falls silent: the link is closed as a dead peer's
    peer.kill('SIGSTOP');
    await waitFor(() => closes.length > 0, 'the silent peer closed', 5000);
    expect(closes).toEqual([4001]);
    peer.kill('SIGCONT');
  });
});
