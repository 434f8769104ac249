/**
 * A reload that removes an outbound bridge the operator already stopped (`bridge disconnect`) leaves alone the
 * inbound link of a peer whose gateway name is the bridge's name. The reload disconnected the removed bridge by its
 * name, and with no outbound bridge of that name running, the mesh's disconnect closed the inbound link of that
 * name instead. Real processes: A dials B through bridge "dc"; C, named "dc", dials A.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { adminGet, cleanupDirs, startProcess, waitFor, wsUrl } from '../helpers/env.js';

const TOKEN = 'inbound-name-token-2b7c';
let a: GatewayProcess & { configPath: string };
let b: GatewayProcess;
let c: GatewayProcess;

const aConfig = (bridges: unknown[]) => ({
  gateway: { id: 'gw_ina', name: 'office', port: 0, bridges, bridge: { enabled: true, allowedTokens: [TOKEN] } },
  channels: [{ name: 'office-mock', provider: 'mock', models: ['mock-1'] }],
  store: { kind: 'sqlite', path: './data/a.db' },
});

type Row = { name: string; direction: string; state: string };
const rowsOfA = async () => (await adminGet<{ peers: Row[] }>(a.url, '/admin/bridges')).peers;

beforeAll(async () => {
  b = await startProcess({ gateway: { id: 'gw_inb', name: 'datacenter', bridge: { enabled: true, allowedTokens: [TOKEN] } } });
  a = await startProcess(aConfig([{ name: 'dc', url: wsUrl(b.url), token: TOKEN, shareChannels: false }]));
  c = await startProcess({ gateway: { id: 'gw_inc', name: 'dc', bridges: [{ name: 'to-office', url: wsUrl(a.url), token: TOKEN, shareChannels: false }] } });
  await waitFor(
    async () => (await rowsOfA()).filter((r) => r.name === 'dc' && r.state === 'open').length === 2,
    'A: bridge dc and the inbound link from C open',
  );
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop(), c?.stop()]);
  cleanupDirs();
});

describe('a reload that removes a bridge already disconnected', () => {
  it('keeps the inbound link of a peer of the same name open', async () => {
    const stopped = await fetch(`${a.url}/admin/bridges/dc`, { method: 'DELETE' });
    expect(stopped.status).toBe(200);
    expect((await rowsOfA()).map((r) => [r.name, r.direction, r.state])).toEqual([['dc', 'inbound', 'open']]);

    writeFileSync(a.configPath, JSON.stringify(aConfig([])));
    const res = await fetch(`${a.url}/admin/config/reload`, { method: 'POST' });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { applied: string[] }).applied).toContain('bridge dc disconnected');
    expect((await rowsOfA()).map((r) => [r.name, r.direction, r.state])).toEqual([['dc', 'inbound', 'open']]);
  });
});
