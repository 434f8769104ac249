/**
 * The dialling side takes the version a responder's bridge-hello-ok names only if it offered it: a responder that
 * answers with a version outside the range of our hello (one this build does not speak) gets the link closed with
 * 4505 VERSION_UNSUPPORTED, the bridge shows why and is not retried (a version will not fix itself), and its
 * channels never become routing candidates. Before, any version string was taken and the link opened.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { startRawBridgePeer, type RawPeer } from '../fakes/raw-bridge-peer.js';
import { adminGet, cleanupDirs, startGw, waitFor } from '../helpers/env.js';

const ADMIN = 'hello-ok-version-admin-token-3141';

let peer: RawPeer;
let a: Gateway & { logs: string[] };

beforeAll(async () => {
  peer = await startRawBridgePeer({
    gatewayId: 'gw_future_b',
    gatewayName: 'future-b',
    models: ['future-model'],
    version: '9.9',
    policy: { maxFrameBytes: 1 << 20, heartbeatIntervalMs: 60_000 },
    onFrame: () => undefined,
  });
  a = await startGw({
    gateway: {
      id: 'gw_hello_ok_a',
      admin: { token: ADMIN },
      bridges: [{ name: 'b', url: peer.url, token: 'hello-ok-version-bridge-token-2718', reconnectInterval: 100 }],
    },
    channels: [{ name: 'local', provider: 'mock', models: ['local-model'] }],
  });
});

afterAll(async () => {
  await a?.close();
  await peer?.close();
  cleanupDirs();
});

describe('a responder whose hello-ok names a version we did not offer', () => {
  it('the link is closed (4505), the bridge is failed with the reason and not retried, its models are not served', async () => {
    type Row = { name: string; state: string; lastError: string | null };
    const row = await waitFor(
      async () =>
        (await adminGet<{ peers: Row[] }>(a.url, '/admin/bridges', ADMIN)).peers.find((p) => p.name === 'b' && p.state !== 'connecting' && p.lastError),
      'bridge b settled',
    );
    expect(row.state).toBe('failed');
    expect(row.lastError).toBe('VERSION_UNSUPPORTED: the peer answered protocol version 9.9, which this gateway did not offer (it speaks 1.0, 1.1, 1.2)');
    const models = (await (await fetch(`${a.url}/v1/models`)).json()) as { data: Array<{ id: string }> };
    expect(models.data.map((m) => m.id)).toEqual(['local-model']);
    const notRetrying = a.logs
      .flatMap((l) => l.split('\n'))
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; code?: number })
      .filter((l) => l.msg === 'bridge not retrying');
    expect(notRetrying).toMatchObject([{ code: 4505 }]);
  });
});
