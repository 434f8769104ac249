/**
 * Regression: the admin commands took any http(s) base URL and appended their path to it as text. A URL with a
 * user name and password (`http://ops:pw@gw:18789`) was sent without them (the gateway takes its token as a
 * bearer token) and echoed whole in the error line, password included; a URL with a query string put the
 * command's path after it (`…?x=1/admin/overview`), and the gateway answered a route the operator never asked
 * for; a malformed one (`http://[::1`) was "cannot reach the gateway … is it running?". Each is now refused
 * before anything is sent, in one line that does not echo the URL, as `task …`'s client refuses such a base.
 *
 * Both kinds of command check the base by one rule set (gatewayBase, src/cli/acp-client/base-url.ts): `task …`
 * refused a query string echoing the URL whole (a token in the query with it) and a malformed URL echoing it as
 * typed (a password with it); a fragment, never sent, is dropped by both, so an admin command's path no longer
 * lands in it.
 *
 * The real binary against a real gateway process with an admin token.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { startProcess, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { runCli } from '../ops/cli-run.js';

const ADMIN = 'admin-url-refused-token-3c8e';
const PASSWORD = 'proxy-password-9d2f';
const { procs } = stopAfterAll();
let gw: GatewayProcess;

beforeAll(async () => {
  gw = await startProcess({ gateway: { id: 'gw_admin_url', admin: { token: ADMIN } } });
  procs.push(gw);
}, 60_000);

const withCredentials = () => gw.url.replace('://', `://ops:${PASSWORD}@`);

describe('the admin commands refuse a base URL they cannot use, without echoing it', () => {
  it('credentials in --url or $SWITCHYARD_URL: refused, the password never printed', async () => {
    const refused = 'switchyard: --url: credentials do not belong in the URL; pass the admin token with --token or $SWITCHYARD_ADMIN_TOKEN\n';
    // a wrong token: the error line would name the URL
    const flag = await runCli(['status', '--url', withCredentials(), '--token', 'not-the-token']);
    expect(flag.stderr).toBe(refused);
    expect(flag.code).toBe(1);
    const env = await runCli(['sessions', 'list'], { SWITCHYARD_URL: withCredentials(), SWITCHYARD_ADMIN_TOKEN: ADMIN });
    // named by where it came from (test/cli/switchyard-url-named.e2e.test.ts)
    expect(env.stderr).toBe(refused.replace('--url', '$SWITCHYARD_URL'));
    expect(env.code).toBe(1);
    expect(flag.stdout + env.stdout).toBe('');
  });

  it('a query string: refused, not a request for another route', async () => {
    for (const url of [`${gw.url}?x=1`, `${gw.url}/?x=1`]) {
      const r = await runCli(['status', '--url', url, '--token', ADMIN]);
      expect(r.stderr).toBe('switchyard: --url: a gateway base URL carries no query string\n');
      expect(r.code).toBe(1);
    }
  });

  it('a malformed URL: said so, not "is it running?"', async () => {
    const r = await runCli(['bridge', 'list', '--url', 'http://[::1', '--token', ADMIN]);
    expect(r.stderr).toBe('switchyard: --url is not a valid URL: expected http(s)://host[:port][/prefix]\n');
    expect(r.code).toBe(1);
  });

  it('a plain base, with or without a trailing slash, still works', async () => {
    // a fragment is never sent: dropped, the command's path goes after the base, not into the fragment
    for (const url of [gw.url, `${gw.url}/`, `${gw.url}#top`]) {
      const r = await runCli(['bridge', 'list', '--url', url, '--token', ADMIN]);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('no bridges\n');
      expect(r.code).toBe(0);
    }
  });
});

describe('`task …` refuses a base URL by the same rules, in the same words, without echoing it', () => {
  const task = (url: string) => runCli(['task', 'providers', '--url', url, '--token', 'acp-url-refused-token', '--local'], { SWITCHYARD_ACP_TOKEN: '' });

  it('credentials: refused, the password never printed', async () => {
    const r = await task(withCredentials());
    expect(r.stderr).toBe('switchyard: --url: credentials do not belong in the URL; pass the ACP token with --token or $SWITCHYARD_ACP_TOKEN\n');
    expect(r.code).toBe(1);
  });

  it('a query string: refused, the query (a token in it) never printed', async () => {
    const r = await task(`${gw.url}/acp?token=${PASSWORD}`);
    expect(r.stderr).toBe('switchyard: --url: a gateway base URL carries no query string\n');
    expect(r.code).toBe(1);
  });

  it('a malformed URL: said so, the password in it never printed', async () => {
    const r = await task(`http://ops:${PASSWORD}@[::1`);
    expect(r.stderr).toBe('switchyard: --url is not a valid URL: expected http(s)://host[:port][/prefix]\n');
    expect(r.code).toBe(1);
  });

  it('not http(s): the scheme named as the mistake', async () => {
    for (const url of ['ws://127.0.0.1:9/acp', '127.0.0.1:9']) {
      const r = await task(url);
      expect(r.stderr, url).toBe("switchyard: --url must be a gateway's http:// or https:// URL\n");
      expect(r.code).toBe(1);
    }
  });
});
