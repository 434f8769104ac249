/**
 * Regression: one URL was shown three ways. `/admin/bridges` and `/admin/status` showed a bridge's URL with its userinfo
 * and query values replaced by `[REDACTED]`; `/admin/overview` (so `switchyard status --json` and the status page)
 * dropped userinfo and query; the OpenClaw client's log lines dropped credentials, query, fragment and a lone `/` path,
 * and each turned text that does not parse into something else (scrubbed text, `null`, `<invalid url>`). An operator
 * matching a log line or a status screen to a bridge row saw different text for one URL, and the docs promised the
 * admin API's form on the overview. Now all of them show a URL as redactUrl does (src/util/redact.ts).
 *
 * One URL with userinfo, a query and a fragment: a real gateway dials a real peer's bridge endpoint with it, and an
 * OpenClaw client is pointed at it too (the peer is no OpenClaw gateway: the client's handshake fails, and the failure
 * is logged with the URL as the client shows it).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OpenClawClient } from '../../src/acp/runtimes/openclaw/client.js';
import type { Gateway } from '../../src/gateway.js';
import { adminGet, cleanupDirs, memoryLogger, startInProcess, waitFor, wsUrl } from '../helpers/env.js';
import { rejection } from '../helpers/openclaw-harness.js';
import { runCli } from '../ops/cli-run.js';

const BRIDGE_TOKEN = 'one-way-bridge-token-4a7c';
const OPENCLAW_TOKEN = 'one-way-openclaw-token-9e2b';
// what the URL carries: shown on no surface
const PASS = 'one-way-userinfo-pass-6d3f';
const QUERY = 'one-way-query-value-1c8e';
const FRAGMENT = 'one-way-fragment-5b0a';

interface PeerRow {
  name: string;
  state: string;
  url: string | null;
}

let a: Gateway;
let b: Gateway;
let url: string;

beforeAll(async () => {
  b = await startInProcess({
    gateway: { id: 'gw_one_b', bridge: { enabled: true, allowedTokens: [BRIDGE_TOKEN], shareChannels: ['m'] } },
    channels: [{ name: 'm', provider: 'mock', models: ['m-1'] }],
  });
  url = `${wsUrl(b.url).replace('ws://', `ws://dialer:${PASS}@`)}?region=${QUERY}#${FRAGMENT}`;
  a = await startInProcess({ gateway: { id: 'gw_one_a', bridges: [{ name: 'dc', url, token: BRIDGE_TOKEN, reconnectInterval: 100 }] }, channels: [] });
});

afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  cleanupDirs();
});

describe('a URL with userinfo, a query and a fragment', () => {
  it('is shown one way by /admin/bridges, /admin/status, /admin/overview, `switchyard status --json` and the OpenClaw log', async () => {
    const shown = `ws://[REDACTED]@127.0.0.1:${new URL(b.url).port}/bridge?region=[REDACTED]`;
    // the URL dials: its fragment is not sent
    await waitFor(async () => (await adminGet<{ peers: PeerRow[] }>(a.url, '/admin/bridges')).peers.find((p) => p.state === 'open'), 'the bridge to open');

    const texts: Record<string, string> = {};
    for (const path of ['/admin/bridges', '/admin/status', '/admin/overview']) {
      const body = await adminGet<{ peers: PeerRow[] }>(a.url, path);
      expect(body.peers.find((p) => p.name === 'dc')?.url, path).toBe(shown);
      texts[path] = JSON.stringify(body);
    }
    const status = await runCli(['status', '--json', '--url', a.url]);
    expect(status.code, status.stderr).toBe(0);
    expect((JSON.parse(status.stdout) as { peers: PeerRow[] }).peers.find((p) => p.name === 'dc')?.url).toBe(shown);
    texts['switchyard status --json'] = status.stdout + status.stderr;

    const log = memoryLogger();
    const c = new OpenClawClient({ url, token: OPENCLAW_TOKEN, log: log.logger, handshakeTimeoutMs: 500, maxBackoffWaitMs: 0 });
    try {
      const e = await rejection(c.connect());
      // an error message never names the address (docs/openclaw.md); the log line does, shown as above
      expect(e.message).not.toContain('127.0.0.1');
      const failed = log.lines.map((l) => JSON.parse(l) as { msg: string; url?: string }).find((l) => l.msg === 'openclaw connect failed');
      expect(failed?.url).toBe(shown);
      expect(c.logUrl).toBe(shown);
    } finally {
      await c.close();
    }
    texts['the OpenClaw log'] = log.lines.join('\n');

    for (const [surface, text] of Object.entries(texts))
      for (const secret of [PASS, QUERY, FRAGMENT, BRIDGE_TOKEN, OPENCLAW_TOKEN]) expect(text.includes(secret), `${surface} shows ${secret}`).toBe(false);
  });
});
