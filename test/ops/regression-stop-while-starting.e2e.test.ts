/**
 * Regression: a SIGTERM or SIGINT that reached `switchyard gateway` while it was starting (a service manager stopping
 * a unit still in its start, here a start held by its store) took the signal's default action: the process ended by
 * the signal (exit 143 for SIGTERM), with the start's parts as they were. The handlers are now installed before the
 * start (bin/switchyard holds the signals from its first line): the start is aborted, what it opened is closed, and
 * the process exits 0 without ever listening. The start is held on a real redis-server stopped with SIGSTOP (the
 * store's first command waits for its answer), so the signal arrives while the gateway is certainly starting.
 */
import { connect } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, tmpDir } from '../helpers/env.js';
import { startHeldGateway } from '../helpers/held-start.js';

const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** true when something accepts connections on 127.0.0.1:`port` */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

async function stopWhileStarting(signal: 'SIGTERM' | 'SIGINT'): Promise<void> {
  const gatewayPort = await freePort();
  const g = await startHeldGateway(
    tmpDir('sy-stop-start-'),
    (store) => ({
      gateway: { id: 'gw_stop_start', port: gatewayPort },
      store: { kind: 'redis', url: store },
      channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
    }),
    cleanups,
  );
  const { proc, exited } = g;
  expect(g.stdout()).not.toContain('listening');
  const t0 = Date.now();
  proc.kill(signal);
  // the start is given up at once (the store never answers): not by the signal's default action
  const ended = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('still running'), 10_000).unref())]);
  expect(ended, g.stderr()).toBe('0');
  expect(Date.now() - t0).toBeLessThan(10_000);
  expect(g.stdout()).toContain(`switchyard: ${signal} received while starting`);
  expect(g.stdout()).toContain('switchyard: stopped');
  expect(g.stdout()).not.toContain('listening');
  // nothing was left listening on the gateway's port
  expect(await listening(gatewayPort)).toBe(false);
}

describe('a stop signal while the gateway starts', () => {
  it('SIGTERM: the start is aborted, the process exits 0', { timeout: 60_000 }, () => stopWhileStarting('SIGTERM'));
  it('SIGINT: the same', { timeout: 60_000 }, () => stopWhileStarting('SIGINT'));
});
