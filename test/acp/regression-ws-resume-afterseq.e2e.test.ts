/**
 * The WebSocket resume (`GET /acp?sessionId=<id>&afterSeq=<n>`) read `afterSeq` with `Number()`, so "0x3", "1e1",
 * " 3" and "+3" were taken as cursors (3, 10, 3, 3) where docs/acp.md says a malformed value is refused with 400 at
 * the upgrade, and where the events route (`after_seq`) refuses the same spellings. A client that sent one of
 * them by mistake was served a replay from a cursor it never meant. Only decimal digits are a cursor now, as on
 * the events route; anything else gets 400 `INVALID_PARAMS` naming `afterSeq`, and no socket.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { acpRpc, startProcess, waitFor, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';

const ACP = 'ws-resume-afterseq-acp-token-5120';
const started = stopAfterAll();
let gw: GatewayProcess;
let lastSeq = 0;

beforeAll(async () => {
  gw = started.trackGateway(
    await startProcess({
      gateway: { id: 'gw_ws_resume_afterseq' },
      channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
      acp: { tokens: [ACP], gateways: [{ id: 'switchyard', label: 'Switchyard', kind: 'channels', model: 'mock-1' }] },
    }),
  );
  const r = await acpRpc(gw.url, ACP, 'session.start', { sessionId: 'resume-s', taskPrompt: 'hello', executionTarget: 'gateway' }, true);
  expect(r.result).toMatchObject({ status: 'completed' });
  lastSeq = Math.max(...r.updates.map((u) => Number(u.seq)));
  expect(lastSeq).toBeGreaterThan(4);
}, 60_000);

/**
 * The upgrade's outcome: refused (its status and body) or open (the socket, and the `seq`s of the
 * `session.update`s it received, collected from the start: a replay may arrive with the upgrade's answer)
 */
function upgrade(query: string): Promise<{ status: number; body: string } | { ws: WebSocket; seqs: number[] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${gw.url.replace(/^http/, 'ws')}/acp?${query}`, { headers: { authorization: `Bearer ${ACP}` } });
    const seqs: number[] = [];
    ws.on('message', (m: Buffer) => {
      const j = JSON.parse(m.toString()) as { method?: string; params?: { seq?: number } };
      if (j.method === 'session.update') seqs.push(Number(j.params?.seq));
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (b: Buffer) => (body += b.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.once('open', () => resolve({ ws, seqs }));
    ws.once('error', reject);
  });
}

describe('WebSocket resume: afterSeq', () => {
  for (const raw of ['0x3', '1e1', '%203', '+3', '3.0', '-0']) {
    it(`"${decodeURIComponent(raw)}" is no cursor: 400 INVALID_PARAMS naming afterSeq at the upgrade`, async () => {
      const r = await upgrade(`sessionId=resume-s&afterSeq=${raw}`);
      if ('ws' in r) r.ws.terminate();
      expect('ws' in r).toBe(false);
      if ('ws' in r) return;
      expect(r.status).toBe(400);
      expect(JSON.parse(r.body)).toMatchObject({
        jsonrpc: '2.0',
        id: null,
        ok: false,
        error: { code: -32602, data: { code: 'INVALID_PARAMS', field: 'afterSeq' } },
      });
    });
  }

  it('decimal digits are: the updates after that seq, each once and in order', async () => {
    const r = await upgrade('sessionId=resume-s&afterSeq=3');
    expect('ws' in r).toBe(true);
    if (!('ws' in r)) return;
    const { seqs } = r;
    await waitFor(() => seqs.includes(lastSeq), `the replay up to seq ${lastSeq}`);
    r.ws.close();
    expect(seqs).toEqual(Array.from({ length: lastSeq - 3 }, (_, i) => i + 4));
  });
});
