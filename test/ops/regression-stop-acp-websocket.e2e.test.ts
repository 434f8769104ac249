/**
 * A graceful stop with `/acp` WebSockets open finishes: the listener's close waits for every socket it accepted,
 * and the `/acp` sockets were terminated only after it (with the ACP layer), so SIGTERM with one app connected
 * never ended the process (a second signal, or the service manager's kill, did). Now they are closed with 1001
 * "going away" once the running turns are done, before the listener, as the bridge's links are; a client that
 * does not answer the close is cut after a second. Real process, real sockets.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { cleanupDirs, startProcess, waitFor } from '../helpers/env.js';
import { exitWithin } from '../helpers/sharing-pair.js';

const TOKEN = 'stop-acp-ws-token-5b2e9d';
const started: GatewayProcess[] = [];

afterAll(async () => {
  await Promise.all(started.map((g) => g.stop()));
  cleanupDirs();
});

async function gateway(): Promise<GatewayProcess> {
  const g = await startProcess({
    gateway: { id: 'gw_stopws', shutdownGraceMs: 30_000 },
    channels: [{ name: 'slow', provider: 'mock', models: ['slow-1'], options: { delayMs: 1500 } }],
    acp: { tokens: [TOKEN], gateways: [{ id: 'slowgw', label: 'Slow', kind: 'channels', model: 'slow-1' }] },
  });
  started.push(g);
  return g;
}

async function open(g: GatewayProcess): Promise<WebSocket> {
  const ws = new WebSocket(`${g.url.replace(/^http/, 'ws')}/acp`, { headers: { authorization: `Bearer ${TOKEN}` } });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return ws;
}

const closed = (ws: WebSocket) =>
  new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, r) => resolve({ code, reason: String(r) })));

/** A client that completes the upgrade and then answers nothing (no close frame back): it only reads. */
async function deafClient(g: GatewayProcess): Promise<{ socket: Socket; ended: Promise<void> }> {
  const { port } = new URL(g.url);
  const socket = connect(Number(port), '127.0.0.1');
  let head = '';
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.on('data', function onData(b: Buffer) {
      head += b.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      socket.on('data', () => undefined); // reads on, answers nothing
      resolve();
    });
    socket.write(
      `GET /acp HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`,
    );
  });
  expect(head.startsWith('HTTP/1.1 101')).toBe(true);
  return { socket, ended: new Promise<void>((resolve) => socket.once('close', () => resolve())) };
}

describe('a graceful stop with /acp WebSockets open', () => {
  it('closes an idle socket with 1001 and ends the process, with a deaf client cut', { timeout: 60_000 }, async () => {
    const g = await gateway();
    const app = await open(g);
    const deaf = await deafClient(g);
    const appClosed = closed(app);
    g.proc.kill('SIGTERM');
    expect(await appClosed).toEqual({ code: 1001, reason: 'gateway shutting down' });
    // a stop that waited for the sockets would wait out the 30 s grace and more (for ever, before)
    expect(await exitWithin(g, 15_000)).toBe(0);
    await deaf.ended;
  });

  it('lets a running turn finish and deliver its result on the socket, then closes it', { timeout: 60_000 }, async () => {
    const g = await gateway();
    const app = await open(g);
    const messages: any[] = [];
    app.on('message', (d) => messages.push(JSON.parse(String(d))));
    const appClosed = closed(app);
    app.send(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 7,
        method: 'session.start',
        params: { sessionId: 'stop-ws-s1', taskPrompt: 'take your time', executionTarget: 'gateway', gatewayProviderId: 'slowgw' },
      }),
    );
    // the turn is running (its first update is in) when the stop begins
    await waitFor(() => messages.some((m) => m.method === 'session.update'), 'the turn running');
    g.proc.kill('SIGTERM');
    expect(await appClosed).toEqual({ code: 1001, reason: 'gateway shutting down' });
    const result = messages.find((m) => m.id === 7);
    expect(result?.error).toBeUndefined();
    expect(result?.result).toBeDefined();
    // the result came before the close: nothing after it
    expect(messages.indexOf(result)).toBe(messages.length - 1);
    expect(await exitWithin(g, 15_000)).toBe(0);
  });
});
