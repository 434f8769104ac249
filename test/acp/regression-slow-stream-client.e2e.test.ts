/**
 * A client that stops reading its agent-task stream, against real gateway processes and real client sockets:
 * the gateway holds at most `acp.maxStreamBacklogBytes` (plus the one update written while under it) for it,
 * then ends its stream with CLIENT_TOO_SLOW naming the last seq it carried; the turn runs on, other clients
 * get every update, and the client resumes from the update log. Before the fix every update went into the
 * response's buffer: a 30 MB turn held 30 MB for a client that read nothing (found by reading the code).
 *
 * Covered: SSE on /acp/rpc for a local agent turn, SSE for updates relayed from a bridge peer
 * (`bridge-rpc-event`), the /acp WebSocket (cut, then a resume whose replay goes out at the client's pace),
 * and a cut client that never reads again (its connection is let go after the linger).
 */
import { request, type IncomingMessage } from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { acpRpc, adminGet, cleanupDirs, startProcess, waitFor, wsUrl, type GatewayProcess } from '../helpers/env.js';
import { parseProm, value } from '../ops/prom-text.js';

type Json = any;

const FAKE = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const ACP = 'slow-client-acp-token-4471';
const BRIDGE = 'slow-client-bridge-token-9913';
/** `acp.maxStreamBacklogBytes`' default: the gateways run with it */
const BOUND = 8 * 1024 * 1024;
/** the turn: 300 deltas of 16 KiB, about 30 MB of SSE (each delta is six times in its envelope) */
const N = 300;
const SIZE = 16 * 1024;
const FLOOD = `flood ${N} ${SIZE}`;

let b: GatewayProcess; // runs the agent, shares it with a
let a: GatewayProcess; // relays b's agent
let c: GatewayProcess; // a short linger

const agent = { id: 'fake', label: 'Fake', command: process.execPath, args: [FAKE], permissions: 'allow' };
const routing = { routingMode: 'explicit', explicitExecutionTarget: 'agent', explicitProviderId: 'fake' };
const startParams = (sessionId: string) => ({ sessionId, taskPrompt: FLOOD, routing });

beforeAll(async () => {
  [b, c] = await Promise.all([
    startProcess({
      gateway: { id: 'gw_slow_b', name: 'agents', bridge: { enabled: true, allowedTokens: [BRIDGE], shareAgents: ['fake'] } },
      acp: { tokens: [ACP], agents: [agent] },
    }),
    startProcess({ gateway: { id: 'gw_slow_c' }, acp: { tokens: [ACP], agents: [agent] } }, { SWITCHYARD_ACP_CUT_LINGER_MS: '300' }),
  ]);
  a = await startProcess({
    gateway: { id: 'gw_slow_a', name: 'edge', bridges: [{ name: 'agents', url: wsUrl(b.url), token: BRIDGE, shareChannels: false, reconnectInterval: 100 }] },
    acp: { tokens: [ACP] },
  });
  await waitFor(
    async () => (await acpRpc(a.url, ACP, 'acp.capabilities', {})).result?.providerCatalog?.some((p: Json) => p.providerId === 'fake' && p.enabled),
    "b's agent in a's catalog",
  );
}, 60_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop(), c?.stop()]);
  cleanupDirs();
});

async function scrape(gw: GatewayProcess) {
  const res = await fetch(`${gw.url}/metrics`);
  expect(res.status).toBe(200);
  const samples = parseProm(await res.text());
  return {
    backlogMax: value(samples, 'switchyard_acp_stream_backlog_max_bytes'),
    backlogTotal: value(samples, 'switchyard_acp_stream_backlog_bytes'),
    cutSse: value(samples, 'switchyard_acp_streams_cut_total', { transport: 'sse' }),
    cutWs: value(samples, 'switchyard_acp_streams_cut_total', { transport: 'ws' }),
  };
}

/**
 * POSTs an SSE request on a connection of its own and reads nothing: Node's HTTP client stops reading the
 * socket once the unread response holds its high-water mark (16 KiB). `readAll` starts reading.
 */
async function stalledSse(gw: GatewayProcess, id: string, method: string, params: Json): Promise<{ res: IncomingMessage; readAll(): Promise<string> }> {
  const body = JSON.stringify({ jsonrpc: '2.0', id, method, params });
  const req = request(`${gw.url}/acp/rpc`, {
    method: 'POST',
    agent: false,
    headers: { authorization: `Bearer ${ACP}`, 'content-type': 'application/json', accept: 'text/event-stream' },
  });
  req.end(body);
  const res = await new Promise<IncomingMessage>((resolve, reject) => req.once('response', resolve).once('error', reject));
  expect(res.statusCode).toBe(200);
  const readAll = () =>
    new Promise<string>((resolve) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      // 'end': the response ended; 'close' without it: the gateway closed the connection mid-response
      res.once('close', () => resolve(text));
    });
  return { res, readAll };
}

/** SSE text → its `data:` messages, parsed (`[DONE]` kept as the string). */
const messagesOf = (text: string): Json[] =>
  text
    .split('\n\n')
    .filter((blk) => blk.startsWith('data: '))
    .map((blk) => (blk === 'data: [DONE]' ? '[DONE]' : JSON.parse(blk.slice(6))));

function expectContiguous(seqs: number[], from?: number) {
  expect(seqs.length).toBeGreaterThan(3);
  if (from !== undefined) expect(seqs[0]).toBe(from);
  for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe((seqs[i - 1] as number) + 1);
}

/** what the turn writes: the i-th delta all one letter, a–z in turn */
const WHOLE = Array.from({ length: N }, (_, i) => String.fromCharCode(97 + (i % 26)).repeat(SIZE)).join('');

/**
 * A result (or snapshot) of the turn: its output is cut to a sixteenth of the stream bound and says so, so that the
 * final envelope fits within the bound; the whole output is in the deltas (docs/acp.md, *Result*).
 */
function expectBoundedOutput(r: Json) {
  expect(r).toMatchObject({ status: 'completed', outputTruncated: true, outputChars: N * SIZE });
  expect(r.output === WHOLE.slice(0, BOUND / 16)).toBe(true);
}

const deltaText = (updates: Json[]) =>
  updates
    .filter((u) => u.type === 'delta')
    .map((u) => u.delta)
    .join('');

/** Waits for the session's turn to end (answered by whichever gateway `gw` asks), sampling `gw`'s stream backlog meanwhile. */
async function turnEnd(gw: GatewayProcess, sessionId: string): Promise<{ status: string; backlogSeen: number }> {
  let backlogSeen = 0;
  const t = await waitFor(
    async () => {
      backlogSeen = Math.max(backlogSeen, (await scrape(gw)).backlogMax ?? 0);
      const r = (await acpRpc(gw.url, ACP, 'xworkmate.tasks.get', { sessionId })).result;
      return r?.status === 'completed' || r?.status === 'failed' ? r : undefined;
    },
    `the turn of ${sessionId} to end`,
    90_000,
    20,
  );
  return { status: t.status, backlogSeen };
}

/** The rest of the session after `afterSeq`, from the update log, as a client resumes. */
async function resume(gw: GatewayProcess, sessionId: string, afterSeq: number): Promise<{ updates: Json[]; lastSeq: number; snapshot: Json }> {
  // page by page (a page holds at most a quarter of the stream bound), while `lastSeq` is past the last update read
  const updates: Json[] = [];
  let after = afterSeq;
  for (;;) {
    const answer = await acpRpc(gw.url, ACP, 'xworkmate.tasks.get', { sessionId, afterSeq: after });
    if (!answer.result) throw new Error(JSON.stringify(answer.error));
    const r = answer.result;
    updates.push(...r.updates);
    if (r.updates.length === 0 || r.updates.at(-1).seq >= r.lastSeq) return { updates, lastSeq: r.lastSeq, snapshot: r };
    after = r.updates.at(-1).seq;
  }
}

/** What a slow SSE client got: its updates, then the CLIENT_TOO_SLOW envelope naming the last one, and no [DONE]. */
function expectCutStream(msgs: Json[], sessionId: string, id: string): { updates: Json[]; lastSeq: number; largest: number } {
  expect(msgs).not.toContain('[DONE]');
  const updates = msgs.filter((m) => m.method === 'session.update').map((m) => m.params);
  const last = msgs.at(-1);
  expect(last).toMatchObject({
    jsonrpc: '2.0',
    id,
    ok: false,
    error: { code: -32000, data: { code: 'CLIENT_TOO_SLOW', sessionId, lastSeq: updates.at(-1).seq, maxBacklogBytes: BOUND } },
  });
  expect(last.error.message).toMatch(/the turn goes on/);
  expect(msgs.filter((m) => m !== '[DONE]' && 'id' in m)).toHaveLength(1);
  expectContiguous(updates.map((u) => u.seq));
  return { updates, lastSeq: updates.at(-1).seq, largest: Math.max(...msgs.map((m) => JSON.stringify(m).length)) };
}

/**
 * The same from the REST events route, a page of 100 at a time (what a client of a peer's session with updates
 * this large does: a bridge frame carries at most 16 MiB, and tasks.get answers up to 1000 updates at once).
 */
async function resumeByEvents(gw: GatewayProcess, sessionId: string, afterSeq: number): Promise<{ updates: Json[]; lastSeq: number }> {
  const updates: Json[] = [];
  let after = afterSeq;
  for (;;) {
    const res = await fetch(`${gw.url}/api/v1/sessions/${sessionId}/events?after_seq=${after}&limit=100`, { headers: { authorization: `Bearer ${ACP}` } });
    expect(res.status, await res.clone().text()).toBe(200);
    const page = (await res.json()) as { events: Json[]; lastEventSeq: number };
    for (const e of page.events) updates.push({ seq: e.seq, type: e.type === 'message.delta' ? 'delta' : e.type, ...e.payload });
    if (page.events.length === 0 || page.events.at(-1).seq >= page.lastEventSeq) return { updates, lastSeq: page.lastEventSeq };
    after = page.events.at(-1).seq;
  }
}

describe('a client that stops reading its agent-task stream', () => {
  it('SSE, local turn: cut past the bound with CLIENT_TOO_SLOW; the turn and a reading client go on; the rest is in the log', async () => {
    const slow = await stalledSse(b, 'slow-1', 'session.start', startParams('slow-local'));
    // another client, reading as it comes, at the same time: every update and the result
    const fast = acpRpc(b.url, ACP, 'session.start', startParams('fast-local'), true);
    const [ended, normal] = await Promise.all([turnEnd(b, 'slow-local'), fast]);
    expect(ended.status).toBe('completed'); // the slow client did not stall the agent

    expect(normal.result).toMatchObject({ success: true, status: 'completed' });
    expect(normal.updates.at(-1)).toMatchObject({ type: 'status', event: 'completed' });
    expectContiguous(normal.updates.map((u) => u.seq));
    expect(deltaText(normal.updates) === WHOLE).toBe(true);
    expectBoundedOutput(normal.result);

    const held = await scrape(b); // what the gateway holds while the slow client has still read nothing
    const cut = expectCutStream(messagesOf(await slow.readAll()), 'slow-local', 'slow-1');
    const rest = await resume(b, 'slow-local', cut.lastSeq);
    expect(rest.updates.at(-1)).toMatchObject({ type: 'status', event: 'completed' });
    expect(rest.lastSeq).toBe(rest.updates.at(-1).seq);
    expectContiguous(
      rest.updates.map((u) => u.seq),
      cut.lastSeq + 1,
    );
    // nothing missed, nothing twice: what it read and what it resumed are the whole output
    expect(deltaText([...cut.updates, ...rest.updates]) === WHOLE).toBe(true);
    expectBoundedOutput(rest.snapshot);
    // what the gateway held for the slow client: the bound and one update at most (the largest envelope it got).
    // While both ran, no stream held more than the bound and the largest envelope written: the reading client's
    // result, whose output (cut to a sixteenth of the bound) is in it twice (result and its payload mirror)
    expect(held.cutSse).toBe(1);
    expect(held.backlogMax).toBeGreaterThan(0);
    expect(held.backlogMax).toBeLessThanOrEqual(BOUND + cut.largest);
    const resultEnvelope = JSON.stringify({ jsonrpc: '2.0', id: 1, result: normal.result, type: 'res', ok: true, payload: normal.result }).length;
    expect(ended.backlogSeen).toBeLessThanOrEqual(BOUND + Math.max(cut.largest, resultEnvelope));
    // the response is let go once the client took it
    await waitFor(async () => (await scrape(b)).backlogTotal === 0, 'no stream holding anything');
  }, 120_000);

  it("SSE, a bridge peer's turn: the relaying gateway cuts its slow client, not the link; the rest comes through it", async () => {
    const slow = await stalledSse(a, 'slow-2', 'session.start', startParams('slow-relay'));
    const ended = await turnEnd(a, 'slow-relay');
    expect(ended.status).toBe('completed');
    const held = await scrape(a);
    const cut = expectCutStream(messagesOf(await slow.readAll()), 'slow-relay', 'slow-2');
    const rest = await resumeByEvents(a, 'slow-relay', cut.lastSeq);
    expectContiguous(
      rest.updates.map((u) => u.seq),
      cut.lastSeq + 1,
    );
    expect(rest.updates.at(-1)).toMatchObject({ seq: rest.lastSeq, type: 'run.completed' });
    expect(deltaText([...cut.updates, ...rest.updates]) === WHOLE).toBe(true);
    expectBoundedOutput((await acpRpc(a.url, ACP, 'xworkmate.tasks.get', { sessionId: 'slow-relay' })).result);
    expect((await adminGet(a.url, '/admin/bridges')).peers[0].state).toBe('open');
    expect(held.cutSse).toBe(1);
    expect(held.backlogMax).toBeGreaterThan(0);
    expect(held.backlogMax).toBeLessThanOrEqual(BOUND + cut.largest);
    expect(ended.backlogSeen).toBeLessThanOrEqual(BOUND + cut.largest);
  }, 120_000);

  it('WebSocket: the socket is cut with CLIENT_TOO_SLOW and 1013; a resume replays the rest at its reader’s pace, bounded', async () => {
    const base = b.url.replace(/^http/, 'ws');
    const headers = { authorization: `Bearer ${ACP}` };
    const before = (await scrape(b)).cutWs ?? 0;
    const ws = new WebSocket(`${base}/acp`, { headers });
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ jsonrpc: '2.0', id: 'w1', method: 'session.start', params: startParams('slow-ws') }));
    ws.pause(); // reads nothing more from its socket
    expect((await turnEnd(b, 'slow-ws')).status).toBe('completed');
    const held = await scrape(b);
    const msgs: Json[] = [];
    // what ends it: the gateway's close, or (a socket never cut) the turn's result
    const end = new Promise<string>((r) => {
      ws.once('close', (code) => r(`closed ${code}`));
      ws.on('message', (d) => {
        const m = JSON.parse(d.toString());
        msgs.push(m);
        if (m.id === 'w1') r('the result came');
      });
    });
    ws.resume();
    expect(await end).toBe('closed 1013');
    const updates = msgs.filter((m) => m.method === 'session.update').map((m) => m.params);
    expectContiguous(updates.map((u) => u.seq));
    expect(msgs.at(-1)).toMatchObject({ id: null, ok: false, error: { code: -32000, data: { code: 'CLIENT_TOO_SLOW', maxBacklogBytes: BOUND } } });
    expect(msgs.filter((m) => m.id === 'w1')).toEqual([]); // the turn's result never came: it ended after the cut
    const largest = Math.max(...msgs.map((m) => JSON.stringify(m).length));
    expect(held.cutWs).toBe(before + 1);
    expect(held.backlogMax).toBeLessThanOrEqual(BOUND + largest);
    const lastSeq = updates.at(-1).seq as number;

    // resume from there with a reader that does not read yet: the replay stops at a quarter of the bound
    const again = new WebSocket(`${base}/acp?sessionId=slow-ws&afterSeq=${lastSeq}`, { headers });
    const got: Json[] = [];
    again.on('message', (d) => got.push(JSON.parse(d.toString())));
    await new Promise((r) => again.once('open', r));
    again.pause();
    const replaying = await waitFor(async () => {
      const s = await scrape(b);
      return (s.backlogMax ?? 0) >= BOUND / 4 ? s : undefined;
    }, 'the replay to fill what it may');
    expect(replaying.backlogMax).toBeLessThanOrEqual(BOUND + largest);
    const done = new Promise<string>((resolve) => {
      again.once('close', (code) => resolve(`closed ${code}`));
      again.on('message', (d) => {
        const m = JSON.parse(d.toString());
        if (m.params?.type === 'status' && m.params.event === 'completed') resolve('the turn’s last update came');
      });
    });
    again.resume();
    expect(await done).toBe('the turn’s last update came');
    const rest = got.filter((m) => m.method === 'session.update').map((m) => m.params);
    expect(got.filter((m) => m.error)).toEqual([]);
    expectContiguous(
      rest.map((u) => u.seq),
      lastSeq + 1,
    );
    expect(deltaText([...updates, ...rest]) === WHOLE).toBe(true);
    expectBoundedOutput((await acpRpc(b.url, ACP, 'xworkmate.tasks.get', { sessionId: 'slow-ws' })).result);
    expect(again.readyState).toBe(WebSocket.OPEN); // not cut
    expect((await scrape(b)).cutWs).toBe(before + 1);
    again.close();
  }, 120_000);

  it('a cut client that never reads again is let go after the linger: the gateway holds nothing for it', async () => {
    const slow = await stalledSse(c, 'slow-3', 'session.start', startParams('slow-gone'));
    expect((await turnEnd(c, 'slow-gone')).status).toBe('completed');
    // the client has read nothing; 300 ms after the cut its response is destroyed, and nothing is held for it
    await waitFor(async () => (await scrape(c)).backlogTotal === 0, 'the cut stream let go', 10_000);
    const text = await slow.readAll();
    expect(slow.res.complete).toBe(false); // its connection was closed before the response was whole
    expect(text).not.toContain('[DONE]');
    expect(text).not.toContain('CLIENT_TOO_SLOW'); // the end was dropped with what it was behind
    expect((await scrape(c)).cutSse).toBe(1);
  }, 120_000);
});
