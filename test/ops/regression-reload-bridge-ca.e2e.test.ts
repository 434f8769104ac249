/**
 * A reload re-dials a bridge whose `ca` file now holds another certificate, its config unchanged (a peer's
 * self-signed certificate renewed, the new one copied over the old file). The reload read the file, as the docs
 * say, but compared only the bridge's keys: the dialer kept the old text, so once the link dropped it could never
 * reach the peer again (its certificate not trusted) until a restart. Real processes, real certificates: B serves
 * TLS and renews its certificate by a reload; A's reload then re-dials with the new `ca`, and the link is open.
 */
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { adminGet, cleanupDirs, startProcess, tmpDir, waitFor, wsUrl } from '../helpers/env.js';
import { selfSigned } from '../helpers/tls.js';

const TOKEN = 'bridge-ca-renewal-token-4f8e';
let a: GatewayProcess;
let b: GatewayProcess;
const dir = tmpDir();

type Row = { name: string; direction: string; state: string; lastError: string | null };
const bridgeOfA = async () => (await adminGet<{ peers: Row[] }>(a.url, '/admin/bridges')).peers.find((r) => r.name === 'dc');
const reload = async (g: GatewayProcess) => {
  const res = await fetch(`${g.url}/admin/config/reload`, { method: 'POST' });
  expect(res.status).toBe(200);
  return (await res.json()) as { applied: string[]; restartRequired: string[] };
};

beforeAll(async () => {
  const first = selfSigned(dir, 'first');
  copyFileSync(first.cert, join(dir, 'b-cert.pem'));
  copyFileSync(first.key, join(dir, 'b-key.pem'));
  copyFileSync(first.cert, join(dir, 'peer-ca.pem'));
  b = await startProcess(
    {
      gateway: { id: 'gw_cab', tls: { cert: './b-cert.pem', key: './b-key.pem' }, bridge: { enabled: true, allowedTokens: [TOKEN] } },
      store: { kind: 'sqlite', path: './data/b.db' },
    },
    {},
    dir,
  );
  a = await startProcess(
    {
      gateway: { id: 'gw_caa', bridges: [{ name: 'dc', url: wsUrl(b.url), token: TOKEN, shareChannels: false, ca: './peer-ca.pem', reconnectInterval: 100 }] },
      store: { kind: 'sqlite', path: './data/a.db' },
    },
    {},
    dir,
  );
  await waitFor(async () => (await bridgeOfA())?.state === 'open', 'A→B open over TLS');
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  cleanupDirs();
});

describe('a bridge whose ca file changed', () => {
  it('is re-dialled with the new certificate by a reload', async () => {
    const renewed = selfSigned(dir, 'renewed');
    copyFileSync(renewed.cert, join(dir, 'b-cert.pem'));
    copyFileSync(renewed.key, join(dir, 'b-key.pem'));
    // B serves HTTPS with a certificate this test does not trust: its reload by SIGHUP, seen in its log
    b.kill('SIGHUP');
    await waitFor(() => b.logs().includes('gateway.tls: the certificate and key read now serve new connections'), 'B serving the renewed certificate');

    copyFileSync(renewed.cert, join(dir, 'peer-ca.pem'));
    expect(await reload(a)).toEqual({ applied: ['bridge dc re-dialled (its ca file changed)'], restartRequired: [] });
    // the new link is made with the new ca: the renewed certificate is trusted
    const row = await waitFor(async () => {
      const r = await bridgeOfA();
      return r?.state === 'open' ? r : undefined;
    }, 'A→B open again, trusting the renewed certificate');
    expect(row.lastError).toBeNull();
  });
});
