/**
 * `switchyard config check` refuses every file `switchyard gateway` refuses to start on, with the same message
 * and exit code: both run one check (src/gateway-prepare.ts) beyond the schema — the files the config names,
 * and the channels' providers constructed as the gateway runs them (provider `options` are checked only when a
 * provider is made), and where the store is (a `store.path` SQLite cannot open or create, a `store.url` that is
 * no Redis URL). Each bad file goes through the real CLI twice: `config check`, and a real gateway start. A
 * valid file passes both; the check opens no connection to the upstreams it names and creates nothing where the
 * store is to be.
 */
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN } from '../../src/util/gateway-process.js';
import { cleanupDirs, tmpDir } from '../helpers/env.js';
import { runCli } from '../ops/cli-run.js';

const dir = tmpDir('sy-check-start-');
afterAll(() => cleanupDirs());

/** A TCP port that counts the connections made to it (and answers none). */
let upstream: Server;
let connections = 0;
let upstreamUrl = '';
beforeAll(async () => {
  upstream = createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as { port: number }).port}`;
});
afterAll(() => new Promise<void>((r) => upstream.close(() => r())));

let n = 0;
function file(raw: Record<string, unknown>): string {
  n++;
  const cfg = { ...raw, gateway: { port: 0, ...((raw.gateway as object) ?? {}) }, store: raw.store ?? { kind: 'sqlite', path: `./data/check-${n}.db` } };
  const p = join(dir, `check-${n}.json5`);
  writeFileSync(p, JSON.stringify(cfg, null, 2));
  return p;
}

/**
 * Starts a real gateway on the file (as the user `as`, if given): its exit, or `started` (then stopped) once it
 * listens, or `hung` (then killed) when it neither listened nor exited within 20 s.
 */
function start(path: string, as?: { uid: number; gid: number }): Promise<{ code: number | null | 'started' | 'hung'; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, 'gateway', '--config', path], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, SWITCHYARD_LOG: 'error' },
      ...as,
    });
    let stderr = '';
    let started = false;
    const hung = setTimeout(() => p.kill('SIGKILL'), 20_000);
    p.stdout.on('data', (b: Buffer) => {
      if (!started && b.toString().includes('listening on')) {
        started = true;
        p.kill('SIGTERM');
      }
    });
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    p.once('exit', (code, signal) => {
      clearTimeout(hung);
      resolve({ code: started ? 'started' : signal === 'SIGKILL' ? 'hung' : code, stderr });
    });
  });
}

const mock = { name: 'm', provider: 'mock', models: ['m-1'] };
const other = { name: 'm2', provider: 'mock', models: ['m2-1'] };

/** bad files, each with the problems both must list (path: message) */
const BAD: Array<{ what: string; raw: () => Record<string, unknown>; problems: (p: string) => string[] }> = [
  {
    what: 'openai options.responsesApi not a boolean (refused when the provider is made)',
    raw: () => ({ channels: [mock, other, { name: 'oa', provider: 'openai', baseUrl: `${upstreamUrl}/v1`, models: ['x'], options: { responsesApi: 'yes' } }] }),
    problems: () => ['channels.2.options.responsesApi: channel oa: options.responsesApi must be a boolean'],
  },
  {
    what: 'anthropic options.anthropicVersion and defaultMaxTokens invalid, ollama options.keepAlive invalid: every one listed',
    raw: () => ({
      channels: [
        { name: 'an', provider: 'anthropic', baseUrl: upstreamUrl, models: ['a'], options: { anthropicVersion: 5 } },
        { name: 'an2', provider: 'anthropic', baseUrl: upstreamUrl, models: ['b'], options: { defaultMaxTokens: 0 } },
        { name: 'ol', provider: 'ollama', baseUrl: upstreamUrl, models: ['c'], options: { keepAlive: {} } },
      ],
    }),
    problems: () => [
      'channels.0.options.anthropicVersion: channel an: options.anthropicVersion has an invalid value',
      'channels.1.options.defaultMaxTokens: channel an2: options.defaultMaxTokens has an invalid value',
      'channels.2.options.keepAlive: channel ol: options.keepAlive must be a duration string or a number of seconds',
    ],
  },
  {
    what: 'a channel baseUrl that is not http(s)',
    raw: () => ({ channels: [{ name: 'oa', provider: 'vllm', baseUrl: 'ftp://127.0.0.1/v1', models: ['x'] }] }),
    problems: () => ['channels.0.baseUrl: must be an http:// or https:// URL'],
  },
  {
    what: 'a non-loopback bind without client auth (fail closed)',
    raw: () => ({ gateway: { host: '0.0.0.0' }, channels: [mock] }),
    problems: () => [
      'gateway.auth.tokens: host 0.0.0.0 is not loopback, so clients must authenticate; add at least one token or set gateway.auth.requireKey (refusing to start open to the network)',
    ],
  },
  {
    what: 'a secret from an environment variable that is not set',
    raw: () => ({ channels: [{ name: 'oa', provider: 'openai', apiKey: '${SY_CHECK_SURELY_UNSET}', models: ['x'] }] }),
    problems: () => ['channels.0.apiKey: the environment variable SY_CHECK_SURELY_UNSET is not set'],
  },
  {
    what: 'TLS files that do not exist',
    raw: () => ({ gateway: { tls: { cert: './no-cert.pem', key: './no-key.pem' } }, channels: [mock] }),
    problems: () => [`gateway.tls.cert: cannot read ${join(dir, 'no-cert.pem')}: ENOENT`, `gateway.tls.key: cannot read ${join(dir, 'no-key.pem')}: ENOENT`],
  },
  {
    what: 'TLS files that are not PEM',
    raw: () => {
      writeFileSync(join(dir, 'not.pem'), 'not a certificate\n');
      return { gateway: { tls: { cert: './not.pem', key: './not.pem' } }, channels: [mock] };
    },
    problems: () => ['gateway.tls: not a usable certificate and key (error:0480006C:PEM routines::no start line)'],
  },
  {
    what: 'an outbound bridge ca file that does not exist',
    raw: () => ({ gateway: { bridges: [{ name: 'up', url: 'wss://127.0.0.1:9/bridge', token: 'tok-x', ca: './no-ca.pem' }] }, channels: [mock] }),
    problems: () => [`gateway.bridges.0.ca: cannot read ${join(dir, 'no-ca.pem')}: ENOENT`],
  },
  {
    what: 'a store.path under /proc (a start hung there: a recursive mkdir under /proc never returns)',
    raw: () => ({ channels: [mock], store: { kind: 'sqlite', path: '/proc/switchyard-check/store/sy.db' } }),
    problems: () => ['store.path: /proc/switchyard-check/store/sy.db is on a proc file system (/proc), where no database can be kept'],
  },
  {
    what: 'a store.path under /sys',
    raw: () => ({ channels: [mock], store: { kind: 'sqlite', path: '/sys/switchyard-check.db' } }),
    problems: () => ['store.path: /sys/switchyard-check.db is on a sysfs file system (/sys), where no database can be kept'],
  },
  {
    what: 'a store.path that is a directory',
    raw: () => {
      mkdirSync(join(dir, 'a-folder'), { recursive: true });
      return { channels: [mock], store: { kind: 'sqlite', path: './a-folder' } };
    },
    problems: () => [`store.path: ${join(dir, 'a-folder')} is a directory; name a database file in it (e.g. ${join(dir, 'a-folder', 'switchyard.db')})`],
  },
  {
    what: 'a store.path that is a device',
    raw: () => ({ channels: [mock], store: { kind: 'sqlite', path: '/dev/null' } }),
    problems: () => ['store.path: /dev/null is not a regular file (a device, pipe or socket cannot hold a database)'],
  },
  {
    what: 'a store.path under a file',
    raw: () => {
      writeFileSync(join(dir, 'a-file'), '');
      return { channels: [mock], store: { kind: 'sqlite', path: './a-file/data/sy.db' } };
    },
    problems: () => [`store.path: ${join(dir, 'a-file')} is not a directory, so ${join(dir, 'a-file', 'data', 'sy.db')} cannot be created`],
  },
  {
    what: 'a store.url that is no URL (the message does not quote it: it may hold a password)',
    raw: () => ({ channels: [mock], store: { kind: 'redis', url: 'redis://app:hunter2-pw@127.0.0.1:99999' } }),
    problems: () => ['store.url: not a valid URL (redis://[user:password@]host[:port][/db])'],
  },
];

describe('config check and a gateway start refuse the same files, with the same message', () => {
  it.each(BAD)('$what', async ({ raw, problems }) => {
    const path = file(raw());
    const expected = `switchyard: invalid config (${path}):\n  ${problems(path).join('\n  ')}\n`;
    const [check, gw] = await Promise.all([runCli(['config', 'check', '--config', path]), start(path)]);
    expect({ code: check.code, stderr: check.stderr, stdout: check.stdout }).toEqual({ code: 2, stderr: expected, stdout: '' });
    expect({ code: gw.code, stderr: gw.stderr }).toEqual({ code: 2, stderr: expected });
  });

  it('a valid file passes both; the check makes every provider without connecting to its upstream', async () => {
    const path = file({
      channels: [
        { name: 'oa', provider: 'openai', baseUrl: `${upstreamUrl}/v1`, models: ['x'], options: { responsesApi: true } },
        { name: 'vl', provider: 'vllm', baseUrl: `${upstreamUrl}/v1`, models: ['y'] },
        { name: 'an', provider: 'anthropic', baseUrl: upstreamUrl, models: ['a'], options: { anthropicVersion: '2023-06-01', defaultMaxTokens: 512 } },
        { name: 'ol', provider: 'ollama', baseUrl: upstreamUrl, models: ['o'], options: { keepAlive: '5m' } },
        mock,
      ],
    });
    const check = await runCli(['config', 'check', '--config', path]);
    expect(check.stderr).toBe('');
    expect(check.code).toBe(0);
    expect(check.stdout).toContain('oa(openai), vl(vllm), an(anthropic), ol(ollama), m(mock)');
    expect(connections).toBe(0);
    expect((await start(path)).code).toBe('started');
  });

  it('the check creates nothing where the store is to be; the start creates its folders', async () => {
    const path = file({ channels: [mock], store: { kind: 'sqlite', path: './fresh/store/sy.db' } });
    const check = await runCli(['config', 'check', '--config', path]);
    expect(check.stderr).toBe('');
    expect(check.code).toBe(0);
    expect(existsSync(join(dir, 'fresh'))).toBe(false);
    expect((await start(path)).code).toBe('started');
    expect(existsSync(join(dir, 'fresh', 'store', 'sy.db'))).toBe(true);
  });

  it('a store folder the gateway cannot write in is refused by both', async () => {
    // root writes anywhere: as root, both run as nobody (65534), who may read the config but not write the folder
    const as = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : undefined;
    const own = join(dir, 'read-only');
    mkdirSync(join(own, 'ro'), { recursive: true });
    for (const d of [dir, own]) chmodSync(d, 0o755);
    chmodSync(join(own, 'ro'), 0o555);
    const path = join(own, 'ro.json5');
    writeFileSync(path, JSON.stringify({ gateway: { port: 0 }, channels: [mock], store: { kind: 'sqlite', path: './ro/sub/sy.db' } }), { mode: 0o644 });
    const expected = `switchyard: invalid config (${path}):\n  store.path: cannot write in ${join(own, 'ro')} (EACCES), where ${join(own, 'ro', 'sub')} must be created\n`;
    const [check, gw] = await Promise.all([runCli(['config', 'check', '--config', path], {}, as), start(path, as)]);
    expect({ code: check.code, stderr: check.stderr, stdout: check.stdout }).toEqual({ code: 2, stderr: expected, stdout: '' });
    expect({ code: gw.code, stderr: gw.stderr }).toEqual({ code: 2, stderr: expected });
  });
});
