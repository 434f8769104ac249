/**
 * Regression: a base URL taken from $SWITCHYARD_URL that the CLI refuses (not http(s), malformed, credentials in
 * it, a query string) was refused as `--url …`, by the admin commands and `task …` alike, though the operator typed
 * no `--url`: a variable exported long ago in a profile was never named as the mistake. The refusal now names
 * `$SWITCHYARD_URL` when that is where the URL came from, and `--url` when the flag gave it (the flag wins over
 * the variable). Nothing is sent either way.
 *
 * The real CLI (dist); no gateway is needed: each URL is refused before anything is sent.
 */
import { describe, expect, it } from 'vitest';
import { runCli } from '../ops/cli-run.js';

const PASSWORD = 'url-named-password-6c1f';
const GOOD = 'http://127.0.0.1:9';

const CASES: Array<[string, string, (subject: string, token: string) => string]> = [
  ['not http(s)', 'ftp://127.0.0.1:9', (s) => `${s} must be a gateway's http:// or https:// URL`],
  ['malformed', 'http://[::1', (s) => `${s} is not a valid URL: expected http(s)://host[:port][/prefix]`],
  ['credentials', `http://ops:${PASSWORD}@127.0.0.1:9`, (s, t) => `${s}: credentials do not belong in the URL; pass ${t}`],
  ['a query string', 'http://127.0.0.1:9/?x=1', (s) => `${s}: a gateway base URL carries no query string`],
];

const KINDS = [
  { what: 'an admin command', args: ['status', '--token', 'url-named-admin'], token: 'the admin token with --token or $SWITCHYARD_ADMIN_TOKEN' },
  { what: 'task …', args: ['task', 'providers', '--token', 'url-named-acp', '--local'], token: 'the ACP token with --token or $SWITCHYARD_ACP_TOKEN' },
];

describe.each(KINDS)('$what: a refused base URL is named by where it came from', ({ args, token }) => {
  it.each(CASES)('%s, from $SWITCHYARD_URL: names $SWITCHYARD_URL', async (_rule, url, said) => {
    const r = await runCli(args, { SWITCHYARD_URL: url, SWITCHYARD_ACP_TOKEN: '' });
    expect(r.stderr).toBe(`switchyard: ${said('$SWITCHYARD_URL', token)}\n`);
    expect(r.stdout).toBe('');
    expect(r.code).toBe(1);
  });

  it.each(CASES)('%s, from --url (the variable set to a good URL): names --url', async (_rule, url, said) => {
    const r = await runCli([...args, '--url', url], { SWITCHYARD_URL: GOOD, SWITCHYARD_ACP_TOKEN: '' });
    expect(r.stderr).toBe(`switchyard: ${said('--url', token)}\n`);
    expect(r.code).toBe(1);
  });
});
