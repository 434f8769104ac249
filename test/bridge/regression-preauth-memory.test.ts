/**
 * Regression (issue 10, item 2): an unauthenticated bridge socket could make the gateway buffer up to
 * 32 MiB (the WebSocket limit was the post-auth one; preAuthFrameBytes was checked only on the buffered
 * message), and every pre-auth socket was accepted (maxPeers counts only authenticated links). Against a
 * real gateway process: ten 30 MiB first frames, then 1,000 idle pre-auth sockets from ten source
 * addresses. RSS (VmRSS from /proc) and fd growth are asserted loosely, and the gateway keeps serving.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { cleanupDirs, startProcess, waitFor, wsUrl } from '../helpers/env.js';
import type { GatewayProcess } from '../helpers/env.js';

const TOKEN = 'bridge-token-preauth-0123456789';
const MiB = 1024 * 1024;
let gw: GatewayProcess;
let port: number;

const rssBytes = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
const fdCount = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

/** Samples the gateway's RSS every 20 ms while `work` runs; resolves with the highest value seen. */
async function peakRssDuring(pid: number, work: Promise<unknown>): Promise<number> {
  let peak = rssBytes(pid);
  let done = false;
  const sampler = (async () => {
    while (!done) {
      peak = Math.max(peak, rssBytes(pid));
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  try {
    await work;
  } finally {
    done = true;
    await sampler;
  }
  return Math.max(peak, rssBytes(pid));
}

/** A raw WebSocket upgrade on /bridge; resolves with the HTTP status line's code and the socket. */
function upgrade(localAddress = '127.0.0.1'): Promise<{ status: number; socket: Socket; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress });
    let buf = Buffer.alloc(0);
    socket.once('error', reject);
    socket.on('connect', () =>
      socket.write(
        `GET /bridge HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      ),
    );
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.off('error', reject);
      socket.on('error', () => undefined);
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(buf.toString('latin1'))?.[1] ?? 0), socket, rest: buf.subarray(end + 4) });
    };
    socket.on('data', onData);
  });
}

/**
 * After the upgrade: one masked text frame header announcing `size` bytes, then the payload in 1 MiB
 * writes (mask key 0, so the bytes go as they are) until all is sent or the server ends the socket.
 * Resolves with the close code the server sent (0 when none) and the bytes it accepted from us.
 */
async function sendHugeFirstFrame(size: number): Promise<{ closeCode: number; sent: number }> {
  const { status, socket, rest } = await upgrade();
  expect(status).toBe(101);
  let received = rest;
  socket.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  let gone = false;
  void ended.then(() => (gone = true));
  const header = Buffer.alloc(14);
  header[0] = 0x81; // FIN, text
  header[1] = 0x80 | 127; // masked, 64-bit length
  header.writeBigUInt64BE(BigInt(size), 2);
  // bytes 10..13: mask key 0
  const chunk = Buffer.alloc(MiB, 0x61);
  let sent = 0;
  // one write at a time, each awaited until the socket took it (its callback also runs when the socket is gone):
  // a 'drain' listener per write piled up on the socket while the server held its reads back
  const write = (b: Buffer) => new Promise<void>((resolve) => void socket.write(b, () => resolve()));
  await write(header);
  while (sent < size && !gone) {
    await Promise.race([write(chunk), ended]);
    sent += MiB;
  }
  await Promise.race([ended, new Promise((r) => setTimeout(r, 3000))]);
  socket.destroy();
  // the server's close frame, if any: 0x88, length, 2-byte code
  const at = received.indexOf(0x88);
  const closeCode = at >= 0 && received.length >= at + 4 ? received.readUInt16BE(at + 2) : 0;
  return { closeCode, sent };
}

async function stillServing(): Promise<void> {
  const res = await fetch(`${gw.url}/v1/models`);
  expect(res.status).toBe(200);
  expect(gw.proc.exitCode).toBeNull();
}

beforeAll(async () => {
  const p = await startProcess({
    gateway: {
      id: 'gw_preauth',
      // handshakeTimeoutMs long enough that idle sockets stay unauthenticated for the whole measurement
      bridge: { enabled: true, allowedTokens: [TOKEN], maxUnauthenticatedPerIp: 16, limits: { handshakeTimeoutMs: 60_000 } },
    },
    channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
  });
  gw = p;
  port = Number(new URL(gw.url).port);
}, 30_000);

afterAll(async () => {
  await gw?.stop();
  cleanupDirs();
});

describe('unauthenticated bridge sockets cost (almost) nothing', () => {
  it('ten 30 MiB first frames are refused on their header (1009): RSS grows < 64 MB, the gateway stays up', async () => {
    const pid = gw.proc.pid!;
    const before = rssBytes(pid);
    const results: Array<{ closeCode: number; sent: number }> = [];
    const peak = await peakRssDuring(pid, Promise.all(Array.from({ length: 10 }, () => sendHugeFirstFrame(30 * MiB).then((r) => results.push(r)))));
    expect(results).toHaveLength(10);
    // the server ended each socket without reading the frame (1009 = message too big)
    expect(results.map((r) => r.closeCode)).toEqual(Array(10).fill(1009));
    expect(peak - before).toBeLessThan(64 * MiB);
    await stillServing();
  }, 120_000);

  it('1,000 idle pre-auth sockets: at most maxUnauthenticated are kept (429 per address, 503 in total); fds and RSS stay bounded', async () => {
    const pid = gw.proc.pid!;
    const fdsBefore = fdCount(pid);
    const rssBefore = rssBytes(pid);
    const sockets: Socket[] = [];
    const statuses = new Map<number, number>();
    try {
      // ten source addresses on the loopback net, 100 sockets each, so both caps are exercised
      for (let batch = 0; batch < 10; batch++) {
        const outcomes = await Promise.all(Array.from({ length: 100 }, () => upgrade(`127.0.0.${batch + 1}`)));
        for (const o of outcomes) {
          statuses.set(o.status, (statuses.get(o.status) ?? 0) + 1);
          sockets.push(o.socket);
        }
      }
      const accepted = statuses.get(101) ?? 0;
      expect(accepted + (statuses.get(429) ?? 0) + (statuses.get(503) ?? 0)).toBe(1000);
      expect(accepted).toBeLessThanOrEqual(64); // gateway.bridge.maxUnauthenticated (default)
      expect(statuses.get(429)).toBeGreaterThan(0);
      expect(statuses.get(503)).toBeGreaterThan(0);
      // measured while every accepted socket is still open and idle
      expect(fdCount(pid) - fdsBefore).toBeLessThan(200);
      expect(rssBytes(pid) - rssBefore).toBeLessThan(64 * MiB);
      await stillServing();
    } finally {
      for (const s of sockets) s.destroy();
    }
    // the slots come back: a real peer can authenticate again
    await waitFor(
      () =>
        new Promise<boolean>((resolve) => {
          const ws = new WebSocket(wsUrl(gw.url));
          ws.on('error', () => resolve(false));
          ws.on('unexpected-response', () => resolve(false));
          ws.on('open', () =>
            ws.send(
              JSON.stringify({
                type: 'bridge-hello',
                gatewayId: 'gw_real',
                gatewayName: 'real',
                version: '1.0',
                token: TOKEN,
                capabilities: { shareChannels: false, acceptSessions: false, loadBalance: false },
                sharedChannels: [],
              }),
            ),
          );
          ws.on('message', (d) => {
            resolve((JSON.parse(d.toString()) as { type: string }).type === 'bridge-hello-ok');
            ws.close();
          });
        }),
      'a real peer authenticated after the flood',
      15_000,
      200,
    );
  }, 120_000);
});
