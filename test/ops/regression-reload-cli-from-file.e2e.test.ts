/**
 * `switchyard config reload` without `--url` / `--token` finds the gateway from the config file, which is the file to
 * be applied, not the running one. Real process, real CLI, the gateway on a fixed port named in its file:
 * - a file that rotates `gateway.admin.token` (a live key) sends the new token, which the gateway does not hold yet:
 *   before, a bare `admin token rejected` (the operator learnt nothing of why, nor what to do); now it says the token
 *   was read from the file and to give the running one (which then applies the rotation);
 * - an invalid file cannot say where the gateway is: before, with `--config` the CLI printed its first two problems
 *   only, and with the file found by $SWITCHYARD_CONFIG it dialled the built-in address and answered `cannot reach
 *   the gateway at http://127.0.0.1:18789`; now every problem is listed, and that the gateway was not asked.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { cleanupDirs, freePort, startProcess } from '../helpers/env.js';
import { runCli } from './cli-run.js';

const OLD = 'cli-reload-admin-old-4e1b';
const NEW = 'cli-reload-admin-new-9d3a';
let gw: GatewayProcess & { configPath: string };
let port = 0;

const config = (admin: string, extra: Record<string, unknown> = {}) => ({
  gateway: { id: 'gw_clireload', port, admin: { token: admin }, ...extra },
  channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
  store: { kind: 'sqlite', path: './data/c.db' },
});

beforeAll(async () => {
  port = await freePort();
  gw = await startProcess(config(OLD));
});

afterAll(async () => {
  await gw?.stop();
  cleanupDirs();
});

describe('config reload finding the gateway from the file', () => {
  it('a file that rotates the admin token: the refusal says which token to give, and that token applies it', { timeout: 30_000 }, async () => {
    writeFileSync(gw.configPath, JSON.stringify(config(NEW)));
    const refused = await runCli(['config', 'reload', '--config', gw.configPath]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/admin token rejected/);
    expect(refused.stderr).toMatch(
      /the admin token was read from the config file, which may change gateway\.admin\.token; give the running gateway's token with --token/,
    );
    expect(refused.stderr).not.toContain(NEW);

    const applied = await runCli(['config', 'reload', '--config', gw.configPath, '--token', OLD]);
    expect(applied.code).toBe(0);
    expect(applied.stdout).toMatch(/applied: gateway\.admin\.token replaced/);
    const again = await runCli(['config', 'reload', '--config', gw.configPath]);
    expect(again.code).toBe(0);
  });

  it('an invalid file: every problem, and the gateway was not asked (by --config and by $SWITCHYARD_CONFIG)', { timeout: 30_000 }, async () => {
    writeFileSync(gw.configPath, JSON.stringify({ ...config(NEW, { name: 5, shutdownGraceMs: -1 }), bogusTopLevel: 1 }));
    const problems = [/bogusTopLevel: unknown key/, /gateway\.name: /, /gateway\.shutdownGraceMs: /];
    for (const how of [
      { args: ['--config', gw.configPath], env: {} },
      { args: [], env: { SWITCHYARD_CONFIG: gw.configPath } },
    ]) {
      const r = await runCli(['config', 'reload', ...how.args], how.env);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/config not reloaded \(the gateway was not asked; its running config is unchanged\)/);
      for (const p of problems) expect(r.stderr).toMatch(p);
      expect(r.stderr).not.toMatch(/cannot reach/);
    }
    // and it was not: the running gateway still takes its token and serves
    expect((await fetch(`${gw.url}/admin/status`, { headers: { authorization: `Bearer ${NEW}` } })).status).toBe(200);
  });
});
