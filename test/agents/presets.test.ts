/** Presets, launch specs, the minimal environment and the session tokens, without processes. */
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';
import { minimalEnv, resolveAgent } from '../../src/acp/runtimes/agent/launch.js';
import { PRESETS } from '../../src/acp/runtimes/agent/presets.js';
import { ModelTokens } from '../../src/util/model-tokens.js';

const agentsOf = (agents: unknown[]) => configSchema().parse({ acp: { agents } }).acp.agents;

describe('acp.agents[] with preset and llm', () => {
  it('takes the preset’s launch unless command/args are given', () => {
    const [codex, gemini, own, ownArgs] = agentsOf([
      { id: 'codex', label: 'Codex', preset: 'codex', llm: { model: 'qwen2.5-7b' } },
      { id: 'gemini', label: 'Gemini', preset: 'gemini' },
      { id: 'own', label: 'Own', preset: 'gemini', command: '/opt/gemini/bin/gemini' },
      { id: 'own-args', label: 'Own args', preset: 'gemini', args: ['--acp', '--debug'] },
    ]);
    expect(resolveAgent(codex!)).toMatchObject({ command: 'codex-acp', args: [] });
    expect(resolveAgent(gemini!)).toMatchObject({ command: 'gemini', args: ['--acp'], env: { GEMINI_TELEMETRY_ENABLED: 'false' } });
    expect(resolveAgent(own!)).toMatchObject({ command: '/opt/gemini/bin/gemini', args: [] });
    expect(resolveAgent(ownArgs!)).toMatchObject({ command: 'gemini', args: ['--acp', '--debug'] });
  });

  it('refuses an entry without command or preset, and llm without preset, naming the key', () => {
    expect(() => validateConfig({ acp: { agents: [{ id: 'x', label: 'X' }] } }, 't')).toThrow(/acp\.agents\.0\.command: required unless `preset` is set/);
    expect(() => validateConfig({ acp: { agents: [{ id: 'x', label: 'X', command: 'x', llm: { model: 'm' } }] } }, 't')).toThrow(
      /acp\.agents\.0\.llm: needs `preset`/,
    );
    expect(() => validateConfig({ acp: { agents: [{ id: 'x', label: 'X', preset: 'cursor' }] } }, 't')).toThrow(/acp\.agents\.0\.preset/);
  });

  it('each preset points its agent at the gateway with the token and pins the model in its own config', () => {
    const w = { gatewayUrl: 'http://127.0.0.1:18789', token: 'sy-agent-TOKEN', model: 'qwen2.5-7b' };
    const codex = PRESETS.codex.llm(w);
    expect(codex.env).toMatchObject({ SWITCHYARD_API_KEY: w.token });
    expect(codex.files['.codex/config.toml']).toContain('base_url = "http://127.0.0.1:18789/v1"');
    expect(codex.files['.codex/config.toml']).toContain('wire_api = "responses"');
    expect(codex.files['.codex/config.toml']).toContain('model = "qwen2.5-7b"');
    expect(PRESETS.claude.llm(w).env).toMatchObject({ ANTHROPIC_BASE_URL: w.gatewayUrl, ANTHROPIC_AUTH_TOKEN: w.token, ANTHROPIC_MODEL: w.model });
    expect(PRESETS.gemini.llm(w).env).toMatchObject({ GOOGLE_GEMINI_BASE_URL: w.gatewayUrl, GEMINI_API_KEY: w.token });
    expect(JSON.parse(PRESETS.gemini.llm(w).files['.gemini/settings.json']!)).toMatchObject({
      telemetry: { enabled: false },
      privacy: { usageStatisticsEnabled: false },
    });
    const oc = JSON.parse(PRESETS.opencode.llm(w).env.OPENCODE_CONFIG_CONTENT!);
    expect(oc).toMatchObject({
      model: 'switchyard/qwen2.5-7b',
      enabled_providers: ['switchyard'],
      provider: { switchyard: { options: { baseURL: 'http://127.0.0.1:18789/v1' } } },
    });
    expect(PRESETS.hermes.llm(w).files['.hermes/config.yaml']).toContain('base_url: "http://127.0.0.1:18789/v1"');
    // a model name that needs quoting stays one TOML / YAML string
    expect(PRESETS.codex.llm({ ...w, model: 'a"b' }).files['.codex/config.toml']).toContain('model = "a\\"b"');
  });
});

describe('minimalEnv', () => {
  it('keeps PATH, HOME, locale and the like, and nothing else of the gateway’s environment', () => {
    const env = minimalEnv({
      PATH: '/bin',
      HOME: '/home/gw',
      LANG: 'C.UTF-8',
      LC_TIME: 'de_DE',
      OPENAI_API_KEY: 'sk-x',
      SWITCHYARD_ADMIN_TOKEN: 't',
      AWS_SECRET_ACCESS_KEY: 's',
    });
    expect(env).toEqual({ PATH: '/bin', HOME: '/home/gw', LANG: 'C.UTF-8', LC_TIME: 'de_DE' });
  });
});

describe('ModelTokens', () => {
  it('mints unguessable tokens bound to a model, found by value only, gone once revoked', () => {
    const minted: string[] = [];
    const t = new ModelTokens((tok) => minted.push(tok));
    const a = t.mint({ model: 'm1', sessionId: 's1', agentId: 'codex' });
    const b = t.mint({ model: 'm2', sessionId: 's2', agentId: 'codex' });
    expect(a).toMatch(/^sy-agent-[A-Za-z0-9_-]{43}$/);
    expect(a).not.toBe(b);
    expect(minted).toEqual([a, b]);
    expect(t.lookup(a)).toMatchObject({ model: 'm1', sessionId: 's1' });
    expect(t.lookup(a.slice(0, -1))).toBeUndefined();
    expect(t.lookup('')).toBeUndefined();
    expect(t.lookup(undefined)).toBeUndefined();
    t.revoke(a);
    expect(t.lookup(a)).toBeUndefined();
    expect(t.lookup(b)).toMatchObject({ model: 'm2' });
    expect(t.size).toBe(1);
  });
});
