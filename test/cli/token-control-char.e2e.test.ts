/**
 * Regression: a token with a control character in it (typically the `\r` that `--token "$(cat token.txt)"` keeps
 * from a file with CRLF line endings) made the request fail before it was sent, and the CLI said `cannot reach
 * the gateway at <url> (UND_ERR_INVALID_ARG); is it running?` of a gateway that was up and reachable. It now
 * says what is wrong with the token (never the token itself), for the admin commands and `task …` alike.
 *
 * The real binary against a real gateway process with an admin token and an ACP token.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { startProcess, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { runCli } from '../ops/cli-run.js';

const ADMIN = 'token-control-admin-8b3e';
const ACP = 'token-control-acp-4d1f';
const { procs } = stopAfterAll();
let gw: GatewayProcess;

beforeAll(async () => {
  gw = await startProcess({ gateway: { id: 'gw_token_control', admin: { token: ADMIN } }, acp: { tokens: [ACP] } });
  procs.push(gw);
}, 60_000);

const said = (kind: string) =>
  `switchyard: the ${kind} token contains a control character (a line ending from the file it was read from?); no HTTP header can carry it\n`;

describe('a token with a line ending in it', () => {
  it('admin commands: said so, from --token or the environment, the token never printed', async () => {
    const flag = await runCli(['status', '--url', gw.url, '--token', `${ADMIN}\r`]);
    expect(flag.stderr).toBe(said('admin'));
    expect(flag.code).toBe(1);
    const env = await runCli(['sessions', 'list', '--url', gw.url], { SWITCHYARD_ADMIN_TOKEN: `${ADMIN}\r\n` });
    expect(env.stderr).toBe(said('admin'));
    expect(env.code).toBe(1);
    // the same token without it works
    expect(await runCli(['sessions', 'list', '--url', gw.url, '--token', ADMIN])).toMatchObject({ code: 0, stdout: 'no sessions\n', stderr: '' });
  });

  it('task: the same for the ACP token', async () => {
    const r = await runCli(['task', 'providers', '--url', gw.url, '--local'], { SWITCHYARD_ACP_TOKEN: `${ACP}\r` });
    expect(r.stderr).toBe(said('ACP'));
    expect(r.code).toBe(1);
    expect(await runCli(['task', 'providers', '--url', gw.url, '--local'], { SWITCHYARD_ACP_TOKEN: ACP })).toMatchObject({ code: 0, stderr: '' });
  });
});
