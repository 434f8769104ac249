/** A redis-server on a given port (to bring "the same" Redis back after a kill; the fixture picks a new port). */
import { spawn } from 'node:child_process';

/**
 * `aof`: write every command to an append-only file in `dir` and load it at start, so a restart keeps the data;
 * `args`: more of redis-server's options (`--enable-debug-command local`: DEBUG SLEEP makes a slow Redis)
 */
export async function redisOnPort(
  port: number,
  dir: string,
  aof = false,
  args: string[] = [],
): Promise<{ pid: number; freeze(): () => void; stop(): Promise<void> }> {
  const persist = aof ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', ...persist, '--daemonize', 'no', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    let log = '';
    const timer = setTimeout(() => reject(new Error(`redis-server not ready on ${port}:\n${log}`)), 20_000);
    child.stdout.on('data', (b: Buffer) => {
      log += b.toString();
      if (log.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr.resume();
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited (${code}):\n${log}`));
    });
  });
  return {
    /** the server's process (SIGSTOP / SIGCONT: a Redis that stalls without closing its connections) */
    pid: child.pid!,
    /** SIGSTOP: connected, it answers nothing; the function returned resumes it (SIGCONT; nothing once it is gone) */
    freeze: () => {
      child.kill('SIGSTOP');
      return () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGCONT');
      };
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
