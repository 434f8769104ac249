/**
 * A reload whose file passes the schema but names a channel option its provider refuses (`options` is free-form
 * in the schema; the provider checks its own: `responsesApi` must be a boolean) changes nothing, like any
 * other invalid file: the refusal is CONFIG_INVALID with the problem under `details.problems`, and the
 * channels the file removes or replaces keep serving. A real gateway process.
 */
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { adminGet, chatBody, cleanupDirs, startProcess } from '../helpers/env.js';

const ADMIN = 'optreload-admin-token-2b6d';
let g: GatewayProcess & { configPath: string };

const keep = { name: 'keep', provider: 'mock', models: ['keep-1'] };
const gone = { name: 'gone', provider: 'mock', models: ['gone-1'] };
const config = (channels: object[], bridges: object[] = []) => ({
  gateway: { id: 'gw_opt', port: 0, admin: { token: ADMIN }, bridges },
  channels,
  store: { kind: 'sqlite', path: './data/opt.db' },
});

beforeAll(async () => {
  g = await startProcess(config([keep, gone]));
}, 30_000);

/** A TCP server that counts the connections made to it (and drops each): the upstream of a channel a reload adds. */
let upstream: Server;
let upstreamConnections = 0;
beforeAll(async () => {
  upstream = createServer((socket) => {
    upstreamConnections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
});

afterAll(async () => {
  await g?.stop();
  await new Promise((resolve) => upstream?.close(resolve));
  cleanupDirs();
});

const reload = async () => {
  const res = await fetch(`${g.url}/admin/config/reload`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: '{}',
  });
  return { status: res.status, body: (await res.json()) as { error: { code: string; message: string; details?: { problems: string[] } } } };
};

const chat = (model: string) =>
  fetch(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chatBody(model)) }).then(
    (r) => r.status,
  );

describe('reload with an option the provider refuses', () => {
  it('changes nothing and names the option', async () => {
    const changed = { ...keep, models: ['keep-1', 'keep-2'] };
    const bad = { name: 'fresh', provider: 'openai', baseUrl: 'http://127.0.0.1:9/v1', models: ['fresh-1'], options: { responsesApi: 'yes' } };
    writeFileSync(g.configPath, JSON.stringify(config([changed, bad])));
    const res = await fetch(`${g.url}/admin/config/reload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: '{}',
    });
    const body = (await res.json()) as { error: { code: string; message: string; details?: { problems: string[] } } };
    expect(res.status).toBe(500);
    expect(body.error.code).toBe('config_invalid');
    expect(body.error.message).toMatch(/the running config is unchanged/);
    expect(body.error.details?.problems).toEqual(['channels.1.options.responsesApi: channel fresh: options.responsesApi must be a boolean']);

    // the running channels are the old ones: gone still serves, the change to keep was not applied
    expect(await chat('gone-1')).toBe(200);
    expect(await chat('keep-2')).toBe(404);
    const { channels } = await adminGet<{ channels: Array<{ channel: string; models: string[] }> }>(g.url, '/admin/channels', ADMIN);
    expect(channels.map((c) => [c.channel, c.models])).toEqual([
      ['keep', ['keep-1']],
      ['gone', ['gone-1']],
    ]);
  });

  it('a file the gateway could not start on (a bridge ca that cannot be read) changes nothing either', async () => {
    // checked before anything is applied, as at start: the channel change is not applied, no bridge is dialled
    const changed = { ...keep, models: ['keep-1', 'keep-2'] };
    const up = { name: 'up', url: 'wss://127.0.0.1:9/bridge', token: 'optreload-bridge-token', ca: './no-such-ca.pem' };
    writeFileSync(g.configPath, JSON.stringify(config([changed, gone], [up])));
    const { status, body } = await reload();
    expect(status).toBe(500);
    expect(body.error.code).toBe('config_invalid');
    expect(body.error.details?.problems).toEqual([`gateway.bridges.0.ca: cannot read ${join(dirname(g.configPath), 'no-such-ca.pem')}: ENOENT`]);
    expect(await chat('keep-2')).toBe(404);
    expect(await chat('gone-1')).toBe(200);
    const { peers } = await adminGet<{ peers: unknown[] }>(g.url, '/admin/bridges', ADMIN);
    expect(peers).toEqual([]);
  });

  it('refused at its last check, a file that adds a channel leaves it unrouted and its upstream untouched; accepted, it routes', async () => {
    const port = (upstream.address() as AddressInfo).port;
    const fresh = { name: 'fresh', provider: 'openai', baseUrl: `http://127.0.0.1:${port}/v1`, apiKey: 'sk-optreload-fresh-0000', models: ['fresh-1'] };
    const up = { name: 'up', url: 'wss://127.0.0.1:9/bridge', token: 'optreload-bridge-token', ca: './no-such-ca.pem' };
    writeFileSync(g.configPath, JSON.stringify(config([keep, gone, fresh], [up])));
    const refused = await reload();
    expect(refused.status).toBe(500);
    expect(refused.body.error.details?.problems).toEqual([`gateway.bridges.0.ca: cannot read ${join(dirname(g.configPath), 'no-such-ca.pem')}: ENOENT`]);
    // the old channels serve; the new one is not routed, and nothing connected to its upstream
    expect(await chat('gone-1')).toBe(200);
    expect(await chat('fresh-1')).toBe(404);
    expect(upstreamConnections).toBe(0);
    const { channels } = await adminGet<{ channels: Array<{ channel: string }> }>(g.url, '/admin/channels', ADMIN);
    expect(channels.map((c) => c.channel)).toEqual(['keep', 'gone']);
    // the same file without the bridge is applied whole: the channel routes, and a request reaches its upstream
    writeFileSync(g.configPath, JSON.stringify(config([keep, gone, fresh])));
    expect((await reload()).status).toBe(200);
    expect(await chat('fresh-1')).toBe(502);
    expect(upstreamConnections).toBeGreaterThan(0);
  });
});
