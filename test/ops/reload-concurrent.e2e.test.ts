/**
 * Reloads run one at a time (docs/operations.md, Hot reload): concurrent admin calls and a SIGHUP storm on one
 * changed file apply it once and refuse nothing. Real process, real file: twelve admin calls at once and six SIGHUPs
 * after one edit give exactly one `channel … changed` in the log; the others find nothing to change, every call is
 * answered 200, and the new key serves. This checks the outcome an operator sees; a reload's check and apply take no
 * I/O wait, so calls do not interleave today even without the queue (src/gateway.ts), which keeps it so should
 * either step come to wait on I/O.
 */
import { writeFileSync, renameSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { cleanupDirs, startProcess, waitFor } from '../helpers/env.js';

let gw: GatewayProcess & { configPath: string };
let upstream: http.Server;
let upstreamUrl = '';

const config = (key: string) => ({
  gateway: { id: 'gw_concurrent' },
  channels: [{ name: 'oa', provider: 'openai', baseUrl: upstreamUrl, apiKey: key, models: ['gpt-x'] }],
  store: { kind: 'sqlite', path: './data/c.db' },
});

beforeAll(async () => {
  // answers with the Authorization header it got, so the key in service is seen
  upstream = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          id: 'x',
          object: 'chat.completion',
          model: 'gpt-x',
          choices: [{ index: 0, message: { role: 'assistant', content: String(req.headers.authorization) }, finish_reason: 'stop' }],
        }),
      );
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/v1`;
  gw = await startProcess(config('sk-concurrent-first-key-000001'));
});

afterAll(async () => {
  await gw?.stop();
  await new Promise<void>((r) => upstream.close(() => r()));
  cleanupDirs();
});

describe('concurrent reloads', () => {
  it('apply one changed file once, by admin calls and SIGHUPs at once', { timeout: 30_000 }, async () => {
    // replaced whole (write then rename), as an editor or a deploy does: every reload reads a complete file
    writeFileSync(`${gw.configPath}.tmp`, JSON.stringify(config('sk-concurrent-second-key-00002')));
    renameSync(`${gw.configPath}.tmp`, gw.configPath);
    const calls = Array.from({ length: 12 }, () =>
      fetch(`${gw.url}/admin/config/reload`, { method: 'POST' }).then(async (r) => ({ status: r.status, body: (await r.json()) as any })),
    );
    for (let i = 0; i < 6; i++) gw.kill('SIGHUP');
    const answers = await Promise.all(calls);
    for (const a of answers) expect(a.status).toBe(200);
    // every reload, whoever asked, is logged with what it applied (SIGHUPs may coalesce: at least one is delivered)
    const reloads = () =>
      gw
        .logs()
        .split('\n')
        .filter((l) => l.includes('"msg":"config reloaded"'))
        .map((l) => JSON.parse(l) as { applied: string[] });
    await waitFor(() => reloads().length > answers.length, 'the admin calls and at least one SIGHUP reloaded');
    expect(gw.logs()).not.toMatch(/config not reloaded/);
    const changed = reloads().filter((r) => r.applied.includes('channel oa changed'));
    expect(changed).toHaveLength(1);
    expect(answers.filter((a) => (a.body.applied as string[]).includes('channel oa changed')).length).toBeLessThanOrEqual(1);

    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-x', messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(((await res.json()) as any).choices[0].message.content).toBe('Bearer sk-concurrent-second-key-00002');
  });
});
