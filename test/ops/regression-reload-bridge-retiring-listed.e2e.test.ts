/**
 * A link a reload let go is shown while it drains. A reload that re-dials a bridge retires its old link, which carries
 * what was in flight on it to its end (up to gateway.shutdownGraceMs); the peer retires its side of that link the same
 * way. Before, `GET /admin/bridges`, `switchyard bridge list` and `switchyard status` showed only the current links:
 * an operator who reloaded saw one link and could not tell why the peer still held two connections from this gateway.
 * Now each side lists the old link as `retiring`, with its reason, since when, and what is in flight on it, until it
 * closes; the old link of a bridge re-dialled with the same credentials, which routes until the new one opens, is listed
 * as `handing-over` meanwhile. `GET /admin/status`, whose peers keep to the current links, counts them as
 * `/admin/overview` does (`retiringLinks`); it did not before. An outbound link's row says where it was dialled
 * (`url`, redacted as its dialler's row was: userinfo and query values replaced); it said `url: null` before, the link
 * not keeping its URL, so once the reload re-dialled the bridge elsewhere nothing showed where the old link went.
 * Real processes: A dials B, which shares a slow streaming channel.
 */
import { writeFileSync } from 'node:fs';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { adminGet, cleanupDirs, startProcess, waitFor, wsUrl } from '../helpers/env.js';
import { heldRelay } from '../helpers/held-relay.js';
import { runCli } from './cli-run.js';
import type { BridgeRow } from '../helpers/bridge-rows.js';

const BRIDGE_TOKEN = 'reload-retiring-bridge-token-2c4e';
const ADMIN = 'reload-retiring-admin-token-88a1';
// what A's first dial carries in its URL: never shown, on the dialler's row nor on its link's once retiring
const DIAL_PASS = 'reload-retiring-userinfo-pass-5d1e';
const DIAL_QUERY = 'reload-retiring-query-value-7b3a';

let a: GatewayProcess & { configPath: string };
let b: GatewayProcess;
const servers: net.Server[] = [];

const aConfig = (bUrl: string) => ({
  gateway: {
    id: 'gw_rla',
    name: 'office',
    port: 0,
    admin: { token: ADMIN },
    shutdownGraceMs: 30_000,
    // a hand-over lasts until the new link opens or this long: longer than the CLI runs that watch it, on a slow host
    bridge: { limits: { handshakeTimeoutMs: 60_000 } },
    bridges: [{ name: 'dc', url: bUrl, token: BRIDGE_TOKEN, shareChannels: false, reconnectInterval: 200 }],
  },
  channels: [{ name: 'office-mock', provider: 'mock', models: ['mock-1'] }],
});

const rows = async (g: GatewayProcess) => (await adminGet<{ peers: BridgeRow[] }>(g.url, '/admin/bridges', ADMIN)).peers;
const cli = (g: GatewayProcess, ...args: string[]) => runCli([...args, '--url', g.url, '--token', ADMIN]);

beforeAll(async () => {
  b = await startProcess({
    gateway: { id: 'gw_rlb', name: 'datacenter', admin: { token: ADMIN }, bridge: { enabled: true, allowedTokens: [BRIDGE_TOKEN], shareChannels: ['gpu'] } },
    // 600 chunks (of a 700-character reply) 50 ms apart: a stream of about 30 s, which outlasts the reload and the CLI
    // runs it is watched through however slow the host, and which the client ends once it has seen them
    channels: [{ name: 'gpu', provider: 'mock', models: ['llama-gpu'], options: { chunkDelayMs: 50, chunks: 600, reply: 'a long answer '.repeat(50) } }],
  });
  a = await startProcess(aConfig(`${wsUrl(b.url).replace('ws://', `ws://dialer:${DIAL_PASS}@`)}?region=${DIAL_QUERY}`));
});

afterAll(async () => {
  for (const s of servers) s.close();
  await Promise.all([a?.stop(), b?.stop()]);
  cleanupDirs();
});

describe('a reload that re-dials a bridge while a stream runs on its old link', () => {
  it('lists the old link as retiring, with 1 in flight, on both sides and in the CLI, until the stream ends', async () => {
    await waitFor(async () => (await adminGet<{ models: string[] }>(a.url, '/admin/status', ADMIN)).models.includes('llama-gpu'), "A sees B's model");
    const oldOnB = (await rows(b)).find((p) => p.id === 'gw_rla')!;
    const dialledOnA = (await rows(a)).find((p) => p.name === 'dc')!;
    expect(dialledOnA.url).toBe(`ws://[REDACTED]@127.0.0.1:${new URL(b.url).port}/bridge?region=[REDACTED]`);

    const onA = new OpenAI({ apiKey: 'unused', baseURL: `${a.url}/v1`, maxRetries: 0 });
    const stream = await onA.chat.completions.create({ model: 'llama-gpu', messages: [{ role: 'user', content: 'a long answer' }], stream: true });
    const chunks = stream[Symbol.asyncIterator]();
    expect((await chunks.next()).done).toBe(false);

    const reloadedAt = Date.now();
    writeFileSync(a.configPath, JSON.stringify(aConfig(`${wsUrl(b.url)}?via=reload`)));
    const res = await fetch(`${a.url}/admin/config/reload`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
    expect(((await res.json()) as { applied: string[] }).applied).toContain('bridge dc re-dialled (changed)');

    // A: the bridge's new link is its row; the old one, carrying the stream, is a row of its own after it
    const retiringOnA = await waitFor(async () => {
      const now = await rows(a);
      return now.find((p) => p.name === 'dc' && p.state === 'open') ? now.find((p) => p.state === 'retiring') : undefined;
    }, "A's new link open and its old one retiring");
    expect(retiringOnA).toMatchObject({ name: 'dc', id: 'gw_rlb', direction: 'outbound', inflight: { out: 1, in: 0 } });
    expect(retiringOnA.retiring?.reason).toBe('bridge re-dialled (config reload)');
    expect(Date.parse(retiringOnA.retiring!.since)).toBeGreaterThanOrEqual(reloadedAt - 1000);
    // where the old link was dialled, redacted as its dialler's row showed it before the reload
    expect(retiringOnA.url).toBe(dialledOnA.url);
    const listedOnA = await rows(a);
    expect(listedOnA.map((p) => p.state)).toEqual(['open', 'retiring']);
    expect(listedOnA[0]!.url).toBe(`${wsUrl(b.url)}?via=[REDACTED]`);
    // the same safe shape: no bridge token, no URL credential or query value
    for (const secret of [BRIDGE_TOKEN, 'via=reload', DIAL_PASS, DIAL_QUERY]) expect(JSON.stringify(listedOnA)).not.toContain(secret);

    // B: the link A dialled first was replaced by A's new one, and drains as well
    const onB = await rows(b);
    expect(onB.filter((p) => p.id === 'gw_rla').map((p) => p.state)).toEqual(['open', 'retiring']);
    expect(onB.find((p) => p.state === 'retiring')).toMatchObject({
      since: oldOnB.since,
      direction: 'inbound',
      inflight: { out: 0, in: 1 },
      retiring: { reason: 'replaced by a newer link' },
    });

    // the CLI: a line of its own in `bridge list`, a count in `status`
    const list = await cli(a, 'bridge', 'list');
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^dc +gw_rlb +outbound +retiring \d+s \(bridge re-dialled \(config reload\)\) .*1→ 0←/m);
    expect(list.stdout).toMatch(/^dc +gw_rlb +outbound +open /m);
    const status = await cli(a, 'status');
    expect(status.code).toBe(0);
    expect(status.stdout).toContain('retiring links  1 draining, 0 handing over, in flight 1 out/0 in');
    const overview = await adminGet<{ peers: BridgeRow[]; retiringLinks: unknown }>(a.url, '/admin/overview', ADMIN);
    expect(overview.retiringLinks).toEqual({ retiring: 1, handingOver: 0, inflight: { out: 1, in: 0 } });
    expect(overview.peers.map((p) => p.state)).toEqual(['open']);
    // /admin/status: the same count beside its peers, which keep to the current links
    const status1 = await adminGet<{ peers: BridgeRow[]; retiringLinks: unknown }>(a.url, '/admin/status', ADMIN);
    expect(status1.retiringLinks).toEqual({ retiring: 1, handingOver: 0, inflight: { out: 1, in: 0 } });
    expect(status1.peers.map((p) => p.state)).toEqual(['open']);

    // still there while the stream runs: it waits for no fixed time
    expect((await rows(a)).find((p) => p.state === 'retiring')?.inflight.out).toBe(1);
    // the client ends the stream: its cancel reaches B over the old link, and nothing is in flight on it any more
    stream.controller.abort();
    for (let r = await chunks.next(); !r.done; r = await chunks.next());

    // the stream ended: the old link closed, on both sides, and nothing lists it any more
    await waitFor(async () => !(await rows(a)).some((p) => p.state === 'retiring'), "A's old link gone");
    await waitFor(async () => !(await rows(b)).some((p) => p.state === 'retiring'), "B's old link gone");
    expect((await rows(a)).map((p) => `${p.name} ${p.state}`)).toEqual(['dc open']);
    expect((await cli(a, 'bridge', 'list')).stdout).not.toContain('retiring');
    const after = await cli(a, 'status');
    expect(after.stdout).not.toContain('retiring links');
    for (const path of ['/admin/overview', '/admin/status'])
      expect((await adminGet<{ retiringLinks: unknown }>(a.url, path, ADMIN)).retiringLinks, path).toEqual({
        retiring: 0,
        handingOver: 0,
        inflight: { out: 0, in: 0 },
      });
  });

  it('lists the old link as handing-over while the new dial has not opened, then not at all once it has', async () => {
    await waitFor(async () => (await rows(a)).find((p) => p.name === 'dc' && p.state === 'open'), "A's link to B open");
    // the same peer behind a relay that holds the new dial: the old link goes on routing, handed over
    const relay = await heldRelay(Number(new URL(b.url).port), 0, servers);
    writeFileSync(a.configPath, JSON.stringify(aConfig(`ws://127.0.0.1:${relay.port}/bridge`)));
    const res = await fetch(`${a.url}/admin/config/reload`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
    expect(((await res.json()) as { applied: string[] }).applied).toContain('bridge dc re-dialled (changed)');
    await waitFor(() => relay.held() > 0, 'the new dial is held by the relay');

    const during = await rows(a);
    expect(during.map((p) => `${p.name} ${p.state}`)).toEqual(['dc connecting', 'dc handing-over']);
    expect(during[1]).toMatchObject({ id: 'gw_rlb', direction: 'outbound', retiring: { reason: 'bridge re-dialled (config reload)' } });
    // the handed-over link was dialled by the first test's reload; the dialler's row is the relay's now
    expect(during.map((p) => p.url)).toEqual([`ws://127.0.0.1:${relay.port}/bridge`, `${wsUrl(b.url)}?via=[REDACTED]`]);
    const list = await cli(a, 'bridge', 'list');
    expect(list.stdout).toMatch(/^dc +gw_rlb +outbound +handing-over \d+s \(bridge re-dialled \(config reload\)\)/m);
    expect((await cli(a, 'status')).stdout).toContain('retiring links  0 draining, 1 handing over, in flight 0 out/0 in');
    expect((await adminGet<{ retiringLinks: unknown }>(a.url, '/admin/status', ADMIN)).retiringLinks).toEqual({
      retiring: 0,
      handingOver: 1,
      inflight: { out: 0, in: 0 },
    });

    relay.release();
    await waitFor(async () => (await rows(a)).map((p) => `${p.name} ${p.state}`).join() === 'dc open', 'the new link open, the old one closed');
  });
});
