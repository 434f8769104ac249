/**
 * A reload of a file whose only difference is the order of the keys of a channel's records (`options`,
 * `headers`, `modelMap`) changes nothing: the channel keeps its provider, its health record and its statistics.
 * The schema writes a channel's own keys in its order but keeps a record's in the file's, and the reload compared
 * the channels as JSON text: the same channel written in another order was "changed", so it got a new provider
 * and a clean health record (an ejected channel would take traffic again). Real process, real file.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { channelHealth, cleanupDirs, startProcess } from '../helpers/env.js';

let gw: GatewayProcess & { configPath: string };

const config = (channel: Record<string, unknown>) => ({
  gateway: { id: 'gw_korder', port: 0, routing: { retries: 0 } },
  channels: [channel],
  store: { kind: 'sqlite', path: './data/k.db' },
});
// the mock fails its first request (upstream 500, answered 502): a fresh provider would fail its first one again
const written = {
  name: 'flaky',
  provider: 'mock',
  models: ['m1', 'm2'],
  modelMap: { m1: 'up-1', m2: 'up-2' },
  headers: { 'x-a': '1', 'x-b': '2' },
  options: { failFirst: 1, failStatus: 500, reply: 'fine' },
};
const reordered = {
  options: { reply: 'fine', failStatus: 500, failFirst: 1 },
  headers: { 'x-b': '2', 'x-a': '1' },
  modelMap: { m2: 'up-2', m1: 'up-1' },
  models: ['m1', 'm2'],
  provider: 'mock',
  name: 'flaky',
};

beforeAll(async () => {
  gw = await startProcess(config(written));
});

afterAll(async () => {
  await gw?.stop();
  cleanupDirs();
});

const chat = () =>
  fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm1', messages: [{ role: 'user', content: 'hi' }] }),
  });

describe('a reload of the same channel with its records in another key order', () => {
  it('changes nothing: same provider, same health record and statistics', async () => {
    expect((await chat()).status).toBe(502);
    const before = await channelHealth(gw.url, 'flaky');
    expect(before.consecutiveFailures).toBe(1);
    expect(before.lastError).not.toBeNull();

    writeFileSync(gw.configPath, JSON.stringify(config(reordered)));
    const res = await fetch(`${gw.url}/admin/config/reload`, { method: 'POST' });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ applied: [], restartRequired: [] });

    expect(await channelHealth(gw.url, 'flaky')).toEqual(before);
    // the provider that already failed its first request serves the next one
    expect((await chat()).status).toBe(200);
  });
});
