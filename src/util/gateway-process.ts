/**
 * Starting gateways as real child processes (demo and multi-gateway tests): spawn `bin/switchyard gateway`,
 * wait for its "listening on <url>" line, and stop it with a signal. Ports come from the OS (port 0).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { terminateAfterGrace } from '../util/terminate.js';

export const BIN = fileURLToPath(new URL('../../bin/switchyard', import.meta.url));

export interface GatewayProcess {
  url: string;
  id: string;
  proc: ChildProcess;
  /** everything the process wrote to stderr (logs), for diagnostics */
  logs(): string;
  /** SIGTERM (graceful) and wait for exit; SIGKILL after `graceMs` */
  stop(graceMs?: number): Promise<number | null>;
  kill(signal: NodeJS.Signals): void;
}

/** `bin`: another checkout's `bin/switchyard` (the bench compares builds); default this one's. */
export function spawnGateway(configPath: string, env: NodeJS.ProcessEnv = {}, timeoutMs = 15_000, bin = BIN): Promise<GatewayProcess> {
  const proc = spawn(process.execPath, [bin, 'gateway', '--config', configPath], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stderr.on('data', (b: Buffer) => {
    stderr += b.toString();
    if (stderr.length > 1_000_000) stderr = stderr.slice(-500_000);
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`gateway did not start within ${timeoutMs} ms\n${stderr.slice(-2000)}`));
    }, timeoutMs);
    let listening = false;
    proc.once('exit', (code) => {
      clearTimeout(timer);
      if (!listening) reject(new Error(`gateway exited with ${code} before listening\n${stdout}${stderr.slice(-2000)}`));
    });
    proc.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
      const m = /\((\S+)\) listening on (\S+)/.exec(stdout);
      if (m && !listening) {
        listening = true;
        clearTimeout(timer);
        resolve({
          url: m[2]!,
          id: m[1]!,
          proc,
          logs: () => stderr,
          kill: (s) => proc.kill(s),
          stop: async (graceMs = 5000) => {
            if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
            return terminateAfterGrace({ kill: (sig) => proc.kill(sig), exited, graceMs });
          },
        });
      }
    });
  });
}
