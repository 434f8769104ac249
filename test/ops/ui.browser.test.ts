/**
 * The status page in headless Chromium (playwright-core driving the system `chromium`; CI installs it) with
 * a real two-gateway setup: sign in with the admin token (kept in sessionStorage only), the page shows the
 * peer, its link and its shared channel, and the warm agent pool; when the peer goes away the page updates by
 * itself. The links a reload let go are counted under the peers and links while they are held (a re-dialled bridge's
 * old link handing over), as `switchyard status` counts them. Screenshots are saved under the test's temp folder and their paths printed. No request leaves the
 * gateway's origin.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import WebSocket from 'ws';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { helloFrame } from '../fakes/raw-bridge-peer.js';
import { cleanupDirs, startProcess, waitForBridgeOpen, wsUrl } from '../helpers/env.js';
import { launchChromium } from '../helpers/chromium.js';
import { heldRelay } from '../helpers/held-relay.js';

const FAKE = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const BRIDGE_TOKEN = 'ui-bridge-token-6a3c';
const ADMIN = 'ui-admin-token-2e8f';
let a: GatewayProcess & { configPath: string };
let b: GatewayProcess;
let browser: Browser;
const cleanups: Array<() => unknown> = [];

/** A's config; `more`: bridges a case adds by a reload */
const aConfig = (...more: Array<Record<string, unknown>>) => ({
  gateway: {
    id: 'gw_ua',
    name: 'office',
    admin: { token: ADMIN },
    // inbound links too: the unmatched-pongs case below opens one from a raw peer. A reload's hand-over lasts until the
    // new link opens or this long: longer than the retiring-links case watches it, on a slow host
    bridge: { enabled: true, allowedTokens: [BRIDGE_TOKEN], limits: { handshakeTimeoutMs: 60_000 } },
    bridges: [{ name: 'datacenter', url: wsUrl(b.url), token: BRIDGE_TOKEN, shareChannels: false, reconnectInterval: 200, maxReconnectInterval: 500 }, ...more],
  },
  channels: [{ name: 'office-mock', provider: 'mock', models: ['mock-1'] }],
  // one warm agent process: the page's Warm agents card
  acp: {
    tokens: ['ui-acp-token-4b7d'],
    agents: [{ id: 'fake', label: 'fake', command: process.execPath, args: [FAKE], permissions: 'allow', warm: 1 }],
  },
});

async function reloadA(...more: Array<Record<string, unknown>>): Promise<string[]> {
  writeFileSync(a.configPath, JSON.stringify(aConfig(...more)));
  const res = await fetch(`${a.url}/admin/config/reload`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { applied: string[] }).applied;
}

/** A page of A's /ui, signed in with the admin token; `errors` collects the page's uncaught errors. */
async function signedIn(): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${a.url}/ui`);
  await page.fill('#token', ADMIN);
  await page.click('#login-form button');
  return { page, errors };
}

beforeAll(async () => {
  b = await startProcess({
    gateway: {
      id: 'gw_ub',
      name: 'datacenter',
      admin: { token: ADMIN },
      bridge: { enabled: true, allowedTokens: [BRIDGE_TOKEN], shareChannels: ['gpu-llama'] },
    },
    channels: [{ name: 'gpu-llama', provider: 'mock', models: ['llama3'] }],
  });
  a = await startProcess(aConfig());
  await waitForBridgeOpen(a.url, ADMIN);
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  await browser?.close();
  await Promise.all([a?.stop(), b?.stop()]);
  cleanupDirs();
});

describe('status page /ui', () => {
  it('signs in, shows the peer and its channel, and updates when the peer disconnects', async () => {
    // kept after the run: the screenshots are the test's artifacts
    const shots = mkdtempSync(join(tmpdir(), 'sy-ui-shots-'));
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const foreign: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(a.url)) foreign.push(r.url());
    });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));

    await page.goto(`${a.url}/ui`);
    await page.locator('#login').waitFor({ state: 'visible' });
    // a wrong token is refused with the gateway's message
    await page.fill('#token', 'not-the-admin-token');
    await page.click('#login-form button');
    await expect.poll(() => page.textContent('#login-error')).toMatch(/invalid admin token/);
    await page.fill('#token', ADMIN);
    await page.click('#login-form button');

    const peerRow = page.locator('#peers tr[data-peer="datacenter"]');
    await peerRow.waitFor();
    expect(await peerRow.getAttribute('data-state')).toBe('open');
    await page.locator('#channels tr[data-channel="gpu-llama"][data-via="datacenter"]').waitFor();
    await page.locator('#channels tr[data-channel="office-mock"][data-via="local"]').waitFor();
    await page.locator('#mesh [data-peer-node="datacenter"][data-state="open"]').waitFor();
    expect(await page.textContent('#mesh')).toContain('shares gpu-llama');
    expect(await page.textContent('#models')).toMatch(/llama3\s*gpu-llama @ datacenter/);
    expect(await page.textContent('#title')).toBe('office');
    // the warm agent pool: its spare reaches ready within a refresh or two
    const warmRow = page.locator('#warm tr[data-agent="fake"][data-ready="1"]');
    await warmRow.waitFor({ timeout: 15_000 });
    expect((await warmRow.locator('td').allTextContents()).slice(0, 5)).toEqual(['fake', '1/1', '0', '0/0', '0']);
    // traffic shows in the rate numbers and charts within a refresh or two
    for (let i = 0; i < 6; i++) {
      const r = await fetch(`${a.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: i % 2 ? 'llama3' : 'mock-1', messages: [{ role: 'user', content: 'hi' }] }),
      });
      expect(r.status).toBe(200);
    }
    await expect.poll(async () => Number(await page.textContent('#rps')), { timeout: 10_000 }).toBeGreaterThan(0);
    expect(await page.locator('#chart-req polyline').count()).toBe(1);
    // the token lives in sessionStorage only
    expect(await page.evaluate("sessionStorage.getItem('switchyard-admin-token')")).toBe(ADMIN);
    expect(await page.evaluate('localStorage.length')).toBe(0);
    const before = join(shots, 'status-page-connected.png');
    await page.screenshot({ path: before, fullPage: true });
    console.log(`status page screenshot (peer connected): ${before}`);

    // the peer goes away: the page follows by itself (no reload)
    await b.stop();
    await expect.poll(async () => peerRow.getAttribute('data-state'), { timeout: 15_000 }).not.toBe('open');
    await page.locator('#channels tr[data-channel="gpu-llama"]').waitFor({ state: 'detached', timeout: 15_000 });
    await page.locator('#mesh [data-peer-node="datacenter"]:not([data-state="open"])').waitFor();
    const after = join(shots, 'status-page-peer-down.png');
    await page.screenshot({ path: after, fullPage: true });
    console.log(`status page screenshot (peer down): ${after}`);

    expect(foreign).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);

  it("shows each link's unmatched pongs (pongs that answered no ping of ours), as /admin/bridges and /metrics do", async () => {
    // a raw peer on an inbound link sends three pongs that echo no ping of the gateway's
    const raw = new WebSocket(wsUrl(a.url));
    cleanups.push(() => raw.terminate());
    const helloOk = new Promise<void>((resolve) =>
      raw.on('message', (d) => {
        if ((JSON.parse(String(d)) as { type: string }).type === 'bridge-hello-ok') resolve();
      }),
    );
    await new Promise((r) => raw.once('open', r));
    raw.send(helloFrame('gw_ui_pongs', BRIDGE_TOKEN, { gatewayName: 'pong-peer' }));
    await helloOk;
    for (let i = 0; i < 3; i++) raw.send(JSON.stringify({ type: 'bridge-pong', ts: 1000.5 + i }));

    const { page, errors } = await signedIn();
    const row = page.locator('#peers tr[data-peer="pong-peer"]');
    await row.waitFor();
    const column = (await page.locator('#peers thead th').allTextContents()).indexOf('unmatched pongs');
    expect(column).toBeGreaterThanOrEqual(0);
    await expect.poll(async () => (await row.locator('td').allTextContents())[column], { timeout: 10_000 }).toBe('3');
    // the dialled link's own count beside it: its peer answers every ping (or is gone), so none
    expect((await page.locator('#peers tr[data-peer="datacenter"] td').allTextContents())[column]).toBe('0');
    expect(errors).toEqual([]);
    await page.close();
  });

  it('counts the links a reload let go under the peers and links, while the old link of a re-dialled bridge hands over', async () => {
    // a second peer, bridged by a reload (the first one is stopped by now)
    const b2 = await startProcess({
      gateway: { id: 'gw_ub2', name: 'lab', admin: { token: ADMIN }, bridge: { enabled: true, allowedTokens: [BRIDGE_TOKEN], shareChannels: ['lab-mock'] } },
      channels: [{ name: 'lab-mock', provider: 'mock', models: ['lab-1'] }],
    });
    cleanups.push(() => b2.stop());
    const lab = { name: 'lab', token: BRIDGE_TOKEN, shareChannels: false, reconnectInterval: 200 };
    expect(await reloadA({ ...lab, url: wsUrl(b2.url) })).toContain('bridge lab connecting');

    const { page, errors } = await signedIn();
    await page.locator('#peers tr[data-peer="lab"][data-state="open"]').waitFor({ timeout: 15_000 });
    const line = page.locator('#retiring-links');
    expect(await line.isHidden()).toBe(true);

    // the same peer behind a relay that holds the new dial: the old link goes on routing, handed over
    const servers: net.Server[] = [];
    cleanups.push(() => servers.forEach((s) => s.close()));
    const relay = await heldRelay(Number(new URL(b2.url).port), 0, servers);
    expect(await reloadA({ ...lab, url: `ws://127.0.0.1:${relay.port}/bridge` })).toContain('bridge lab re-dialled (changed)');
    await page.locator('#retiring-links[data-handing-over="1"]').waitFor({ timeout: 15_000 });
    expect(await line.textContent()).toBe('retiring links: 0 draining, 1 handing over, in flight 0 out / 0 in (see switchyard bridge list)');
    // the peers and links keep to the current ones: the bridge's new dial
    expect(await page.locator('#peers tr[data-peer="lab"]').getAttribute('data-state')).toBe('connecting');

    // the new link opens: the old one retires, closes (nothing runs on it), and the line goes
    relay.release();
    await page.locator('#peers tr[data-peer="lab"][data-state="open"]').waitFor({ timeout: 15_000 });
    await line.waitFor({ state: 'hidden', timeout: 15_000 });
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);

  it('the page itself carries no data and a strict CSP; the event stream needs the admin token', async () => {
    const page = await fetch(`${a.url}/ui`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(await page.text()).not.toContain('datacenter');
    expect((await fetch(`${a.url}/ui/events`)).status).toBe(401);
  });
});
