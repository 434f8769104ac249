/**
 * Two gateways dialling each other at the same moment (docs/bridge-protocol.md "Peer identity"): each accepts the
 * other's hello while its own waits for its reply. Each kept the link it dialled and closed the other's, so both
 * links closed and the diallers' retries had to settle it (the geographic-redundancy pair at start). Now the
 * reply names the responder's own hellos still waiting (`dialNonces`), and with that proof both sides keep the link
 * the smaller gateway id dialled. Without it the dialled link still wins: an inbound hello claiming a dialled peer's
 * id never stands in for it.
 *
 * A real gateway process (`gw_m`) and a scripted peer that plays the other gateway's half of the race exactly: it
 * holds its reply to the gateway's hello until it has dialled the gateway and been accepted.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket as NetSocket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { adminGet, cleanupDirs, startProcess, waitFor, wsUrl, type GatewayProcess } from '../helpers/env.js';

const TOKEN = 'simultaneous-dial-token-4c8e2a';
const ADMIN = 'simultaneous-dial-admin-7b3d9f';
const SELF = 'gw_m';
let g: GatewayProcess;
const servers: WebSocketServer[] = [];
const sockets: WebSocket[] = [];
const httpServers: Server[] = [];

beforeAll(async () => {
  g = await startProcess({
    gateway: {
      id: SELF,
      name: 'middle',
      admin: { token: ADMIN },
      // pings every 50 ms prove a link is still held (stillServed); a test process stalled by a loaded machine
      // must not have its links closed as silent meanwhile, so silence is tolerated for 5 s
      bridge: { enabled: true, allowedTokens: [TOKEN], limits: { heartbeatIntervalMs: 50, deadPeerMisses: 100, handshakeTimeoutMs: 2000 } },
    },
    channels: [{ name: 'own', provider: 'mock', models: ['m-model'] }],
  });
});

afterAll(async () => {
  for (const s of sockets) s.terminate();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  for (const h of httpServers) h.closeAllConnections();
  await Promise.all(httpServers.map((h) => new Promise((r) => h.close(r))));
  await g?.stop();
  cleanupDirs();
});

type Frame = Record<string, any> & { type: string };
const CAPS = { shareChannels: true, acceptSessions: false, loadBalance: true };
const CHANNELS = [{ name: 'theirs', provider: 'mock', models: ['p-model'] }];

interface Socket {
  ws: WebSocket;
  frames: Frame[];
  closed: Promise<number>;
}

function watch(ws: WebSocket): Socket {
  sockets.push(ws);
  const frames: Frame[] = [];
  ws.on('message', (d) => {
    const f = JSON.parse(d.toString()) as Frame;
    frames.push(f);
    // a live peer answers heartbeats on every link it holds (the gateway pings every 50 ms here)
    if (f.type === 'bridge-ping' && ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'bridge-pong', ts: f.ts }));
  });
  return { ws, frames, closed: new Promise((r) => ws.once('close', (code) => r(code))) };
}

/**
 * Plays gateway `peerId` in the race: the gateway is told to dial it (admin API); its hello is held; the peer
 * dials the gateway and is accepted; only then does it answer the held hello, with `dialNonces` naming its own
 * hello (`own`), naming another one (`other`), or without them (`none`: an older peer); `peerCloses`: then closes
 * the gateway's dial as the smaller id does in the race. Returns the two sockets: `dialled` (the gateway's dial, seen from the peer's
 * server) and `inbound` (the peer's dial into the gateway).
 */
async function race(
  peerId: string,
  proof: 'own' | 'other' | 'none',
  peerCloses = false,
): Promise<{ dialled: Socket; inbound: Socket; acceptedWith: Frame; gatewayHello: Frame }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  servers.push(wss);
  await new Promise((r) => wss.once('listening', r));
  const arrived = new Promise<Socket>((resolve) => wss.once('connection', (ws) => resolve(watch(ws))));
  const added = await fetch(`${g.url}/admin/bridges`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/bridge`, token: TOKEN, name: `to-${peerId}` }),
  });
  expect(added.status).toBeLessThan(300);
  const dialled = await arrived;
  const gatewayHello = await waitFor(() => dialled.frames[0], "the gateway's hello");
  expect(gatewayHello).toMatchObject({ type: 'bridge-hello', gatewayId: SELF, nonce: expect.any(String) });
  // a later dial of the same bridge (its retry) is refused as a real gateway holding a link would refuse it
  wss.on('connection', (ws) => {
    ws.once('message', () => {
      ws.send(JSON.stringify({ type: 'bridge-error', code: 'DUPLICATE_PEER', message: 'already connected', retryable: true }));
      ws.close(4409, 'duplicate peer');
    });
  });

  const inbound = watch(new WebSocket(wsUrl(g.url)));
  await new Promise((r) => inbound.ws.once('open', r));
  const peerNonce = `n_${peerId}_hello`;
  inbound.ws.send(
    JSON.stringify({
      type: 'bridge-hello',
      gatewayId: peerId,
      gatewayName: peerId,
      version: '1.1',
      minVersion: '1.0',
      maxVersion: '1.1',
      token: TOKEN,
      capabilities: CAPS,
      sharedChannels: CHANNELS,
      nonce: peerNonce,
    }),
  );
  const acceptedWith = await waitFor(() => inbound.frames[0], "the gateway's answer to the peer's hello");
  expect(acceptedWith.type).toBe('bridge-hello-ok');

  dialled.ws.send(
    JSON.stringify({
      type: 'bridge-hello-ok',
      gatewayId: peerId,
      gatewayName: peerId,
      version: '1.1',
      capabilities: CAPS,
      sharedChannels: CHANNELS,
      policy: { maxFrameBytes: 1 << 20, heartbeatIntervalMs: 50 },
      ...(proof === 'none' ? {} : { dialNonces: proof === 'own' ? ['n_unrelated_dial', peerNonce] : ['n_unrelated_dial'] }),
    }),
  );
  // the peer has had the gateway's answer to its own hello: as the smaller id it keeps the link it dialled and
  // closes the one the gateway dialled (mesh.ts register: 'replaced by a newer link')
  if (peerCloses) dialled.ws.close(4409, 'replaced by a newer link');
  return { dialled, inbound, acceptedWith, gatewayHello };
}

const rows = async () =>
  (
    await adminGet<{ peers: Array<{ name: string; id: string | null; direction: string; state: string; lastError: string | null }> }>(
      g.url,
      '/admin/bridges',
      ADMIN,
    )
  ).peers;
const links = async (peerId: string) => (await rows()).filter((p) => p.id === peerId && p.state === 'open');

/** a ping on `s` after this call: the gateway still holds that link */
async function stillServed(s: Socket): Promise<void> {
  const from = s.frames.length;
  await waitFor(() => s.frames.slice(from).some((f) => f.type === 'bridge-ping'), 'a heartbeat on the link');
}

describe('two gateways dialling each other at the same moment keep one link', () => {
  it("names its own hello still waiting in the hello-ok it sends, and yields its dialled link to the smaller id's, proven", async () => {
    const { dialled, inbound, acceptedWith, gatewayHello } = await race('gw_a', 'own', true);
    // the gateway's hello was waiting for its reply when it accepted the peer's: its answer says so
    expect(acceptedWith.dialNonces).toContain(gatewayHello.nonce);
    // gw_m > gw_a: the link gw_a dialled is kept on both sides; the gateway held its own and lets it go
    expect(await dialled.closed).toBe(4409);
    await stillServed(inbound);
    expect(await links('gw_a')).toEqual([expect.objectContaining({ direction: 'inbound' })]);
    const dialler = await waitFor(async () => (await rows()).find((p) => p.name === 'to-gw_a' && p.lastError), "the dialler's reason");
    expect(dialler.lastError).toBe('DUPLICATE_PEER: already linked to gw_a through its own bridge to us (both dialled at once; kept the link gw_a dialled)');
  });

  it('a proof the peer does not confirm by closing the dialled link is not enough: after the handshake timeout the dialled link wins', async () => {
    // an inbound hello repeating a nonce the peer sent elsewhere: the real peer names it, but never closes our dial
    const { dialled, inbound } = await race('gw_d', 'own');
    // what the peer says on the held link meanwhile is not lost: it is read once the link opens
    dialled.ws.send(JSON.stringify({ type: 'bridge-channels', sharedChannels: [{ name: 'theirs', provider: 'mock', models: ['p-model', 'p-later'] }] }));
    expect(await inbound.closed).toBe(4409);
    await stillServed(dialled);
    expect(await links('gw_d')).toEqual([expect.objectContaining({ direction: 'outbound' })]);
    const theirs = await adminGet<{ channels: Array<{ id: string; models: string[] }> }>(g.url, '/admin/channels', ADMIN);
    expect(theirs.channels.find((c) => c.id === 'peer/gw_d/theirs')?.models).toEqual(['p-model', 'p-later']);
  });

  it('names a hello whose dial is still connecting: the peer is told it is coming', async () => {
    // the gateway's dial reaches a server that holds the WebSocket upgrade: its hello is not sent yet
    const wss = new WebSocketServer({ noServer: true });
    servers.push(wss);
    const held = new Promise<[IncomingMessage, NetSocket, Buffer]>((resolve) => {
      const http = createServer();
      http.on('upgrade', (req, socket: NetSocket, head: Buffer) => resolve([req, socket, head]));
      httpServers.push(http);
      http.listen(0, '127.0.0.1', () => {
        void fetch(`${g.url}/admin/bridges`, {
          method: 'POST',
          headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
          body: JSON.stringify({ url: `ws://127.0.0.1:${(http.address() as AddressInfo).port}/bridge`, token: TOKEN, name: 'to-gw_e' }),
        });
      });
    });
    const [req, socket, head] = await held;

    const inbound = watch(new WebSocket(wsUrl(g.url)));
    await new Promise((r) => inbound.ws.once('open', r));
    inbound.ws.send(
      JSON.stringify({ type: 'bridge-hello', gatewayId: 'gw_e', gatewayName: 'gw_e', version: '1.1', token: TOKEN, capabilities: CAPS, nonce: 'n_gw_e_hello' }),
    );
    const acceptedWith = await waitFor(() => inbound.frames[0], "the gateway's answer to the peer's hello");
    expect(acceptedWith.type).toBe('bridge-hello-ok');

    // the upgrade completes: the hello the gateway now sends is one its answer named
    const dialled = await new Promise<Socket>((resolve) => wss.handleUpgrade(req, socket, head, (ws) => resolve(watch(ws))));
    const gatewayHello = await waitFor(() => dialled.frames[0], "the gateway's hello");
    expect(gatewayHello.type).toBe('bridge-hello');
    expect(acceptedWith.dialNonces).toContain(gatewayHello.nonce);
  });

  it('keeps its own dialled link when its id is the smaller one', async () => {
    const { dialled, inbound } = await race('gw_z', 'own');
    expect(await inbound.closed).toBe(4409);
    await stillServed(dialled);
    expect(await links('gw_z')).toEqual([expect.objectContaining({ direction: 'outbound' })]);
  });

  it('without the proof the dialled link replaces the inbound one, whatever the ids', async () => {
    const { dialled, inbound } = await race('gw_b', 'none');
    expect(await inbound.closed).toBe(4409);
    await stillServed(dialled);
    expect(await links('gw_b')).toEqual([expect.objectContaining({ direction: 'outbound' })]);
  });

  it('a hello-ok naming other hellos is no proof: the dialled link wins', async () => {
    const { dialled, inbound } = await race('gw_c', 'other');
    expect(await inbound.closed).toBe(4409);
    await stillServed(dialled);
    expect(await links('gw_c')).toEqual([expect.objectContaining({ direction: 'outbound' })]);
  });
});
