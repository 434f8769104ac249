/**
 * The `switchyard bridge` CLI against real gateway processes: tables by default, --json for scripts,
 * runtime connect/disconnect without a restart, and one-line errors (no stack) for a gateway that is down
 * or a wrong admin token. The bridge token never appears in any output.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { cleanupDirs, startProcess, waitFor, wsUrl, BIN, type GatewayProcess } from '../helpers/env.js';

const BRIDGE_TOKEN = 'cli-bridge-token-5e6f7a';
const ADMIN = 'cli-admin-token-0a9b8c';
let a: GatewayProcess;
let b: GatewayProcess;

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...process.env, SWITCHYARD_URL: '', SWITCHYARD_ADMIN_TOKEN: '', ...env }, timeout: 20_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

const asA = () => ['--url', a.url, '--token', ADMIN];

beforeAll(async () => {
  b = await startProcess({
    gateway: { id: 'gw_cli_b', name: 'gpu', admin: { token: ADMIN }, bridge: { enabled: true, allowedTokens: [BRIDGE_TOKEN], shareChannels: ['gpu-llama'] } },
    channels: [{ name: 'gpu-llama', provider: 'mock', models: ['llama3'] }],
  });
  a = await startProcess({
    gateway: { id: 'gw_cli_a', name: 'laptop', admin: { token: ADMIN }, bridge: { shareChannels: ['laptop-mock'] } },
    channels: [{ name: 'laptop-mock', provider: 'mock', models: ['mock-1'] }],
  });
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  cleanupDirs();
});

describe('switchyard bridge', () => {
  it('list with no bridges says so', async () => {
    const r = await cli(['bridge', 'list', ...asA()]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('no bridges\n');
  });

  it('connect at run time, then list (table and --json) and channels both ways', async () => {
    const c = await cli(['bridge', 'connect', ...asA(), '--peer-url', wsUrl(b.url), '--peer-token', BRIDGE_TOKEN, '--name', 'gpu', '--share', 'laptop-mock']);
    expect(c.code).toBe(0);
    expect(c.stdout).toMatch(/bridge "gpu" added/);

    const json = await waitFor(async () => {
      const r = await cli(['bridge', 'list', ...asA(), '--json']);
      const rows = JSON.parse(r.stdout) as any[];
      return rows[0]?.state === 'open' ? rows : undefined;
    }, 'bridge open via CLI');
    expect(json[0]).toMatchObject({
      name: 'gpu',
      id: 'gw_cli_b',
      direction: 'outbound',
      state: 'open',
      sharedWithUs: ['gpu-llama'],
      sharedByUs: ['laptop-mock'],
      inflight: { out: 0, in: 0 },
      protocol: '1.2',
      pausedStreams: 0,
      unmatchedPongs: 0,
      lastError: null,
    });

    const table = await cli(['bridge', 'list', ...asA()]);
    const [header, row] = table.stdout.trim().split('\n');
    expect(header).toMatch(/^NAME\s+ID\s+DIR\s+STATE\s+PROTO\s+SINCE\s+THEY SHARE\s+WE SHARE\s+IN-FLIGHT\s+HEALTH\s+LAST ERROR$/);
    expect(row).toMatch(/^gpu\s+gw_cli_b\s+outbound\s+open\s+1\.2\s+\S+\s+gpu-llama\s+laptop-mock\s+0→ 0←\s+ok\s+-$/);

    const ch = await cli(['bridge', 'channels', ...asA()]);
    expect(ch.stdout).toMatch(/gpu\s+gw_cli_b\s+peer → us\s+gpu-llama\s+mock\s+llama3/);
    expect(ch.stdout).toMatch(/gpu\s+gw_cli_b\s+us → peer\s+laptop-mock\s+mock\s+mock-1/);

    // B sees A as an inbound peer sharing laptop-mock
    const onB = JSON.parse((await cli(['bridge', 'list', '--url', b.url, '--token', ADMIN, '--json'])).stdout) as any[];
    expect(onB[0]).toMatchObject({ id: 'gw_cli_a', direction: 'inbound', sharedWithUs: ['laptop-mock'] });

    for (const r of [c, table, ch]) expect(r.stdout + r.stderr).not.toContain(BRIDGE_TOKEN);
  });

  it('channels list shows local and peer channels', async () => {
    const r = await cli(['channels', 'list', ...asA()]);
    expect(r.stdout).toMatch(/laptop-mock\s+mock \(mock\)\s+local\s+mock-1\s+0\/64\s+\S+\s+healthy/);
    expect(r.stdout).toMatch(/gpu-llama\s+mock \(mock\)\s+gpu\s+llama3/);
  });

  it('disconnect by name removes the peer and its models', async () => {
    const r = await cli(['bridge', 'disconnect', 'gpu', ...asA()]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('disconnected gpu\n');
    expect((await cli(['bridge', 'list', ...asA()])).stdout).toBe('no bridges\n');
    const models = (await (await fetch(`${a.url}/v1/models`)).json()) as { data: Array<{ id: string }> };
    expect(models.data.map((m) => m.id)).not.toContain('llama3');
    const again = await cli(['bridge', 'disconnect', 'gpu', ...asA()]);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`switchyard: ${a.url} answered HTTP 404 (not_found): no bridge named or with id "gpu"\n`);
  });

  it('a wrong admin token is one line, exit 1, no stack trace', async () => {
    const r = await cli(['bridge', 'list', '--url', a.url, '--token', 'wrong-admin']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `switchyard: ${a.url} answered HTTP 401 (unauthorized): invalid admin token; admin token rejected: give the gateway's gateway.admin.token with --token or $SWITCHYARD_ADMIN_TOKEN\n`,
    );
    expect(r.stderr).not.toMatch(/\bat \S+:\d+/);
  });

  it('a gateway that is down is one line, exit 1, no stack trace', async () => {
    const r = await cli(['bridge', 'list', '--url', 'http://127.0.0.1:9', '--token', ADMIN]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/cannot reach the gateway at http:\/\/127\.0\.0\.1:9 \(ECONNREFUSED\); is it running\?/);
  });

  it('a --url that is not http(s) is named as the mistake, not as a gateway that is down', async () => {
    for (const url of ['ftp://127.0.0.1:9', 'ws://user:secret-pass@127.0.0.1:9', '127.0.0.1:9']) {
      const r = await cli(['bridge', 'list', '--url', url, '--token', ADMIN]);
      expect(r.code, url).toBe(1);
      expect(r.stderr).toBe("switchyard: --url must be a gateway's http:// or https:// URL\n");
    }
  });

  it('flags win over environment, environment over config', async () => {
    const r = await cli(['bridge', 'list', '--json'], { SWITCHYARD_URL: a.url, SWITCHYARD_ADMIN_TOKEN: ADMIN });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([]);
    const bad = await cli(['bridge', 'list', '--token', 'nope'], { SWITCHYARD_URL: a.url, SWITCHYARD_ADMIN_TOKEN: ADMIN });
    expect(bad.stderr).toMatch(/admin token rejected/);
  });

  it('connect with a bad URL is refused with the flag named', async () => {
    const r = await cli(['bridge', 'connect', ...asA(), '--peer-url', 'http://not-ws', '--peer-token', 't']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`switchyard: ${a.url} answered HTTP 400 (invalid_request): --peer-url: must be a ws:// or wss:// URL\n`);
  });
});
