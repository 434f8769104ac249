/**
 * A reload that re-dials an outbound bridge with the same credentials (its URL here) is make-before-break: the old
 * link keeps taking new requests until the new link is open, then retires. Before, the old link left the routing
 * table at the reload, and until the new dial opened (a round trip on localhost; here a held TCP connection, as a
 * slow WAN or a retrying dial) every request for the peer's models failed with no route.
 *
 * A retired link whose peer is hung (SIGSTOP: connected, answering nothing) is closed once a ping of ours waits one
 * heartbeat interval, and what waited on it fails over at once: a request with nothing sent to the client yet is
 * retried on the new link, a stream already under way fails (peer_unavailable). Before, both waited for the
 * dead-peer timeout (deadPeerMisses intervals) or gateway.shutdownGraceMs.
 *
 * A re-dial with a new token (or `ca`, or URL scheme) is break-before-make, as before: the old link was authenticated
 * on the terms the reload replaces, and takes no new request from the reload on.
 *
 * Real processes, real sockets: A dials B (first and third tests) or a peer that freezes (second test).
 */
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { adminGet, cleanupDirs, startProcess, waitFor, wsUrl } from '../helpers/env.js';
import { heldRelay as startHeldRelay } from '../helpers/held-relay.js';
import type { BridgeRow } from '../helpers/bridge-rows.js';

const BRIDGE_TOKEN = 'reload-mbb-bridge-token-7f21';

const procs: GatewayProcess[] = [];
const frozen = new Set<GatewayProcess>();
const servers: net.Server[] = [];

afterAll(async () => {
  for (const p of frozen) p.kill('SIGCONT');
  for (const s of servers) s.close();
  await Promise.all(procs.map((p) => p.stop()));
  cleanupDirs();
});

const peer = async (id: string, channels: Array<Record<string, unknown>>, limits: Record<string, unknown> = {}, allowedTokens = [BRIDGE_TOKEN]) => {
  const p = await startProcess({
    gateway: { id, name: id, bridge: { enabled: true, allowedTokens, shareChannels: channels.map((c) => c['name']), limits } },
    channels,
  });
  procs.push(p);
  return p;
};

const requesterConfig = (url: string, extra: { shutdownGraceMs?: number; limits?: Record<string, unknown>; token?: string } = {}) => ({
  gateway: {
    id: 'gw_mbba',
    name: 'office',
    port: 0,
    shutdownGraceMs: extra.shutdownGraceMs ?? 30_000,
    ...(extra.limits ? { bridge: { limits: extra.limits } } : {}),
    bridges: [{ name: 'dc', url, token: extra.token ?? BRIDGE_TOKEN, shareChannels: false, reconnectInterval: 200 }],
  },
  channels: [{ name: 'office-mock', provider: 'mock', models: ['mock-1'] }],
});

const reload = async (a: GatewayProcess & { configPath: string }, config: unknown): Promise<string[]> => {
  writeFileSync(a.configPath, JSON.stringify(config));
  const res = await fetch(`${a.url}/admin/config/reload`, { method: 'POST' });
  expect(res.status).toBe(200);
  return ((await res.json()) as { applied: string[] }).applied;
};

const hasModel = async (a: GatewayProcess, model: string) => (await adminGet<{ models: string[] }>(a.url, '/admin/status')).models.includes(model);

/** held-relay.ts, its server closed with this file's */
const heldRelay = (target: number, backMs = 0) => startHeldRelay(target, backMs, servers);

describe('a reload that re-dials a bridge with the same credentials', () => {
  it('keeps routing over the old link until the new one is open: requests sent all the while all succeed', async () => {
    const b = await peer('gw_mbbb', [{ name: 'gpu', provider: 'mock', models: ['llama-gpu'] }]);
    const a = await startProcess(requesterConfig(wsUrl(b.url)));
    procs.push(a);
    await waitFor(() => hasModel(a, 'llama-gpu'), "A sees B's model");
    const linkFromA = async () => (await adminGet<{ peers: BridgeRow[] }>(b.url, '/admin/bridges')).peers.find((p) => p.id === 'gw_mbba');
    const oldLink = (await linkFromA())!;

    // four clients, each sending one request after the other, for the whole test
    const onA = new OpenAI({ apiKey: 'unused', baseURL: `${a.url}/v1`, maxRetries: 0 });
    let done = 0;
    let stop = false;
    const failures: string[] = [];
    const client = async () => {
      while (!stop) {
        try {
          const r = await onA.chat.completions.create({ model: 'llama-gpu', messages: [{ role: 'user', content: 'hi' }] });
          if (r.choices[0]?.finish_reason !== 'stop') failures.push(`finish ${String(r.choices[0]?.finish_reason)}`);
        } catch (err) {
          failures.push(String(err));
        }
        done++;
      }
    };
    const clients = Array.from({ length: 4 }, client);
    const after = (n: number) => {
      const until = done + n;
      return waitFor(() => done >= until, `${n} more requests answered`, 20_000, 5);
    };
    try {
      await after(20);

      // the same peer behind a relay that holds the new dial's connection: the new link cannot open yet. Once it
      // lets it through, B's answers on it (the hello-ok first) arrive 200 ms late, while B's frames on the old link
      // do not: B must not tell A to stop routing on the old link before A has read the hello-ok
      const relay = await heldRelay(Number(new URL(b.url).port), 200);
      const applied = await reload(a, requesterConfig(`ws://127.0.0.1:${relay.port}/bridge`));
      expect(applied).toContain('bridge dc re-dialled (changed)');
      await waitFor(() => relay.held() > 0, 'the new dial is held by the relay');
      // meanwhile the old link serves (cut at the reload, these failed: no route to llama-gpu)
      await after(40);
      expect(failures).toEqual([]);
      expect((await linkFromA())!.since).toBe(oldLink.since);

      relay.release();
      await waitFor(async () => {
        const row = await linkFromA();
        return row && row.since !== oldLink.since && row.state === 'open';
      }, 'B holds the new link from A');
      // the hand-over itself, and requests on the new link after it
      await after(40);
    } finally {
      stop = true;
      await Promise.all(clients);
    }
    expect(failures).toEqual([]);
    // B holds one link from A, the new one, once the old one drained
    await waitFor(
      async () => (await adminGet<{ peers: BridgeRow[] }>(b.url, '/admin/bridges')).peers.filter((p) => p.id === 'gw_mbba').length === 1,
      'B holds one link from A',
    );
  });

  it('fails what waits on the old link over at once when its peer is hung, instead of at the dead-peer timeout', async () => {
    // the same gateway (one id, the same channels) on two hosts: A moves its bridge from the one that hangs to the other
    const channels = (slow: boolean) => [
      { name: 'slow', provider: 'mock', models: ['llama-slow'], options: { delayMs: slow ? 5_000 : 0 } },
      { name: 'stream', provider: 'mock', models: ['llama-stream'], options: { chunkDelayMs: slow ? 100 : 0, chunks: 100 } },
    ];
    // B1 sets a 1 s heartbeat for the link (its policy); A closes a link in service after 10 unanswered intervals
    const b1 = await peer('gw_mbbh', channels(true), { heartbeatIntervalMs: 1000 });
    const b2 = await peer('gw_mbbh', channels(false), { heartbeatIntervalMs: 1000 });
    const aCfg = (url: string) => requesterConfig(url, { limits: { deadPeerMisses: 10 } });
    const a = await startProcess(aCfg(wsUrl(b1.url)));
    procs.push(a);
    await waitFor(async () => (await hasModel(a, 'llama-slow')) && (await hasModel(a, 'llama-stream')), "A sees B1's models");

    const onA = new OpenAI({ apiKey: 'unused', baseURL: `${a.url}/v1`, maxRetries: 0 });
    // a request B1 has not answered yet (nothing sent to the client), and a stream under way
    const waiting = onA.chat.completions.create({ model: 'llama-slow', messages: [{ role: 'user', content: 'hi' }] });
    const stream = await onA.chat.completions.create({ model: 'llama-stream', messages: [{ role: 'user', content: 'a long answer' }], stream: true });
    const chunks = stream[Symbol.asyncIterator]();
    expect((await chunks.next()).done).toBe(false);
    await waitFor(
      async () => (await adminGet<{ peers: BridgeRow[] }>(b1.url, '/admin/bridges')).peers.find((p) => p.id === 'gw_mbba')?.inflight.in === 2,
      'both run on B1',
    );

    b1.kill('SIGSTOP');
    frozen.add(b1);
    const started = Date.now();
    expect(await reload(a, aCfg(wsUrl(b2.url)))).toContain('bridge dc re-dialled (changed)');

    // retried on the new link (B2 answers at once) within about one heartbeat interval, not after 10 of them
    const reply = await waiting;
    const answeredAfter = Date.now() - started;
    expect(reply.choices[0]?.finish_reason).toBe('stop');
    expect(answeredAfter).toBeLessThan(5_000);

    // the stream had sent chunks to the client: it cannot be retried, and ends with the link
    let failure: unknown;
    try {
      for (let r = await chunks.next(); !r.done; r = await chunks.next());
    } catch (err) {
      failure = err;
    }
    expect(String(failure)).toMatch(/bridge peer dc went away/);
    expect(Date.now() - started).toBeLessThan(5_000);

    // the new link serves the next requests
    const next = await onA.chat.completions.create({ model: 'llama-stream', messages: [{ role: 'user', content: 'hi' }] });
    expect(next.choices[0]?.finish_reason).toBe('stop');
  });

  it('but a new token is break-before-make: the old link takes no new request from the reload on', async () => {
    const NEW_TOKEN = 'reload-mbb-rotated-token-93d0';
    const b = await peer('gw_mbbt', [{ name: 'gpu', provider: 'mock', models: ['llama-tok'] }], {}, [BRIDGE_TOKEN, NEW_TOKEN]);
    const a = await startProcess(requesterConfig(wsUrl(b.url)));
    procs.push(a);
    await waitFor(() => hasModel(a, 'llama-tok'), "A sees B's model");

    // the new dial is held: with make-before-break the old link would go on routing meanwhile
    const relay = await heldRelay(Number(new URL(b.url).port));
    const applied = await reload(a, requesterConfig(`ws://127.0.0.1:${relay.port}/bridge`, { token: NEW_TOKEN }));
    expect(applied).toContain('bridge dc re-dialled (changed)');
    expect(await hasModel(a, 'llama-tok')).toBe(false);
    await waitFor(() => relay.held() > 0, 'the new dial is held by the relay');
    const onA = new OpenAI({ apiKey: 'unused', baseURL: `${a.url}/v1`, maxRetries: 0 });
    await expect(onA.chat.completions.create({ model: 'llama-tok', messages: [{ role: 'user', content: 'hi' }] })).rejects.toThrow();
    // the old link, idle, drained and closed: B holds no link from A while the new dial waits
    await waitFor(async () => !(await adminGet<{ peers: BridgeRow[] }>(b.url, '/admin/bridges')).peers.some((p) => p.id === 'gw_mbba'), 'the old link closed');
    relay.release();
  });
});
