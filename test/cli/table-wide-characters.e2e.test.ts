/**
 * Regression: the CLI's tables padded each cell to the widest by string length (UTF-16 units), but a terminal
 * gives a CJK character or an emoji two columns: a session id, a key name or a peer's model name in Chinese,
 * Japanese or Korean pushed the rest of its row out of line with the header. Cells are now padded by their
 * width on screen (wide and fullwidth characters 2, combining marks 0).
 *
 * The real binary against a real gateway process holding sessions whose ids (chosen by the client over /acp/rpc)
 * are `会话-一` (4 characters, 7 columns), `火-🚀` (4 UTF-16 units, 5 columns) and `plain`.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { acpRpc, startProcess, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { runCli } from '../ops/cli-run.js';

const ADMIN = 'table-wide-admin-5c2e';
const ACP = 'table-wide-acp-9a4b';
const { procs } = stopAfterAll();
let gw: GatewayProcess;
const IDS = ['会话-一', '火-🚀', 'plain'];

beforeAll(async () => {
  gw = await startProcess({
    gateway: { id: 'gw_table_wide', admin: { token: ADMIN } },
    channels: [{ name: 'm', provider: 'mock', models: ['m-1'] }],
    acp: { tokens: [ACP], gateways: [{ id: 'mgw', label: 'Mock', kind: 'channels', model: 'm-1' }] },
  });
  procs.push(gw);
  for (const sessionId of IDS) {
    const r = await acpRpc(gw.url, ACP, 'session.start', { sessionId, taskPrompt: 'hi', executionTarget: 'gateway', gatewayProviderId: 'mgw' });
    expect(r.result).toMatchObject({ status: 'completed', sessionId });
  }
}, 60_000);

describe('a table with wide characters', () => {
  it('every row lines up with the header on screen', async () => {
    const r = await runCli(['sessions', 'list', '--url', gw.url, '--token', ADMIN]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    // the ID column is 7 columns wide (会话-一), then two spaces
    expect(lines[0]).toMatch(/^ID {7}KIND {2}STATUS/);
    const row = (id: string) => lines.find((l) => l.startsWith(`${id} `))!;
    expect(row('会话-一')).toMatch(/^会话-一 {2}chat {2}active/);
    expect(row('火-🚀')).toMatch(/^火-🚀 {4}chat {2}active/);
    expect(row('plain')).toMatch(/^plain {4}chat {2}active/);
  });
});
