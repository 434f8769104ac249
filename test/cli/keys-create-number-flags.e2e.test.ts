/**
 * Regression: `keys create`'s number flags (`--rpm`, `--tpm`, `--concurrent`, `--budget-tokens`) were read with
 * Number(), so `--rpm 0x10` created a key limited to 16 requests a minute and `--tpm 1e3` one of 1000 tokens, and a
 * number past 2^53 went to the API, whose refusal named its own field (`limits.requestsPerMin: Too big …`), not
 * the flag. Each now takes decimal digits only, 1 to Number.MAX_SAFE_INTEGER, and a bad one is refused before
 * anything is sent: nothing is created. `--budget-cost` had the same fault (`0x10` was 16): decimal only too.
 *
 * A real gateway process (port 0) and the real CLI (dist).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { startProcess, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { runCli } from '../ops/cli-run.js';

const ADMIN = 'number-flags-admin-token-83e1';
const { procs } = stopAfterAll();
let gw: GatewayProcess;

beforeAll(async () => {
  gw = await startProcess({ gateway: { id: 'gw_number_flags', admin: { token: ADMIN } } });
  procs.push(gw);
}, 60_000);

const remote = () => ['--url', gw.url, '--token', ADMIN];

describe('keys create: number flags', () => {
  it.each([
    ['--rpm', '0x10'],
    ['--tpm', '1e3'],
    ['--concurrent', '1e30'],
    ['--budget-tokens', '99999999999999999999'],
    ['--rpm', '2.5'],
    ['--tpm', '-4'],
    ['--concurrent', '0'],
  ])(
    '%s %s: refused naming the flag, nothing created',
    async (flag, value) => {
      const name = `n-${flag.slice(2)}-${value.replace(/\W/g, '')}`;
      const r = await runCli(['keys', 'create', '--name', name, flag, value, ...remote()]);
      expect(r.stderr).toBe(`switchyard: ${flag}: a whole number from 1 to 9007199254740991, in decimal digits\n`);
      expect(r.stdout).toBe('');
      expect(r.code).toBe(1);
      const show = await runCli(['keys', 'show', name, ...remote()]);
      expect(show.stderr).toBe(`switchyard: ${gw.url} answered HTTP 404 (not_found): no key with id or name "${name}"\n`);
      expect(show.code).toBe(1);
    },
    30_000,
  );

  it.each(['0x10', '1e3', '-1', '0', 'abc'])(
    '--budget-cost %s: refused naming the flag, nothing created',
    async (value) => {
      const name = `cost-${value.replace(/\W/g, '')}`;
      const r = await runCli(['keys', 'create', '--name', name, '--budget-cost', value, ...remote()]);
      expect(r.stderr).toBe('switchyard: --budget-cost: a positive number\n');
      expect(r.code).toBe(1);
      expect((await runCli(['keys', 'show', name, ...remote()])).code).toBe(1);
    },
    30_000,
  );

  it('decimal numbers are taken as given', async () => {
    const r = await runCli(['keys', 'create', '--name', 'decimal', '--rpm', '60', '--tpm', '9007199254740991', '--budget-cost', '0.5', '--json', ...remote()]);
    expect(r.code).toBe(0);
    const { key } = JSON.parse(r.stdout);
    expect(key.limits).toEqual({ requestsPerMin: 60, tokensPerMin: 9007199254740991 });
    expect(key.budget).toMatchObject({ cost: 0.5, period: 'month' });
  }, 30_000);
});
