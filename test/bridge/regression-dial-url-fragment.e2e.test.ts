/**
 * Regression: a bridge URL with a fragment (`…/bridge#dc`, which the config took: `^wss?://.+`) killed the gateway at
 * its first dial. ws refuses to dial a URL with a fragment (RFC 6455 has none) by throwing from its constructor, which
 * the dialler did not expect: the throw, in the callback of the dial that loads ws, was an unhandled rejection, and
 * the process exited. The fragment is now dropped when dialling (src/util/dial-url.ts): a fragment is never sent.
 * Real processes: A dials B with such a URL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminGet, cleanupDirs, startProcess, waitForBridgeOpen, wsUrl, type GatewayProcess } from '../helpers/env.js';

const TOKEN = 'fragment-bridge-token-8d2f';
const ADMIN = 'fragment-admin-token-3a9e';

let a: GatewayProcess;
let b: GatewayProcess;

beforeAll(async () => {
  b = await startProcess({
    gateway: { id: 'gw_frag_b', admin: { token: ADMIN }, bridge: { enabled: true, allowedTokens: [TOKEN], shareChannels: ['gpu'] } },
    channels: [{ name: 'gpu', provider: 'mock', models: ['llama-frag'] }],
  });
  a = await startProcess({
    gateway: { id: 'gw_frag_a', admin: { token: ADMIN }, bridges: [{ name: 'dc', url: `${wsUrl(b.url)}#dc`, token: TOKEN, reconnectInterval: 100 }] },
    channels: [],
  });
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  cleanupDirs();
});

describe('a bridge URL with a fragment', () => {
  it('is dialled without it: the link opens and the peer is routed to', async () => {
    await waitForBridgeOpen(a.url, ADMIN);
    const row = (await adminGet<{ peers: Array<{ name: string; id: string | null; url: string }> }>(a.url, '/admin/bridges', ADMIN)).peers[0]!;
    expect(row).toMatchObject({ name: 'dc', id: 'gw_frag_b', url: wsUrl(b.url) });
    expect((await adminGet<{ models: string[] }>(a.url, '/admin/status', ADMIN)).models).toContain('llama-frag');
  });
});
