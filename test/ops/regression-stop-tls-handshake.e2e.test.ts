/**
 * A graceful stop of an HTTPS gateway with a connection still in its TLS handshake finishes: node's HTTP layer
 * tracks a TLS connection (and `closeAllConnections` cuts it) only once the handshake is done, and the listener's
 * close waits for every TCP connection it accepted, so a client that connected and sent nothing (a TCP health
 * check that holds the connection, a client whose network went away), or only part of its hello, held the stop
 * until node's TLS handshake timeout (120 s): past any service manager's stop timeout, which then killed the
 * process before the ACP layer, the pending usage records and the store were closed. Now the stop cuts such a
 * connection with the listener's other sockets. Real process, real sockets.
 */
import { readFileSync } from 'node:fs';
import { get } from 'node:https';
import { connect, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { cleanupDirs, startProcess, tmpDir } from '../helpers/env.js';
import { exitWithin } from '../helpers/sharing-pair.js';
import { selfSigned } from '../helpers/tls.js';

const started: GatewayProcess[] = [];
const clients: Socket[] = [];

afterAll(async () => {
  for (const c of clients) c.destroy();
  await Promise.all(started.map((g) => g.stop()));
  cleanupDirs();
});

/** A TCP connection to the gateway that sends `first` (maybe nothing) and then nothing more; resolves when connected. */
async function stalled(url: string, first: Buffer): Promise<{ ended: Promise<void> }> {
  const socket = connect(Number(new URL(url).port), '127.0.0.1');
  clients.push(socket);
  socket.on('data', () => undefined);
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  if (first.length > 0) socket.write(first);
  return { ended: new Promise<void>((resolve) => socket.once('close', () => resolve())) };
}

/** GET /healthz over HTTPS trusting `ca`, on a connection of its own: the status */
function healthz(url: string, ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = get(`${url}/healthz`, { ca, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.once('error', reject);
  });
}

describe('a graceful stop of an HTTPS gateway', () => {
  it('cuts connections still in their TLS handshake and ends the process', { timeout: 60_000 }, async () => {
    const dir = tmpDir();
    const pem = selfSigned(dir, 'gw');
    const g = await startProcess(
      { gateway: { id: 'gw_stoptls', shutdownGraceMs: 1000, tls: pem }, channels: [{ name: 'm', provider: 'mock', models: ['m-1'] }] },
      {},
      dir,
    );
    started.push(g);
    expect(g.url.startsWith('https://')).toBe(true);
    const silent = await stalled(g.url, Buffer.alloc(0));
    // a TLS record header (handshake, 512 bytes announced) and none of the record
    const partial = await stalled(g.url, Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]));
    // the gateway serves meanwhile (a handshake that completes, on a third connection)
    expect(await healthz(g.url, readFileSync(pem.cert, 'utf8'))).toBe(200);
    g.proc.kill('SIGTERM');
    // the grace is 1 s; before, the stop waited for node's 120 s TLS handshake timeout
    expect(await exitWithin(g, 10_000)).toBe(0);
    await silent.ended;
    await partial.ended;
    expect(g.logs()).not.toContain('"level":"error"');
  });
});
