/**
 * Regression: two gateway instances sharing one Redis session store (one gateway id) run turns of one session that
 * interleave. Instance 1 runs the first turn; instance 2 runs a long one (it holds the session's lease); meanwhile a
 * turn of the session is queued on instance 1, which waits for the lease and runs once instance 2's turn ended. On
 * the old code instance 1 numbered that turn's updates from its own in-memory `seq` (never refreshed from the store
 * once it held the lease), below the numbers instance 2 had used meanwhile: the update log keeps one update per
 * `seq`, so instance 2's updates were overwritten, and a client reading the log (`afterSeq`) got instance 1's
 * updates in their place and missed instance 2's. Every `seq` a client was sent must be the log's entry at that
 * `seq`, each once.
 */
import { describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/env.js';
import { agentRouting, rpc, rpcStreamed, wholeUpdateLog } from './acp-rpc.js';
import { twoInstancesOnRedis, type Gw } from './hermes-instances.js';

type Json = any;
const ACP = 'acp-seq-other-instance-3c81f0';
const s = twoInstancesOnRedis('gw_seq_other_instance', ACP);

/** acp-rpc.ts's streamed call and whole-log read, with this suite's token */
const streamed = (gw: Gw, method: string, params: Json) => rpcStreamed(gw.url, ACP, method, params);
const wholeLog = (gw: Gw, sessionId: string) => wholeUpdateLog(gw.url, ACP, sessionId);

const taskOn = async (gw: Gw, sessionId: string) => (await rpc(gw.url, ACP, 'xworkmate.tasks.get', { sessionId })).result;

describe('turns of one session interleaved on two instances sharing the store', () => {
  it('number every update above every earlier one: the log holds each update a client was sent, once, in seq order', async () => {
    const sid = 'seq-other-instance-1';
    const first = await streamed(s.g1, 'session.start', { sessionId: sid, taskPrompt: 'first turn', routing: agentRouting('hermes') });
    expect(first.result).toMatchObject({ success: true, output: 'echo: first turn' });

    // a long turn on instance 2: it holds the session's lease
    const long = streamed(s.g2, 'session.message', { sessionId: sid, taskPrompt: 'slow' });
    await waitFor(async () => (await taskOn(s.g2, sid)).status === 'running' || undefined, "instance 2's turn running", 15_000);
    // the next turn reaches instance 1 meanwhile: queued there, it waits for the lease
    const queued = streamed(s.g1, 'session.message', { sessionId: sid, taskPrompt: 'after the slow one' });
    await waitFor(
      async () => {
        const t = await taskOn(s.g1, sid);
        return (t.runId !== first.result.runId && t.status === 'queued') || undefined;
      },
      "instance 1's turn queued",
      15_000,
    );
    // instance 2's turn numbers a few more updates while instance 1's waits, then ends
    const ticks = (await rpc(s.g2.url, ACP, 'xworkmate.tasks.get', { sessionId: sid, afterSeq: 0 })).result.lastSeq as number;
    await waitFor(
      async () => ((await rpc(s.g2.url, ACP, 'xworkmate.tasks.get', { sessionId: sid, afterSeq: 0 })).result.lastSeq as number) > ticks + 3 || undefined,
      "instance 2's turn going on",
      15_000,
    );
    expect((await rpc(s.g2.url, ACP, 'session.cancel', { sessionId: sid })).result).toMatchObject({ accepted: true, cancelled: true });
    const [b, a] = await Promise.all([long, queued]);
    expect(b.result).toMatchObject({ status: 'cancelled' });
    expect(a.result).toMatchObject({ success: true, output: 'echo: after the slow one' });

    // and one more turn on each, one after the other
    const c = await streamed(s.g2, 'session.message', { sessionId: sid, taskPrompt: 'back on two' });
    expect(c.result).toMatchObject({ success: true, output: 'echo: back on two' });
    const d = await streamed(s.g1, 'session.message', { sessionId: sid, taskPrompt: 'back on one' });
    expect(d.result).toMatchObject({ success: true, output: 'echo: back on one' });

    const sent = [first, b, a, c, d].flatMap((s) => s.updates);
    // each turn's updates were all streamed, up to its final status
    for (const s of [first, b, a, c, d]) expect(s.updates.at(-1)).toMatchObject({ type: 'status', runId: s.result.runId, status: s.result.status });
    const sentSeqs = sent.map((u) => u.seq as number);
    expect(new Set(sentSeqs).size).toBe(sentSeqs.length); // no seq sent twice

    for (const gw of [s.g1, s.g2]) {
      const log = await wholeLog(gw, sid);
      const seqs = log.map((u) => u.seq as number);
      for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]!);
      // every update a client was sent is the log's entry at its seq: none overwritten, none missing
      const bySeq = new Map(log.map((u) => [u.seq as number, u]));
      for (const u of sent) expect(bySeq.get(u.seq), `seq ${u.seq} (${u.runId} ${u.type} ${u.event ?? ''})`).toEqual(u);
      // and each turn's updates are in the log in the order they were sent
      for (const s of [first, b, a, c, d]) {
        const runSeqs = log.filter((u) => u.runId === s.result.runId).map((u) => u.seq);
        expect(runSeqs).toEqual(s.updates.map((u) => u.seq));
      }
    }
  }, 90_000);
});
