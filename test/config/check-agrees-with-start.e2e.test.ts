/**
 * `switchyard config check` refuses every file `switchyard gateway` refuses to start on, with the same message
 * and exit code: both run one check (src/gateway-prepare.ts) beyond the schema — the files the config names,
 * and the channels' providers constructed as the gateway runs them (provider `options` are checked only when a
 * provider is made). Each bad file goes through the real CLI twice: `config check`, and a real gateway start.
 * A valid file passes both, and the check opens no connection to the upstreams it names.
 */
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { writeFileSync } from 'node:fs';
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
  const cfg = { ...raw, gateway: { port: 0, ...((raw.gateway as object) ?? {}) }, store: { kind: 'sqlite', path: `./data/check-${++n}.db` } };
  const p = join(dir, `check-${n}.json5`);
  writeFileSync(p, JSON.stringify(cfg, null, 2));
  return p;
}

/** Starts a real gateway on the file: its exit, or `started` (then stopped) once it listens. */
function start(path: string): Promise<{ code: number | null | 'started'; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, 'gateway', '--config', path], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, SWITCHYARD_LOG: 'error' },
    });
    let stderr = '';
    let started = false;
    p.stdout.on('data', (b: Buffer) => {
      if (!started && b.toString().includes('listening on')) {
        started = true;
        p.kill('SIGTERM');
      }
    });
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    p.once('exit', (code) => resolve({ code: started ? 'started' : code, stderr }));
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
    problems: () => ['channels.0.apiKey: environment variable SY_CHECK_SURELY_UNSET is not set'],
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
});
