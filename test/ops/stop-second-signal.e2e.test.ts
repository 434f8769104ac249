/**
 * docs/operations.md, Graceful shutdown: a second SIGTERM or SIGINT during the stop exits at once with code 1
 * (`switchyard: second SIGTERM, exiting now`), however long the grace period still runs. Real process; the stop
 * is held by a request that takes longer than the grace (a mock channel answering after 60 s, a 30 s grace).
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { cleanupDirs, startProcess, waitFor, waitForInflight } from '../helpers/env.js';
import { exitWithin } from '../helpers/sharing-pair.js';

const started: GatewayProcess[] = [];
afterAll(async () => {
  await Promise.all(started.map((g) => g.stop(1000)));
  cleanupDirs();
});

describe('a second signal during the graceful stop', () => {
  for (const [first, second] of [
    ['SIGTERM', 'SIGTERM'],
    ['SIGTERM', 'SIGINT'],
  ] as const) {
    it(`${first} then ${second}: exits at once with code 1`, { timeout: 60_000 }, async () => {
      const g = await startProcess({
        gateway: { id: 'gw_second_signal', shutdownGraceMs: 30_000 },
        channels: [{ name: 'slow', provider: 'mock', models: ['slow-1'], options: { delayMs: 60_000 } }],
      });
      started.push(g);
      const pending = fetch(`${g.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'slow-1', messages: [{ role: 'user', content: 'hi' }] }),
      }).catch(() => undefined);
      await waitForInflight(g.url, 'slow');
      let out = '';
      g.proc.stdout!.on('data', (b: Buffer) => (out += b.toString()));
      g.kill(first);
      await waitFor(() => out.includes(`switchyard: ${first} received`), 'the stop to begin');
      // the stop is draining: /readyz says so, and the process waits for the request (30 s grace)
      expect((await fetch(`${g.url}/readyz`)).status).toBe(503);
      g.kill(second);
      expect(await exitWithin(g, 5_000)).toBe(1);
      expect(g.logs()).toContain(`switchyard: second ${second}, exiting now`);
      expect(out).not.toContain('switchyard: stopped');
      await pending;
    });
  }
});
