/**
 * Regression: a bridge peer's error text (`lastError`: a peer's `bridge-error`, a close reason) was scrubbed on
 * /admin/bridges but not on /admin/overview, so the snapshot behind `switchyard status` (its LAST ERROR column)
 * and the status page's /ui/events stream carried whatever secret the peer echoed. A real gateway process
 * bridged to a raw peer that answers with a `bridge-error` quoting the bridge token this gateway sent it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { startRawBridgePeer, type RawPeer } from '../fakes/raw-bridge-peer.js';
import { adminGet, cleanupDirs, startProcess, waitFor } from '../helpers/env.js';
import { runCli } from '../ops/cli-run.js';

const ADMIN = 'overview-admin-token-3e91';
const BRIDGE_TOKEN = 'overview-bridge-token-7c40d2';
let peer: RawPeer;
let a: GatewayProcess;

beforeAll(async () => {
  peer = await startRawBridgePeer({
    gatewayId: 'gw_echo',
    gatewayName: 'echo',
    models: ['echo-1'],
    policy: { maxFrameBytes: 1024 * 1024, heartbeatIntervalMs: 5_000 },
    // heartbeats answered: the link stays open
    onFrame: (ws, f) => {
      if (f.type === 'bridge-ping') ws.send(JSON.stringify({ type: 'bridge-pong', ts: f.ts }));
    },
    afterHello: (ws) =>
      ws.send(JSON.stringify({ type: 'bridge-error', code: 'INTERNAL', message: `upstream refused Bearer-less token ${BRIDGE_TOKEN}`, retryable: false })),
  });
  a = await startProcess({
    gateway: { id: 'gw_ov', name: 'office', admin: { token: ADMIN }, bridges: [{ name: 'echo', url: peer.url, token: BRIDGE_TOKEN, shareChannels: false }] },
    channels: [],
  });
  await waitFor(async () => (await adminGet(a.url, '/admin/bridges', ADMIN)).peers[0]?.lastError, "the peer's error on /admin/bridges");
}, 30_000);

afterAll(async () => {
  await a?.stop();
  await peer?.close();
  cleanupDirs();
});

describe("a peer's error text on the operator's views", () => {
  it('is scrubbed on /admin/overview and `switchyard status` as on /admin/bridges', async () => {
    const bridges = await adminGet(a.url, '/admin/bridges', ADMIN);
    expect(bridges.peers[0].lastError).toBe('INTERNAL: upstream refused Bearer-less token [REDACTED]');

    const overview = await adminGet(a.url, '/admin/overview', ADMIN);
    expect(overview.peers[0].lastError).toBe('INTERNAL: upstream refused Bearer-less token [REDACTED]');

    const status = await runCli(['status', '--url', a.url, '--token', ADMIN]);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain('INTERNAL: upstream refused Bearer-less token [REDACTED]');
    expect(status.stdout).not.toContain(BRIDGE_TOKEN);
  });

  it('is scrubbed on the status page stream (/ui/events)', async () => {
    const ctrl = new AbortController();
    const res = await fetch(`${a.url}/ui/events`, { headers: { authorization: `Bearer ${ADMIN}` }, signal: ctrl.signal });
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('\n\n')) {
      const r = await reader.read();
      if (r.done) break;
      text += Buffer.from(r.value).toString();
    }
    ctrl.abort();
    const snap = JSON.parse(text.slice(text.indexOf('data: ') + 6, text.indexOf('\n\n')));
    expect(snap.peers[0].lastError).toBe('INTERNAL: upstream refused Bearer-less token [REDACTED]');
    expect(text).not.toContain(BRIDGE_TOKEN);
  });
});
