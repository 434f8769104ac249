/**
 * A config problem about a key named like a credential keeps the schema's message wherever a refusal is shown, and
 * no secret is shown with it. Real process, real files. A reload refused for `gateway.metrics.token: Invalid input:
 * expected string, received number` (or `channels.0.apiKey: …`, `channels.0.headers.x-api-key: …`,
 * `gateway.bridges.0.password: unknown key`) came back from POST /admin/config/reload, `switchyard config reload` and
 * the gateway's log as `gateway.metrics.token: [REDACTED] input: …`: the error bodies' and the log's scrubber took
 * `token: Invalid` for a credential and its value (the rule for upstream text, `name: value`). SIGHUP's stderr line,
 * a start's and `config check`'s did not (they scrub known secrets only). Now a problem's key path is not taken for
 * a credential's name (SecretScrubber.scrubProblem); the configured secrets, of the running config and of the
 * refused file, are still never shown, nor is the value of a `${VAR}`.
 * The SIGHUP line showed a running config's secret that a refused file quotes (a token pasted into a share list:
 * `no channel named "<the admin token>"`): a problem found by the schema or the checks after it was scrubbed of the
 * refused file's secrets only, and that line, unlike the admin answer and the log, scrubs nothing itself.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { cleanupDirs, startProcess, tmpDir, waitFor } from '../helpers/env.js';
import { runCli } from './cli-run.js';

const ADMIN = 'credkey-admin-token-5e1c9a';
const KEY = 'sk-credkey-upstream-key-3b7f0d';
const NEW_ADMIN = 'credkey-new-admin-token-8d2e44';
const NEW_KEY = 'sk-credkey-refused-key-6a9c21';
const ENV_SECRET = 'credkey-env-secret-value-4f0b7e';
const SECRETS = [ADMIN, KEY, NEW_ADMIN, NEW_KEY, ENV_SECRET];

const good = {
  gateway: { id: 'gw_credkey', admin: { token: ADMIN } },
  channels: [{ name: 'oa', provider: 'openai', baseUrl: 'http://127.0.0.1:9/v1', apiKey: KEY, models: ['gpt-x'] }],
  store: { kind: 'sqlite', path: './data/k.db' },
};

/** refused by the schema: each problem is under a key named like a credential */
const badValues = {
  gateway: {
    id: 'gw_credkey',
    admin: { token: '' },
    metrics: { token: 12345 },
    bridges: [{ name: 'dc', url: 'ws://127.0.0.1:9/bridge', token: '${CREDKEY_ENV_SECRET}', password: NEW_ADMIN }],
  },
  channels: [{ name: 'oa', provider: 'openai', baseUrl: 'http://127.0.0.1:9/v1', apiKey: 42, models: ['gpt-x'], headers: { 'x-api-key': 5 } }],
  acp: { tokens: [99] },
  store: { kind: 'sqlite', path: './data/k.db' },
};
const BAD_VALUES = [
  'gateway.admin.token: Too small: expected string to have >=1 characters',
  'gateway.metrics.token: Invalid input: expected string, received number',
  'gateway.bridges.0.password: unknown key',
  'channels.0.apiKey: Invalid input: expected string, received number',
  'channels.0.headers.x-api-key: Invalid input: expected string, received number',
  'acp.tokens.0: Invalid input: expected string, received number',
];

/** refused after the schema, by problems that quote a secret: the running admin token, the file's own key */
const badNames = {
  gateway: { id: 'gw_credkey', admin: { token: NEW_ADMIN }, bridge: { shareChannels: [ADMIN, NEW_KEY] } },
  channels: [{ name: 'oa', provider: 'openai', baseUrl: 'http://127.0.0.1:9/v1', apiKey: NEW_KEY, models: ['gpt-x'] }],
  store: { kind: 'sqlite', path: './data/k.db' },
};
const BAD_NAMES = ['gateway.bridge.shareChannels.0: no channel named "[REDACTED]"', 'gateway.bridge.shareChannels.1: no channel named "[REDACTED]"'];

const env = { CREDKEY_ENV_SECRET: ENV_SECRET };
let gw: GatewayProcess & { configPath: string };

beforeAll(async () => {
  gw = await startProcess(good, env);
});

afterAll(async () => {
  await gw?.stop();
  cleanupDirs();
});

const refusals = () =>
  gw
    .logs()
    .split('\n')
    .filter((l) => l.startsWith('{') && l.includes('config not reloaded, the running config is unchanged'))
    .map((l) => JSON.parse(l) as { problems: string[] });
/** the problems of each SIGHUP refusal the gateway wrote to its stderr, as written */
const sighups = () =>
  gw
    .logs()
    .split('switchyard: SIGHUP: config not reloaded, the running config is unchanged:\n')
    .slice(1)
    .map((block) => {
      const lines = block.split('\n');
      return lines
        .slice(
          0,
          lines.findIndex((l) => !l.startsWith('  ')),
        )
        .map((l) => l.slice(2));
    });

describe('a refused reload about keys named like credentials', () => {
  for (const [what, file, want] of [
    ['values the schema refuses', badValues, BAD_VALUES],
    ['names that quote secrets', badNames, BAD_NAMES],
  ] as const) {
    it(`keeps each problem's message and shows no secret (${what}): admin API, CLI, SIGHUP, log`, { timeout: 30_000 }, async () => {
      const before = refusals().length;
      const sighupsBefore = sighups().length;
      writeFileSync(gw.configPath, JSON.stringify(file));

      const res = await fetch(`${gw.url}/admin/config/reload`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
      const text = await res.text();
      expect(res.status).toBe(500);
      expect(JSON.parse(text).error.details.problems).toEqual(want);

      const cli = await runCli(['config', 'reload', '--url', gw.url, '--token', ADMIN]);
      expect(cli.code).toBe(1);
      expect(cli.stderr).toContain(`\n  ${want.join('\n  ')}`);

      gw.kill('SIGHUP');
      await waitFor(() => refusals().length >= before + 3, 'the admin, CLI and SIGHUP refusals in the log');
      for (const line of refusals().slice(before)) expect(line.problems).toEqual(want);
      await waitFor(() => (sighups()[sighupsBefore]?.length ?? 0) >= want.length, 'the SIGHUP refusal on stderr');
      expect(sighups()[sighupsBefore]).toEqual(want);

      for (const s of SECRETS) {
        expect(text).not.toContain(s);
        expect(cli.stdout + cli.stderr).not.toContain(s);
        expect(gw.logs()).not.toContain(s);
      }
    });
  }

  it('a start and `config check` show the same problems, and no secret', { timeout: 30_000 }, async () => {
    const dir = tmpDir();
    const path = join(dir, 'bad.json5');
    writeFileSync(path, JSON.stringify(badValues));
    for (const args of [
      ['config', 'check', '--config', path],
      ['gateway', '--config', path],
    ]) {
      const r = await runCli(args, env);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`\n  ${BAD_VALUES.join('\n  ')}`);
      for (const s of SECRETS) expect(r.stdout + r.stderr).not.toContain(s);
    }
  });
});
