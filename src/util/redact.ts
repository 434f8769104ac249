/**
 * The one secret scrubber. Every secret the process knows (configured keys and tokens, URL credentials,
 * tokens minted at run time) is registered here once; every boundary where text leaves the process or is
 * stored (client error bodies and SSE error events, logs, the admin API, upstream error text relayed in a
 * GatewayError — and so the bridge-error and ACP results built from it, and the session store) calls
 * `scrub` or `scrubError`, which replace each secret with `[REDACTED]`.
 *
 * Contract:
 * - `scrub(text)`: every registered secret (and its JSON-escaped and URL-encoded forms) → `[REDACTED]`.
 *   Used on content that may be user data (stored sessions): nothing but known secrets is touched.
 * - `scrubError(text)`: `scrub`, plus generic credential shapes an upstream may echo although they were
 *   never configured here: header echoes (`Authorization: …`, `x-api-key: …`, `"api_key": "…"`, `token=…`),
 *   `Bearer <token>`, and provider key shapes (`sk-…`, `sk-ant-…`). Used on error text and log lines.
 * - Secrets shorter than MIN_SECRET_LENGTH characters are not registered: scrubbing them would mangle
 *   ordinary text, and no real credential is that short.
 *
 * The registry is process-wide (`secrets`): a process that runs several gateways (the tests) scrubs each
 * one's secrets everywhere, which is only stricter. Cost: one regex pass per scrubbed string; the hot path
 * (successful requests) scrubs nothing.
 */
import type { Config } from '../config/schema.js';

export const REDACTED = '[REDACTED]';
export const MIN_SECRET_LENGTH = 6;

/** Query parameter names whose values are credentials (case-insensitive, substring). */
const SECRET_PARAM = /token|key|secret|pass|auth|sig|credential|session/i;

/** `name: value`, `"name": "value"`, `name=value` for credential-carrying names; group 3 keeps a scheme word. */
const NAMED_CREDENTIAL =
  /\b(authorization|proxy-authorization|x-api-key|api[_-]?key|x-goog-api-key|access[_-]?token|refresh[_-]?token|auth[_-]?token|id[_-]?token|client[_-]?secret|token|secret|password|passwd)(\\?["']?\s*[:=]\s*\\?["']?)(?:(Bearer|Basic|Token)\s+)?(?!\[)([^\s"'\\,;&}\]]{4,})/gi;
const BEARER = /\b(Bearer|Basic)\s+(?!\[)[A-Za-z0-9._~+/=-]{8,}/g;
const KEY_SHAPE = /\b(?:sk|rk|pk)-(?:ant-|proj-|live-|test-)?[A-Za-z0-9_-]{16,}/g;

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export class SecretScrubber {
  private readonly known = new Set<string>();
  private re: RegExp | undefined;
  private dirty = false;

  /** Adds a secret (and its encoded forms). Safe to call repeatedly; short or empty values are ignored. */
  register(secret: string | undefined | null): void {
    if (!secret || secret.length < MIN_SECRET_LENGTH) return;
    for (const form of [secret, JSON.stringify(secret).slice(1, -1), encodeURIComponent(secret)]) {
      if (!this.known.has(form)) {
        this.known.add(form);
        this.dirty = true;
      }
    }
  }

  /**
   * Removes a secret registered at run time that has stopped being one (a revoked per-session agent token,
   * useless from then on), so the registry does not grow with every session a gateway ever ran.
   */
  forget(secret: string): void {
    for (const form of [secret, JSON.stringify(secret).slice(1, -1), encodeURIComponent(secret)]) {
      if (this.known.delete(form)) this.dirty = true;
    }
  }

  /** Registers the credentials a URL carries: userinfo (user and password) and token-like query values. */
  registerUrl(url: string | undefined): void {
    if (!url) return;
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return;
    }
    if (u.password) {
      this.register(decodeSafe(u.password));
      this.register(u.password);
    }
    if (u.username) {
      this.register(decodeSafe(u.username));
      this.register(u.username);
    }
    for (const [k, v] of u.searchParams) if (SECRET_PARAM.test(k)) this.register(v);
  }

  /** Every registered secret → `[REDACTED]`. */
  scrub(text: string): string {
    if (this.dirty) this.rebuild();
    if (!this.re || text.length < MIN_SECRET_LENGTH) return text;
    this.re.lastIndex = 0;
    return this.re.test(text) ? text.replace(this.re, REDACTED) : text;
  }

  /** `scrub`, then generic credential shapes (header echoes, Bearer tokens, provider key shapes). */
  scrubError(text: string): string {
    return this.scrub(text)
      .replace(NAMED_CREDENTIAL, (_m, name: string, sep: string, scheme: string | undefined) => `${name}${sep}${scheme ? `${scheme} ` : ''}${REDACTED}`)
      .replace(BEARER, (_m, scheme: string) => `${scheme} ${REDACTED}`)
      .replace(KEY_SHAPE, REDACTED);
  }

  private rebuild(): void {
    this.dirty = false;
    // longest first, so a secret that contains another is replaced whole
    const all = [...this.known].sort((a, b) => b.length - a.length);
    this.re = all.length ? new RegExp(all.map(escapeRe).join('|'), 'g') : undefined;
  }
}

function decodeSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The process-wide registry every boundary uses. */
export const secrets = new SecretScrubber();

/**
 * Registers every secret a config holds: channel `apiKey`s, channel header values marked secret (every
 * header in `secretHeaders`, plus any header whose name looks like a credential), credentials in channel
 * and bridge URLs, outbound bridge tokens, `gateway.bridge.allowedTokens`, `gateway.auth.tokens`, the admin
 * token, `acp.tokens`, and OpenClaw gateway tokens and URLs. Called once at gateway start.
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
}

/**
 * A URL safe to show (admin API, CLI, logs): userinfo replaced, every query value replaced, fragment dropped.
 * Text that does not parse as a URL is returned scrubbed.
 */
export function redactUrl(url: string): string;
export function redactUrl(url: string | null): string | null;
export function redactUrl(url: string | null): string | null {
  if (url === null) return null;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return secrets.scrub(url);
  }
  if (!u.username && !u.password && !u.search && !u.hash) return url;
  const userinfo = u.username || u.password ? `${REDACTED}@` : '';
  const query = [...u.searchParams.keys()].map((k) => `${encodeURIComponent(k)}=${REDACTED}`).join('&');
  return `${u.protocol}//${userinfo}${u.host}${u.pathname}${query ? `?${query}` : ''}`;
}
