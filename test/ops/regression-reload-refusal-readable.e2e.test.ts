/**
 * A refused reload says what is wrong, readably, where an operator looks. Two faults, real process, real file:
 * - a `${VAR}` that is not set under a key named like a credential (`apiKey`, where `${VAR}` is mostly used) came
 *   back from the admin API and `switchyard config reload` as `channels.0.apiKey: [REDACTED] variable … is not set`:
 *   the problem read `apiKey: environment …`, which the error bodies' scrubber takes for a credential and its value.
 *   The same for a variable name that is not valid (`token: ${bad} …`).
 * - a refusal was answered but never logged: the gateway's log said nothing of a reload refused through the admin
 *   API (nor of one by SIGHUP, which only wrote its own stderr text). Now a warn line lists the problems.
 * - a file nested deeper than any config (JSON5 parses any depth) exhausted the stack of the checks that walk it: the
 *   reload answered `500 internal` with no problem (a start and `config check`: "Maximum call stack size exceeded").
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { cleanupDirs, startProcess, waitFor } from '../helpers/env.js';
import { runCli } from './cli-run.js';

const ADMIN = 'refusal-admin-token-2f8a';
const KEY = 'sk-refusal-upstream-key-0c4d9e';
let gw: GatewayProcess & { configPath: string };

const config = (apiKey: string, bridgeToken = 'refusal-bridge-token-77b1') => ({
  gateway: { id: 'gw_refusal', admin: { token: ADMIN }, bridges: [{ name: 'dc', url: 'ws://127.0.0.1:9/bridge', token: bridgeToken }] },
  channels: [{ name: 'oa', provider: 'openai', baseUrl: 'http://127.0.0.1:9/v1', apiKey, models: ['gpt-x'] }],
  store: { kind: 'sqlite', path: './data/r.db' },
});

beforeAll(async () => {
  gw = await startProcess(config(KEY));
});

afterAll(async () => {
  await gw?.stop();
  cleanupDirs();
});

const WANT = [
  'gateway.bridges.0.token: the name in ${bad_name} is not a valid variable name (use [A-Z_][A-Z0-9_]*)',
  'channels.0.apiKey: the environment variable SY_RELOAD_SURELY_UNSET is not set',
];

describe('a refused reload', () => {
  it('names the key and the variable readably (admin API, CLI) and is logged', { timeout: 30_000 }, async () => {
    writeFileSync(gw.configPath, JSON.stringify(config('${SY_RELOAD_SURELY_UNSET}', '${bad_name}')));
    const res = await fetch(`${gw.url}/admin/config/reload`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
    const body = (await res.json()) as any;
    expect(res.status).toBe(500);
    expect(body.error.code).toBe('config_invalid');
    expect(body.error.details.problems).toEqual(WANT);

    const cli = await runCli(['config', 'reload', '--url', gw.url, '--token', ADMIN]);
    expect(cli.code).toBe(1);
    for (const p of WANT) expect(cli.stderr).toContain(p);

    // logged, by the admin API and by SIGHUP alike
    const logged = () =>
      gw
        .logs()
        .split('\n')
        .filter((l) => l.includes('config not reloaded, the running config is unchanged') && l.startsWith('{'));
    await waitFor(() => logged().length >= 2, 'the two refusals in the log');
    gw.kill('SIGHUP');
    await waitFor(() => logged().length >= 3, 'the SIGHUP refusal in the log');
    const line = JSON.parse(logged()[2]!);
    expect(line.level).toBe('warn');
    expect(line.problems).toEqual(WANT);
    expect(gw.logs()).not.toContain(KEY);

    // the running config is unchanged: the channel is still routed
    const models = (await (await fetch(`${gw.url}/v1/models`)).json()) as { data: Array<{ id: string }> };
    expect(models.data.map((m) => m.id)).toContain('gpt-x');
  });

  it('a file nested deeper than any config is refused by key path, not answered as an internal error', { timeout: 30_000 }, async () => {
    // JSON5 parses it; the checks after it walked it recursively and exhausted the stack: 500 `internal`, no problem
    writeFileSync(
      gw.configPath,
      `{ gateway: { id: "gw_refusal", admin: { token: "${ADMIN}" } }, channels: [], extra: ${'['.repeat(20_000)}${']'.repeat(20_000)} }`,
    );
    const res = await fetch(`${gw.url}/admin/config/reload`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
    const body = (await res.json()) as any;
    expect(res.status).toBe(500);
    expect(body.error.code).toBe('config_invalid');
    expect(body.error.details.problems).toEqual(['extra.0.0.0…: nested deeper than 128 levels']);
    const models = (await (await fetch(`${gw.url}/v1/models`)).json()) as { data: Array<{ id: string }> };
    expect(models.data.map((m) => m.id)).toContain('gpt-x');
  });
});
