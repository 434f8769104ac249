/**
 * A reload cannot open a gateway that listens beyond loopback (docs/operations.md, "Hot reload"): the bind
 * address changes only at a restart, so a file that names a loopback host and no client token must be
 * refused while the running gateway still listens on a non-loopback address. A real process bound to
 * `::ffff:127.0.0.1` (not loopback by the gateway's rule, so it must authenticate clients; reachable from
 * this machine only); the refusal comes through the admin API and SIGHUP, and /v1 keeps asking for a key.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { cleanupDirs, startProcess, waitFor } from '../helpers/env.js';
import { runCli } from './cli-run.js';

const ADMIN = 'failclosed-admin-token-5d2e';
const CLIENT = 'failclosed-client-token-9a7c';
let g: GatewayProcess & { configPath: string };
let base: string;

const config = (host: string, tokens: string[]) => ({
  gateway: { id: 'gw_fc', host, port: 0, admin: { token: ADMIN }, auth: { tokens } },
  channels: [{ name: 'm', provider: 'mock', models: ['m1'] }],
  store: { kind: 'sqlite', path: './data/fc.db' },
});

beforeAll(async () => {
  g = await startProcess(config('::ffff:127.0.0.1', [CLIENT]));
  base = `http://127.0.0.1:${new URL(g.url).port}`;
}, 30_000);

afterAll(async () => {
  await g?.stop();
  cleanupDirs();
});

const models = (token?: string) => fetch(`${base}/v1/models`, { headers: token ? { authorization: `Bearer ${token}` } : {} }).then((r) => r.status);

describe('reload keeps a non-loopback gateway closed', () => {
  it('refuses a file that names a loopback host and no client token; /v1 still needs the token', async () => {
    expect(await models()).toBe(401);
    // the file alone is valid (loopback, open), but the gateway keeps its bind until a restart
    writeFileSync(g.configPath, JSON.stringify(config('127.0.0.1', [])));
    const check = await runCli(['config', 'check', '-c', g.configPath]);
    expect(check.code).toBe(0);

    const res = await fetch(`${base}/admin/config/reload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: '{}',
    });
    const body = (await res.json()) as { error: { code: string; details: { problems: string[] } } };
    expect(res.status).toBe(500);
    expect(body.error.code).toBe('config_invalid');
    expect(body.error.details.problems).toEqual([
      expect.stringMatching(/^gateway\.auth\.tokens: this gateway listens on ::ffff:127\.0\.0\.1, which is not loopback/),
    ]);
    expect(await models()).toBe(401);
    expect(await models(CLIENT)).toBe(200);

    // SIGHUP takes the same path: refused, said on stderr, the token still required
    const before = g.logs().length;
    g.kill('SIGHUP');
    await waitFor(() => g.logs().slice(before).includes('SIGHUP: config not reloaded'), 'the SIGHUP refusal on stderr');
    expect(g.logs().slice(before)).toContain('gateway.auth.tokens: this gateway listens on ::ffff:127.0.0.1');
    expect(await models()).toBe(401);
  });
});
