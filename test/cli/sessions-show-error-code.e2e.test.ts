/**
 * Regression: `switchyard sessions show` printed a failed turn's error text but not its catalogue code, which the
 * stored turn keeps as `errorCode` (GET /admin/sessions/:id returns it): an operator had to add `--json` to learn
 * that a turn failed with, say, UPSTREAM_CLIENT_ERROR. The code is now shown beside the text.
 *
 * The real binary against a real gateway process whose one channel fails its first request with a 400
 * (UPSTREAM_CLIENT_ERROR, a code the error's text does not name); the failed turn is started over /acp/rpc.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { acpRpc, startProcess, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { runCli } from '../ops/cli-run.js';

const ADMIN = 'sessions-show-admin-token-5e1d';
const ACP = 'sessions-show-acp-token-0b7a';
const { procs } = stopAfterAll();
let gw: GatewayProcess;

beforeAll(async () => {
  gw = await startProcess({
    gateway: { id: 'gw_sessions_show', admin: { token: ADMIN } },
    channels: [{ name: 'flaky', provider: 'mock', models: ['flaky-1'], options: { failFirst: 1, failStatus: 400 } }],
    acp: { tokens: [ACP], gateways: [{ id: 'flakygw', label: 'Flaky', kind: 'channels', model: 'flaky-1' }] },
  });
  procs.push(gw);
}, 60_000);

describe('switchyard sessions show', () => {
  it("a failed turn's line has its catalogue code beside its error text; a completed one has neither", async () => {
    const failed = (
      await acpRpc(gw.url, ACP, 'session.start', { sessionId: 'show-code', taskPrompt: 'first', executionTarget: 'gateway', gatewayProviderId: 'flakygw' })
    ).result;
    expect(failed).toMatchObject({ status: 'failed', errorCode: 'UPSTREAM_CLIENT_ERROR' });
    const next = (await acpRpc(gw.url, ACP, 'session.message', { sessionId: 'show-code', taskPrompt: 'second' })).result;
    expect(next).toMatchObject({ status: 'completed' });

    const r = await runCli(['sessions', 'show', 'show-code', '--url', gw.url, '--token', ADMIN]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^show-code {2}chat {2}active {2}owner gw_sessions_show {2}v\d+$/);
    expect(lines[1]).toBe(`  ${failed.turnId}  failed  "first" → ""  (UPSTREAM_CLIENT_ERROR: ${failed.error})`);
    expect(lines[2]).toBe(`  ${next.turnId}  completed  "second" → ${JSON.stringify(next.output)}`);
    expect(lines.slice(3)).toEqual(['']);

    // --json has carried the field all along
    const json = await runCli(['sessions', 'show', 'show-code', '--json', '--url', gw.url, '--token', ADMIN]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout).history[0]).toMatchObject({ status: 'failed', error: failed.error, errorCode: 'UPSTREAM_CLIENT_ERROR' });
  }, 30_000);
});
