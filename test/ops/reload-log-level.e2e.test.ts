/**
 * Regression: `gateway.log.level` sets the level only when neither `--log-level` nor SWITCHYARD_LOG chose one
 * (docs/operations.md, *Logs*; docs/config.md), and a reload follows the same rule. The reload set the file's
 * level whatever the operator had chosen: a gateway run with SWITCHYARD_LOG=info went quiet at `error` when a
 * reload brought `gateway.log.level: "error"`.
 *
 * Real gateway processes; the reload's own `config reloaded` line (info, logged once the new level is set) shows
 * which level is in effect.
 */
import { writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { cleanupDirs, startProcess, waitFor } from '../helpers/env.js';

const ADMIN = 'loglevel-admin-token-3a91';
const config = (level?: string) => ({
  gateway: { id: 'gw_loglevel', port: 0, admin: { token: ADMIN }, ...(level ? { log: { level } } : {}) },
  channels: [{ name: 'm', provider: 'mock', models: ['m1'] }],
  store: { kind: 'sqlite', path: './data/loglevel.db' },
});

let g: (GatewayProcess & { configPath: string }) | undefined;
afterEach(async () => {
  await g?.stop();
  g = undefined;
  cleanupDirs();
});

async function reload(gw: GatewayProcess & { configPath: string }, level?: string): Promise<string[]> {
  writeFileSync(gw.configPath, JSON.stringify(config(level)));
  const res = await fetch(`${gw.url}/admin/config/reload`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { applied: string[] }).applied;
}
const reloadedLines = (gw: GatewayProcess, from: number) =>
  gw
    .logs()
    .slice(from)
    .split('\n')
    .filter((l) => l.includes('"msg":"config reloaded"')).length;

describe('gateway.log.level on reload', () => {
  it('does not override SWITCHYARD_LOG: info lines go on after a reload to "error"', async () => {
    g = await startProcess(config(), { SWITCHYARD_LOG: 'info' });
    const from = g.logs().length;
    const applied = await reload(g, 'error');
    const gw = g;
    await waitFor(() => reloadedLines(gw, from) === 1, 'the reload’s info line');
    expect(applied).toContain('gateway.log.level error (not in effect: --log-level or SWITCHYARD_LOG chose the level)');
  });

  it('sets the level when the operator chose none: at "error" the reload’s info line is not written', async () => {
    g = await startProcess(config(), { SWITCHYARD_LOG: '' });
    const gw = g;
    const from = g.logs().length;
    expect(await reload(g, 'error')).toContain('log level error');
    // back to info: this reload's line is written, the first one's was not
    expect(await reload(g, 'info')).toContain('log level info');
    await waitFor(() => reloadedLines(gw, from) >= 1, 'the second reload’s info line');
    expect(reloadedLines(gw, from)).toBe(1);
  });
});
