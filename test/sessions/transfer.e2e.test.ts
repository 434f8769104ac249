/**
 * Session transfer between real gateway processes. Sessions are written into A's SQLite file by the test
 * (WAL lets another process read and write it); each gateway's file is read back to check ownership:
 * exactly one owner after every scenario, never two, never zero.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import WebSocket from 'ws';
import { openStore } from '../../src/sessions/open-store.js';
import { newSession, newTurn, appendTurn, updateTurn, type Session } from '../../src/sessions/model.js';
import type { SessionStore } from '../../src/sessions/store.js';
import { acpRpc, adminGet, cleanupDirs, startProcess, tmpDir, waitFor, wsUrl, BIN, type GatewayProcess } from '../helpers/env.js';

const TOKEN = 'transfer-bridge-token-99';
/** B's /acp/rpc token: a client resuming there reads the log B holds */
const ACP = 'transfer-acp-token-4417';
const procs: GatewayProcess[] = [];
const stores: SessionStore[] = [];
const track = <T extends GatewayProcess>(p: T) => (procs.push(p), p);

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...process.env, SWITCHYARD_URL: '', SWITCHYARD_ADMIN_TOKEN: '' }, timeout: 60_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

async function storeAt(dir: string): Promise<SessionStore> {
  const s = await openStore({ kind: 'sqlite', path: join(dir, 'data', 'switchyard.db') });
  stores.push(s);
  return s;
}

async function seed(store: SessionStore, id: string, owner: string, turns = 2): Promise<Session> {
  let s = newSession({
    id,
    kind: 'chat',
    ownerGatewayId: owner,
    target: { executionTarget: 'gateway', providerId: '', gatewayProviderId: 'switchyard', model: 'mock-1' },
  });
  for (let i = 0; i < turns; i++) {
    const t = newTurn(`question ${i}`, [{ role: 'user', content: `question ${i}` }]);
    s = updateTurn(appendTurn(s, t), t.turnId, { status: 'completed', output: `answer ${i}`, endedAt: Date.now() });
  }
  return store.create(s);
}

interface Pair {
  a: GatewayProcess & { dir: string };
  b: GatewayProcess & { dir: string };
  aStore: SessionStore;
  bStore: SessionStore;
  bCfg: Record<string, any>;
}

async function pair(opts: { acceptSessions?: boolean; bEnv?: NodeJS.ProcessEnv; heartbeat?: number } = {}): Promise<Pair> {
  const bDir = tmpDir();
  const limits = opts.heartbeat ? { heartbeatIntervalMs: opts.heartbeat, deadPeerMisses: 3 } : {};
  const bCfg = {
    gateway: {
      id: `gw_b_${Math.random().toString(36).slice(2, 7)}`,
      name: 'datacenter',
      port: 0,
      bridge: { enabled: true, allowedTokens: [TOKEN], acceptSessions: opts.acceptSessions ?? true, limits },
    },
    channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
    acp: { tokens: [ACP] },
  };
  const b = track(await startProcess(bCfg, opts.bEnv ?? {}, bDir));
  bCfg.gateway.port = Number(new URL(b.url).port);
  const aDir = tmpDir();
  const a = track(
    await startProcess(
      {
        gateway: {
          id: `gw_a_${Math.random().toString(36).slice(2, 7)}`,
          name: 'office',
          bridges: [{ name: 'datacenter', url: wsUrl(b.url), token: TOKEN, reconnectInterval: 100, maxReconnectInterval: 300 }],
          bridge: { limits },
        },
        channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
      },
      {},
      aDir,
    ),
  );
  await waitFor(async () => (await adminGet(a.url, '/admin/bridges')).peers[0]?.state === 'open', 'A→B link');
  return { a, b, aStore: await storeAt(aDir), bStore: await storeAt(bDir), bCfg };
}

afterEach(async () => {
  for (const p of procs) if (p.proc.signalCode === 'SIGSTOP' || p.proc.exitCode === null) p.kill('SIGCONT');
});

afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  await Promise.all(stores.map((s) => s.close()));
  cleanupDirs();
});

describe('session transfer', () => {
  let p: Pair;
  beforeAll(async () => {
    p = await pair();
  });
  /** B holds the session as its owner (the sender's commit arrived) */
  const confirmedOnB = (id: string) =>
    waitFor(async () => {
      const s = await p.bStore.get(id);
      return s && !s.metadata.transfer ? s : undefined;
    }, `B to hold the confirmed session ${id}`);

  it('moves a session with its history: the sender marks it moved only after the ok; one owner', async () => {
    const before = await seed(p.aStore, 's-move', p.a.id, 3);
    const r = await cli(['sessions', 'transfer', 's-move', '--to', 'datacenter', '--url', p.a.url]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`session s-move moved to datacenter (${p.b.id})\n`);
    const onA = (await p.aStore.get('s-move'))!;
    expect(onA).toMatchObject({ status: 'moved', movedTo: p.b.id });
    const onB = await waitFor(async () => {
      const s = await p.bStore.get('s-move');
      return s && !s.metadata.transfer ? s : undefined;
    }, 'B to hold the confirmed session');
    expect(onB).toMatchObject({ ownerGatewayId: p.b.id, status: 'active', threadId: before.threadId });
    expect(onB.history.map((t) => [t.prompt, t.output, t.status])).toEqual(before.history.map((t) => [t.prompt, t.output, t.status]));
    const list = await cli(['sessions', 'list', '--url', p.a.url, '--json']);
    expect(JSON.parse(list.stdout).find((s: any) => s.id === 's-move')).toMatchObject({ status: 'moved', movedTo: p.b.id });
  });

  it("carries the session's update log: the receiver's store holds it, readable from any seq on (what tasks.get and the resume read)", async () => {
    await seed(p.aStore, 's-log', p.a.id, 1);
    const log = Array.from({ length: 40 }, (_, i) => ({ seq: i + 1, event: { sessionId: 's-log', seq: i + 1, type: 'delta', text: `part ${i + 1}` } }));
    await p.aStore.appendEvents('s-log', log, 1000);
    const r = await cli(['sessions', 'transfer', 's-log', '--to', 'datacenter', '--url', p.a.url]);
    expect(r.stderr).toBe('');
    expect((await p.bStore.readEvents('s-log', 0, 1000)).events).toEqual(log);
    expect((await p.bStore.readEvents('s-log', 38, 1000)).events).toEqual(log.slice(38));
  });

  it('a log too large for one frame travels as its newest entries, in order', async () => {
    await seed(p.aStore, 's-biglog', p.a.id, 1);
    // 1,000 entries of ~2 KiB: about twice what an offer carries (1 MiB of entries)
    const log = Array.from({ length: 1000 }, (_, i) => ({ seq: i + 1, event: { sessionId: 's-biglog', seq: i + 1, type: 'delta', text: 'x'.repeat(2000) } }));
    await p.aStore.appendEvents('s-biglog', log, 1000);
    const r = await cli(['sessions', 'transfer', 's-biglog', '--to', 'datacenter', '--url', p.a.url]);
    expect(r.stderr).toBe('');
    const onB = (await p.bStore.readEvents('s-biglog', 0, 1000)).events;
    expect(onB.length).toBeGreaterThan(300);
    expect(onB.length).toBeLessThan(1000);
    expect(onB).toEqual(log.slice(log.length - onB.length));
    // what did not fit is marked dropped there: a resume from before it is told, not given a gap
    const dropped = 1000 - onB.length;
    expect(await p.bStore.droppedThrough('s-biglog')).toBe(dropped);
    await confirmedOnB('s-biglog');
    const fromStart = await acpRpc(p.b.url, ACP, 'xworkmate.tasks.get', { sessionId: 's-biglog', afterSeq: 0 });
    expect(fromStart.error).toMatchObject({ code: -32602, data: { code: 'UPDATE_LOG_TRUNCATED', afterSeq: 0, droppedThroughSeq: dropped } });
  });

  it("what the sender's log had dropped stays dropped on the new owner: a resume there from a dropped seq gets UPDATE_LOG_TRUNCATED, not a gap", async () => {
    await seed(p.aStore, 's-floor', p.a.id, 1);
    const ev = (seq: number) => ({ seq, event: { sessionId: 's-floor', seq, type: 'delta', text: 'x'.repeat(1000) } });
    // A's log keeps 5 KB of 20 entries of ~1 KB: the oldest were dropped there
    await p.aStore.appendEvents(
      's-floor',
      Array.from({ length: 20 }, (_, i) => ev(i + 1)),
      1000,
      5000,
    );
    const dropped = await p.aStore.droppedThrough('s-floor');
    expect(dropped).toBeGreaterThan(10);
    const r = await cli(['sessions', 'transfer', 's-floor', '--to', 'datacenter', '--url', p.a.url]);
    expect(r.stderr).toBe('');
    await confirmedOnB('s-floor');
    expect(await p.bStore.droppedThrough('s-floor')).toBe(dropped);
    for (const afterSeq of [0, dropped - 1]) {
      const gap = await acpRpc(p.b.url, ACP, 'xworkmate.tasks.get', { sessionId: 's-floor', afterSeq });
      expect(gap.result).toBeUndefined();
      expect(gap.error).toMatchObject({ code: -32602, data: { code: 'UPDATE_LOG_TRUNCATED', sessionId: 's-floor', afterSeq, droppedThroughSeq: dropped } });
    }
    const rest = (await acpRpc(p.b.url, ACP, 'xworkmate.tasks.get', { sessionId: 's-floor', afterSeq: dropped })).result;
    expect(rest.updates).toEqual(Array.from({ length: 20 - dropped }, (_, i) => ev(dropped + 1 + i).event));
    expect(rest.lastSeq).toBe(20);
  });

  it('a second transfer of a moved session is refused, naming the owner', async () => {
    const r = await cli(['sessions', 'transfer', 's-move', '--to', 'datacenter', '--url', p.a.url]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`switchyard: ${p.a.url} answered HTTP 400 (invalid_request): session s-move already moved to ${p.b.id}\n`);
  });

  it('unknown session ids get a clear one-line error', async () => {
    expect((await cli(['sessions', 'show', 'nope', '--url', p.a.url])).stderr).toBe(`switchyard: ${p.a.url} answered HTTP 404 (not_found): no session nope\n`);
    expect((await cli(['sessions', 'transfer', 'nope', '--to', 'datacenter', '--url', p.a.url])).stderr).toBe(
      `switchyard: ${p.a.url} answered HTTP 404 (not_found): no session nope\n`,
    );
    expect((await cli(['sessions', 'transfer', 's-x', '--to', 'nobody', '--url', p.a.url])).stderr).toBe(
      `switchyard: ${p.a.url} answered HTTP 404 (not_found): no connected peer named or with id "nobody"\n`,
    );
  });

  it('a session with a running turn is refused with --no-wait and stays', async () => {
    const s = await seed(p.aStore, 's-busy', p.a.id, 1);
    await p.aStore.update(appendTurn(s, newTurn('still running')), s.version);
    const r = await cli(['sessions', 'transfer', 's-busy', '--to', 'datacenter', '--no-wait', '--url', p.a.url]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/has a turn running/);
    expect(await p.aStore.get('s-busy')).toMatchObject({ status: 'running', ownerGatewayId: p.a.id });
    expect(await p.bStore.get('s-busy')).toBeUndefined();
  });

  it('with a running turn, a transfer waits for the turn to end, then moves the session with that turn', async () => {
    const s = await seed(p.aStore, 's-wait', p.a.id, 1);
    await p.aStore.update(appendTurn(s, newTurn('finishing soon')), s.version);
    let settled = false;
    const pending = cli(['sessions', 'transfer', 's-wait', '--to', 'datacenter', '--url', p.a.url]).finally(() => (settled = true));
    // the CLI reached A and A is waiting on this turn (fails if the CLI never connected or did not wait)
    await waitFor(
      () =>
        p.a
          .logs()
          .split('\n')
          .some((l) => l.includes('session transfer waits for the running turn') && l.includes('s-wait')),
      "A waiting for s-wait's turn",
    );
    expect(settled, 'the CLI is still waiting').toBe(false);
    expect((await p.aStore.get('s-wait'))!.status).toBe('running'); // still here, still waiting
    const cur = (await p.aStore.get('s-wait'))!;
    await p.aStore.update(updateTurn(cur, cur.history[1]!.turnId, { status: 'completed', output: 'finished', endedAt: Date.now() }), cur.version);
    const r = await pending;
    expect(r.stdout).toBe(`session s-wait moved to datacenter (${p.b.id})\n`);
    const onB = await waitFor(() => p.bStore.get('s-wait'), 'the session on B');
    expect(onB.history.map((t) => [t.prompt, t.status, t.output])).toEqual([
      ['question 0', 'completed', 'answer 0'],
      ['finishing soon', 'completed', 'finished'],
    ]);
  });

  it('drain moves every open session with a progress line each and a summary', async () => {
    const ids = Array.from({ length: 12 }, (_, i) => `s-drain-${i}`);
    for (const id of ids) await seed(p.aStore, id, p.a.id, 1);
    // the busy one from the previous test finishes its turn so drain can move it too
    const busy = (await p.aStore.get('s-busy'))!;
    await p.aStore.update(
      updateTurn(busy, busy.history[busy.history.length - 1]!.turnId, { status: 'completed', output: 'done', endedAt: Date.now() }),
      busy.version,
    );
    const r = await cli(['sessions', 'drain', '--to', 'datacenter', '--url', p.a.url]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.filter((l) => /^\[\d+\] s-\S+ → datacenter: moved$/.test(l))).toHaveLength(13);
    expect(lines[lines.length - 1]).toBe('drained: 13 moved, 0 stayed; no open session left here: the gateway is ready to stop');
    for (const id of [...ids, 's-busy']) {
      expect((await p.aStore.get(id))!.status).toBe('moved');
      expect((await p.bStore.get(id))!.ownerGatewayId).toBe(p.b.id);
    }
  });

  it('drain of more open sessions than two list calls return (100 of a status each): it lists again until every one has moved', async () => {
    const ids = Array.from({ length: 205 }, (_, i) => `s-many-${i}`);
    for (const id of ids) await seed(p.aStore, id, p.a.id, 0);
    const r = await cli(['sessions', 'drain', '--to', 'datacenter', '--url', p.a.url]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.filter((l) => /^\[\d+\] s-many-\d+ → datacenter: moved$/.test(l))).toHaveLength(205);
    expect(lines[lines.length - 1]).toBe('drained: 205 moved, 0 stayed; no open session left here: the gateway is ready to stop');
    expect((await p.aStore.list({ owner: p.a.id, status: 'active' })).length).toBe(0);
  });

  it('drain tries every open session past the first page when the first page stays: it pages with the cursor', async () => {
    // each of these carries a transfer marker (an offer under way here, as far as the record says): its transfer is
    // refused at once, and it stays. Before, the second pass listed the first page again, found every session on it
    // tried, and stopped: the 30 past it were never tried, and the summary counted 100.
    const ids = Array.from({ length: 130 }, (_, i) => `s-stays-${i}`);
    for (const id of ids) {
      const s = await seed(p.aStore, id, p.a.id, 0);
      await p.aStore.update(
        { ...s, metadata: { ...s.metadata, transfer: { id: `xfer_${id}`, state: 'offering', peer: p.b.id, since: Date.now() } } },
        s.version,
      );
    }
    const r = await cli(['sessions', 'drain', '--to', 'datacenter', '--url', p.a.url]);
    expect(r.code).toBe(1);
    const lines = r.stdout.trim().split('\n');
    const stayed = lines.filter((l) => /^\[\d+\] s-stays-\d+: stayed here \(.*already being transferred.*\)$/.test(l));
    expect(new Set(stayed.map((l) => /s-stays-\d+/.exec(l)![0])).size).toBe(130);
    expect(lines[lines.length - 1]).toBe('drained: 0 moved, 130 stayed');
    for (const id of ids) await p.aStore.delete(id);
  });

  it('drain to a peer that is not connected says so and fails, even with nothing to move', async () => {
    const r = await cli(['sessions', 'drain', '--to', 'nobody-here', '--url', p.a.url]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('switchyard: no connected peer named or with id "nobody-here"');
  });
});

describe('refusals and hostile offers', () => {
  it('a peer that does not accept sessions: refused before anything is sent; the session stays', async () => {
    const p = await pair({ acceptSessions: false });
    await seed(p.aStore, 's-stay', p.a.id);
    const r = await cli(['sessions', 'transfer', 's-stay', '--to', 'datacenter', '--url', p.a.url]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/does not accept sessions/);
    expect(await p.aStore.get('s-stay')).toMatchObject({ status: 'active', ownerGatewayId: p.a.id });
    expect(await p.bStore.get('s-stay')).toBeUndefined();
  });

  it('hand-crafted offers: not accepting, not the owner, overwriting, malformed', async () => {
    const dirNo = tmpDir();
    const no = track(
      await startProcess(
        { gateway: { id: 'gw_noaccept', bridge: { enabled: true, allowedTokens: [TOKEN] } }, channels: [{ name: 'm', provider: 'mock', models: ['m'] }] },
        {},
        dirNo,
      ),
    );
    const dirYes = tmpDir();
    const yes = track(
      await startProcess(
        {
          gateway: { id: 'gw_accept', bridge: { enabled: true, allowedTokens: [TOKEN], acceptSessions: true } },
          channels: [{ name: 'm', provider: 'mock', models: ['m'] }],
        },
        {},
        dirYes,
      ),
    );
    const yesStore = await storeAt(dirYes);
    await seed(yesStore, 's-mine', 'gw_accept');

    async function offer(url: string, frame: object): Promise<any> {
      const ws = new WebSocket(wsUrl(url));
      const frames: any[] = [];
      ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
      await new Promise((r) => ws.once('open', r));
      ws.send(
        JSON.stringify({
          type: 'bridge-hello',
          gatewayId: 'gw_hostile',
          gatewayName: 'h',
          version: '1.0',
          token: TOKEN,
          capabilities: { shareChannels: false, acceptSessions: false, loadBalance: false },
        }),
      );
      await waitFor(() => frames.find((f) => f.type === 'bridge-hello-ok'), 'hello-ok');
      ws.send(JSON.stringify(frame));
      const reply = await waitFor(
        () => frames.find((f) => f.type === 'bridge-session-transfer-ok' || (f.type === 'bridge-error' && f.requestId)),
        'transfer reply',
      );
      ws.close();
      return reply;
    }
    const good = (id: string, owner: string) => ({
      ...newSession({ id, kind: 'chat', ownerGatewayId: owner, target: { executionTarget: 'gateway', providerId: '', gatewayProviderId: 'x', model: 'm' } }),
      owner,
    });

    expect(await offer(no.url, { type: 'bridge-session-transfer', transferId: 't1', session: good('s1', 'gw_hostile') })).toMatchObject({
      code: 'TRANSFER_REJECTED',
      requestId: 't1',
    });
    expect(await offer(yes.url, { type: 'bridge-session-transfer', transferId: 't2', session: good('s2', 'gw_somebody_else') })).toMatchObject({
      code: 'NOT_OWNER',
      requestId: 't2',
    });
    expect(await offer(yes.url, { type: 'bridge-session-transfer', transferId: 't3', session: good('s-mine', 'gw_hostile') })).toMatchObject({
      code: 'NOT_OWNER',
      requestId: 't3',
    });
    const bad = await offer(yes.url, { type: 'bridge-session-transfer', transferId: 't4', session: { id: 's4', owner: 'gw_hostile', kind: 'banana' } });
    expect(bad).toMatchObject({ code: 'TRANSFER_REJECTED', requestId: 't4' });
    expect(bad.message).toMatch(/invalid session record/);
    expect(await yesStore.get('s-mine')).toMatchObject({ ownerGatewayId: 'gw_accept', status: 'active' });
    expect(await yesStore.get('s2')).toBeUndefined();

    // the log's dropped-through mark: an older sender does not send it (nothing dropped), a newer one does
    const events = [8, 9].map((seq) => ({ seq, event: { seq, type: 'delta', text: `part ${seq}` } }));
    expect(await offer(yes.url, { type: 'bridge-session-transfer', transferId: 't5', session: good('s5', 'gw_hostile'), events })).toMatchObject({
      type: 'bridge-session-transfer-ok',
      sessionId: 's5',
    });
    expect((await yesStore.readEvents('s5', 0, 10)).events).toEqual(events);
    expect(await yesStore.droppedThrough('s5')).toBe(0);
    expect(
      await offer(yes.url, { type: 'bridge-session-transfer', transferId: 't6', session: good('s6', 'gw_hostile'), events, droppedThroughSeq: 7 }),
    ).toMatchObject({ type: 'bridge-session-transfer-ok', sessionId: 's6' });
    expect((await yesStore.readEvents('s6', 0, 10)).events).toEqual(events);
    expect(await yesStore.droppedThrough('s6')).toBe(7);
  });
});

describe('failures mid-transfer never leave two owners', () => {
  it('the receiver crashes after storing, before the ok: the session stays with the sender; the copy is dropped on reconnect', async () => {
    const p = await pair({ bEnv: { SWITCHYARD_FAILPOINT: 'transfer-receiver-crash-after-store' } });
    await seed(p.aStore, 's-crash', p.a.id);
    const r = await cli(['sessions', 'transfer', 's-crash', '--to', 'datacenter', '--url', p.a.url]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/stays on this gateway/);
    expect(await p.aStore.get('s-crash')).toMatchObject({ status: 'active', ownerGatewayId: p.a.id });
    expect(((await p.aStore.get('s-crash'))!.metadata as any).transfer).toBeUndefined();
    // B stored a provisional copy before dying
    expect(((await p.bStore.get('s-crash'))!.metadata as any).transfer).toMatchObject({ state: 'provisional', peer: p.a.id });
    // B restarts (without the failpoint) on the same port and data; the link returns and B settles the copy
    const b2 = track(await startProcess(p.bCfg, {}, p.b.dir));
    expect(b2.id).toBe(p.b.id);
    await waitFor(async () => (await p.bStore.get('s-crash')) === undefined, 'B to drop its provisional copy', 15_000);
    expect(await p.aStore.get('s-crash')).toMatchObject({ status: 'active', ownerGatewayId: p.a.id });
  });

  it('the link freezes mid-transfer: the sender keeps the session; the late copy is settled when the link returns', async () => {
    // dead-peer timeout 3 × 2 s: long enough for the CLI (a fresh Node process, seconds on a loaded machine) to
    // send the offer before the link is declared dead
    const p = await pair({ heartbeat: 2000 });
    await seed(p.aStore, 's-frozen', p.a.id);
    p.b.kill('SIGSTOP');
    const r = await cli(['sessions', 'transfer', 's-frozen', '--to', 'datacenter', '--url', p.a.url]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/stays on this gateway/);
    expect(await p.aStore.get('s-frozen')).toMatchObject({ status: 'active', ownerGatewayId: p.a.id });
    p.b.kill('SIGCONT');
    await waitFor(async () => (await adminGet(p.a.url, '/admin/bridges')).peers[0]?.state === 'open', 'link back', 15_000);
    // whatever B did with the buffered offer, it must not end up owning the session
    await waitFor(
      async () => {
        const copy = await p.bStore.get('s-frozen');
        return copy === undefined;
      },
      'no copy left on B',
      15_000,
    );
    expect(await p.aStore.get('s-frozen')).toMatchObject({ status: 'active', ownerGatewayId: p.a.id });
  });
});
