import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { terminateAfterGrace } from './terminate.js';

/** A real child: `ignoreTerm` makes it survive SIGTERM. Resolves once it is running its handler. */
function child(ignoreTerm: boolean) {
  const code = `${ignoreTerm ? "process.on('SIGTERM', () => {});" : ''} console.log('up'); setInterval(() => {}, 1000);`;
  const p = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'ignore'] });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => p.once('exit', (_c, sig) => resolve(sig)));
  const up = new Promise<void>((resolve) => p.stdout.once('data', () => resolve()));
  return { p, exited, up };
}

describe('terminateAfterGrace', () => {
  it('a process that honours SIGTERM exits by it, well before the grace period, and gets no SIGKILL', async () => {
    const c = child(false);
    await c.up;
    const sent: string[] = [];
    const t0 = Date.now();
    const sig = await terminateAfterGrace({ kill: (s) => (sent.push(s), c.p.kill(s)), exited: c.exited, graceMs: 10_000 });
    expect(sig).toBe('SIGTERM');
    expect(sent).toEqual(['SIGTERM']);
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it('a process that ignores SIGTERM is SIGKILLed after the grace period', async () => {
    const c = child(true);
    await c.up;
    const t0 = Date.now();
    const sig = await terminateAfterGrace({ kill: (s) => c.p.kill(s), exited: c.exited, graceMs: 300 });
    expect(sig).toBe('SIGKILL');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
  });

  it("'always' sends SIGKILL even when the process already exited (process groups: catch the children)", async () => {
    const c = child(false);
    await c.up;
    const sent: string[] = [];
    await terminateAfterGrace({ kill: (s) => (sent.push(s), c.p.kill(s)), exited: c.exited, graceMs: 5_000, sigkill: 'always' });
    expect(sent).toEqual(['SIGTERM', 'SIGKILL']);
  });
});
