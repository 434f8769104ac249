/**
 * Regression: a channel changed by a config reload starts with a clean health record (docs/operations.md), and
 * the requests still running on its old upstream must not spoil it. Before the fix they did: the reload that
 * moved a channel off a stalled upstream had the stalled requests time out a moment later, and their failures
 * were counted against the channel's id, so the channel was ejected on its new, healthy upstream. Likewise a
 * removed channel's late failures rebuilt a health record for a channel that no longer exists. Real gateway
 * process, fault upstreams.
 */
import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { startProcess, waitFor, waitForInflight } from '../helpers/env.js';
import { stopAfterEach } from '../helpers/stop-after.js';
import { chat, channelRow, startFaultUpstream, type ChatResult } from '../fakes/fault-upstream.js';

const MODEL = 'fault-model';
const { procs, ups } = stopAfterEach();

const HEALTH = { consecutiveFailures: 2, failureRatio: 0.5, windowMs: 10_000, minRequests: 10, baseEjectionMs: 30_000, maxEjectionMs: 60_000 };
const config = (channels: object[]) => ({
  gateway: { id: 'gw_reload_health', port: 0, routing: { retries: 1, timeoutMs: 20_000, firstByteTimeoutMs: 1_500, health: HEALTH } },
  channels,
});
const backup = { name: 'backup', provider: 'mock', models: [MODEL], priority: 1 };

describe('reload and health', () => {
  it('failures of requests still on the old upstream do not eject the changed channel', async () => {
    const stalled = await startFaultUpstream('stalled');
    const fixed = await startFaultUpstream('fixed');
    ups.push(stalled, fixed);
    stalled.setMode('stall', { faultAfterChunks: 0 });
    const gw = await startProcess(config([{ name: 'main', provider: 'vllm', baseUrl: stalled.baseUrl, models: [MODEL] }, backup]));
    procs.push(gw);
    // two requests wait on the stalled upstream: enough failures to eject `main` when they time out
    const waiting: Array<Promise<ChatResult>> = [chat(gw.url, { model: MODEL }), chat(gw.url, { model: MODEL })];
    await waitForInflight(gw.url, 'main', 2);
    // the operator points `main` at a working upstream
    writeFileSync(gw.configPath, JSON.stringify(config([{ name: 'main', provider: 'vllm', baseUrl: fixed.baseUrl, models: [MODEL] }, backup])));
    const res = await fetch(`${gw.url}/admin/config/reload`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(((await res.json()) as { applied: string[] }).applied).toContain('channel main changed');
    // the old requests time out on the old upstream and are retried on the backup
    for (const r of await Promise.all(waiting)) expect(r.channel).toBe('backup');
    const row = await channelRow(gw.url, 'local/main');
    expect(row?.health.state, JSON.stringify(row?.health)).toBe('healthy');
    expect(row?.health.consecutiveFailures).toBe(0);
    const next = await chat(gw.url, { model: MODEL });
    expect(next.channel, 'the changed channel serves the next request').toBe('main');
    expect(fixed.completed).toBe(1);
  });

  it('a removed channel whose requests fail later leaves no health record behind: re-added, it starts clean', async () => {
    const stalled = await startFaultUpstream('stalled');
    ups.push(stalled);
    stalled.setMode('stall', { faultAfterChunks: 0 });
    const main = { name: 'main', provider: 'vllm', baseUrl: stalled.baseUrl, models: [MODEL] };
    const gw = await startProcess(config([main, backup]));
    procs.push(gw);
    const waiting: Array<Promise<ChatResult>> = [chat(gw.url, { model: MODEL }), chat(gw.url, { model: MODEL })];
    await waitForInflight(gw.url, 'main', 2);
    const reload = async (channels: object[]) => {
      writeFileSync(gw.configPath, JSON.stringify(config(channels)));
      const r = await fetch(`${gw.url}/admin/config/reload`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      expect(r.status).toBe(200);
    };
    await reload([backup]);
    for (const r of await Promise.all(waiting)) expect(r.channel).toBe('backup');
    stalled.setMode('ok');
    await reload([main, backup]);
    await waitFor(async () => (await channelRow(gw.url, 'local/main')) !== undefined, 'main back in the table');
    const row = await channelRow(gw.url, 'local/main');
    expect(row?.health.state, JSON.stringify(row?.health)).toBe('healthy');
    expect(row?.health.consecutiveFailures).toBe(0);
    expect((await chat(gw.url, { model: MODEL })).channel).toBe('main');
  });
});
