/**
 * Regressions on a session's `seq`, through a real gateway's /acp/rpc and REST routes:
 *  - a session.start that replaces a session whose turn still streams numbered its updates from the seq read
 *    before that turn ended: the old turn's last updates (task.cancelled, cancelled) were overwritten in the log;
 *  - `lastSeq` (tasks.get with afterSeq) and `lastEventSeq` (REST events) echoed the client's cursor when nothing
 *    was after it, instead of the session's highest seq.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { acpRpc, cleanupDirs, startInProcess, waitForRunningTurn } from '../helpers/env.js';

const ACP = 'seq-acp-token-3141';
let gw: Gateway;

beforeAll(async () => {
  gw = await startInProcess({
    channels: [
      { name: 'slow', provider: 'mock', models: ['slow-1'], options: { chunkDelayMs: 200 } },
      { name: 'fast', provider: 'mock', models: ['fast-1'] },
    ],
    acp: {
      tokens: [ACP],
      gateways: [
        { id: 'slow', label: 'Slow', kind: 'channels', model: 'slow-1' },
        { id: 'fast', label: 'Fast', kind: 'channels', model: 'fast-1' },
      ],
    },
  });
});

afterAll(async () => {
  await gw?.close();
  cleanupDirs();
});

const rpc = (method: string, params: Record<string, unknown>) => acpRpc(gw.url, ACP, method, params);
const start = (sessionId: string, via: string, taskPrompt: string) =>
  rpc('session.start', { sessionId, taskPrompt, requestedExecutionTarget: 'gateway', gatewayProviderId: via });
type Update = { seq: number; turnId: string; type: string; event: string };
const logOf = async (sessionId: string): Promise<Update[]> => (await rpc('xworkmate.tasks.get', { sessionId, afterSeq: 0 })).result.updates;

describe('session seq', () => {
  it('session.start over a streaming turn: the old turn ends cancelled in the log, and the new one numbers after it', async () => {
    const sessionId = `seq-restart-${Math.random().toString(36).slice(2, 8)}`;
    const old = start(sessionId, 'slow', 'please write a long answer with many many words so that it is still streaming');
    const { turnId: oldTurn } = await waitForRunningTurn(gw.url, sessionId);
    const again = await start(sessionId, 'fast', 'hello');
    expect(again.result).toMatchObject({ success: true });
    expect((await old).result).toMatchObject({ status: 'cancelled', turnId: oldTurn });

    const log = await logOf(sessionId);
    const seqs = log.map((u) => u.seq);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(log.filter((u) => u.turnId === oldTurn).at(-1)).toMatchObject({ type: 'status', event: 'cancelled' });
    const lastOld = Math.max(...log.filter((u) => u.turnId === oldTurn).map((u) => u.seq));
    for (const u of log.filter((x) => x.turnId === again.result.turnId)) expect(u.seq).toBeGreaterThan(lastOld);
  });

  it('lastSeq and lastEventSeq are the session highest seq, never the cursor', async () => {
    const sessionId = `seq-last-${Math.random().toString(36).slice(2, 8)}`;
    expect((await start(sessionId, 'fast', 'hello')).result).toMatchObject({ success: true });
    const highest = Math.max(...(await logOf(sessionId)).map((u) => u.seq));
    for (const afterSeq of [0, highest, 5000]) {
      expect((await rpc('xworkmate.tasks.get', { sessionId, afterSeq })).result.lastSeq).toBe(highest);
      const res = await fetch(`${gw.url}/api/v1/sessions/${sessionId}/events?after_seq=${afterSeq}`, { headers: { authorization: `Bearer ${ACP}` } });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { lastEventSeq: number }).lastEventSeq).toBe(highest);
    }
  });
});
