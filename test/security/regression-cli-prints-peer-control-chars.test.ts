/**
 * Regression: the CLI printed what a bridge peer announced (its `gatewayName`, its channels' provider and
 * models, its error text) to the operator's terminal byte for byte, so a peer could send terminal escape
 * sequences (set the window title, clear the screen, rewrite lines with `\r`, fake rows with `\n`, reorder
 * text with bidi overrides) through `switchyard status`, `bridge list`, `bridge channels` and `channels list`.
 * Control characters are now shown escaped (`\u001b`), in tables and in `--json` alike.
 *
 * A real gateway process; the peer is a raw bridge initiator (no gateway would announce such a name).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { helloFrame } from '../fakes/raw-bridge-peer.js';
import { adminGet, cleanupDirs, startProcess, waitFor, wsUrl } from '../helpers/env.js';
import { runCli } from '../ops/cli-run.js';

const ADMIN = 'ctrl-admin-token-6f13';
const BRIDGE_TOKEN = 'ctrl-bridge-token-0b8e';
// ESC ] 0 ; … BEL sets the terminal's title; ESC [ 2 J clears the screen; CSI as the one-byte C1 form; RLO
const NAME = 'evil\u001b]0;owned\u0007\u001b[2J\rfake\nrow';
const MODEL = 'm\u009b31m\u202egnp.exe';
const ERROR = 'boom\u001b[1A\u001b[2Kall good';
/** any C0 control but newline, DEL, any C1 control, and the bidi overrides / isolates */
// eslint-disable-next-line no-control-regex -- finding raw control characters is the point
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
let g: GatewayProcess;
let ws: WebSocket;

beforeAll(async () => {
  g = await startProcess({
    gateway: { id: 'gw_ctrl', name: 'office', admin: { token: ADMIN }, bridge: { enabled: true, allowedTokens: [BRIDGE_TOKEN] } },
    channels: [{ name: 'local', provider: 'mock', models: ['m1'] }],
  });
  ws = new WebSocket(wsUrl(g.url));
  await new Promise((r) => ws.once('open', r));
  ws.on('message', (d) => {
    const f = JSON.parse(String(d)) as { type: string; ts?: number };
    if (f.type === 'bridge-ping') ws.send(JSON.stringify({ type: 'bridge-pong', ts: f.ts }));
  });
  ws.send(
    helloFrame('gw_evil', BRIDGE_TOKEN, {
      gatewayName: NAME,
      capabilities: { shareChannels: true, acceptSessions: false, loadBalance: false },
      sharedChannels: [{ name: 'evil', provider: 'open\u001b[8mai', models: [MODEL] }],
    }),
  );
  await waitFor(async () => (await adminGet(g.url, '/admin/bridges', ADMIN)).peers.some((p: { state: string }) => p.state === 'open'), 'the peer linked');
  ws.send(JSON.stringify({ type: 'bridge-error', code: 'INTERNAL', message: ERROR, retryable: false }));
  await waitFor(async () => (await adminGet(g.url, '/admin/bridges', ADMIN)).peers[0]?.lastError, "the peer's error");
}, 30_000);

afterAll(async () => {
  ws?.close();
  await g?.stop();
  cleanupDirs();
});

describe("a peer's announced names on the operator's terminal", () => {
  // what each command shows of the peer: its name, its channels' models, its error text
  const SHOWN: Record<string, { name: boolean; model: boolean; error: boolean }> = {
    status: { name: true, model: true, error: true },
    'bridge list': { name: true, model: false, error: true },
    'bridge channels': { name: true, model: true, error: false },
    'channels list': { name: true, model: true, error: false },
  };
  it.each(Object.keys(SHOWN))('`switchyard %s` prints them escaped', async (command) => {
    const r = await runCli([...command.split(' '), '--url', g.url, '--token', ADMIN]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(RAW_CONTROL);
    const shown = SHOWN[command]!;
    if (shown.name) expect(r.stdout).toContain('evil\\u001b]0;owned\\u0007\\u001b[2J\\rfake\\nrow');
    if (shown.model) expect(r.stdout).toContain('m\\u009b31m\\u202egnp.exe');
    if (shown.error) expect(r.stdout).toContain('boom\\u001b[1A\\u001b[2Kall good');
    // each table row is one line: the peer's \n made no row of its own
    expect(r.stdout.split('\n').some((l) => l.startsWith('row'))).toBe(false);
  });

  it('`--json` keeps the values (JSON escapes them) and carries no raw control either', async () => {
    const r = await runCli(['status', '--json', '--url', g.url, '--token', ADMIN]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(RAW_CONTROL);
    const o = JSON.parse(r.stdout) as { peers: Array<{ name: string; lastError: string }>; models: Array<{ id: string }> };
    expect(o.peers[0]!.name).toBe(NAME);
    expect(o.peers[0]!.lastError).toBe(`INTERNAL: ${ERROR}`);
    expect(o.models.map((m) => m.id)).toContain(MODEL);
  });
});
