/**
 * Config loading: find the file (--config, SWITCHYARD_CONFIG, ./switchyard.json5, else built-in defaults),
 * parse JSON5, substitute ${VAR} in every string (missing variable = error naming key path and variable;
 * $${VAR} = literal), validate with the strict schema, then apply the semantic checks the schema cannot
 * express (unique names, share lists naming real channels, fail-closed auth on non-loopback binds).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import JSON5 from 'json5';
import { pathDeeperThan } from '../wire/json-depth.js';
import { configSchema, type Config } from './schema.js';
import { scrubConfigProblems } from './secrets.js';

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(
    problems: string[],
    readonly source: string,
  ) {
    super(`invalid config (${source}):\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/**
 * A ConfigError for problems found in a config that passed the schema (the semantic checks below, the start's
 * check in src/gateway-prepare.ts). Their messages may quote the file's values (a name, an id, what a provider
 * refused), and a secret put where a name goes would be quoted with them: each problem is scrubbed of the file's
 * own secrets (configScrubber, which the process-wide registry does not learn) before it leaves, by `config
 * check`, a start or a reload.
 */
export function configRefusal(cfg: Config, problems: readonly string[], source: string): ConfigError {
  return new ConfigError(scrubConfigProblems(problems, cfg), source);
}

export interface LoadedConfig {
  config: Config;
  /** absolute path of the file, or undefined when running on built-in defaults */
  path: string | undefined;
  /** relative paths in the config (tls, ca, store, workspaceRoot) resolve against this folder */
  baseDir: string;
}

/** how deep a config file may nest (a real one nests a few levels; its free-form `options` a few more) */
const MAX_CONFIG_DEPTH = 128;

const VAR = /\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Substitutes ${NAME} in every string of a parsed JSON5 value. Collects every missing variable. */
export function substituteEnv(value: unknown, env: NodeJS.ProcessEnv, path: string[] = [], problems: string[] = []): unknown {
  if (typeof value === 'string') {
    return value.replace(VAR, (whole, escaped: string, name: string) => {
      if (escaped) return `\${${name}}`;
      if (!/^[A-Z_][A-Z0-9_]*$/.test(name)) {
        // worded so that no word of 4+ characters follows `<key>: `: under a key named like a credential (`apiKey: …`,
        // `token: …`) it would read as the credential's value, and every error body and log line scrubs that shape
        problems.push(`${fmtPath(path)}: the name in \${${name}} is not a valid variable name (use [A-Z_][A-Z0-9_]*)`);
        return whole;
      }
      const v = env[name];
      if (v === undefined) {
        problems.push(`${fmtPath(path)}: the environment variable ${name} is not set`);
        return '';
      }
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, env, [...path, String(i)], problems));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      // JSON5 keeps `__proto__` as a key; assigned here it would set `out`'s prototype (its keys read through it, out
      // of reach of the unknown-key check) or vanish, where a map (`headers`, `modelMap`, `options`) takes any key
      if (k === '__proto__') {
        problems.push(`${fmtPath([...path, k])}: "__proto__" cannot be a key`);
        continue;
      }
      out[k] = substituteEnv(v, env, [...path, k], problems);
    }
    return out;
  }
  return value;
}

function fmtPath(path: (string | number | symbol)[]): string {
  return path.length === 0 ? '(root)' : path.map(String).join('.');
}

/**
 * The fail-closed rule: a gateway bound to `host` with these client credentials would answer the network
 * without one (not loopback, no token, keys not required). Checked when a config is loaded and, against the
 * running bind, when one is reloaded.
 */
export function openToNetwork(host: string, tokens: readonly string[], requireKey: boolean | undefined): boolean {
  return !isLoopbackHost(host) && tokens.length === 0 && !requireKey;
}

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Validates an already-parsed object. Throws ConfigError listing every problem. */
export function validateConfig(raw: unknown, source: string, env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const substituted = substituteEnv(raw, env, [], problems);
  if (problems.length) throw new ConfigError(problems, source);
  const parsed = configSchema().safeParse(substituted);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => {
        const keys = (i as { keys?: string[] }).keys;
        if (i.code === 'unrecognized_keys' && keys) return keys.map((k) => `${fmtPath([...i.path, k])}: unknown key`).join('\n  ');
        return `${fmtPath(i.path)}: ${i.message}`;
      }),
      source,
    );
  }
  const cfg = parsed.data;
  semanticChecks(cfg, problems);
  if (problems.length) throw configRefusal(cfg, problems, source);
  return cfg;
}

function semanticChecks(cfg: Config, problems: string[]): void {
  const seen = new Set<string>();
  cfg.channels.forEach((c, i) => {
    if (seen.has(c.name)) problems.push(`channels.${i}.name: duplicate channel name "${c.name}"`);
    seen.add(c.name);
    for (const k of Object.keys(c.modelMap)) {
      if (!c.models.includes(k)) problems.push(`channels.${i}.modelMap.${k}: not one of this channel's models`);
    }
  });
  cfg.gateway.bridge.shareChannels.forEach((n, i) => {
    if (!seen.has(n)) problems.push(`gateway.bridge.shareChannels.${i}: no channel named "${n}"`);
  });
  const bridgeNames = new Set<string>();
  cfg.gateway.bridges.forEach((b, i) => {
    if (bridgeNames.has(b.name)) problems.push(`gateway.bridges.${i}.name: duplicate bridge name "${b.name}"`);
    bridgeNames.add(b.name);
    if (Array.isArray(b.shareChannels)) {
      b.shareChannels.forEach((n, j) => {
        if (!cfg.gateway.bridge.shareChannels.includes(n))
          problems.push(`gateway.bridges.${i}.shareChannels.${j}: "${n}" is not in gateway.bridge.shareChannels (the whitelist)`);
      });
    }
  });
  if (cfg.gateway.bridge.enabled && cfg.gateway.bridge.allowedTokens.length === 0) {
    problems.push('gateway.bridge.allowedTokens: inbound bridges are enabled but no token is allowed (fail closed: add a token or set enabled:false)');
  }
  if (openToNetwork(cfg.gateway.host, cfg.gateway.auth.tokens, cfg.gateway.auth.requireKey)) {
    problems.push(
      `gateway.auth.tokens: host ${cfg.gateway.host} is not loopback, so clients must authenticate; add at least one token or set gateway.auth.requireKey (refusing to start open to the network)`,
    );
  }
  const runtimeIds = new Set([...cfg.acp.agents.map((a) => a.id), ...cfg.acp.gateways.map((g) => g.id)]);
  cfg.gateway.bridge.shareAgents.forEach((n, i) => {
    if (!runtimeIds.has(n)) problems.push(`gateway.bridge.shareAgents.${i}: no acp agent or gateway with id "${n}"`);
  });
  cfg.gateway.bridges.forEach((b, i) => {
    if (Array.isArray(b.shareAgents)) {
      b.shareAgents.forEach((n, j) => {
        if (!cfg.gateway.bridge.shareAgents.includes(n))
          problems.push(`gateway.bridges.${i}.shareAgents.${j}: "${n}" is not in gateway.bridge.shareAgents (the whitelist)`);
      });
    }
  });
  const agentIds = new Set<string>();
  for (const [i, a] of cfg.acp.agents.entries()) {
    if (agentIds.has(a.id)) problems.push(`acp.agents.${i}.id: duplicate id "${a.id}"`);
    agentIds.add(a.id);
  }
  for (const [i, g] of cfg.acp.gateways.entries()) {
    if (agentIds.has(g.id)) problems.push(`acp.gateways.${i}.id: duplicate id "${g.id}"`);
    agentIds.add(g.id);
  }
}

/** The config used when no file exists: loopback, one mock channel, SQLite under ./data. */
export function defaultRawConfig(): Record<string, unknown> {
  return { channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }] };
}

export function findConfigPath(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (explicit) return resolve(explicit);
  if (env.SWITCHYARD_CONFIG) return resolve(env.SWITCHYARD_CONFIG);
  const local = resolve('switchyard.json5');
  return existsSync(local) ? local : undefined;
}

export function loadConfig(explicit?: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const path = findConfigPath(explicit, env);
  if (!path) return { config: validateConfig(defaultRawConfig(), 'built-in defaults', env), path: undefined, baseDir: process.cwd() };
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`], path);
  }
  let raw: unknown;
  try {
    raw = JSON5.parse(text);
  } catch (err) {
    throw new ConfigError([`not valid JSON5: ${(err as Error).message}`], path);
  }
  // JSON5.parse takes any depth, the checks below walk the value recursively: a file nested deeper than any config
  // is refused here, by key path, instead of exhausting the stack (an internal error at a reload, a bare
  // "Maximum call stack size exceeded" at a start or `config check`)
  const deep = pathDeeperThan(raw, MAX_CONFIG_DEPTH);
  if (deep) throw new ConfigError([`${fmtPath(deep.slice(0, 4))}${deep.length > 4 ? '…' : ''}: nested deeper than ${MAX_CONFIG_DEPTH} levels`], path);
  return { config: validateConfig(raw, path, env), path, baseDir: dirname(path) };
}

export function resolvePath(baseDir: string, p: string): string {
  return isAbsolute(p) ? p : resolve(baseDir, p);
}
