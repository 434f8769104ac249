/** Runs the real CLI binary (dist) and collects its exit code and output (`as`: run it as this user). */
import { spawn } from 'node:child_process';
import { BIN } from '../../src/util/gateway-process.js';

export function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  as: { uid: number; gid: number } | undefined = undefined,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, SWITCHYARD_URL: '', SWITCHYARD_ADMIN_TOKEN: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...as,
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    p.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}
