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
 * Which secrets a config holds is the config's knowledge: src/config/secrets.ts registers them here.
 *
 * The registry is process-wide (`secrets`): a process that runs several gateways (the tests) scrubs each
 * one's secrets everywhere, which is only stricter. Cost: one regex pass per scrubbed string; the hot path
 * (successful requests) scrubs nothing.
 */
export const REDACTED = '[REDACTED]';
export const MIN_SECRET_LENGTH = 6;

/** Query parameter (and header) names whose values are credentials (case-insensitive, substring). */
export const SECRET_PARAM = /token|key|secret|pass|auth|sig|credential|session/i;

/**
 * `name: value`, `"name": "value"`, `name=value` for credential-carrying names; group 3 keeps a scheme word. A
 * value starting `[` (already redacted) or `<` (a placeholder in a message of ours, `Bearer <token>`) is left.
 */
const NAMED_CREDENTIAL =
  /\b(authorization|proxy-authorization|x-api-key|api[_-]?key|x-goog-api-key|access[_-]?token|refresh[_-]?token|auth[_-]?token|id[_-]?token|client[_-]?secret|token|secret|password|passwd)(\\?["']?\s*[:=]\s*\\?["']?)(?:(Bearer|Basic|Token)\s+)?(?![[<]|(?:Bearer|Basic|Token)\b)([^\s"'\\,;&}\]]{4,})/gi;
const BEARER = /\b(Bearer|Basic)\s+(?![[<])[A-Za-z0-9._~+/=-]{8,}/g;
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

  /**
   * `scrub` over every string inside a JSON-shaped value (an update, a result); returns the same object when
   * nothing changed, so the common case allocates nothing. A secret split across two stream deltas is not
   * seen by either: the stored turn output, scrubbed whole, is the complete record.
   */
  scrubValue<T>(v: T): T {
    if (typeof v === 'string') return this.scrub(v) as T;
    if (Array.isArray(v)) {
      const arr = v as unknown[];
      let out: unknown[] | undefined;
      arr.forEach((x, i) => {
        const y = this.scrubValue(x);
        if (y !== x) (out ??= [...arr])[i] = y;
      });
      return (out ?? v) as T;
    }
    if (v !== null && typeof v === 'object') {
      let out: Record<string, unknown> | undefined;
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        const y = this.scrubValue(x);
        if (y !== x) (out ??= { ...(v as Record<string, unknown>) })[k] = y;
      }
      return (out ?? v) as T;
    }
    return v;
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
