/**
 * Regression: a reload that changes a channel's `pricing` (part of `channels[]`, applied live: docs/operations.md,
 * *Hot reload*) priced only part of the traffic by it. The key service copied `channels[].pricing` into a table
 * of its own at start, which a reload did not touch: a peer's forwards this gateway serves (served-for usage, and
 * the cost `peerLimits` budgets count) went on at the start's prices, and a local request on a channel whose
 * pricing the reload removed was still charged them. Prices are read from the running config now (a local
 * request's from the channel that served it, as the routing table has it).
 *
 * Real processes: B shares its priced channel with A; B's file is reloaded with new prices, then with none.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channelOf, cleanupDirs, startProcess, waitFor, wsUrl, type GatewayProcess } from '../helpers/env.js';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import { admin, ask, chat } from './helpers.js';

const BRIDGE = 'reload-pricing-bridge-token-5150';
let up: OpenAiFake;
let a: GatewayProcess;
let b: GatewayProcess & { configPath: string };

const bConfig = (pricing?: { input: number; output: number }) => ({
  gateway: { id: 'gw_pb', usage: { flushIntervalMs: 50 }, bridge: { enabled: true, allowedTokens: [BRIDGE], shareChannels: ['oa'] } },
  channels: [channelOf(up, 'oa', ['m'], pricing ? { pricing } : {})],
  store: { kind: 'sqlite', path: './data/pb.db' },
});

beforeAll(async () => {
  // every answer counts 10 input and 5 output tokens
  up = await startOpenAiUpstream({ reply: 'priced', usage: { input: 10, output: 5 } });
  b = await startProcess(bConfig({ input: 1, output: 2 }));
  a = await startProcess({
    gateway: { id: 'gw_pa', usage: { flushIntervalMs: 50 }, bridges: [{ name: 'b', url: wsUrl(b.url), token: BRIDGE }] },
    channels: [],
  });
  await waitFor(
    async () => (await admin(a.url, 'GET', '/admin/bridges/channels')).json.peers.some((p: any) => JSON.stringify(p).includes('"oa"')),
    "A sees B's channel",
  );
}, 60_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await up?.close();
  cleanupDirs();
});

/** B's usage rows by peer once it recorded `requests` in all: served-for gw_pa, and `-` for its own clients */
async function usageOfB(requests: number): Promise<Record<string, { requests: number; cost: number }>> {
  const r = await waitFor(async () => {
    const u = (await admin(b.url, 'GET', '/admin/usage?by=peer')).json;
    return u.total.requests === requests ? u : undefined;
  }, `B's ${requests} usage record(s)`);
  return Object.fromEntries((r.rows as Array<{ group: string; requests: number; cost: number }>).map((x) => [x.group, x]));
}

async function reloadB(pricing?: { input: number; output: number }): Promise<void> {
  writeFileSync(b.configPath, JSON.stringify(bConfig(pricing)));
  const res = await admin(b.url, 'POST', '/admin/config/reload');
  expect(res.status, JSON.stringify(res.json)).toBe(200);
  expect(res.json.applied).toContain('channel oa changed');
}

describe('channels[].pricing on reload', () => {
  it("prices what B serves for a peer, and for its own clients, at the file's prices from the reload on", async () => {
    // at the start's prices: (10 × 1 + 5 × 2) / 1e6
    expect((await chat(a.url, undefined, ask('m'))).status).toBe(200);
    expect((await usageOfB(1))['served-for gw_pa']!.cost).toBeCloseTo(20e-6, 12);

    // new prices: (10 × 3 + 5 × 4) / 1e6 more, on B and (once the re-sent share list reached it) on A
    await reloadB({ input: 3, output: 4 });
    await waitFor(async () => JSON.stringify((await admin(a.url, 'GET', '/admin/bridges/channels')).json).includes('"input":3'), "A has B's new prices");
    expect((await chat(a.url, undefined, ask('m'))).status).toBe(200);
    expect((await usageOfB(2))['served-for gw_pa']!.cost).toBeCloseTo(70e-6, 12);
    const servedBy = await waitFor(async () => {
      const u = (await admin(a.url, 'GET', '/admin/usage?by=peer')).json;
      return u.total.requests === 2 ? u : undefined;
    }, "A's 2 usage records");
    expect(servedBy.total.cost).toBeCloseTo(70e-6, 12);

    // no prices: nothing more, for the peer's forward and for B's own client
    await reloadB(undefined);
    expect((await chat(a.url, undefined, ask('m'))).status).toBe(200);
    expect((await chat(b.url, undefined, ask('m'))).status).toBe(200);
    const rows = await usageOfB(4);
    expect(rows['served-for gw_pa']!.cost).toBeCloseTo(70e-6, 12);
    expect(rows['-']).toMatchObject({ requests: 1, cost: 0 });
  }, 60_000);
});
