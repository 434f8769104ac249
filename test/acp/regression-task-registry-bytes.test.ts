/**
 * Regression: the task snapshots `xworkmate.tasks.get` reads from memory were bounded by count only (10 000), each
 * finished one holding up to a sixteenth of `acp.maxStreamBacklogBytes` of output in characters: with the default
 * bound up to 5 Gi characters for a client running many long turns. They are bounded by their size as well now
 * (eight times `acp.maxStreamBacklogBytes`, `switchyard_acp_task_snapshot_bytes`): past it the oldest finished
 * ones are dropped, and `xworkmate.tasks.get` answers those from the store, with the same output bound.
 *
 * A real gateway (SQLite store), a mock channel whose every reply is longer than a result carries, and the
 * smallest stream bound (64 KiB: results of 4096 characters, a budget of 512 KiB).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { acpRpc, cleanupDirs, startInProcess } from '../helpers/env.js';

const ACP = 'task-bytes-acp-token-2718';
const SCRAPE = 'task-bytes-scrape-token-1618';
const BACKLOG = 64 * 1024;
const RESULT_CHARS = BACKLOG / 16;
const BUDGET = BACKLOG * 8;
// 6006 characters: every result is cut to RESULT_CHARS
const REPLY = 'abcdefghij '.repeat(546);
const TURNS = 70;

let gw: Gateway;
beforeAll(async () => {
  gw = await startInProcess({
    gateway: { metrics: { token: SCRAPE } },
    channels: [{ name: 'long', provider: 'mock', models: ['long-1'], options: { reply: REPLY, chunks: 4 } }],
    acp: { tokens: [ACP], maxStreamBacklogBytes: BACKLOG, gateways: [{ id: 'long', label: 'Long', kind: 'channels', model: 'long-1' }] },
  });
});
afterAll(async () => {
  await gw?.close();
  cleanupDirs();
});

const rpc = (method: string, params: Record<string, unknown>) => acpRpc(gw.url, ACP, method, params);
const start = async (sessionId: string) => {
  const r = await rpc('session.start', { sessionId, taskPrompt: `turn of ${sessionId}`, requestedExecutionTarget: 'gateway', gatewayProviderId: 'long' });
  expect(r.result).toMatchObject({ status: 'completed', outputTruncated: true, outputChars: REPLY.length });
  return r.result as { runId: string; turnId: string };
};
const metric = async (name: string, labels = ''): Promise<number> => {
  const text = await (await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${SCRAPE}` } })).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  expect(line, `${name}${labels} in /metrics`).toBeDefined();
  return Number(line!.split(' ')[1]);
};
/** what a snapshot says of its run, the same whether memory or the store answers */
const common = (t: Record<string, any>) => {
  const { status, sessionId, threadId, turnId, runId, output, outputTruncated, outputChars, error } = t;
  return { status, sessionId, threadId, turnId, runId, output, outputTruncated, outputChars, error, progressChars: t.progress.outputChars };
};

describe('task snapshots in memory are bounded by their size', () => {
  it('the oldest finished snapshots go past the budget, and tasks.get answers them from the store alike', async () => {
    const first = await start('tb-0');
    const fromMemory = (await rpc('xworkmate.tasks.get', { runId: first.runId })).result;
    expect(fromMemory.progress.updates).toEqual(expect.any(Number)); // held in memory now
    expect(fromMemory).toMatchObject({ status: 'completed', outputTruncated: true, outputChars: REPLY.length, progress: { outputChars: REPLY.length } });
    expect(fromMemory.output).toBe(REPLY.slice(0, RESULT_CHARS));

    for (let i = 1; i < TURNS; i += 10) await Promise.all(Array.from({ length: Math.min(10, TURNS - i) }, (_, k) => start(`tb-${i + k}`)));

    expect(await metric('switchyard_acp_task_snapshot_max_bytes')).toBe(BUDGET);
    const held = await metric('switchyard_acp_task_snapshot_bytes');
    const finished = await metric('switchyard_acp_task_snapshots', '{state="finished"}');
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThanOrEqual(BUDGET);
    // some were dropped, and what is held is near the budget (no more dropped than needed)
    expect(finished).toBeLessThan(TURNS);
    expect(held + 2 * (held / finished)).toBeGreaterThan(BUDGET);
    expect(await metric('switchyard_acp_task_snapshots', '{state="running"}')).toBe(0);

    // the first run is no longer in memory: the store answers (progress.updates null), with the same fields and bound
    const byRun = (await rpc('xworkmate.tasks.get', { runId: first.runId })).result;
    expect(byRun.progress.updates).toBeNull();
    expect(common(byRun)).toEqual(common(fromMemory));
    const bySession = (await rpc('xworkmate.tasks.get', { sessionId: 'tb-0' })).result;
    expect(bySession.progress.updates).toBeNull();
    expect(common(bySession)).toEqual(common(fromMemory));

    // the newest is still answered from memory
    const last = (await rpc('xworkmate.tasks.get', { sessionId: `tb-${TURNS - 1}` })).result;
    expect(last.progress.updates).toEqual(expect.any(Number));
    expect(last).toMatchObject({ status: 'completed', outputTruncated: true, outputChars: REPLY.length });
  });

  it('an unknown run or session is still not_found, and a call without either still -32602', async () => {
    expect((await rpc('xworkmate.tasks.get', { runId: 'run_never_was' })).result).toEqual({ status: 'not_found', runId: 'run_never_was' });
    expect((await rpc('xworkmate.tasks.get', { sessionId: 'tb-never-was' })).result).toMatchObject({ status: 'not_found', sessionId: 'tb-never-was' });
    const bad = await rpc('xworkmate.tasks.get', {});
    expect(bad.error).toMatchObject({ code: -32602 });
  });
});
