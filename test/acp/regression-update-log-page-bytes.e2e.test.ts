/**
 * A read of the update log is a page bounded by bytes as well as by count, against a real gateway process: with
 * `acp.maxStreamBacklogBytes` at its least (64 KiB) a page holds at most 16 KiB of updates (a quarter of it), and
 * at least one; `lastSeq` (`xworkmate.tasks.get`) and `lastEventSeq` (the REST events route) say there is more, and
 * the pages read one after another are the whole log, in order. The WebSocket resume, which reads the log in
 * pages too, replays all of it. Before the fix a page was up to 1000 updates whatever their size: one answer could
 * carry the whole log (up to `acp.updateLogMaxBytes`, 64 MiB by default).
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { acpRpc, cleanupDirs, startProcess, type GatewayProcess } from '../helpers/env.js';

type Json = any;

const FAKE = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const ACP = 'update-log-page-acp-token-7731';
const BACKLOG = 64 * 1024;
/** a quarter of the stream bound */
const PAGE = BACKLOG / 4;
/** 60 deltas of 2 KiB: each update's JSON is about 6.5 KB (its text is in `delta`, `text` and `structuredEvent`) */
const N = 60;
const SIZE = 2048;
const routing = { routingMode: 'explicit', explicitExecutionTarget: 'agent', explicitProviderId: 'fake' };
const bytes = (updates: Json[]) => updates.reduce((n: number, u: Json) => n + Buffer.byteLength(JSON.stringify(u)), 0);

let gw: GatewayProcess;

beforeAll(async () => {
  gw = await startProcess({
    gateway: { id: 'gw_log_page' },
    acp: {
      tokens: [ACP],
      maxStreamBacklogBytes: BACKLOG,
      agents: [{ id: 'fake', label: 'Fake', command: process.execPath, args: [FAKE], permissions: 'allow' }],
    },
  });
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  cleanupDirs();
});

describe('a read of the update log is bounded by bytes', () => {
  it('xworkmate.tasks.get, the REST events route and the WebSocket resume read the log in pages of at most a quarter of acp.maxStreamBacklogBytes', async () => {
    // not streamed: this test is about reading the log afterwards
    const run = await acpRpc(gw.url, ACP, 'session.start', { sessionId: 'paged', taskPrompt: `flood ${N} ${SIZE}`, routing });
    expect(run.error).toBeUndefined();
    expect(run.result).toMatchObject({ success: true, status: 'completed' });

    // tasks.get: page by page, each within the bound, with lastSeq past it until the last
    const pages: Json[][] = [];
    let after = 0;
    let lastSeq = -1;
    for (;;) {
      const r = (await acpRpc(gw.url, ACP, 'xworkmate.tasks.get', { sessionId: 'paged', afterSeq: after })).result;
      lastSeq = r.lastSeq;
      if (r.updates.length === 0) break;
      expect(bytes(r.updates)).toBeLessThanOrEqual(PAGE);
      pages.push(r.updates);
      after = r.updates.at(-1).seq;
      if (after >= lastSeq) break;
    }
    const all = pages.flat();
    expect(all.length).toBeGreaterThan(N);
    expect(pages.length).toBeGreaterThan(10);
    expect(all.map((u) => u.seq)).toEqual(Array.from({ length: all.length }, (_, i) => i + 1));
    expect(all.at(-1).seq).toBe(lastSeq);
    expect(all.at(-1)).toMatchObject({ type: 'status', event: 'completed' });
    expect(
      all
        .filter((u) => u.type === 'delta')
        .map((u) => u.delta)
        .join(''),
    ).toBe(Array.from({ length: N }, (_, i) => String.fromCharCode(97 + (i % 26)).repeat(SIZE)).join(''));
    // the whole log is many times the page bound: one answer used to carry it all
    expect(bytes(all)).toBeGreaterThan(10 * PAGE);

    // the REST events route: its limit (500 here) and the bytes, whichever is reached first
    const res = await fetch(`${gw.url}/api/v1/sessions/paged/events?after_seq=0&limit=500`, { headers: { authorization: `Bearer ${ACP}` } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Json;
    expect(body.events.length).toBeGreaterThan(0);
    expect(body.events.length).toBeLessThan(all.length);
    expect(body.events.map((e: Json) => e.seq)).toEqual(all.slice(0, body.events.length).map((u) => u.seq));
    expect(body.lastEventSeq).toBe(lastSeq);

    // the WebSocket resume replays the whole log, page after page, each update once and in order
    const ws = new WebSocket(`${gw.url.replace(/^http/, 'ws')}/acp?sessionId=paged&afterSeq=0`, { headers: { authorization: `Bearer ${ACP}` } });
    const got: Json[] = [];
    ws.on('message', (d) => got.push(JSON.parse(d.toString())));
    await new Promise<void>((resolve, reject) => {
      ws.on('message', () => {
        if (got.at(-1)?.params?.seq === lastSeq) resolve();
      });
      ws.once('close', () => reject(new Error(`the socket closed after ${got.length} messages`)));
    });
    ws.close();
    expect(got.map((m) => m.params)).toEqual(all);
  }, 120_000);
});
