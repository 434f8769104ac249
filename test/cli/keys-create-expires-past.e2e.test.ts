/**
 * Regression: `keys create --expires` took a time in the past (`2020-01-01`, `0d`, today's date, which is its UTC
 * midnight) and created a key born expired, which authenticates nothing, with exit 0 and its secret printed as if it
 * were usable; a date before 1970 came back under the API's field name (`expiresAt: Too small …`), not the flag's.
 * The API took such an `expiresAt` too. Both now refuse a time that is not after now: the CLI before anything is
 * sent, naming the flag; the API with `400 invalid_request`, `param: "expiresAt"`. Nothing is created either way.
 *
 * A real gateway process (port 0) and the real CLI (dist).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { startProcess, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { admin } from '../keys/helpers.js';
import { runCli } from '../ops/cli-run.js';

const ADMIN = 'expires-past-admin-token-4a7c';
const { procs } = stopAfterAll();
let gw: GatewayProcess;

beforeAll(async () => {
  gw = await startProcess({ gateway: { id: 'gw_expires_past', admin: { token: ADMIN } } });
  procs.push(gw);
}, 60_000);

const remote = () => ['--url', gw.url, '--token', ADMIN];

describe('keys create --expires: a time in the past', () => {
  const today = new Date().toISOString().slice(0, 10);
  it.each(['2020-01-01', '1969-07-20', today, '0d', '0m'])(
    '--expires %s: refused naming the flag, nothing created',
    async (value) => {
      const name = `past-${value.replace(/\W/g, '')}`;
      const r = await runCli(['keys', 'create', '--name', name, '--expires', value, ...remote()]);
      expect(r.stderr).toBe(`switchyard: --expires: ${value} is not in the future; give a later date or a duration such as 30d, 12h\n`);
      expect(r.stdout).toBe('');
      expect(r.code).toBe(1);
      const show = await runCli(['keys', 'show', name, ...remote()]);
      expect(show.stderr).toBe(`switchyard: ${gw.url} answered HTTP 404 (not_found): no key with id or name "${name}"\n`);
    },
    30_000,
  );

  it('a time ahead is still taken, as a duration and as a date', async () => {
    for (const [name, value] of [
      ['ahead-duration', '1d'],
      ['ahead-date', '2999-01-31'],
    ] as const) {
      const r = await runCli(['keys', 'create', '--name', name, '--expires', value, '--json', ...remote()]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const { key } = JSON.parse(r.stdout);
      expect(key.status).toBe('active');
      expect(Date.parse(key.expiresAt)).toBeGreaterThan(Date.now());
    }
  }, 30_000);
});

describe('POST /admin/keys: an expiresAt in the past', () => {
  it('is 400 invalid_request naming expiresAt, as epoch ms, an ISO date or a date-time; nothing stored', async () => {
    for (const expiresAt of [Date.now() - 1000, 1, '2020-01-01', '2020-01-01T12:00:00Z']) {
      const r = await admin(gw.url, 'POST', '/admin/keys', { name: 'api-past', expiresAt }, ADMIN);
      expect(r.status, String(expiresAt)).toBe(400);
      expect(r.json.error).toMatchObject({ code: 'invalid_request', param: 'expiresAt' });
      expect(r.json.error.message).toBe('expiresAt: a time in the future (a key that has already expired authenticates nothing)');
    }
    expect((await admin(gw.url, 'GET', '/admin/keys/api-past', undefined, ADMIN)).status).toBe(404);
  });
});
