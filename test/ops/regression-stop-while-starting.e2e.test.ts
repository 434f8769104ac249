/**
 * Regression: a SIGTERM or SIGINT that reached `switchyard gateway` while it was starting (a service manager stopping
 * a unit still in its start, here a start held by its store) took the signal's default action: the process ended by
 * the signal (exit 143 for SIGTERM), with the start's parts as they were. The handlers are now installed before the
 * start (bin/switchyard holds the signals from its first line): the start is aborted, what it opened is closed, and
 * the process exits 0 without ever listening. The start is held on a real redis-server stopped with SIGSTOP (the
 * store's first command waits for its answer), so the signal arrives while the gateway is certainly starting.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, freePort, tmpDir, waitFor } from '../helpers/env.js';
import { redisOnPort } from '../keys/redis-on-port.js';

const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** Some socket in this machine's TCP table is connected to `port` (/proc/net/tcp: state 01, remote port in hex). */
function connectedTo(port: number): boolean {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .some((line) => {
      const f = line.trim().split(/\s+/);
      return f[2]?.endsWith(`:${hex}`) === true && f[3] === '01';
    });
}

/** true when something accepts connections on 127.0.0.1:`port` */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

async function stopWhileStarting(signal: 'SIGTERM' | 'SIGINT'): Promise<void> {
  const dir = tmpDir('sy-stop-start-');
  const redisPort = await freePort();
  const gatewayPort = await freePort();
  const redis = await redisOnPort(redisPort, dir);
  cleanups.push(() => redis.stop());
  const configPath = join(dir, 'gw.json5');
  writeFileSync(
    configPath,
    JSON.stringify({
      gateway: { id: 'gw_stop_start', port: gatewayPort },
      store: { kind: 'redis', url: `redis://127.0.0.1:${redisPort}` },
      channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
    }),
  );
  process.kill(redis.pid, 'SIGSTOP');
  cleanups.push(() => {
    try {
      process.kill(redis.pid, 'SIGCONT');
    } catch {
      /* gone */
    }
  });
  const proc = spawn(process.execPath, [BIN, 'gateway', '--config', configPath], {
    env: { ...process.env, SWITCHYARD_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  cleanups.push(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  proc.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<string>((r) => proc.once('exit', (code, sig) => r(`${code ?? ''}${sig ?? ''}`)));

  // the gateway has reached its store (the connection is open, its first command waits on the stopped server)
  await waitFor(() => connectedTo(redisPort), 'the gateway to connect to the stopped redis-server', 15_000);
  expect(stdout).not.toContain('listening');
  const t0 = Date.now();
  proc.kill(signal);
  // the start is given up at once (the store never answers): not by the signal's default action
  const ended = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('still running'), 10_000).unref())]);
  expect(ended, stderr).toBe('0');
  expect(Date.now() - t0).toBeLessThan(10_000);
  expect(stdout).toContain(`switchyard: ${signal} received while starting`);
  expect(stdout).toContain('switchyard: stopped');
  expect(stdout).not.toContain('listening');
  // nothing was left listening on the gateway's port
  expect(await listening(gatewayPort)).toBe(false);
}

describe('a stop signal while the gateway starts', () => {
  it('SIGTERM: the start is aborted, the process exits 0', { timeout: 60_000 }, () => stopWhileStarting('SIGTERM'));
  it('SIGINT: the same', { timeout: 60_000 }, () => stopWhileStarting('SIGINT'));
});
