/**
 * Regression: updates numbered without the session's lease repeated a `seq` the lease holder (another instance)
 * handed out, and the update log keeps one update per `seq`: the holder's update was overwritten. Two gateway
 * processes share one real Redis store (one gateway id), the fake ACP agent as Hermes. While instance 2 runs a long
 * turn (it holds the lease), instance 1 gets two turns of the session: the first waits for the lease until the wait
 * runs out (OVERLOADED), the second is queued behind it and cancelled while it waits in turn. Then instance 1 runs a
 * long turn and is paused (SIGSTOP) past its lease: instance 2 takes the session, records that turn interrupted and
 * runs one of its own; resumed, instance 1 finds its lease lost and stops its turn. On the old code the queued
 * status, the two ends and the lost turn's last updates were numbered from instance 1's own counter, over instance
 * 2's numbers. Now (the seq rule) they reach their caller without `seq`, and neither the log nor the record has them.
 * The paused instance numbers nothing once its lease may have lapsed (its ttl after the last renewal that succeeded),
 * and what it numbered before but had not written to the log by then is not written.
 */
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/env.js';
import { agentRouting, rpc, rpcStreamed, wholeUpdateLog } from './acp-rpc.js';
import { twoInstancesOnRedis, type Gw } from './hermes-instances.js';

type Json = any;
const ACP = 'acp-seq-without-lease-91c2d4';
// a short lease (renewed every 500 ms) and a lease wait that outlasts it but not a 20 s turn
const s = twoInstancesOnRedis('gw_seq_without_lease', ACP, { acp: { turnLeaseMs: 1_500, turnLeaseWaitMs: 4_000 } });

/** acp-rpc.ts's streamed call and whole-log read, with this suite's token */
const streamed = (gw: Gw, method: string, params: Json) => rpcStreamed(gw.url, ACP, method, params);
const wholeLog = (gw: Gw, sessionId: string) => wholeUpdateLog(gw.url, ACP, sessionId);

const taskOn = async (gw: Gw, sessionId: string) => (await rpc(gw.url, ACP, 'xworkmate.tasks.get', { sessionId })).result;
const lastSeqOn = async (gw: Gw, sessionId: string) =>
  (await rpc(gw.url, ACP, 'xworkmate.tasks.get', { sessionId, afterSeq: 0, limit: 1 })).result.lastSeq as number;

describe('updates an instance sends while another holds the session lease', () => {
  it('go to their caller without seq, and never into the log or the record: no update of the holder is overwritten', async () => {
    const sid = 'seq-without-lease-1';
    const first = await streamed(s.g1, 'session.start', { sessionId: sid, taskPrompt: 'first turn', routing: agentRouting('hermes') });
    expect(first.result).toMatchObject({ success: true, output: 'echo: first turn' });

    // instance 2 runs a long turn: it holds the lease and numbers updates all along
    const long = streamed(s.g2, 'session.message', { sessionId: sid, taskPrompt: 'slow' });
    await waitFor(async () => (await taskOn(s.g2, sid)).status === 'running' || undefined, "instance 2's turn running", 15_000);

    // instance 1: a turn that waits for the lease until its wait runs out, and one queued behind it there
    const timedOut = streamed(s.g1, 'session.message', { sessionId: sid, taskPrompt: 'never runs' });
    await waitFor(async () => ((await taskOn(s.g1, sid)).status === 'queued' ? true : undefined), "instance 1's first turn waiting", 15_000);
    const behind = streamed(s.g1, 'session.message', { sessionId: sid, taskPrompt: 'cancelled while waiting' });
    const a = await timedOut;
    expect(a.result).toMatchObject({ success: false, status: 'failed', errorCode: 'OVERLOADED' });
    // the second now waits for the lease in turn: cancelled while waiting
    await waitFor(
      async () => {
        const t = await taskOn(s.g1, sid);
        return (t.runId !== a.result.runId && t.status === 'queued') || undefined;
      },
      "instance 1's second turn waiting",
      15_000,
    );
    expect((await rpc(s.g1.url, ACP, 'session.cancel', { sessionId: sid })).result).toMatchObject({ accepted: true, cancelled: true });
    const b = await behind;
    expect(b.result).toMatchObject({ status: 'cancelled' });

    // instance 2's turn went on numbering meanwhile; it ends
    expect((await rpc(s.g2.url, ACP, 'session.cancel', { sessionId: sid })).result).toMatchObject({ accepted: true, cancelled: true });
    const c = await long;
    expect(c.result).toMatchObject({ status: 'cancelled' });

    // instance 1 runs a long turn and is paused past its lease; instance 2 takes the session and runs a turn
    const lost = streamed(s.g1, 'session.message', { sessionId: sid, taskPrompt: 'slow' });
    await waitFor(async () => (await taskOn(s.g1, sid)).status === 'running' || undefined, "instance 1's long turn running", 15_000);
    const before = await lastSeqOn(s.g1, sid);
    await waitFor(async () => (await lastSeqOn(s.g1, sid)) > before + 3 || undefined, "instance 1's long turn numbering", 15_000);
    const pid = s.g1.proc.pid!;
    process.kill(pid, 'SIGSTOP');
    let d: { updates: Json[]; result: Json };
    try {
      const e = await streamed(s.g2, 'session.message', { sessionId: sid, taskPrompt: 'taken over' });
      expect(e.result).toMatchObject({ success: true, output: 'echo: taken over' });
      d = e;
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const f = await lost;
    expect(f.result).toMatchObject({ success: false, status: 'failed', errorCode: 'SESSION_NOT_OWNED_HERE' });

    const turns = [first, a, b, c, f, d];
    // every turn's client got its updates, up to its final status
    for (const t of turns) expect(t.updates.at(-1)).toMatchObject({ type: 'status', runId: t.result.runId, status: t.result.status });
    const sent = turns.flatMap((t) => t.updates);
    const numbered = sent.filter((u) => u.seq !== undefined);
    const unnumbered = sent.filter((u) => u.seq === undefined);
    // what instance 1 sent without the lease reached its caller, without seq: the queued status of the turn behind
    // the waiting one, both ends, and the last updates of the turn that lost its lease
    expect(b.updates[0]).toMatchObject({ type: 'status', event: 'queued', runId: b.result.runId });
    expect(b.updates[0]).not.toHaveProperty('seq');
    for (const t of [a, b]) for (const u of t.updates) expect(u, `${u.type} ${u.event ?? ''}`).not.toHaveProperty('seq');
    expect(a.updates.map((u) => u.event ?? u.phase ?? u.type)).toContain('failed');
    expect(f.updates.at(-1)).toMatchObject({ type: 'status', event: 'failed', code: 'SESSION_NOT_OWNED_HERE' });
    expect(f.updates.at(-1)).not.toHaveProperty('seq');
    expect(unnumbered.every((u) => [a, b, f].some((t) => t.result.runId === u.runId))).toBe(true);
    // no seq sent twice
    const seqs = numbered.map((u) => u.seq as number);
    expect(new Set(seqs).size).toBe(seqs.length);

    for (const gw of [s.g1, s.g2]) {
      const log = await wholeLog(gw, sid);
      const logSeqs = log.map((u) => u.seq as number);
      for (let i = 1; i < logSeqs.length; i++) expect(logSeqs[i]).toBeGreaterThan(logSeqs[i - 1]!);
      // every numbered update a client was sent is the log's entry at its seq: none overwritten (the holder's least).
      // Except at most the last one or two the paused turn numbered under its lease just before the pause and had not
      // written yet (the log is written every 25 ms): not written once the lease lapsed (the next holder may have
      // numbered that seq), they are a tail of that turn's numbered updates
      const bySeq = new Map(log.map((u) => [u.seq as number, u]));
      const fNumbered = f.updates.filter((u) => u.seq !== undefined);
      const fLogged = fNumbered.findIndex((u) => !isDeepStrictEqual(bySeq.get(u.seq), u));
      const fTail = fLogged < 0 ? [] : fNumbered.slice(fLogged);
      expect(fTail.length, JSON.stringify(fTail)).toBeLessThanOrEqual(2);
      for (const u of numbered.filter((x) => !fTail.includes(x))) expect(bySeq.get(u.seq), `seq ${u.seq} (${u.runId} ${u.type} ${u.event ?? ''})`).toEqual(u);
      // the turns that never started have nothing in the log; the lost turn's own end is not there either (the new
      // holder settled it: interrupted)
      expect(log.filter((u) => u.runId === a.result.runId || u.runId === b.result.runId)).toEqual([]);
      expect(log.filter((u) => u.runId === f.result.runId && u.code === 'SESSION_NOT_OWNED_HERE')).toEqual([]);
      expect(log.filter((u) => u.runId === f.result.runId && u.type === 'status').at(-1)).toMatchObject({ event: 'failed', code: 'TURN_INTERRUPTED' });
    }
    // the record: the turns that never started are not in it, the lost one stays as the new holder recorded it
    const rec = await rpc(s.g2.url, ACP, 'xworkmate.tasks.get', { runId: f.result.runId });
    expect(rec.result).toMatchObject({ status: 'failed', code: 'TURN_INTERRUPTED' });
    expect((await taskOn(s.g2, sid)).runId).toBe(d!.result.runId);
  }, 120_000);
});
