/**
 * How an `acp.agents[]` entry becomes a running agent: its launch spec (preset defaults, overridden by the
 * entry), its environment, and — with `llm` — the session's private folder and model-API token.
 *
 * Environment (issue: agents must never read the gateway's secrets): an agent starts with `minimalEnv()`
 * only — PATH, HOME, USER/LOGNAME, SHELL, TMPDIR, TZ, TERM, LANG/LANGUAGE/LC_* — then, in this order of
 * precedence (later wins): the preset's `quiet` switches, the `llm` wiring (HOME and XDG_* moved into the
 * private folder, the preset's base URLs, token and config locations), the entry's own `env`. Nothing else of
 * the gateway's environment (channel keys, tokens, cloud credentials) reaches the agent or its terminals.
 *
 * Private folder (`acp.agentHomeRoot/<session>-<random>`, mode 0700): the agent's HOME, where the preset's
 * generated config files go (0600). It lives as long as the ACP session (every agent process of the session
 * uses it, so a restarted process can `session/load` what the previous one stored there) and is removed,
 * with the token revoked, when the session closes.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { AgentConfig, AgentPresetName } from '../../../config/schema.js';
import type { ModelTokens } from '../../../util/model-tokens.js';
import type { AgentSpec } from './agent-session.js';
import { PRESETS, RELATIVE_DIR_VARS, type LlmWiring } from './presets.js';
import { safeFolderName } from './workspace.js';

export { minimalEnv } from './env.js';

/** An entry with the preset's launch defaults filled in and its quiet switches under the entry's own `env`. */
export function resolveAgent(a: AgentConfig): AgentSpec {
  const p = a.preset ? PRESETS[a.preset] : undefined;
  const command = a.command ?? p?.command;
  // the schema guarantees command or preset; this only satisfies the type
  if (!command) throw new Error(`acp.agents "${a.id}": no command`);
  return {
    id: a.id,
    label: a.label,
    command,
    args: a.args ?? (a.command ? [] : (p?.args ?? [])),
    env: { ...(p?.quiet ?? {}), ...a.env },
    permissions: a.permissions,
  };
}

/** What the gateway gives agents run with `llm`. */
export interface LlmContext {
  tokens: ModelTokens;
  /** the gateway's own base URL as agents on this host reach it (known once it listens) */
  gatewayUrl: () => string;
  /** acp.agentHomeRoot, absolute */
  homeRoot: string;
}

/** The private folder and token of one ACP session of an `llm` agent. */
export interface LlmSession {
  home: string;
  /** env to lay over the resolved spec's env (the entry's own `env` still wins: see `launchEnv`) */
  env: Record<string, string>;
  /**
   * names the ACP session the token belongs to, and the virtual key that started it (a warm spare's token is
   * minted before its session exists)
   */
  relabel(sessionId: string, keyId: string | undefined): void;
  /** the traceparent of the turn now running (undefined between turns): the token's requests become its children */
  trace(traceparent: string | undefined): void;
  dispose(): Promise<void>;
}

/**
 * Makes `home` the agent's HOME (and XDG folders), writes the preset's config files for `w` into it and returns
 * the environment that goes with it. Used for a session's private folder and for the availability probe.
 */
export async function wireHome(preset: AgentPresetName, home: string, w: LlmWiring): Promise<Record<string, string>> {
  await mkdir(home, { recursive: true, mode: 0o700 });
  const wired = PRESETS[preset].llm(w);
  for (const [rel, content] of Object.entries(wired.files)) {
    const file = path.join(home, rel);
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await writeFile(file, content, { mode: 0o600 });
  }
  const env: Record<string, string> = {
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, '.config'),
    XDG_DATA_HOME: path.join(home, '.local', 'share'),
    XDG_CACHE_HOME: path.join(home, '.cache'),
    XDG_STATE_HOME: path.join(home, '.local', 'state'),
  };
  for (const [k, v] of Object.entries(wired.env)) env[k] = RELATIVE_DIR_VARS.has(k) ? path.join(home, v) : v;
  return env;
}

/** Creates the private folder, mints the token, writes the preset's config files. */
export async function openLlmSession(a: AgentConfig, ctx: LlmContext, sessionId: string, modelOverride?: string, keyId?: string): Promise<LlmSession> {
  if (!a.preset || !a.llm) throw new Error(`acp.agents "${a.id}": llm needs a preset`);
  const gatewayUrl = ctx.gatewayUrl();
  if (!gatewayUrl) throw new Error('the gateway URL is not known yet');
  const home = path.join(ctx.homeRoot, `${safeFolderName(sessionId).slice(0, 80)}-${randomBytes(4).toString('hex')}`);
  // role routing may choose another model than `llm.model`: the token pins the agent to that one
  const model = modelOverride ?? a.llm.model;
  const token = ctx.tokens.mint({ model, sessionId, agentId: a.id, keyId });
  try {
    const env = await wireHome(a.preset, home, { gatewayUrl, token, model });
    let disposed = false;
    return {
      home,
      env,
      relabel(sessionId, keyId) {
        const grant = ctx.tokens.lookup(token); // the registry's own record: its sessionId (and key) name the principal
        if (grant) {
          grant.sessionId = sessionId;
          grant.keyId = keyId;
        }
      },
      trace(traceparent) {
        const grant = ctx.tokens.lookup(token);
        if (grant) grant.trace = traceparent;
      },
      async dispose() {
        if (disposed) return;
        disposed = true;
        ctx.tokens.revoke(token);
        await rm(home, { recursive: true, force: true });
      },
    };
  } catch (err) {
    ctx.tokens.revoke(token);
    await rm(home, { recursive: true, force: true });
    throw err;
  }
}

/** The resolved spec with the llm wiring laid under the entry's own `env`. */
export function launchEnv(spec: AgentSpec, a: AgentConfig, llm: LlmSession | undefined): Record<string, string> {
  if (!llm) return spec.env ?? {};
  return { ...(spec.env ?? {}), ...llm.env, ...a.env };
}
