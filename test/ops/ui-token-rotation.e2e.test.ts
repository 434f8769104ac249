/**
 * The status page's stream (/ui/events) after the admin token is changed by a reload: a stream opened with the
 * old token ends (it used to go on sending snapshots, peers and sessions included, for as long as the tab stayed
 * open), a new one with the old token is refused, and the new token opens one. A real gateway process.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { cleanupDirs, startProcess } from '../helpers/env.js';

const OLD = 'rotation-old-admin-token-81c2';
const NEW = 'rotation-new-admin-token-5e7a';
let g: GatewayProcess & { configPath: string };

const config = (admin: string) => ({
  gateway: { id: 'gw_rot', port: 0, admin: { token: admin } },
  channels: [{ name: 'm', provider: 'mock', models: ['m1'] }],
  store: { kind: 'sqlite', path: './data/rot.db' },
});

beforeAll(async () => {
  g = await startProcess(config(OLD));
}, 30_000);

afterAll(async () => {
  await g?.stop();
  cleanupDirs();
});

const events = (token: string) => fetch(`${g.url}/ui/events?interval=200`, { headers: { authorization: `Bearer ${token}` } });

describe('/ui/events and a changed admin token', () => {
  it('a stream opened with the old token ends at the reload that replaces it', async () => {
    const res = await events(OLD);
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(Buffer.from(first.value).toString()).toMatch(/^data: \{/);

    writeFileSync(g.configPath, JSON.stringify(config(NEW)));
    const reload = await fetch(`${g.url}/admin/config/reload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${OLD}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(reload.status).toBe(200);

    // the stream ends at its next snapshot (200 ms); a bound of 5 s, else it goes on for ever
    const deadline = Date.now() + 5_000;
    let ended = false;
    while (Date.now() < deadline) {
      const r = await Promise.race([reader.read(), new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), deadline - Date.now()))]);
      if (r === 'late') break;
      if (r.done) {
        ended = true;
        break;
      }
    }
    if (!ended) await reader.cancel();
    expect(ended).toBe(true);

    expect((await events(OLD)).status).toBe(401);
    const fresh = await events(NEW);
    expect(fresh.status).toBe(200);
    await fresh.body!.cancel();
  });
});
