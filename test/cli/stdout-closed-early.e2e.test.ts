/**
 * Regression: `switchyard … | head` on an output larger than the pipe holds ended in Node's uncaught
 * `Error: write EPIPE` stack trace on stderr and exit 1: the reader closed the pipe and the next write failed
 * (Node ignores SIGPIPE). A reader that wants no more is no failure: the command now stops quietly, exit 0.
 *
 * The real binary against a real gateway process holding a session whose prompt is 300 000 characters (its
 * `sessions show --json` is some 600 kB); the test reads the first chunk of the CLI's stdout and closes the pipe.
 */
import { spawn } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { acpRpc, BIN, startProcess, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';

const ADMIN = 'stdout-closed-admin-1f6b';
const ACP = 'stdout-closed-acp-7e2d';
const { procs } = stopAfterAll();
let gw: GatewayProcess;

beforeAll(async () => {
  gw = await startProcess({
    gateway: { id: 'gw_stdout_closed', admin: { token: ADMIN } },
    channels: [{ name: 'm', provider: 'mock', models: ['m-1'] }],
    acp: { tokens: [ACP], gateways: [{ id: 'mgw', label: 'Mock', kind: 'channels', model: 'm-1' }] },
  });
  procs.push(gw);
  const r = await acpRpc(gw.url, ACP, 'session.start', {
    sessionId: 'big',
    taskPrompt: 'x'.repeat(300_000),
    executionTarget: 'gateway',
    gatewayProviderId: 'mgw',
  });
  expect(r.result).toMatchObject({ status: 'completed' });
}, 60_000);

/** Runs the CLI, closes its stdout after the first chunk, and collects its exit code and stderr. */
function runAndCloseEarly(args: string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; got: number }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, SWITCHYARD_URL: '', SWITCHYARD_ADMIN_TOKEN: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let got = 0;
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    p.stdout.once('data', (b: Buffer) => {
      got = b.length;
      p.stdout.destroy();
    });
    p.once('exit', (code, signal) => resolve({ code, signal, stderr, got }));
  });
}

describe('a reader that closes the pipe early', () => {
  it('the command stops quietly with exit 0, no stack trace', async () => {
    const r = await runAndCloseEarly(['sessions', 'show', 'big', '--json', '--url', gw.url, '--token', ADMIN]);
    expect(r.got).toBeGreaterThan(0);
    expect(r.stderr).toBe('');
    expect(r).toMatchObject({ code: 0, signal: null });
  }, 30_000);
});
