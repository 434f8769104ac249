/**
 * Regression: a start whose listen failed (the port in use) threw, but left what it had opened running: the ACP
 * layer's warm agent process, the session and key stores, the providers. An embedder that caught the error (or
 * tried another port) kept all of it, a spare agent process included, for good. Now the start closes them before
 * it throws, so a process whose only gateway failed to start exits on its own.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupDirs, tmpDir } from '../helpers/env.js';

const FIXTURE = join(fileURLToPath(new URL('.', import.meta.url)), 'fixtures', 'start-on-taken-port.mjs');
afterAll(() => cleanupDirs());

describe('a start whose listen fails', () => {
  it('throws the listen error and leaves nothing running: the process exits on its own (its warm agent stopped)', async () => {
    const child = spawn(process.execPath, [FIXTURE, tmpDir()], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    // bounded: on the code before the fix the warm agent and the stores kept the process up for good
    const kill = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (c, s) => resolve([c, s])));
    clearTimeout(kill);
    expect(out).toContain('rejected EADDRINUSE');
    // and no timer of its own keeps the process waiting (the ACP shutdown's 5 s wait for turns did, though none ran)
    expect(/alive: (.*)/.exec(out)?.[1]?.split(',')).not.toContain('Timeout');
    expect({ code, signal }, out).toEqual({ code: 0, signal: null });
  }, 30_000);
});
