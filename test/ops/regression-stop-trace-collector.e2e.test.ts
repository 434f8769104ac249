/**
 * A graceful stop whose trace collector takes the connection and never answers ends soon after the grace period:
 * the tracer's close (the export of the spans still pending) was waited for without a bound of the stop's own, so
 * such a collector held the exit for the OTLP exporter's timeout (10 s) past the grace, whatever the grace. Now
 * that export shares the stop's deadline (at least 1 s), as the last usage write does, and a missed export is
 * logged. Real process; the collector is a TCP server that reads and answers nothing.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { cleanupDirs, startProcess } from '../helpers/env.js';
import { exitWithin } from '../helpers/sharing-pair.js';

const started: GatewayProcess[] = [];
const held: Socket[] = [];
let collector: Server | undefined;

afterAll(async () => {
  await Promise.all(started.map((g) => g.stop()));
  for (const c of held) c.destroy();
  collector?.close();
  cleanupDirs();
});

describe('a graceful stop with a trace collector that does not answer', () => {
  it('exits soon after the grace period and logs the spans it could not export', { timeout: 60_000 }, async () => {
    const connected = new Promise<void>((resolve) => {
      collector = createServer((c) => {
        held.push(c);
        c.on('data', () => undefined);
        resolve();
      });
    });
    await new Promise<void>((r) => collector!.listen(0, '127.0.0.1', r));
    const port = (collector!.address() as { port: number }).port;
    const g = await startProcess({
      gateway: {
        id: 'gw_stoptrace',
        shutdownGraceMs: 1000,
        // a batch exported only at the stop: the request's span is pending when the stop begins
        tracing: { enabled: true, endpoint: `http://127.0.0.1:${port}/v1/traces`, exportIntervalMs: 600_000 },
      },
      channels: [{ name: 'm', provider: 'mock', models: ['m-1'] }],
    });
    started.push(g);
    const r = await fetch(`${g.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm-1', messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(r.status).toBe(200);
    g.proc.kill('SIGTERM');
    await connected; // the export at the stop reached the collector
    // grace 1 s, then at most 1 s for the export; before, the exporter's 10 s timeout
    expect(await exitWithin(g, 6_000)).toBe(0);
    expect(g.logs()).toContain('graceful stop: pending spans not exported: the trace collector did not answer in time');
  });
});
