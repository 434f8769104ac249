/**
 * Regression: `keys create --expires` read any text Date.parse takes: `Dec 25 2027` (or `2027-12-25 00:00:00`, or a
 * date-time without a zone) became that time in the local time zone of the machine the CLI ran on, while
 * `POST /admin/keys` refused the same `expiresAt` (`epoch ms, or an ISO date or date-time`). Both now take one set of
 * forms (EXPIRES_FORMS in src/keys/model.ts): an ISO date, which is its UTC midnight, or an ISO date-time with `Z` or
 * an offset; the CLI also a duration from now (`30d`, `12h`, `90m`). Every other form is refused by both, the CLI
 * naming the flag and the forms before anything is sent.
 *
 * A real gateway process (port 0) and the real CLI (dist), run in a time zone far from UTC.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { startProcess, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { admin } from '../keys/helpers.js';
import { runCli } from '../ops/cli-run.js';

const ADMIN = 'expires-forms-admin-token-61d2';
const FORMS =
  'an ISO date or date-time (a date, 2027-01-31, is its UTC midnight; a date-time takes Z or an offset: 2027-01-31T12:00:00Z, 2027-01-31T12:00:00+01:00)';
/** the CLI runs here: a local midnight 10 hours off UTC's would show in the key's expiry */
const TZ = { TZ: 'Pacific/Honolulu' };
const { procs } = stopAfterAll();
let gw: GatewayProcess;

beforeAll(async () => {
  gw = await startProcess({ gateway: { id: 'gw_expires_forms', admin: { token: ADMIN } } });
  procs.push(gw);
}, 60_000);

const remote = () => ['--url', gw.url, '--token', ADMIN];

describe('an --expires / expiresAt in no accepted form', () => {
  it.each(['Dec 25 2099', '2099-12-25 00:00:00', '2099-12-25T00:00:00', '12/25/2099', '2099-12-25T10:00+02:00', 'tomorrow', '2099-02-30'])(
    '%s: the CLI refuses it naming the flag and the forms, the API refuses it too; nothing created',
    async (value) => {
      const name = `forms-${value.replace(/\W/g, '')}`;
      const r = await runCli(['keys', 'create', '--name', name, '--expires', value, ...remote()], TZ);
      expect(r.stderr).toBe(`switchyard: --expires: ${JSON.stringify(value)} is not a time it takes: give a duration from now (30d, 12h, 90m) or ${FORMS}\n`);
      expect(r.stdout).toBe('');
      expect(r.code).toBe(1);
      const api = await admin(gw.url, 'POST', '/admin/keys', { name, expiresAt: value }, ADMIN);
      expect(api.status).toBe(400);
      expect(api.json.error).toMatchObject({ code: 'invalid_request', param: 'expiresAt', message: `expiresAt: epoch ms, or ${FORMS}` });
      expect((await admin(gw.url, 'GET', `/admin/keys/${name}`, undefined, ADMIN)).status).toBe(404);
    },
    30_000,
  );
});

describe('the accepted forms mean the same time to the CLI and the API', () => {
  it.each([
    ['2099-12-25', '2099-12-25T00:00:00.000Z'],
    ['2099-12-25T10:00:00+02:00', '2099-12-25T08:00:00.000Z'],
    ['2099-12-25T10:00:00.5Z', '2099-12-25T10:00:00.500Z'],
  ])(
    '%s is %s (a date is its UTC midnight, whatever the local zone)',
    async (value, iso) => {
      const name = `ok-${value.replace(/\W/g, '')}`;
      const r = await runCli(['keys', 'create', '--name', `cli-${name}`, '--expires', value, '--json', ...remote()], TZ);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout).key.expiresAt).toBe(iso);
      const api = await admin(gw.url, 'POST', '/admin/keys', { name: `api-${name}`, expiresAt: value }, ADMIN);
      expect(api.status).toBe(201);
      expect(api.json.key.expiresAt).toBe(iso);
    },
    30_000,
  );
});
