/**
 * Regression: an admin command whose request the API refused printed the API's words, which name the request's
 * field, not the flag the operator typed: `keys create --expires 1969-07-20` said `expiresAt: Too small …`,
 * `--name 'a b'` said `name: …`, `usage --since soon` said `since: …`, and `bridge connect --peer-url http://x`
 * said `url: must be a ws:// or wss:// URL`, which reads as the gateway's own `--url`. Each command now tells
 * adminCall which field each of its flags gives, and such a refusal names the flag (after who answered, the status and
 * the code, as every non-2xx answer is said).
 *
 * A real gateway process (port 0) and the real CLI (dist).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupDirs, startProcess, tmpDir, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { runCli } from '../ops/cli-run.js';

const ADMIN = 'name-flags-admin-token-2b6e';
const { procs } = stopAfterAll();
let gw: GatewayProcess;
let notPem: string;

beforeAll(async () => {
  gw = await startProcess({ gateway: { id: 'gw_name_flags', admin: { token: ADMIN } } });
  procs.push(gw);
  notPem = join(tmpDir('sy-flags-'), 'ca.txt');
  writeFileSync(notPem, 'not a certificate\n');
}, 60_000);

afterAll(() => cleanupDirs());

const remote = () => ['--url', gw.url, '--token', ADMIN];
const peer = ['bridge', 'connect', '--peer-url', 'ws://127.0.0.1:9/bridge', '--peer-token', 'peer-token-name-flags'];

describe("an API refusal names the flag the operator typed, not the API's field", () => {
  it.each([
    ['keys create --name', ['keys', 'create', '--name', 'bad name'], '--name: letters, digits, . _ @ - (max 64), starting with a letter or digit'],
    ['keys create --models (none)', ['keys', 'create', '--name', 'no-models', '--models', ','], /^--models: Too small/],
    ['keys create --models (a glob too long)', ['keys', 'create', '--name', 'long-glob', '--models', 'g'.repeat(201)], /^--models: Too big/],
    ['keys create --owner', ['keys', 'create', '--name', 'long-owner', '--owner', 'o'.repeat(129)], /^--owner: Too big/],
    ['usage --since', ['usage', '--since', 'soon'], '--since: an ISO date, epoch ms, or a duration such as 24h, 7d, 30m'],
    // not Date.parse's guesses: "-5" was May 2001, a date in words the gateway's local time
    ['usage --since (a negative number)', ['usage', '--since', '-5'], '--since: an ISO date, epoch ms, or a duration such as 24h, 7d, 30m'],
    ['usage --since (a date in words)', ['usage', '--since', 'Dec 25 2027'], '--since: an ISO date, epoch ms, or a duration such as 24h, 7d, 30m'],
    [
      'usage --since (a date-time with no zone)',
      ['usage', '--since', '2026-12-01T10:00:00'],
      '--since: an ISO date, epoch ms, or a duration such as 24h, 7d, 30m',
    ],
    ['sessions list --status', ['sessions', 'list', '--status', 'asleep'], '--status: one of active, running, closed, moved'],
    [
      'bridge connect --peer-url',
      ['bridge', 'connect', '--peer-url', 'http://127.0.0.1:9/bridge', '--peer-token', 'peer-token-name-flags'],
      '--peer-url: must be a ws:// or wss:// URL',
    ],
    ['bridge connect --name', [...peer, '--name', 'a b'], '--name: letters, digits, . _ - (max 64), as in config'],
    ['bridge connect --share', [...peer, '--share', 'nowhere'], '--share: not in gateway.bridge.shareChannels: nowhere'],
  ])(
    '%s',
    async (_what, args, said) => {
      const r = await runCli([...args, ...remote()]);
      const head = `switchyard: ${gw.url} answered HTTP 400 (invalid_request): `;
      expect(r.stderr.startsWith(head), r.stderr).toBe(true);
      const line = r.stderr.slice(head.length).replace(/\n$/, '');
      if (typeof said === 'string') expect(line).toBe(said);
      else expect(line).toMatch(said);
      expect(r.stderr).toMatch(/^switchyard: \S+ answered HTTP 400 \(invalid_request\): --[a-z-]+: [^\n]*\n$/);
      expect(r.stdout).toBe('');
      expect(r.code).toBe(1);
    },
    30_000,
  );

  it('bridge connect --ca with a file that is no certificate', async () => {
    const r = await runCli([...peer, '--ca', notPem, ...remote()]);
    expect(r.stderr).toBe(
      `switchyard: ${gw.url} answered HTTP 400 (invalid_request): --ca: a PEM certificate (the CA or the peer's self-signed certificate)\n`,
    );
    expect(r.code).toBe(1);
  });

  it('a refusal that names no field of the request is printed as the API words it', async () => {
    const r = await runCli(['sessions', 'transfer', 's-none', '--to', 'nowhere', ...remote()]);
    expect(r.stderr).toBe(`switchyard: ${gw.url} answered HTTP 404 (not_found): no connected peer named or with id "nowhere"\n`);
    expect(r.code).toBe(1);
  });
});
