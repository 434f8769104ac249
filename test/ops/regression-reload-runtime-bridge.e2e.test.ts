/**
 * A reload whose file adds a bridge under the name of one added at run time (POST /admin/bridges) replaces that
 * one. The reload dialled the file's bridge beside it: the mesh's entry for the name was overwritten, the bridge
 * added at run time kept running out of reach (no `bridge disconnect` could stop it), and the two, dialling the
 * same peer, made it replace one link by the other for ever, each redial failing what ran on the other link.
 * Real processes: B shares a slow channel with A; a stream across the bridge after the reload runs to its end.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { adminGet, cleanupDirs, startProcess, waitFor, wsUrl } from '../helpers/env.js';

const BRIDGE_TOKEN = 'runtime-bridge-token-6d0f';
let a: GatewayProcess & { configPath: string };
let b: GatewayProcess;

const aConfig = (bridges: unknown[]) => ({
  gateway: { id: 'gw_rta', name: 'office', port: 0, bridges },
  channels: [{ name: 'office-mock', provider: 'mock', models: ['mock-1'] }],
  store: { kind: 'sqlite', path: './data/a.db' },
});

beforeAll(async () => {
  b = await startProcess({
    gateway: { id: 'gw_rtb', name: 'datacenter', bridge: { enabled: true, allowedTokens: [BRIDGE_TOKEN], shareChannels: ['gpu'] } },
    channels: [{ name: 'gpu', provider: 'mock', models: ['llama-gpu'], options: { chunkDelayMs: 80, chunks: 60 } }],
  });
  a = await startProcess(aConfig([]));
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  cleanupDirs();
});

const seesB = async () => (await adminGet(a.url, '/admin/status')).models.includes('llama-gpu');

describe('a reload that adds a bridge named as one added at run time', () => {
  it('replaces it: one bridge of that name runs, and a stream across it completes', async () => {
    const added = await fetch(`${a.url}/admin/bridges`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'dc', url: wsUrl(b.url), token: BRIDGE_TOKEN, share: false }),
    });
    expect(added.status).toBe(201);
    await waitFor(seesB, "A sees B's model over the bridge added at run time");

    writeFileSync(
      a.configPath,
      JSON.stringify(aConfig([{ name: 'dc', url: wsUrl(b.url), token: BRIDGE_TOKEN, shareChannels: false, reconnectInterval: 200 }])),
    );
    const res = await fetch(`${a.url}/admin/config/reload`, { method: 'POST' });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { applied: string[] }).applied).toEqual(['bridge dc re-dialled (replaces the bridge of this name added at run time)']);

    await waitFor(seesB, "A sees B's model over the file's bridge");
    const onA = new OpenAI({ apiKey: 'unused', baseURL: `${a.url}/v1`, maxRetries: 0 });
    let finish: string | null = null;
    for await (const c of await onA.chat.completions.create({ model: 'llama-gpu', messages: [{ role: 'user', content: 'a long answer' }], stream: true })) {
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    // cut, it would end with peer_unavailable (an error thrown here) instead
    expect(finish).toBe('stop');
    // one outbound bridge, and B holds one link from A
    const rows = (await adminGet<{ peers: Array<{ name: string; direction: string }> }>(a.url, '/admin/bridges')).peers;
    expect(rows.filter((r) => r.direction === 'outbound').map((r) => r.name)).toEqual(['dc']);
    expect((await adminGet<{ peers: Array<{ id: string | null }> }>(b.url, '/admin/bridges')).peers.filter((p) => p.id === 'gw_rta')).toHaveLength(1);
  });
});
