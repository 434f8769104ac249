/**
 * The update log's byte bound, against a real gateway process: a session's log keeps its newest updates up to
 * `acp.updateLogMaxBytes` of JSON (and 1000 at most), dropping the oldest, and a resume from a seq it dropped gets
 * UPDATE_LOG_TRUNCATED naming where to resume instead of a silent gap, on every resume surface
 * (`xworkmate.tasks.get { afterSeq }`, the REST events route, the WebSocket resume). Before the fix the log was
 * bounded by count only: 1000 updates of 1 MiB each kept 3 GiB per session, and a reader got a gap in seq without
 * a word.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { acpRpc, cleanupDirs, startProcess, type GatewayProcess } from '../helpers/env.js';

type Json = any;

const FAKE = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const ACP = 'update-log-bound-acp-token-5521';
const MAX = 1024 * 1024;
/** 300 deltas of 16 KiB: about 15 MB of updates (each delta's text is in `delta`, `text` and `structuredEvent`) */
const N = 300;
const SIZE = 16 * 1024;
/**
 * The gateway's `acp.maxStreamBacklogBytes`, above all the turn streams (38 MB of SSE: each update carries its text
 * as `delta`, `text` and in its params): this test is about the log's bound, and with the 8 MiB default a client
 * reading as fast as it can on a loaded CI machine fell 8 MiB behind once and was cut, as it should be.
 */
const STREAM_BOUND = 64 * MAX;
const routing = { routingMode: 'explicit', explicitExecutionTarget: 'agent', explicitProviderId: 'fake' };

let gw: GatewayProcess;

beforeAll(async () => {
  gw = await startProcess({
    gateway: { id: 'gw_log_bound' },
    acp: {
      tokens: [ACP],
      updateLogMaxBytes: MAX,
      maxStreamBacklogBytes: STREAM_BOUND,
      agents: [{ id: 'fake', label: 'Fake', command: process.execPath, args: [FAKE], permissions: 'allow' }],
    },
  });
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  cleanupDirs();
});

const expectedText = Array.from({ length: N }, (_, i) => String.fromCharCode(97 + (i % 26)).repeat(SIZE)).join('');

describe('the update log keeps at most acp.updateLogMaxBytes per session', () => {
  it('drops the oldest updates past the bound; a resume from a dropped seq gets UPDATE_LOG_TRUNCATED on every surface', async () => {
    const run = await acpRpc(gw.url, ACP, 'session.start', { sessionId: 'big-log', taskPrompt: `flood ${N} ${SIZE}`, routing }, true);
    expect(run.error).toBeUndefined();
    expect(run.result).toMatchObject({ success: true, status: 'completed' });
    // the stream carried every update: the bound is the log's, not the live stream's
    expect(
      run.updates
        .filter((u: Json) => u.type === 'delta')
        .map((u: Json) => u.delta)
        .join(''),
    ).toBe(expectedText);
    const lastSeq = run.updates.at(-1).seq as number;

    // from the start: those updates are gone, and the answer says so and where to go on
    const fromStart = await acpRpc(gw.url, ACP, 'xworkmate.tasks.get', { sessionId: 'big-log', afterSeq: 0 });
    expect(fromStart.result).toBeUndefined();
    expect(fromStart.error).toMatchObject({ code: -32602, data: { code: 'UPDATE_LOG_TRUNCATED', sessionId: 'big-log', afterSeq: 0 } });
    expect(fromStart.error.message).toMatch(/acp\.updateLogMaxBytes/);
    const dropped = fromStart.error.data.droppedThroughSeq as number;
    expect(dropped).toBeGreaterThan(0);
    expect(dropped).toBeLessThan(lastSeq);

    // after the dropped part: the rest of the log, contiguous to the turn's last update, within the bound
    const rest = (await acpRpc(gw.url, ACP, 'xworkmate.tasks.get', { sessionId: 'big-log', afterSeq: dropped })).result;
    const seqs = rest.updates.map((u: Json) => u.seq as number);
    expect(seqs[0]).toBe(dropped + 1);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe(seqs[i - 1] + 1);
    expect(seqs.at(-1)).toBe(lastSeq);
    expect(rest.lastSeq).toBe(lastSeq);
    expect(rest.updates.at(-1)).toMatchObject({ type: 'status', event: 'completed' });
    const held = rest.updates.reduce((n: number, u: Json) => n + Buffer.byteLength(JSON.stringify(u)), 0);
    expect(held).toBeLessThanOrEqual(MAX);
    // and most of it is used: one more (older) update would not have fit
    expect(held + 3 * SIZE).toBeGreaterThan(MAX);
    // what the log holds is what the client was streamed, byte for byte
    expect(rest.updates).toEqual(run.updates.filter((u: Json) => u.seq > dropped));

    // the REST events route: 410 in the gateway's error format
    const res = await fetch(`${gw.url}/api/v1/sessions/big-log/events?after_seq=${dropped - 1}`, { headers: { authorization: `Bearer ${ACP}` } });
    expect(res.status).toBe(410);
    expect(((await res.json()) as Json).error).toMatchObject({ code: 'update_log_truncated' });
    const ok = await fetch(`${gw.url}/api/v1/sessions/big-log/events?after_seq=${dropped}&limit=5`, { headers: { authorization: `Bearer ${ACP}` } });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as Json).events[0].seq).toBe(dropped + 1);

    // the WebSocket resume: the error envelope, then the socket closes
    const ws = new WebSocket(`${gw.url.replace(/^http/, 'ws')}/acp?sessionId=big-log&afterSeq=3`, { headers: { authorization: `Bearer ${ACP}` } });
    const got: Json[] = [];
    ws.on('message', (d) => got.push(JSON.parse(d.toString())));
    const closed = await new Promise<number>((r) => ws.once('close', (code) => r(code)));
    expect(closed).toBe(1000);
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({ id: null, ok: false, error: { data: { code: 'UPDATE_LOG_TRUNCATED', afterSeq: 3, droppedThroughSeq: dropped } } });
  }, 120_000);
});
