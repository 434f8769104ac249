/**
 * `gateway.bridge.minProtocolVersion`: a gateway told to speak nothing below 1.2 (where every pong must echo the
 * ping's nonce) refuses, in both roles, a peer that offers less, instead of falling back to pongs matched on the
 * ping's time alone. The default keeps every version (older builds keep working).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Gateway } from '../../src/gateway.js';
import { validateConfig } from '../../src/config/load.js';
import { helloFrame, startRawBridgePeer, type RawPeer } from '../fakes/raw-bridge-peer.js';
import { adminGet, cleanupDirs, startGw, waitFor, wsUrl } from '../helpers/env.js';

const ADMIN = 'min-version-admin-token-1618';
const TOKEN = 'min-version-bridge-token-5772';

let strict: Gateway & { logs: string[] };
let dialler: Gateway & { logs: string[] };
let oldPeer: RawPeer;

beforeAll(async () => {
  strict = await startGw({
    gateway: { id: 'gw_strict', admin: { token: ADMIN }, bridge: { enabled: true, allowedTokens: [TOKEN], minProtocolVersion: '1.2', shareChannels: ['s'] } },
    channels: [{ name: 's', provider: 'mock', models: ['strict-model'] }],
  });
  // a peer of a build before 1.2: it answers 1.1 to whatever range it is offered
  oldPeer = await startRawBridgePeer({
    gatewayId: 'gw_old',
    gatewayName: 'old',
    models: ['old-model'],
    version: '1.1',
    policy: { maxFrameBytes: 1 << 20, heartbeatIntervalMs: 60_000 },
    onFrame: () => undefined,
  });
  dialler = await startGw({
    gateway: {
      id: 'gw_dialler',
      admin: { token: ADMIN },
      bridge: { minProtocolVersion: '1.2' },
      bridges: [
        { name: 'strict', url: wsUrl(strict.url), token: TOKEN, reconnectInterval: 100 },
        { name: 'old', url: oldPeer.url, token: 'min-version-old-token-1414', reconnectInterval: 100 },
      ],
    },
    channels: [],
  });
});

afterAll(async () => {
  await dialler?.close();
  await strict?.close();
  await oldPeer?.close();
  cleanupDirs();
});

/** Sends `hello` on a new socket to the strict gateway; the first frame back and how the socket closed. */
async function handshake(hello: string): Promise<{ first: Record<string, unknown>; close: number | undefined }> {
  const ws = new WebSocket(wsUrl(strict.url));
  const first = new Promise<Record<string, unknown>>((resolve) => ws.once('message', (d) => resolve(JSON.parse(String(d)))));
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  await new Promise((r) => ws.once('open', r));
  ws.send(hello);
  const f = await first;
  const close = f.type === 'bridge-error' ? await closed : undefined;
  ws.terminate();
  return { first: f, close };
}

describe('gateway.bridge.minProtocolVersion: "1.2"', () => {
  it('as responder: a hello that offers no more than 1.1 is refused with VERSION_UNSUPPORTED (4505); one that reaches 1.2 gets 1.2', async () => {
    const low = await handshake(helloFrame('gw_low', TOKEN, { version: '1.1', minVersion: '1.0', maxVersion: '1.1' }));
    expect(low.first).toMatchObject({
      type: 'bridge-error',
      code: 'VERSION_UNSUPPORTED',
      message: 'no common protocol version (we speak 1.2; peer offered 1.0–1.1)',
    });
    expect(low.close).toBe(4505);
    const plain = await handshake(helloFrame('gw_plain', TOKEN));
    expect(plain.first).toMatchObject({ type: 'bridge-error', code: 'VERSION_UNSUPPORTED' });
    const ok = await handshake(helloFrame('gw_new', TOKEN, { version: '1.2', minVersion: '1.0', maxVersion: '1.2' }));
    expect(ok.first).toMatchObject({ type: 'bridge-hello-ok', version: '1.2' });
  });

  it('as initiator: it offers 1.2 only, links to a 1.2 peer, and fails (not retried) a peer that answers 1.1', async () => {
    type Row = { name: string; state: string; protocol?: string; lastError: string | null };
    const rows = () => adminGet<{ peers: Row[] }>(dialler.url, '/admin/bridges', ADMIN).then((r) => r.peers);
    const linked = await waitFor(async () => (await rows()).find((p) => p.name === 'strict' && p.state === 'open'), 'link to the strict gateway');
    expect(linked.protocol).toBe('1.2');
    const old = await waitFor(async () => (await rows()).find((p) => p.name === 'old' && p.state === 'failed'), 'bridge to the old peer failed');
    expect(old.lastError).toBe('VERSION_UNSUPPORTED: the peer answered protocol version 1.1, which this gateway did not offer (it speaks 1.2)');
  });
});

describe('the setting itself', () => {
  it('defaults to every version this build speaks, and takes no version it does not', () => {
    expect(validateConfig({}, 'test').gateway.bridge.minProtocolVersion).toBe('1.0');
    expect(() => validateConfig({ gateway: { bridge: { minProtocolVersion: '1.3' } } }, 'test')).toThrow(/gateway\.bridge\.minProtocolVersion/);
  });
});
