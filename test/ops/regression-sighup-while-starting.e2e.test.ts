/**
 * Regression: a SIGHUP that reached `switchyard gateway` while it was starting (a `systemctl reload` just after a
 * start) took the signal's default action and ended the process without a word: the reload handler was installed
 * only once the gateway listened. It is now held and applied once the gateway listens. The start is held on a real
 * redis-server stopped with SIGSTOP (the store's first command waits for its answer), so the signal arrives while
 * the gateway is certainly starting.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { BIN, tmpDir, waitFor } from '../helpers/env.js';
import { redisOnPort } from '../keys/redis-on-port.js';

const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

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

it('a SIGHUP while the gateway starts is applied once it listens; the process lives', async () => {
  const dir = tmpDir('sy-hup-start-');
  const port = await freePort();
  const redis = await redisOnPort(port, dir);
  cleanups.push(() => redis.stop());
  const configPath = join(dir, 'gw.json5');
  const config = (models: string[]) =>
    JSON.stringify({
      gateway: { id: 'gw_hup', port: 0 },
      store: { kind: 'redis', url: `redis://127.0.0.1:${port}` },
      channels: [{ name: 'mock', provider: 'mock', models }],
    });
  writeFileSync(configPath, config(['m-before']));

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
  const exited = new Promise<string>((r) => proc.once('exit', (code, signal) => r(`${code ?? ''}${signal ?? ''}`)));

  // the gateway has reached its store (the connection is open, its first command waits on the stopped server)
  await waitFor(() => connectedTo(port), 'the gateway to connect to the stopped redis-server', 15_000);
  expect(stdout).not.toContain('listening');
  writeFileSync(configPath, config(['m-before', 'm-after']));
  proc.kill('SIGHUP');
  process.kill(redis.pid, 'SIGCONT');

  // a gateway the signal ended never listens: it is told at once, not at the timeout
  const ended = () => proc.exitCode !== null || proc.signalCode !== null;
  const listening = await Promise.race([waitFor(() => ended() || /listening on (\S+)/.test(stdout), 'the gateway to listen or end', 15_000), exited]);
  expect(ended(), `the gateway ended (${String(listening)})\n${stderr}`).toBe(false);
  await waitFor(() => stdout.includes('SIGHUP: config reloaded'), 'the held reload', 15_000);
  const url = /listening on (\S+)/.exec(stdout)![1]!;
  const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ id: string }> };
  expect(models.data.map((m) => m.id).sort()).toEqual(['m-after', 'm-before']);

  proc.kill('SIGTERM');
  expect(await exited).toBe('0');
}, 60_000);
