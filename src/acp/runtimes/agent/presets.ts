/**
 * Agent presets: what Switchyard knows about each agent it can launch (`acp.agents[].preset`).
 *
 * Per preset:
 * - `command` / `args`: the default launch (an `acp.agents[]` entry's own `command` / `args` win);
 * - `quiet`: environment that switches off telemetry, update checks and other calls home; always applied;
 * - `llm(w)`: what points the agent at THIS gateway's model API when the entry has `llm: { model }` —
 *   environment variables and config files (paths relative to the session's private folder, which is also
 *   the agent's HOME). The API key is the session's token (util/model-tokens.ts): the gateway pins every
 *   request on it to `llm.model`, so a model name the agent insists on (Claude's `claude-sonnet-…`, Gemini's
 *   `gemini-…`) still runs on `llm.model`.
 *
 * Each agent's API and switches were checked against the pinned versions in test/agents/agents-setup.ts
 * (codex-acp 0.16.0, claude-agent-acp 0.23.1, gemini-cli 0.61.0, opencode-ai 1.18.33); Hermes (Python,
 * not installable in CI) follows its public documentation and is not run by the tests.
 */
import type { AgentPresetName } from '../../../config/schema.js';

/** Where an agent run with `llm` finds the model API. */
export interface LlmWiring {
  /** the gateway as the agent reaches it, e.g. `http://127.0.0.1:18789` (no trailing slash) */
  gatewayUrl: string;
  /** the session's model-API token */
  token: string;
  /** `llm.model` */
  model: string;
}

export interface PresetLlm {
  env: Record<string, string>;
  /** path relative to the private folder → file content */
  files: Record<string, string>;
}

export interface AgentPreset {
  name: AgentPresetName;
  command: string;
  args: string[];
  /** the API the agent speaks to its model (docs, logs) */
  api: 'responses' | 'messages' | 'gemini' | 'chat';
  quiet: Record<string, string>;
  llm(w: LlmWiring): PresetLlm;
}

/** JSON string literals are valid TOML basic strings and YAML flow scalars: one quoting for all three. */
const q = (s: string): string => JSON.stringify(s);

const codex: AgentPreset = {
  name: 'codex',
  command: 'codex-acp',
  args: [],
  api: 'responses',
  quiet: {},
  llm: (w) => ({
    env: { CODEX_HOME: '.codex', SWITCHYARD_API_KEY: w.token },
    files: {
      // Codex reads only $CODEX_HOME/config.toml; a custom provider is the supported way to a gateway
      '.codex/config.toml': [
        `model = ${q(w.model)}`,
        'model_provider = "switchyard"',
        'check_for_update_on_startup = false',
        '',
        '[analytics]',
        'enabled = false',
        '',
        '[model_providers.switchyard]',
        'name = "Switchyard"',
        `base_url = ${q(`${w.gatewayUrl}/v1`)}`,
        'env_key = "SWITCHYARD_API_KEY"',
        'wire_api = "responses"',
        // the gateway already retries across channels; Codex's own 4+5 retries would only delay the error
        'request_max_retries = 1',
        'stream_max_retries = 1',
        '',
      ].join('\n'),
    },
  }),
};

const claude: AgentPreset = {
  name: 'claude',
  command: 'claude-agent-acp',
  args: [],
  api: 'messages',
  quiet: {
    DISABLE_TELEMETRY: '1',
    DISABLE_AUTOUPDATER: '1',
    DISABLE_ERROR_REPORTING: '1',
    DISABLE_BUG_COMMAND: '1',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    // Claude Code refuses to run its tools unattended as root unless told it is sandboxed
    ...(process.getuid?.() === 0 ? { IS_SANDBOX: '1' } : {}),
  },
  llm: (w) => ({
    env: {
      ANTHROPIC_BASE_URL: w.gatewayUrl,
      ANTHROPIC_AUTH_TOKEN: w.token,
      ANTHROPIC_MODEL: w.model,
      ANTHROPIC_SMALL_FAST_MODEL: w.model,
      ANTHROPIC_DEFAULT_OPUS_MODEL: w.model,
      ANTHROPIC_DEFAULT_SONNET_MODEL: w.model,
      ANTHROPIC_DEFAULT_HAIKU_MODEL: w.model,
      CLAUDE_CONFIG_DIR: '.claude',
    },
    files: {},
  }),
};

const gemini: AgentPreset = {
  name: 'gemini',
  command: 'gemini',
  args: ['--acp'],
  api: 'gemini',
  // no relaunch of itself in a second node process (that only raises the heap limit; it doubles the start time)
  quiet: { GEMINI_TELEMETRY_ENABLED: 'false', GEMINI_CLI_NO_RELAUNCH: 'true' },
  llm: (w) => ({
    // GOOGLE_GEMINI_BASE_URL selects Gemini CLI's `gateway` auth type (the ACP auth method of that name) with
    // the key sent as x-goog-api-key; no `authenticate` call is needed
    env: { GOOGLE_GEMINI_BASE_URL: w.gatewayUrl, GEMINI_API_KEY: w.token, GEMINI_MODEL: w.model },
    files: {
      '.gemini/settings.json': JSON.stringify(
        {
          general: { enableAutoUpdate: false, enableAutoUpdateNotification: false },
          privacy: { usageStatisticsEnabled: false },
          telemetry: { enabled: false },
          model: { name: w.model },
        },
        null,
        2,
      ),
    },
  }),
};

const opencode: AgentPreset = {
  name: 'opencode',
  command: 'opencode',
  args: ['acp'],
  api: 'chat',
  quiet: { OPENCODE_DISABLE_AUTOUPDATE: 'true', OPENCODE_DISABLE_SHARE: 'true' },
  llm: (w) => ({
    env: {
      SWITCHYARD_API_KEY: w.token,
      OPENCODE_CONFIG_CONTENT: JSON.stringify({
        $schema: 'https://opencode.ai/config.json',
        provider: {
          switchyard: {
            npm: '@ai-sdk/openai-compatible',
            name: 'Switchyard',
            options: { baseURL: `${w.gatewayUrl}/v1`, apiKey: '{env:SWITCHYARD_API_KEY}' },
            models: { [w.model]: { name: w.model } },
          },
        },
        enabled_providers: ['switchyard'],
        model: `switchyard/${w.model}`,
        small_model: `switchyard/${w.model}`,
        autoupdate: false,
        share: 'disabled',
      }),
      OPENCODE_DISABLE_MODELS_FETCH: 'true',
      OPENCODE_DISABLE_DEFAULT_PLUGINS: 'true',
      OPENCODE_DISABLE_LSP_DOWNLOAD: 'true',
      OPENCODE_DISABLE_CLAUDE_CODE: 'true',
      // OpenCode npm-installs @opencode-ai/plugin into its config folder (here: the fresh private HOME) at every
      // start, in the background; offline, npm uses its cache or gives up at once instead of calling the registry
      npm_config_offline: 'true',
    },
    files: {},
  }),
};

const hermes: AgentPreset = {
  name: 'hermes',
  command: 'hermes',
  args: ['acp'],
  api: 'chat',
  quiet: {},
  llm: (w) => ({
    env: { HERMES_HOME: '.hermes', OPENAI_BASE_URL: `${w.gatewayUrl}/v1`, OPENAI_API_KEY: w.token },
    files: {
      // `provider: custom` = any OpenAI-compatible endpoint; the key comes from OPENAI_API_KEY
      '.hermes/config.yaml': ['model:', '  provider: custom', `  base_url: ${q(`${w.gatewayUrl}/v1`)}`, `  default: ${q(w.model)}`, ''].join('\n'),
    },
  }),
};

export const PRESETS: Readonly<Record<AgentPresetName, AgentPreset>> = { codex, claude, gemini, opencode, hermes };

/**
 * Env values of `llm(...)` that name a folder relative to the private folder (CODEX_HOME, CLAUDE_CONFIG_DIR,
 * HERMES_HOME) are made absolute by the launcher.
 */
export const RELATIVE_DIR_VARS: ReadonlySet<string> = new Set(['CODEX_HOME', 'CLAUDE_CONFIG_DIR', 'HERMES_HOME']);
