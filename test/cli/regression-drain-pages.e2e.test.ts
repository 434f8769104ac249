/**
 * `sessions drain` pages through the open sessions with the list's cursor (`next`, sent back as `after`): the drain
 * against a real gateway is in test/sessions/transfer.e2e.test.ts. Here the answers of gateways it cannot meet
 * there, from a real HTTP server on port 0 that keeps its sessions in memory and moves one on each transfer:
 * a gateway of a version before the cursor (`more` with no `next`: the drain lists its first page again while that
 * finds sessions not tried, as it did before the cursor), and one whose `next` names the page just read (the drain
 * does not ask for it for ever). The real CLI (dist).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../ops/cli-run.js';

const SELF = 'gw_drain_self';
let server: Server | undefined;

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  server = undefined;
});

/** a gateway holding `count` open sessions; `pages`: how its list answers when more sessions follow */
async function fakeGateway(count: number, pages: 'no-cursor' | 'same-cursor'): Promise<{ url: string; lists: () => number }> {
  const open = Array.from({ length: count }, (_, i) => `s-${String(i).padStart(3, '0')}`);
  let lists = 0;
  server = createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    const json = (body: unknown) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (url.pathname === '/admin/status') return json({ id: SELF });
    if (url.pathname === '/admin/bridges') {
      const peer = { name: 'p', id: 'gw_p', direction: 'outbound', state: 'open', since: new Date().toISOString() };
      return json({ peers: [{ ...peer, sharedWithUs: [], sharedByUs: [], inflight: { out: 0, in: 0 }, health: {}, lastError: null }] });
    }
    if (url.pathname === '/admin/sessions') {
      lists++;
      const status = url.searchParams.get('status');
      const page = status === 'active' ? open.slice(0, 100) : [];
      const summary = (id: string) => ({
        id,
        kind: 'chat',
        status: 'active',
        owner: SELF,
        target: { executionTarget: 'gateway' },
        turns: 0,
        updatedAt: new Date().toISOString(),
      });
      // same-cursor: every active page says there is more, after the cursor it was asked with
      if (pages === 'same-cursor' && status === 'active') return json({ sessions: page.map(summary), more: true, next: url.searchParams.get('after') ?? 'c1' });
      return json({ sessions: page.map(summary), more: status === 'active' && open.length > 100 });
    }
    const moved = /^\/admin\/sessions\/([^/]+)\/transfer$/.exec(url.pathname);
    if (moved && req.method === 'POST') {
      req.resume();
      open.splice(open.indexOf(decodeURIComponent(moved[1]!)), 1);
      return json({ to: { id: 'gw_p', name: 'p' } });
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, lists: () => lists };
}

describe('sessions drain against gateways it cannot meet in the suite', () => {
  it('a gateway of a version before the cursor: its first page is listed again while it finds sessions not tried, and all move', async () => {
    const gw = await fakeGateway(250, 'no-cursor');
    const r = await runCli(['sessions', 'drain', '--to', 'p', '--url', gw.url]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.filter((l) => /^\[\d+\] s-\d{3} → p: moved$/.test(l))).toHaveLength(250);
    expect(lines.at(-1)).toBe('drained: 250 moved, 0 stayed; no open session left here: the gateway is ready to stop');
  });

  it('a cursor naming the page just read: the drain asks for it once, not for ever', async () => {
    const gw = await fakeGateway(250, 'same-cursor');
    const r = await runCli(['sessions', 'drain', '--to', 'p', '--url', gw.url]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.filter((l) => /^\[\d+\] s-\d{3} → p: moved$/.test(l))).toHaveLength(250);
    // per pass: the active list twice (its second answer repeats the cursor it was asked with: paging stops), the
    // running list once; two passes
    expect(gw.lists()).toBe(6);
  });
});
