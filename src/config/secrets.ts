/**
 * The secrets a config holds, registered with the one scrubber (src/util/redact.ts) at gateway start. It
 * lives beside the schema it walks: util knows nothing of the config (layers look down).
 */
import type { Config } from './schema.js';
import { SECRET_PARAM, SecretScrubber, secrets } from '../util/redact.js';

/**
 * Registers every secret a config holds: channel `apiKey`s, channel header values marked secret (every
 * header in `secretHeaders`, plus any header whose name looks like a credential), credentials in channel
 * and bridge URLs, outbound bridge tokens, `gateway.bridge.allowedTokens`, `gateway.auth.tokens`, the admin
 * token, `acp.tokens`, and OpenClaw gateway tokens and URLs. Called at gateway start and when a reload is applied.
 */
export function registerConfigSecrets(cfg: Config, into: SecretScrubber = secrets): void {
  const g = cfg.gateway;
  for (const t of g.auth.tokens) into.register(t);
  into.register(g.admin.token);
  for (const t of g.bridge.allowedTokens) into.register(t);
  for (const b of g.bridges) {
    into.register(b.token);
    into.registerUrl(b.url);
  }
  for (const c of cfg.channels) {
    into.register(c.apiKey);
    into.registerUrl(c.baseUrl);
    const marked = new Set(c.secretHeaders.map((h) => h.toLowerCase()));
    for (const [k, v] of Object.entries(c.headers)) if (marked.has(k.toLowerCase()) || SECRET_PARAM.test(k)) into.register(v);
  }
  for (const t of cfg.acp.tokens) into.register(t);
  for (const gw of cfg.acp.gateways) {
    if (gw.kind !== 'openclaw') continue;
    into.register(gw.token);
    into.registerUrl(gw.url);
  }
  if (cfg.store.kind === 'redis') into.registerUrl(cfg.store.url);
  into.register(g.metrics.token);
  for (const v of Object.values(g.tracing.headers)) into.register(v);
  into.registerUrl(g.tracing.endpoint);
  // an agent's environment often carries its own provider key
  for (const a of cfg.acp.agents) for (const [k, v] of Object.entries(a.env)) if (SECRET_PARAM.test(k)) into.register(v);
}

/**
 * The one scrub of config problems as they leave, by `config check`, a start (`switchyard gateway`) and a reload
 * alike: a scrubber of their own that knows the secrets of `configs` (a file not in use: its secrets must not become
 * the process-wide registry's), then the process-wide registry, each applying the strict error-text rules of a
 * problem (SecretScrubber.scrubProblem: registered secrets and their pieces anywhere, credential shapes such as
 * `api_key=…`, `Bearer …`, `sk-…` in the key path and in the message apart). What a provider or the TLS check
 * reports (a path, a channel's name, a library's message) may hold a secret the file never declared as one.
 */
export function scrubConfigProblems(problems: readonly string[], ...configs: Config[]): string[] {
  const own = configScrubber(...configs);
  return problems.map((p) => secrets.scrubProblem(own.scrubProblem(p)));
}

/**
 * A scrubber of its own that knows the secrets of `configs` (registered as registerConfigSecrets does) and
 * nothing else: for text about a file that is not in use, whose secrets the process-wide registry must not
 * learn (a refused reload's problems, src/gateway-reload.ts).
 */
export function configScrubber(...configs: Config[]): SecretScrubber {
  const own = new SecretScrubber();
  for (const cfg of configs) registerConfigSecrets(cfg, own);
  return own;
}
