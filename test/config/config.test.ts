/**
 * Config loading (../shared/spec/config.md): JSON5, ${VAR} substitution, one strict schema with every problem
 * listed as `path: message`, built-in defaults, fail-closed checks — and `switchyard config check` as a real
 * process (dist/ must be built: `npm test` builds it first).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, validateConfig } from '../../src/config/load.js';

const dir = mkdtempSync(join(tmpdir(), 'sy-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function file(text: string): string {
  const p = join(dir, `cfg-${++n}.json5`);
  writeFileSync(p, text);
  return p;
}

/** the ConfigError's problem list (fails the test when nothing was thrown) */
function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError, but the config was accepted');
}

const mockChannel = { name: 'demo', provider: 'mock', models: ['mock-1'] };

describe('loading a config file', () => {
  it('parses JSON5: comments, trailing commas, unquoted keys, single quotes', () => {
    const p = file(`
      // a comment
      {
        gateway: {
          name: 'Office Gateway', /* block comment */
          port: 18800,
          routing: { retries: 1, },
        },
        channels: [
          { name: "demo", provider: "mock", models: ["mock-1",], },
        ],
      }
    `);
    const { config, path, baseDir } = loadConfig(p, {});
    expect(path).toBe(resolve(p));
    expect(baseDir).toBe(dir);
    expect(config.gateway.name).toBe('Office Gateway');
    expect(config.gateway.port).toBe(18800);
    expect(config.gateway.routing.retries).toBe(1);
    expect(config.channels).toHaveLength(1);
    expect(config.channels[0]).toMatchObject({ name: 'demo', provider: 'mock', models: ['mock-1'], priority: 0, weight: 1 });
  });

  it('substitutes ${VAR} in every string, including inside longer strings and arrays', () => {
    const p = file(`{
      gateway: { name: "gw-\${REGION}-1", auth: { tokens: ["\${GATEWAY_TOKEN}", "static"] } },
      channels: [{ name: "oa", provider: "openai", apiKey: "\${OPENAI_API_KEY}", baseUrl: "http://\${UP_HOST}:8000/v1", models: ["gpt-4o-mini"] }],
    }`);
    const { config } = loadConfig(p, { REGION: 'eu', GATEWAY_TOKEN: 'tok-123', OPENAI_API_KEY: 'sk-abc', UP_HOST: '10.0.0.7' });
    expect(config.gateway.name).toBe('gw-eu-1');
    expect(config.gateway.auth.tokens).toEqual(['tok-123', 'static']);
    expect(config.channels[0]!.apiKey).toBe('sk-abc');
    expect(config.channels[0]!.baseUrl).toBe('http://10.0.0.7:8000/v1');
  });

  it('a missing variable is an error naming the key path AND the variable (every missing one listed)', () => {
    const p = file(`{
      gateway: { auth: { tokens: ["\${GATEWAY_TOKEN}"] } },
      channels: [{ name: "oa", provider: "openai", apiKey: "\${OPENAI_API_KEY}", models: ["m"] }],
    }`);
    const problems = problemsOf(() => loadConfig(p, { GATEWAY_TOKEN: 't' }));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^channels\.0\.apiKey: /);
    expect(problems[0]).toContain('OPENAI_API_KEY');

    const both = problemsOf(() => loadConfig(p, {}));
    expect(both).toHaveLength(2);
    expect(both.some((x) => x.startsWith('gateway.auth.tokens.0: ') && x.includes('GATEWAY_TOKEN'))).toBe(true);
    expect(both.some((x) => x.startsWith('channels.0.apiKey: ') && x.includes('OPENAI_API_KEY'))).toBe(true);
  });

  it('the error message (what the CLI prints) carries the file and every problem', () => {
    const p = file(`{ channels: [{ name: "oa", provider: "openai", apiKey: "\${NOPE_KEY}", models: ["m"] }] }`);
    try {
      loadConfig(p, {});
      throw new Error('accepted');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toContain(p);
      expect((err as Error).message).toContain('channels.0.apiKey');
      expect((err as Error).message).toContain('NOPE_KEY');
    }
  });

  it('$${VAR} is a literal ${VAR}, not substituted and not an error', () => {
    const p = file(`{ gateway: { name: "price $\${HOME} and \${WHO}" }, channels: [{ name: "demo", provider: "mock", models: ["mock-1"] }] }`);
    const { config } = loadConfig(p, { WHO: 'me', HOME: '/root' });
    expect(config.gateway.name).toBe('price ${HOME} and me');
    const literalOnly = file(`{ gateway: { name: "$\${UNSET_VAR}" } }`);
    expect(loadConfig(literalOnly, {}).config.gateway.name).toBe('${UNSET_VAR}');
  });

  it('a file that is not JSON5 is one clear problem; an unreadable path is a problem too', () => {
    const bad = problemsOf(() => loadConfig(file('{ gateway: { port: 1, }'), {}));
    expect(bad).toHaveLength(1);
    expect(bad[0]).toMatch(/JSON5/);
    const missing = problemsOf(() => loadConfig(join(dir, 'does-not-exist.json5'), {}));
    expect(missing[0]).toContain('does-not-exist.json5');
  });

  it('a "__proto__" key is refused with its path, not dropped or read through', () => {
    const problems = problemsOf(() =>
      loadConfig(
        file(
          `{ __proto__: { gateway: { name: "inherited" } }, channels: [{ name: "demo", provider: "mock", models: ["mock-1"], headers: { "__proto__": { x: 1 } }, modelMap: { "__proto__": "up" } }] }`,
        ),
        {},
      ),
    );
    expect(problems).toEqual([
      '__proto__: "__proto__" cannot be a key',
      'channels.0.headers.__proto__: "__proto__" cannot be a key',
      'channels.0.modelMap.__proto__: "__proto__" cannot be a key',
    ]);
  });

  it('SWITCHYARD_CONFIG is used when --config is not given', () => {
    const p = file(`{ gateway: { name: "from-env" }, channels: [${JSON.stringify(mockChannel)}] }`);
    expect(loadConfig(undefined, { SWITCHYARD_CONFIG: p }).config.gateway.name).toBe('from-env');
  });
});

describe('no config file → built-in defaults', () => {
  it('127.0.0.1:18789 with one mock channel (and sqlite)', () => {
    const cwd = process.cwd();
    const empty = mkdtempSync(join(tmpdir(), 'sy-nocfg-'));
    try {
      process.chdir(empty);
      const loaded = loadConfig(undefined, {});
      expect(loaded.path).toBeUndefined();
      expect(loaded.config.gateway.host).toBe('127.0.0.1');
      expect(loaded.config.gateway.port).toBe(18789);
      expect(loaded.config.channels).toHaveLength(1);
      expect(loaded.config.channels[0]).toMatchObject({ provider: 'mock' });
      expect(loaded.config.channels[0]!.models.length).toBeGreaterThan(0);
      expect(loaded.config.store.kind).toBe('sqlite');
      expect(loaded.config.gateway.auth.tokens).toEqual([]);
    } finally {
      process.chdir(cwd);
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('./switchyard.json5 in the working directory is picked up when present', () => {
    const cwd = process.cwd();
    const here = mkdtempSync(join(tmpdir(), 'sy-localcfg-'));
    try {
      writeFileSync(join(here, 'switchyard.json5'), `{ gateway: { name: "local-file" } }`);
      process.chdir(here);
      expect(loadConfig(undefined, {}).config.gateway.name).toBe('local-file');
    } finally {
      process.chdir(cwd);
      rmSync(here, { recursive: true, force: true });
    }
  });
});

describe('the strict schema', () => {
  it('an unknown key is an error naming its full path', () => {
    expect(problemsOf(() => validateConfig({ gateway: { routing: { retriez: 3 } } }, 't', {}))).toEqual(['gateway.routing.retriez: unknown key']);
    expect(problemsOf(() => validateConfig({ channels: [{ ...mockChannel, colour: 'red' }] }, 't', {}))).toEqual(['channels.0.colour: unknown key']);
    expect(problemsOf(() => validateConfig({ gatway: {} }, 't', {}))).toEqual(['gatway: unknown key']);
  });

  it('wrong types and bad values name the key path', () => {
    const port = problemsOf(() => validateConfig({ gateway: { port: '18789' } }, 't', {}));
    expect(port).toHaveLength(1);
    expect(port[0]).toMatch(/^gateway\.port: \S/);
    const range = problemsOf(() => validateConfig({ gateway: { port: 70000 } }, 't', {}));
    expect(range[0]).toMatch(/^gateway\.port: \S/);
    const provider = problemsOf(() => validateConfig({ channels: [{ name: 'x', provider: 'azure', models: ['m'] }] }, 't', {}));
    expect(provider).toHaveLength(1);
    expect(provider[0]).toMatch(/^channels\.0\.provider: /);
    const models = problemsOf(() => validateConfig({ channels: [{ name: 'x', provider: 'mock', models: 'm' }] }, 't', {}));
    expect(models[0]).toMatch(/^channels\.0\.models: /);
    const strategy = problemsOf(() => validateConfig({ gateway: { routing: { strategy: 'round-robin' } } }, 't', {}));
    expect(strategy[0]).toMatch(/^gateway\.routing\.strategy: /);
  });

  it('usage retention: 0 keeps every record (the default); otherwise at least a month and some, so month budgets stay seedable', () => {
    expect(validateConfig({ channels: [mockChannel] }, 't', {}).gateway.usage.retentionDays).toBe(0);
    expect(validateConfig({ channels: [mockChannel] }, 't', {}).acp.endedSessionRetentionDays).toBe(0);
    expect(validateConfig({ acp: { endedSessionRetentionDays: 7 }, channels: [mockChannel] }, 't', {}).acp.endedSessionRetentionDays).toBe(7);
    expect(problemsOf(() => validateConfig({ acp: { endedSessionRetentionDays: 1.5 }, channels: [mockChannel] }, 't', {}))[0]).toMatch(
      /^acp\.endedSessionRetentionDays: /,
    );
    expect(validateConfig({ gateway: { usage: { retentionDays: 32 } }, channels: [mockChannel] }, 't', {}).gateway.usage.retentionDays).toBe(32);
    expect(problemsOf(() => validateConfig({ gateway: { usage: { retentionDays: 7 } }, channels: [mockChannel] }, 't', {}))).toEqual([
      "gateway.usage.retentionDays: must be 0 (keep every record) or at least 32: a month's budget is seeded from that month's records",
    ]);
    expect(problemsOf(() => validateConfig({ gateway: { usage: { retentionDays: -1 } }, channels: [mockChannel] }, 't', {}))[0]).toMatch(
      /^gateway\.usage\.retentionDays: /,
    );
  });

  it('several problems are listed at once, each as `path: message`', () => {
    const problems = problemsOf(() =>
      validateConfig(
        {
          gateway: { port: 'x', routing: { retries: -1, colour: 1 }, shutdownGraceMs: 'soon' },
          channels: [{ name: 'ok', provider: 'nope', models: [] }],
        },
        't',
        {},
      ),
    );
    const paths = problems.map((p) => p.slice(0, p.indexOf(': ')));
    expect(paths).toEqual(
      expect.arrayContaining([
        'gateway.port',
        'gateway.routing.retries',
        'gateway.routing.colour',
        'gateway.shutdownGraceMs',
        'channels.0.provider',
        'channels.0.models',
      ]),
    );
    expect(problems.length).toBeGreaterThanOrEqual(6);
    for (const p of problems) expect(p).toMatch(/^[A-Za-z0-9_.]+: \S.*$/);
  });

  it('defaults are applied (routing, limits) so the config is complete', () => {
    const c = validateConfig({ channels: [mockChannel] }, 't', {});
    expect(c.gateway.routing).toMatchObject({ strategy: 'least-loaded', preferLocal: true, retries: 2 });
    expect(c.gateway.maxBodyBytes).toBeGreaterThan(0);
    expect(c.channels[0]).toMatchObject({ modelMap: {}, headers: {}, maxConcurrent: 64, weight: 1, priority: 0, maxResponseBytes: 128 * 1024 * 1024 });
  });

  it('gateway.bridge.limits.heartbeatIntervalMs: 50 ms to 10 min (what a peer announces is taken within the same bounds)', () => {
    for (const bad of [49, 600_001]) {
      expect(problemsOf(() => validateConfig({ gateway: { bridge: { limits: { heartbeatIntervalMs: bad } } }, channels: [mockChannel] }, 't', {}))).toEqual([
        expect.stringMatching(/^gateway\.bridge\.limits\.heartbeatIntervalMs: /),
      ]);
    }
  });

  it('every duration a timer is armed with is at most 2^31 − 1 ms (a longer one fires at once in Node): refused with its path', () => {
    const MAX = 2 ** 31 - 1;
    const over = MAX + 1;
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ gateway: { routing: { timeoutMs: over } } }, 'gateway.routing.timeoutMs'],
      [{ gateway: { routing: { firstByteTimeoutMs: over } } }, 'gateway.routing.firstByteTimeoutMs'],
      [{ gateway: { routing: { streamIdleTimeoutMs: over } } }, 'gateway.routing.streamIdleTimeoutMs'],
      [{ gateway: { routing: { health: { maxEjectionMs: over } } } }, 'gateway.routing.health.maxEjectionMs'],
      [{ gateway: { shutdownGraceMs: over } }, 'gateway.shutdownGraceMs'],
      [{ gateway: { bodyTimeoutMs: over } }, 'gateway.bodyTimeoutMs'],
      [{ gateway: { bridge: { limits: { handshakeTimeoutMs: over } } } }, 'gateway.bridge.limits.handshakeTimeoutMs'],
      [{ gateway: { bridges: [{ name: 'b', url: 'ws://127.0.0.1:1/bridge', token: 't', reconnectInterval: over }] } }, 'gateway.bridges.0.reconnectInterval'],
      [{ acp: { permissionTimeoutMs: over } }, 'acp.permissionTimeoutMs'],
      [{ acp: { agentIdleTimeoutMs: over } }, 'acp.agentIdleTimeoutMs'],
    ];
    for (const [raw, path] of cases) {
      const problems = problemsOf(() => validateConfig({ channels: [mockChannel], ...raw }, 't', {}));
      expect(problems).toEqual([expect.stringMatching(new RegExp(`^${path.replace(/\./g, '\\.')}: at most 2147483647 ms`))]);
    }
    expect(problemsOf(() => validateConfig({ channels: [{ ...mockChannel, timeoutMs: over }] }, 't', {}))).toEqual([
      expect.stringMatching(/^channels\.0\.timeoutMs: at most 2147483647 ms/),
    ]);
    // the longest a timer takes is taken; a TTL, which no timer waits for, is not bounded by it
    const cfg = validateConfig({ channels: [mockChannel], gateway: { routing: { timeoutMs: MAX }, responses: { storeTtlMs: 90 * 86_400_000 } } }, 't', {});
    expect(cfg.gateway.routing.timeoutMs).toBe(MAX);
    expect(cfg.gateway.responses.storeTtlMs).toBe(90 * 86_400_000);
  });

  it('a bridge or OpenClaw URL that does not parse is refused, unquoted; one with a fragment is taken', () => {
    // a port out of range, a space in the host: `^wss?://` matched them, and then nothing could find their credentials
    const bad = ['ws://dialer:unparsed-pass-3e7a@127.0.0.1:99999/bridge', 'wss://open claw:18789/?unparsed-query-8c1f'];
    for (const url of bad) {
      const problems = [
        ...problemsOf(() => validateConfig({ channels: [mockChannel], gateway: { bridges: [{ name: 'b', url, token: 't' }] } }, 't', {})),
        ...problemsOf(() =>
          validateConfig(
            { channels: [mockChannel], acp: { tokens: ['acp-token-1'], gateways: [{ id: 'oc', label: 'OC', kind: 'openclaw', url, token: 't' }] } },
            't',
            {},
          ),
        ),
      ];
      expect(problems).toEqual([
        'gateway.bridges.0.url: must be a ws:// or wss:// URL: this one does not parse',
        'acp.gateways.0.url: must be a ws:// or wss:// URL: this one does not parse',
      ]);
    }
    // no ws URL at all: one problem, not that and this one
    expect(problemsOf(() => validateConfig({ channels: [mockChannel], gateway: { bridges: [{ name: 'b', url: 'not-a-url', token: 't' }] } }, 't', {}))).toEqual(
      ['gateway.bridges.0.url: must be a ws:// or wss:// URL'],
    );
    const fragment = 'ws://127.0.0.1:1/bridge#dc';
    expect(validateConfig({ channels: [mockChannel], gateway: { bridges: [{ name: 'b', url: fragment, token: 't' }] } }, 't', {}).gateway.bridges[0]!.url).toBe(
      fragment,
    );
  });

  it('channels[].maxResponseBytes: at least 1024, an integer', () => {
    for (const bad of [1023, 0, 2048.5, '1MiB']) {
      expect(problemsOf(() => validateConfig({ channels: [{ ...mockChannel, maxResponseBytes: bad }] }, 't', {}))).toEqual([
        expect.stringMatching(/^channels\.0\.maxResponseBytes: /),
      ]);
    }
    expect(validateConfig({ channels: [{ ...mockChannel, maxResponseBytes: 1024 }] }, 't', {}).channels[0]!.maxResponseBytes).toBe(1024);
  });
});

describe('fail-closed semantic checks', () => {
  it('a non-loopback host without auth tokens refuses and says why', () => {
    for (const host of ['0.0.0.0', '192.168.1.20', '::']) {
      const problems = problemsOf(() => validateConfig({ gateway: { host }, channels: [mockChannel] }, 't', {}));
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatch(/^gateway\.auth\.tokens: /);
      expect(problems[0]).toContain(host);
      expect(problems[0]).toMatch(/loopback/);
    }
    expect(validateConfig({ gateway: { host: '0.0.0.0', auth: { tokens: ['t0k'] } }, channels: [mockChannel] }, 't', {}).gateway.host).toBe('0.0.0.0');
    for (const host of ['127.0.0.1', 'localhost', '::1', '127.0.0.2']) expect(validateConfig({ gateway: { host } }, 't', {}).gateway.host).toBe(host);
  });

  it('inbound bridges enabled without allowedTokens refuses', () => {
    const problems = problemsOf(() => validateConfig({ gateway: { bridge: { enabled: true } }, channels: [mockChannel] }, 't', {}));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^gateway\.bridge\.allowedTokens: /);
    expect(validateConfig({ gateway: { bridge: { enabled: true, allowedTokens: ['b'] } } }, 't', {}).gateway.bridge.enabled).toBe(true);
  });

  it('shareChannels naming a missing channel refuses (whitelist and per-bridge list)', () => {
    const problems = problemsOf(() => validateConfig({ gateway: { bridge: { shareChannels: ['demo', 'ghost'] } }, channels: [mockChannel] }, 't', {}));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^gateway\.bridge\.shareChannels\.1: /);
    expect(problems[0]).toContain('ghost');
    const perBridge = problemsOf(() =>
      validateConfig(
        {
          gateway: { bridge: { shareChannels: ['demo'] }, bridges: [{ name: 'dc', url: 'ws://127.0.0.1:1/bridge', token: 't', shareChannels: ['other'] }] },
          channels: [mockChannel],
        },
        't',
        {},
      ),
    );
    expect(perBridge[0]).toMatch(/^gateway\.bridges\.0\.shareChannels\.0: /);
  });

  it('duplicate channel names and modelMap keys that are not models are refused', () => {
    const problems = problemsOf(() => validateConfig({ channels: [mockChannel, { ...mockChannel, modelMap: { nope: 'x' } }] }, 't', {}));
    expect(problems).toEqual(expect.arrayContaining([expect.stringMatching(/^channels\.1\.name: /), expect.stringMatching(/^channels\.1\.modelMap\.nope: /)]));
  });
});

describe('CLI: switchyard config check', () => {
  const bin = resolve('bin/switchyard');
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 15_000, env: { ...process.env, SECRET_FROM_ENV: 'sk-should-not-print-4242' } });

  it('exits 0 with a summary for a valid file (and never prints secrets)', () => {
    const p = file(`{
      gateway: { name: "Check Me", port: 18999, auth: { tokens: ["tok-visible-never"] } },
      channels: [
        { name: "oa", provider: "openai", apiKey: "\${SECRET_FROM_ENV}", models: ["gpt-4o-mini"] },
        { name: "demo", provider: "mock", models: ["mock-1"] },
      ],
    }`);
    const r = run('config', 'check', '--config', p);
    expect(r.error).toBeUndefined();
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(p);
    expect(r.stdout).toContain('Check Me');
    expect(r.stdout).toContain('18999');
    expect(r.stdout).toMatch(/oa\b/);
    expect(r.stdout).toMatch(/demo\b/);
    expect(r.stdout + r.stderr).not.toContain('sk-should-not-print-4242');
    expect(r.stdout + r.stderr).not.toContain('tok-visible-never');
  });

  it('exits 2 and prints every problem (path: message) for an invalid file', () => {
    const p = file(`{
      gateway: { port: "high", routing: { retriez: 1 } },
      channels: [{ name: "x", provider: "azure", models: ["m"] }],
    }`);
    const r = run('config', 'check', '--config', p);
    expect(r.error).toBeUndefined();
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/gateway\.port: \S/);
    expect(r.stderr).toContain('gateway.routing.retriez: unknown key');
    expect(r.stderr).toMatch(/channels\.0\.provider: \S/);
    expect(r.stdout).not.toMatch(/^ok/m);
  });

  it('exits 2 naming key path and variable when a variable is missing', () => {
    const p = file(`{ channels: [{ name: "oa", provider: "openai", apiKey: "\${SY_TEST_SURELY_UNSET_VAR}", models: ["m"] }] }`);
    const r = run('config', 'check', '--config', p);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('channels.0.apiKey');
    expect(r.stderr).toContain('SY_TEST_SURELY_UNSET_VAR');
  });
});
