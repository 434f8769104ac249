/**
 * A `switchyard gateway` process held in its start, for tests of what a signal does then: its store is a real
 * redis-server stopped with SIGSTOP, so the store's first command waits for its answer and the gateway is certainly
 * starting (connected to the store, not listening) until the server is continued (`resume`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, freePort, waitFor } from './env.js';
import { redisOnPort } from '../keys/redis-on-port.js';

export interface HeldStart {
  proc: ChildProcess;
  /** what the process wrote so far */
  stdout(): string;
  stderr(): string;
  /** its exit: the code, or the signal's name */
  exited: Promise<string>;
  /** the config file (rewrite it to change what a reload reads) and the store's URL in it */
  configPath: string;
  storeUrl: string;
  /** SIGCONT to the store: the start goes on */
  resume(): void;
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

/**
 * Starts a gateway in `dir` whose config is `config(storeUrl)` and returns once it is connected to its stopped store.
 * Everything it starts is undone by the functions pushed on `cleanups` (run them in reverse order).
 */
export async function startHeldGateway(dir: string, config: (storeUrl: string) => unknown, cleanups: Array<() => unknown>): Promise<HeldStart> {
  const redisPort = await freePort();
  const redis = await redisOnPort(redisPort, dir);
  cleanups.push(() => redis.stop());
  const configPath = join(dir, 'gw.json5');
  const storeUrl = `redis://127.0.0.1:${redisPort}`;
  writeFileSync(configPath, JSON.stringify(config(storeUrl)));
  const resume = redis.freeze();
  cleanups.push(resume);
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
  return { proc, stdout: () => stdout, stderr: () => stderr, exited, configPath, storeUrl, resume };
}
