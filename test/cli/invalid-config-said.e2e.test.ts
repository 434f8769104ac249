/**
 * Regression: an admin command that finds its gateway from the config file (no --url, or no token) went on when
 * that file was invalid. Found by $SWITCHYARD_CONFIG (or ./switchyard.json5) the file was ignored: the command
 * dialled the built-in http://127.0.0.1:18789 and said `cannot reach the gateway … is it running?` (or, with
 * --url given, sent no token and read `admin token rejected`); named with --config it printed the config error's
 * first lines only, so later problems were lost. Only `config reload` said the file was invalid, with every
 * problem. Every command that reads the file now does as it does: every problem, the gateway not asked, exit 1;
 * with --url and --token (or their variables) the file is not read and the command runs.
 *
 * A real gateway process (port 0, so no config file can find it) and the real CLI (dist).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupDirs, startProcess, tmpDir, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { runCli } from '../ops/cli-run.js';

const ADMIN = 'invalid-config-admin-token-9f4d';
const { procs } = stopAfterAll();
let gw: GatewayProcess;
let bad: string;

beforeAll(async () => {
  gw = await startProcess({ gateway: { id: 'gw_invalid_config', admin: { token: ADMIN } } });
  procs.push(gw);
  bad = join(tmpDir('sy-badcfg-'), 'switchyard.json5');
  // four problems: the old --config line kept the first lines only
  writeFileSync(bad, JSON.stringify({ gateway: { name: 5, shutdownGraceMs: -1, port: 'x' }, bogusTopLevel: 1 }));
}, 60_000);

afterAll(() => cleanupDirs());

const PROBLEMS = [/bogusTopLevel: unknown key/, /gateway\.name: /, /gateway\.shutdownGraceMs: /, /gateway\.port: /];

const COMMANDS = ['status', 'keys list', 'sessions list', 'bridge list', 'channels list', 'usage'];

function expectSaidInvalid(r: { code: number | null; stdout: string; stderr: string }, tokenVar = '$SWITCHYARD_ADMIN_TOKEN'): void {
  expect(r.stderr.startsWith(`switchyard: the gateway is found from the config file, which is invalid: invalid config (${bad}):\n`), r.stderr).toBe(true);
  for (const p of PROBLEMS) expect(r.stderr).toMatch(p);
  expect(r.stderr.endsWith(`\n  (give --url and --token, or $SWITCHYARD_URL and ${tokenVar})\n`), r.stderr).toBe(true);
  expect(r.stderr).not.toMatch(/cannot reach|rejected/);
  expect(r.stdout).toBe('');
  expect(r.code).toBe(1);
}

describe('an invalid config file is said so by every command that reads it', () => {
  it.each(COMMANDS)(
    '%s: found by $SWITCHYARD_CONFIG, and named with --config',
    async (command) => {
      const args = command.split(' ');
      expectSaidInvalid(await runCli(args, { SWITCHYARD_CONFIG: bad }));
      expectSaidInvalid(await runCli([...args, '--config', bad]));
    },
    30_000,
  );

  it('--url given but no token: the token would come from the file, so it is said invalid too (as config reload does)', async () => {
    expectSaidInvalid(await runCli(['keys', 'list', '--url', gw.url], { SWITCHYARD_CONFIG: bad }));
  });

  it('task …: the same, naming the ACP token', async () => {
    expectSaidInvalid(await runCli(['task', 'providers'], { SWITCHYARD_CONFIG: bad, SWITCHYARD_ACP_TOKEN: '' }), '$SWITCHYARD_ACP_TOKEN');
  });

  it('with --url and --token, or their variables, the file is not read and the command runs', async () => {
    const flags = await runCli(['keys', 'list', '--url', gw.url, '--token', ADMIN], { SWITCHYARD_CONFIG: bad });
    expect(flags.stderr).toBe('');
    expect(flags.stdout).toBe('no keys\n');
    expect(flags.code).toBe(0);
    const env = await runCli(['keys', 'list'], { SWITCHYARD_CONFIG: bad, SWITCHYARD_URL: gw.url, SWITCHYARD_ADMIN_TOKEN: ADMIN });
    expect(env.stderr).toBe('');
    expect(env.code).toBe(0);
  });
});
