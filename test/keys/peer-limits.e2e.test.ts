/**
 * gateway.bridge.peerLimits on the serving side, with real processes: B lets peer A use 2 requests/min of
 * its shared channel. A routes to B first (B announces loadBalance; its shared channel is tier 0, A's own
 * channel tier 1). The first
 * two requests are served by B; the third is refused by B with bridge-error RATE_LIMITED + retryAfterMs and
 * A fails over to its own channel: the client sees 200 every time. Usage on both sides matches what each
 * upstream reported, streamed and not, local and bridged (served-by on A, served-for on B).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../helpers/env.js';
import { cleanupDirs, waitFor } from '../helpers/env.js';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import { admin, ask, chat, startPeerPair } from './helpers.js';

const BRIDGE = 'peer-limit-bridge-token-1414';
let upA: OpenAiFake;
let upB: OpenAiFake;
let a: GatewayProcess;
let b: GatewayProcess;

beforeAll(async () => {
  upA = await startOpenAiUpstream({ reply: 'from A', usage: { input: 30, output: 3 } });
  upB = await startOpenAiUpstream({ reply: 'from B', usage: { input: 10, output: 5 } });
  ({ a, b } = await startPeerPair({ token: BRIDGE, upA, upB, peerLimits: { concurrent: 50, peers: { gw_a: { requestsPerMin: 2 } } } }));
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await Promise.all([upA?.close(), upB?.close()]);
  cleanupDirs();
});

describe('peerLimits', () => {
  it("B refuses A's third forward with RATE_LIMITED; A fails over to its own channel with no client error", async () => {
    const served: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await chat(a.url, undefined, ask('m', i === 1 ? { stream: true } : {}));
      expect(r.status, r.text).toBe(200);
      if (i === 1) expect(r.text).not.toContain('"usage"');
      served.push(`${r.headers.get('x-switchyard-peer') ?? 'local'}/${r.headers.get('x-switchyard-channel')}`);
    }
    expect(served).toEqual(['b/oa-b', 'b/oa-b', 'local/oa-a']);
    expect(upB.count('/chat/completions')).toBe(2);
    expect(upA.count('/chat/completions')).toBe(1);
    // the failover happened because B refused (not because A skipped B)
    const failed = a
      .logs()
      .split('\n')
      .find((l) => l.includes('attempt failed') && l.includes('RATE_LIMITED'));
    expect(failed).toBeDefined();
    expect(failed).toContain('peerLimits');
  });

  it('usage: A records served-by B and local, B records served-for A, both equal to what the upstreams reported', async () => {
    const byPeerA = await waitFor(async () => {
      const r = (await admin(a.url, 'GET', '/admin/usage?by=peer')).json;
      return r.total.requests === 3 ? r : undefined;
    }, "A's usage records");
    expect(byPeerA.rows).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ group: 'served-by gw_b', requests: 2, inputTokens: 20, outputTokens: 10 }),
        expect.objectContaining({ group: '-', requests: 1, inputTokens: 30, outputTokens: 3 }),
      ]),
    );
    // B announced oa-b's pricing with the share, so A prices the bridged requests with B's table
    expect(byPeerA.rows.find((r: { group: string }) => r.group === 'served-by gw_b').cost).toBeCloseTo(4e-5, 12);
    const byPeerB = await waitFor(async () => {
      const r = (await admin(b.url, 'GET', '/admin/usage?by=peer')).json;
      return r.total.requests === 2 ? r : undefined;
    }, "B's usage records");
    // priced on the serving side: (10 × 1 + 5 × 2) / 1e6 per request
    expect(byPeerB.rows).toEqual([expect.objectContaining({ group: 'served-for gw_a', requests: 2, inputTokens: 20, outputTokens: 10 })]);
    expect(byPeerB.total.cost).toBeCloseTo(4e-5, 12);
  });
});
