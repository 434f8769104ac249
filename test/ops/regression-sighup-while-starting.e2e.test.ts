/**
 * Regression: a SIGHUP that reached `switchyard gateway` while it was starting (a `systemctl reload` just after a
 * start) took the signal's default action and ended the process without a word: the reload handler was installed
 * only once the gateway listened. It is now held and applied once the gateway listens. The start is held on a real
 * redis-server stopped with SIGSTOP (the store's first command waits for its answer), so the signal arrives while
 * the gateway is certainly starting.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, expect, it } from 'vitest';
import { tmpDir, waitFor } from '../helpers/env.js';
import { startHeldGateway } from '../helpers/held-start.js';

const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

it('a SIGHUP while the gateway starts is applied once it listens; the process lives', async () => {
  const config = (store: string, models: string[]) => ({
    gateway: { id: 'gw_hup', port: 0 },
    store: { kind: 'redis', url: store },
    channels: [{ name: 'mock', provider: 'mock', models }],
  });
  const g = await startHeldGateway(tmpDir('sy-hup-start-'), (store) => config(store, ['m-before']), cleanups);
  const { proc, exited } = g;
  expect(g.stdout()).not.toContain('listening');
  writeFileSync(g.configPath, JSON.stringify(config(g.storeUrl, ['m-before', 'm-after'])));
  proc.kill('SIGHUP');
  g.resume();

  // a gateway the signal ended never listens: it is told at once, not at the timeout
  const ended = () => proc.exitCode !== null || proc.signalCode !== null;
  const listening = await Promise.race([waitFor(() => ended() || /listening on (\S+)/.test(g.stdout()), 'the gateway to listen or end', 15_000), exited]);
  expect(ended(), `the gateway ended (${String(listening)})\n${g.stderr()}`).toBe(false);
  await waitFor(() => g.stdout().includes('SIGHUP: config reloaded'), 'the held reload', 15_000);
  const url = /listening on (\S+)/.exec(g.stdout())![1]!;
  const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ id: string }> };
  expect(models.data.map((m) => m.id).sort()).toEqual(['m-after', 'm-before']);

  proc.kill('SIGTERM');
  expect(await exited).toBe('0');
}, 60_000);
