/**
 * The one secret scrubber. Every secret the process knows (configured keys and tokens, URL credentials,
 * tokens minted at run time) is registered here once; every boundary where text leaves the process or is
 * stored (client error bodies and SSE error events, logs, the admin API, upstream error text relayed in a
 * GatewayError — and so the bridge-error and ACP results built from it, and the session store) calls
 * `scrub` or `scrubError`, which replace each secret with `[REDACTED]`.
 *
 * Contract:
 * - `scrub(text)`: every registered secret (and its JSON-escaped and URL-encoded forms) → `[REDACTED]`, and every
 *   Switchyard key secret by its shape (KEY_SECRET): virtual keys and agent tokens are not registered (there can be
 *   millions, and a client may send one this gateway never issued), yet a client's key reaches text the gateway
 *   echoes (a key sent as the `model`, in a path, an upstream's error quoting it). Used on content that may be user
 *   data (stored sessions): nothing but known secrets and key secrets is touched.
 * - `scrubError(text)`: `scrub`, plus generic credential shapes an upstream may echo although they were
 *   never configured here: header echoes (`Authorization: …`, `x-api-key: …`, `"api_key": "…"`, `token=…`),
 *   `Bearer <token>`, and provider key shapes (`sk-…`, `sk-ant-…`). Used on error text and log lines.
 *   Also pieces of a registered secret: a token-like run of text (`[A-Za-z0-9._~+/=-]`, 16 characters or
 *   more) that shares PIECE_LENGTH consecutive characters with a secret of PIECE_MIN_SECRET characters or more,
 *   or with its base64 form (at any of the three byte offsets, as inside `Basic` credentials), is replaced
 *   whole: an upstream that echoes the end of a key, or the key base64-encoded, shows none of it.
 * - `scrubProblem(text)`: `scrubError` for a config problem (`<key path>: <message>`), whose key path is not taken
 *   for a credential's name; `scrubError(text, problems)` treats the problems a JSON text holds so (a refused
 *   reload's error body and log line), the rest of it as error text.
 * - `deltas()`: a DeltaScrubber for one stream of text chunks (an agent turn's message or thoughts), which holds
 *   back the end of a chunk while it may start a secret (a registered one, or a key secret), so a secret split
 *   across chunks is replaced whole.
 * - Secrets shorter than MIN_SECRET_LENGTH characters are not registered: scrubbing them would mangle
 *   ordinary text, and no real credential is that short.
 *
 * Which secrets a config holds is the config's knowledge: src/config/secrets.ts registers them here.
 *
 * The registry is process-wide (`secrets`): a process that runs several gateways (the tests) scrubs each
 * one's secrets everywhere, which is only stricter. Cost: one regex pass per scrubbed string (registered secrets
 * and the key shape together); the hot path (successful requests) scrubs nothing.
 */
import { MODEL_TOKEN_PREFIX } from './model-tokens.js';

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

/** the generic credential shapes of scrubError: header echoes, Bearer tokens, provider key shapes */
function shapes(text: string): string {
  return text
    .replace(NAMED_CREDENTIAL, (_m, name: string, sep: string, scheme: string | undefined) => `${name}${sep}${scheme ? `${scheme} ` : ''}${REDACTED}`)
    .replace(BEARER, (_m, scheme: string) => `${scheme} ${REDACTED}`)
    .replace(KEY_SHAPE, REDACTED);
}

/** What every Switchyard key secret starts with (KEY_SECRET_PREFIX, src/keys/model.ts; MODEL_TOKEN_PREFIX too). */
const KEY_PREFIX = 'sy-';
/**
 * The shortest run of base64url characters after `sy-` that KEY_SECRET takes for a key secret. A virtual key is
 * `sy-` + 43 (32 random bytes, src/keys/model.ts), an agent token `sy-agent-` + 43 (src/util/model-tokens.ts). 22
 * rather than 43: a key cut short (a quoted name cut at 256 characters, a relayed text at 1000) shows at most 21 of
 * its characters, and the 22 or more it hides (132 bits) cannot be guessed; a word (`sy-1`), a model name
 * (`sy-mock`), a temporary folder (`sy-ws-AbC123`) is shorter.
 */
export const KEY_RUN_MIN = 22;
/** the run after `sy-` of a whole virtual key: 32 random bytes in base64url */
const KEY_RUN = 43;
/** what an agent token's run starts with (`agent-`), and that run's whole length */
const AGENT_RUN_START = MODEL_TOKEN_PREFIX.slice(KEY_PREFIX.length);
const AGENT_RUN = AGENT_RUN_START.length + KEY_RUN;
/** A key secret by its shape: `sy-` at a word's start and its whole run of base64url characters, KEY_RUN_MIN or more. */
const KEY_SECRET = `\\b${KEY_PREFIX}[A-Za-z0-9_-]{${KEY_RUN_MIN},}`;
const KEY_SECRET_RE = new RegExp(KEY_SECRET);

/** Whether `text` holds a key secret by its shape (KEY_SECRET). */
export const holdsKeySecret = (text: string): boolean => KEY_SECRET_RE.test(text);

/** \w as a regex's \b sees it: A–Z a–z 0–9 _ */
const isWordChar = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
/** base64url: the word characters and - */
const isKeyChar = (c: number) => isWordChar(c) || c === 45;

/**
 * How many characters at the end of `text` may be the start of a key secret, not yet whole: `s`, `sy`, or `sy-` and
 * a run of base64url characters shorter than a whole key's (KEY_RUN; AGENT_RUN for a run that starts `agent-`), at a
 * word's start; the longest such end, 0 when none. A whole key at the end is not held (scrub replaces it; what may
 * follow it in the next chunk is no key's character). Only the last AGENT_RUN + 2 characters are looked at.
 */
export function keyStartTail(text: string): number {
  const end = text.length;
  let from = end;
  while (from > 0 && end - from < KEY_PREFIX.length + AGENT_RUN - 1 && isKeyChar(text.charCodeAt(from - 1))) from--;
  for (let p = from; p < end; p++) {
    if (text.charCodeAt(p) !== 115 /* s */ || (p > 0 && isWordChar(text.charCodeAt(p - 1)))) continue;
    if (p + 1 < end && text.charCodeAt(p + 1) !== 121 /* y */) continue;
    if (p + 2 < end && text.charCodeAt(p + 2) !== 45 /* - */) continue;
    const run = end - p - KEY_PREFIX.length;
    if (run < KEY_RUN || (run < AGENT_RUN && text.startsWith(AGENT_RUN_START, p + KEY_PREFIX.length))) return end - p;
  }
  return 0;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** pieces of a secret this long are recognised by scrubError (a key's tail, its base64 form) */
export const PIECE_LENGTH = 16;
/** only secrets at least this long give pieces: a shorter one's pieces would be too close to ordinary text */
export const PIECE_MIN_SECRET = 20;
/** the characters of a token-like run (a key, base64, a URL-safe token): A–Z a–z 0–9 . _ ~ + / = - */
const RUN_CHAR = new Uint8Array(128);
for (const ch of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~+/=-') RUN_CHAR[ch.charCodeAt(0)] = 1;

const HASH_BASE = 0x01000193;
/** HASH_BASE ** (PIECE_LENGTH - 1), in 32-bit arithmetic: the weight of a window's first character */
const HASH_TOP = Array.from({ length: PIECE_LENGTH - 1 }).reduce<number>((acc) => Math.imul(acc, HASH_BASE), 1);

/** A polynomial hash of the PIECE_LENGTH characters of `s` from `at` (32-bit), rolled along a run by holdsPiece. */
function pieceHash(s: string, at: number): number {
  let h = 0;
  for (let i = at; i < at + PIECE_LENGTH; i++) h = (Math.imul(h, HASH_BASE) + s.charCodeAt(i)) | 0;
  return h;
}

/** Adds `by` to a key's count; a count that reaches 0 is removed. */
function count<K>(m: Map<K, number>, k: K, by: number): void {
  const n = (m.get(k) ?? 0) + by;
  if (n > 0) m.set(k, n);
  else m.delete(k);
}

/**
 * The PIECE_LENGTH-character pieces of a secret (none when it is shorter than PIECE_MIN_SECRET), taken from the
 * forms its bytes take in text: itself, and base64 at each byte offset.
 */
function piecesOf(secret: string): Set<string> {
  const out = new Set<string>();
  if (secret.length < PIECE_MIN_SECRET) return out;
  const sources = [secret];
  for (let k = 0; k < 3; k++) {
    const b64 = Buffer.from('\0'.repeat(k) + secret).toString('base64');
    // the characters that depend on the secret's bytes only: past the pad's, before the last partial group
    sources.push(b64.slice(Math.ceil((k * 4) / 3), b64.length - 4));
  }
  for (const src of sources) for (let i = 0; i + PIECE_LENGTH <= src.length; i++) out.add(src.slice(i, i + PIECE_LENGTH));
  return out;
}

export class SecretScrubber {
  private readonly known = new Set<string>();
  /** registered secrets as given (pieces are taken from these) */
  private readonly raw = new Set<string>();
  /** the registered forms (longest first) and KEY_SECRET, in one regex: a text without either costs one pass */
  private re = new RegExp(KEY_SECRET, 'g');
  /** every PIECE_LENGTH-character piece of the secrets long enough to have pieces, with how many secrets give it */
  private readonly pieces = new Map<string, number>();
  /** pieceHash of each piece, with how many pieces have it */
  private readonly pieceHashes = new Map<number, number>();
  private dirty = false;
  /** for heldTail: the longest registered form's length, the forms sorted, and their first characters */
  private longest = 0;
  private sorted: string[] = [];
  private firsts = new Set<number>();

  /** Adds a secret (and its encoded forms). Safe to call repeatedly; short or empty values are ignored. */
  register(secret: string | undefined | null): void {
    if (!secret || secret.length < MIN_SECRET_LENGTH) return;
    if (!this.raw.has(secret)) {
      this.raw.add(secret);
      for (const p of piecesOf(secret)) {
        count(this.pieces, p, 1);
        count(this.pieceHashes, pieceHash(p, 0), 1);
      }
    }
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
    if (this.raw.delete(secret)) {
      for (const p of piecesOf(secret)) {
        count(this.pieces, p, -1);
        count(this.pieceHashes, pieceHash(p, 0), -1);
      }
    }
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

  /** Every registered secret, and every key secret by its shape, → `[REDACTED]`. */
  scrub(text: string): string {
    if (this.dirty) this.rebuild();
    if (text.length < MIN_SECRET_LENGTH) return text;
    this.re.lastIndex = 0;
    return this.re.test(text) ? text.replace(this.re, REDACTED) : text;
  }

  /**
   * `scrub` over every string inside a JSON-shaped value (an update, a result); returns the same object when
   * nothing changed, so the common case allocates nothing. A secret split across two stream deltas is not
   * seen by either: a turn's message deltas and thought chunks pass `deltas()` first, which joins it.
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

  /**
   * `scrub`, then pieces of secrets, then generic credential shapes (header echoes, Bearer tokens, provider key shapes).
   * `problems`: config problems (scrubProblem) that `text`, a JSON text (an error body, a log line), holds as strings:
   * where one is found in it as JSON writes it, it is scrubbed as a problem; the rest of the text as error text.
   */
  scrubError(text: string, problems?: readonly string[]): string {
    if (problems && problems.length > 0) return this.scrubHolding(text, problems);
    return shapes(this.knownSecrets(text));
  }

  /**
   * A config problem, `<key path>: <message>` (src/config/load.ts and the checks after it), scrubbed as error text
   * (`scrubError`) except that its key path is not taken for a credential's name: `gateway.admin.token: Too small: …`
   * is the schema's message about that key, and the credential rule (`name: value`) would cut it to
   * `gateway.admin.token: [REDACTED] …`. Registered secrets and their pieces are replaced anywhere; the credential
   * shapes are looked for in the key path and in the message apart, so a credential the message itself quotes
   * (`… authorization: Basic …` in what a provider refused) is still cut.
   */
  scrubProblem(text: string): string {
    const out = this.knownSecrets(text);
    const at = out.indexOf(': ');
    return at < 0 ? shapes(out) : `${shapes(out.slice(0, at))}: ${shapes(out.slice(at + 2))}`;
  }

  /** registered secrets, then their pieces */
  private knownSecrets(text: string): string {
    const out = this.scrub(text);
    return this.pieces.size > 0 ? this.redactPieces(out) : out;
  }

  /** scrubError for a JSON text holding `problems` as strings (see scrubError) */
  private scrubHolding(text: string, problems: readonly string[]): string {
    const forms = new Map<string, string>();
    for (const p of problems) if (typeof p === 'string') forms.set(JSON.stringify(p), p);
    let out = '';
    let from = 0;
    for (;;) {
      // the first problem in the text from `from` (the longest where two start at one place)
      let at = -1;
      let form = '';
      for (const f of forms.keys()) {
        const i = text.indexOf(f, from);
        if (i >= 0 && (at < 0 || i < at || (i === at && f.length > form.length))) [at, form] = [i, f];
      }
      if (at < 0) return out + this.scrubError(text.slice(from));
      out += this.scrubError(text.slice(from, at)) + JSON.stringify(this.scrubProblem(forms.get(form)!));
      from = at + form.length;
    }
  }

  /**
   * Whether a token-like run shares PIECE_LENGTH consecutive characters with a secret (or its base64 form): a
   * rolling hash over the run's windows, a string compared only where a hash matches (log lines are scrubbed
   * here too, and most of their runs are ids and paths).
   */
  private holdsPiece(text: string, from: number, to: number): boolean {
    let h = pieceHash(text, from);
    for (let i = from; ; i++) {
      if (this.pieceHashes.has(h) && this.pieces.has(text.slice(i, i + PIECE_LENGTH))) return true;
      if (i + PIECE_LENGTH >= to) return false;
      h = (Math.imul(h - Math.imul(text.charCodeAt(i), HASH_TOP), HASH_BASE) + text.charCodeAt(i + PIECE_LENGTH)) | 0;
    }
  }

  /** Each token-like run of at least PIECE_LENGTH characters that holds a piece of a secret → `[REDACTED]`. */
  private redactPieces(text: string): string {
    let out = '';
    let last = 0;
    let start = -1;
    for (let i = 0; i <= text.length; i++) {
      const c = i < text.length ? text.charCodeAt(i) : 0;
      if (c < 128 && RUN_CHAR[c] === 1) {
        if (start < 0) start = i;
        continue;
      }
      if (start >= 0 && i - start >= PIECE_LENGTH && this.holdsPiece(text, start, i)) {
        out += text.slice(last, start) + REDACTED;
        last = i;
      }
      start = -1;
    }
    return last === 0 ? text : out + text.slice(last);
  }

  /**
   * A scrubber for one stream of text deltas (an agent turn's message or thoughts): `push` returns what of a delta may go
   * out, scrubbed, and holds back its end while that end is the start of a secret, so a secret split across
   * deltas is joined and replaced whole; `flush` gives what is held when the stream ends. See DeltaScrubber.
   */
  deltas(): DeltaScrubber {
    return new DeltaScrubber(this);
  }

  /**
   * How many characters at the end of `text` are the start of a secret (in any registered form) and shorter than
   * it: the longest such end, 0 when none. Only the last (longest secret − 1) characters are looked at; where one
   * is the first character of a secret, a binary search of the sorted forms finds those that start with the end
   * from there, so the cost grows with the log of how many secrets there are (a thousand live agent tokens).
   */
  heldTail(text: string): number {
    if (this.dirty) this.rebuild();
    const forms = this.sorted;
    for (let p = Math.max(0, text.length - this.longest + 1); p < text.length; p++) {
      if (!this.firsts.has(text.charCodeAt(p))) continue;
      // the first form not below text[p…] in code-unit order: the forms that start with text[p…] follow it
      let lo = 0;
      let hi = forms.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (compareFrom(forms[mid]!, text, p) < 0) lo = mid + 1;
        else hi = mid;
      }
      for (let i = lo; i < forms.length && startsAt(forms[i]!, text, p); i++) if (forms[i]!.length > text.length - p) return text.length - p;
    }
    return 0;
  }

  private rebuild(): void {
    this.dirty = false;
    // longest first, so a secret that contains another is replaced whole
    const all = [...this.known].sort((a, b) => b.length - a.length);
    this.re = new RegExp([...all.map(escapeRe), KEY_SECRET].join('|'), 'g');
    this.longest = all.length ? all[0]!.length : 0;
    this.sorted = all.slice().sort();
    this.firsts = new Set(all.map((f) => f.charCodeAt(0)));
  }
}

/** `s` against text[at…] in code-unit order (the order of Array.prototype.sort): < 0, 0 or > 0. */
function compareFrom(s: string, text: string, at: number): number {
  const n = text.length - at;
  for (let i = 0; i < s.length && i < n; i++) {
    const d = s.charCodeAt(i) - text.charCodeAt(at + i);
    if (d !== 0) return d;
  }
  return s.length - n;
}

/** Whether `text` from `at` to its end is the start of `s`. */
function startsAt(s: string, text: string, at: number): boolean {
  for (let i = at; i < text.length; i++) if (s.charCodeAt(i - at) !== text.charCodeAt(i)) return false;
  return true;
}

/**
 * One stream of text deltas, scrubbed across delta boundaries. Each `push(delta)` scrubs what was held plus the
 * delta, then holds back the end that could still become a secret (SecretScrubber.heldTail) and returns the
 * rest: '' when all of it is held. The held end goes out with the next delta, once that shows it is not a secret
 * (or as `[REDACTED]` when it is one), or from `flush()` at the stream's end. A secret split over any number of
 * deltas therefore never goes out, in pieces or whole. What is held is at most the longest secret's length less
 * one, and only while the text goes on matching a secret's start: a delta ending in `s` when a key starts `sk-`
 * waits for the next delta.
 */
export class DeltaScrubber {
  private held = '';

  constructor(private readonly from: SecretScrubber) {}

  /** How many characters are held back now. */
  get holding(): number {
    return this.held.length;
  }

  push(delta: string): string {
    const raw = this.held.length === 0 ? delta : this.held + delta;
    // a key secret's start is held unscrubbed: scrubbed now, a key cut at the chunk's end would be replaced and its
    // rest, in the next chunk, go out. Held until it is as long as a whole key: what may follow is no key's character.
    const open = keyStartTail(raw);
    const text = this.from.scrub(open === 0 ? raw : raw.slice(0, raw.length - open));
    const keep = this.from.heldTail(text);
    this.held = (keep === 0 ? '' : text.slice(text.length - keep)) + (open === 0 ? '' : raw.slice(raw.length - open));
    return keep === 0 ? text : text.slice(0, text.length - keep);
  }

  /** The stream ended (or something other than a delta comes next): what is held, scrubbed (a key cut short may end it). */
  flush(): string {
    const out = this.from.scrub(this.held);
    this.held = '';
    return out;
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

/** What redactUrl shows for text that does not parse as a URL. */
export const INVALID_URL = '<invalid url>';

/**
 * The one way a configured URL is shown, wherever it is: the admin API (`/admin/bridges`, `/admin/status`,
 * `/admin/overview`, so `switchyard status` and the status page too) and the OpenClaw client's log lines. Userinfo →
 * `[REDACTED]@`; each query parameter's value → `[REDACTED]`, its name kept, and a parameter without `=` replaced whole
 * (`?<token>` is a token in the name's place); the fragment dropped; scheme, host, port and path as they are. A URL
 * with none of those is returned as given.
 *
 * Text that does not parse as a URL → `<invalid url>` (INVALID_URL), none of it: where its credentials are cannot be
 * told, and registerUrl, which cannot parse it either, registered none of them, so no scrubber would find them.
 */
export function redactUrl(url: string): string;
export function redactUrl(url: string | null): string | null;
export function redactUrl(url: string | null): string | null {
  if (url === null) return null;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return INVALID_URL;
  }
  if (!u.username && !u.password && !u.search && !u.hash) return url;
  const userinfo = u.username || u.password ? `${REDACTED}@` : '';
  const query = u.search
    .slice(1)
    .split('&')
    .filter((p) => p !== '')
    .map((p) => {
      const eq = p.indexOf('=');
      return eq < 0 ? REDACTED : `${p.slice(0, eq)}=${REDACTED}`;
    })
    .join('&');
  return `${u.protocol}//${userinfo}${u.host}${u.pathname}${query ? `?${query}` : ''}`;
}
