/**
 * Regression: a config reload that removes or changes an HTTP channel (a real gateway process, vLLM-wire fault
 * upstreams) keeps the old channel's upstream pool until the requests it carries have ended, and closes it then.
 * Before the fix the retirement waited on the router's in-flight count by candidate id: a removed channel's
 * count was dropped with it (read as 0), so its pool was destroyed at once and the stream running on it was
 * cut mid-way; a changed channel shares its id with its replacement, so the old pool stayed open as long as the
 * new one had any request in flight (up to `routing.timeoutMs` under steady traffic).
 */
import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { startProcess, waitFor } from '../helpers/env.js';
import { stopAfterEach } from '../helpers/stop-after.js';
import { startFaultUpstream, type FaultUpstream } from '../fakes/fault-upstream.js';

const MODEL = 'fault-model';
type Proc = Awaited<ReturnType<typeof startProcess>>;
const { procs, ups } = stopAfterEach();

const config = (channels: object[]) => ({ gateway: { id: 'gw_reload_pool', port: 0, routing: { timeoutMs: 60_000 } }, channels });
const vllm = (name: string, up: FaultUpstream, extra: object = {}) => ({ name, provider: 'vllm', baseUrl: up.baseUrl, models: [MODEL], ...extra });

async function reload(gw: Proc, channels: object[]): Promise<string[]> {
  writeFileSync(gw.configPath, JSON.stringify(config(channels)));
  const res = await fetch(`${gw.url}/admin/config/reload`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  const body = (await res.json()) as { applied: string[] };
  expect(res.status).toBe(200);
  return body.applied;
}

/**
 * A raw stream through the gateway, resolved once it started (the gateway sends its headers at the first chunk);
 * `rest` reads it to its end (the SSE text).
 */
async function stream(gw: Proc): Promise<{ rest: Promise<string> }> {
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, stream: true, messages: [{ role: 'user', content: 'a long answer' }] }),
  });
  expect(res.status).toBe(200);
  return { rest: res.text() };
}

const contentChunks = (sse: string) => sse.split('\n\n').filter((e) => e.includes('"content":"') && !e.includes('"content":""')).length;

describe('reload retires an HTTP channel without cutting its requests or keeping its pool', () => {
  it('a removed channel: the stream on it completes, then its upstream connections are closed', async () => {
    const up = await startFaultUpstream('leaving');
    ups.push(up);
    up.setMode('ok', { chunks: 20, chunkDelayMs: 50 });
    const gw = await startProcess(config([vllm('leaving', up), { name: 'other', provider: 'mock', models: ['other'] }]));
    procs.push(gw);
    const running = await stream(gw);
    expect(await reload(gw, [{ name: 'other', provider: 'mock', models: ['other'] }])).toContain('channel leaving removed');
    const sse = await running.rest;
    expect(sse, sse.slice(-900)).toMatch(/data: \[DONE\]\n\n$/);
    expect(sse).not.toContain('"error"');
    expect(contentChunks(sse)).toBe(20);
    // the retired pool is closed once its stream ended: no connection to the old upstream stays open
    await waitFor(() => up.openSockets === 0, 'the removed channel pool to close its upstream connections', 5_000, 20);
  });

  it('a changed channel: the old pool closes when its own requests end, even while the new one is busy', async () => {
    const up = await startFaultUpstream('changing');
    ups.push(up);
    up.setMode('ok', { chunks: 10, chunkDelayMs: 50 });
    const gw = await startProcess(config([vllm('changing', up)]));
    procs.push(gw);
    const first = await stream(gw);
    expect(await reload(gw, [vllm('changing', up, { weight: 2 })])).toContain('channel changing changed');
    // a longer stream on the new pool, running past the end of the first
    up.setMode('ok', { chunks: 60, chunkDelayMs: 50 });
    const second = await stream(gw);
    await waitFor(() => up.openSockets === 2, 'the new pool to open its own connection', 5_000, 10);
    const sse1 = await first.rest;
    expect(sse1).toMatch(/data: \[DONE\]\n\n$/);
    expect(contentChunks(sse1)).toBe(10);
    // the old pool's request ended: its connection closes while the second stream still runs on the new pool
    await waitFor(() => up.openSockets === 1, 'the old pool to close its connection', 2_000, 20);
    expect(up.completed, 'the second stream is still running').toBe(1);
    const sse2 = await second.rest;
    expect(sse2).toMatch(/data: \[DONE\]\n\n$/);
    expect(contentChunks(sse2)).toBe(60);
  });
});
