/**
 * Pins the private ws detail the bridge and the OpenClaw client rely on (`raiseMaxPayload`,
 * src/util/ws-internals.ts): a server socket's message limit can be raised after it was accepted, and the new
 * limit applies from the next frame. If a ws upgrade changes its internals, this fails before any bridge link does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import WebSocket, { WebSocketServer } from 'ws';
import { preAuthPayloadLimit } from '../../src/bridge/ws-limits.js';
import { raiseMaxPayload } from '../../src/util/ws-internals.js';

let http: Server;
let wss: WebSocketServer;
let url: string;
const raisedTo = 1024 * 1024;

beforeAll(async () => {
  http = createServer();
  wss = new WebSocketServer({ server: http, maxPayload: 16 * 1024 });
  // raise on the first message ("auth"), echo the size of every later one
  wss.on('connection', (ws) => {
    ws.on('error', () => undefined); // the 1009 refusals below surface here too
    let authed = false;
    ws.on('message', (d: Buffer) => {
      if (!authed) {
        authed = true;
        ws.send(String(raiseMaxPayload(ws, raisedTo)));
        return;
      }
      ws.send(String(d.length));
    });
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
  const a = http.address();
  url = `ws://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
});
afterAll(async () => {
  wss.close();
  await new Promise((r) => http.close(r));
});

function client() {
  const ws = new WebSocket(url);
  const got: string[] = [];
  let closeCode: number | undefined;
  ws.on('message', (d) => got.push(d.toString()));
  ws.on('close', (c) => (closeCode = c));
  ws.on('error', () => undefined);
  const opened = new Promise<void>((r) => ws.once('open', () => r()));
  const closed = new Promise<void>((r) => ws.once('close', () => r()));
  const next = async (n: number) => {
    const until = Date.now() + 5000;
    while (got.length < n && closeCode === undefined && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  };
  return { ws, got, opened, closed, next, closeCode: () => closeCode };
}

describe('ws message limit, raised after accept', () => {
  it('before the raise a message over the limit is refused with 1009', async () => {
    const c = client();
    await c.opened;
    c.ws.send('x'.repeat(64 * 1024));
    await c.closed;
    expect(c.closeCode()).toBe(1009);
  });

  it('after the raise the same message passes, and the new limit holds', async () => {
    const c = client();
    await c.opened;
    c.ws.send('auth');
    await c.next(1);
    expect(c.got[0]).toBe('true');
    c.ws.send('x'.repeat(64 * 1024));
    await c.next(2);
    expect(c.got[1]).toBe(String(64 * 1024));
    c.ws.send('x'.repeat(raisedTo + 1));
    await c.closed;
    expect(c.closeCode()).toBe(1009);
  });

  it('the pre-auth limit leaves room for the protocol answer just over preAuthFrameBytes', () => {
    expect(preAuthPayloadLimit(64 * 1024)).toBe(128 * 1024);
    expect(preAuthPayloadLimit(2048)).toBe(2048 + 16 * 1024);
  });
});
