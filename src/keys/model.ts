/**
 * Virtual keys: what a key is, how its secret looks and is hashed, and how its model globs match.
 *
 * A secret is `sy-` + 43 base64url characters (32 random bytes). It is shown once (create, rotate) and stored
 * only as its SHA-256. A plain hash is enough here: the secret is 256 random bits, so there is nothing to
 * brute-force or look up in a dictionary, and a slow KDF (bcrypt, scrypt) would put milliseconds of CPU on
 * every request. The hash is also the lookup index, so checking a key never compares secrets byte by byte.
 */
import { hash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { isObj, jsonObject } from '../util/is-object.js';

export const KEY_SECRET_PREFIX = 'sy-';

import { rateLimitsSchema as limitsSchema, type RateLimits } from '../config/schema.js';

/** Limits enforced per key (and, with the same shape, per bridge peer). Absent = unlimited. */
export type Limits = RateLimits;

/** Spend cap per calendar period (UTC). Either or both of tokens and cost; cost is in the pricing's unit. */
export const budgetSchema = z
  .strictObject({
    period: z.enum(['day', 'month']),
    tokens: z.number().int().min(1).optional(),
    cost: z.number().positive().optional(),
  })
  .refine((b) => b.tokens !== undefined || b.cost !== undefined, 'set tokens, cost or both');
export type Budget = z.infer<typeof budgetSchema>;

export interface VirtualKey {
  /** public id, `key_<hex>`: safe to log and show */
  id: string;
  /** unique among keys */
  name: string;
  /** free-form label of who holds it (an app, a person, a team) */
  owner: string;
  /** SHA-256 (hex) of the secret; never shown */
  hash: string;
  /** the secret's first characters (`sy-AbC…`), to recognise it in a list */
  hint: string;
  /** model globs (`*` any run, `?` one character); `["*"]` = every model */
  models: string[];
  /** epoch ms; absent = never */
  expiresAt?: number | undefined;
  limits: Limits;
  budget?: Budget | undefined;
  /**
   * may call `/acp/rpc` and `/acp` (agent tasks); the model traffic of the sessions it starts is billed to it,
   * under its models, limits and budget. Absent = false: a key made for the model APIs cannot run agents.
   */
  acp?: boolean | undefined;
  disabled: boolean;
  createdAt: number;
  updatedAt: number;
  rotatedAt?: number | undefined;
}

/**
 * A key record as a store holds it (JSON text), or undefined when it is not one: not JSON (a hand edit, a
 * damaged store), or without what every reader of a key relies on (string id, name and hash, a models array of
 * strings, a limits object). Such a record is no key: listings leave it out and it authenticates nothing.
 */
export function storedKey(doc: string): VirtualKey | undefined {
  const v = jsonObject(doc);
  if (!v) return undefined;
  const ok =
    typeof v.id === 'string' &&
    typeof v.name === 'string' &&
    typeof v.hash === 'string' &&
    Array.isArray(v.models) &&
    v.models.every((m) => typeof m === 'string') &&
    isObj(v.limits);
  return ok ? (v as unknown as VirtualKey) : undefined;
}

/** The last epoch ms a Date can hold (ECMAScript's time range). */
export const MAX_TIME_MS = 8.64e15;

/**
 * The text forms of a key's expiry time, one rule for the admin API's `expiresAt` and the CLI's `--expires`: an ISO
 * 8601 date (`2027-01-31`: its UTC midnight) or date-time with seconds and its zone, `Z` or an offset
 * (`2027-01-31T12:00:00Z`, `2027-01-31T12:00:00.5+01:00`). A date-time without a zone is refused, as is every other
 * form (`Dec 25 2027`, `2027-01-31 12:00:00`, `1/2/2027`): Date.parse read those in the local time zone of
 * whichever machine parsed them (the CLI's took `Dec 25 2027` as its own midnight, the API refused it).
 */
export const EXPIRES_FORMS =
  'an ISO date or date-time (a date, 2027-01-31, is its UTC midnight; a date-time takes Z or an offset: 2027-01-31T12:00:00Z, 2027-01-31T12:00:00+01:00)';
const expiresText = z.union([z.iso.datetime({ offset: true }), z.iso.date()]);

/** `v` as epoch ms when it is one of EXPIRES_FORMS, else undefined */
export function expiryFromText(v: string): number | undefined {
  const r = expiresText.safeParse(v);
  return r.success ? Date.parse(r.data) : undefined;
}

/** What the admin API accepts to create a key. */
export const createKeySchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/, 'letters, digits, . _ @ - (max 64), starting with a letter or digit'),
  owner: z.string().min(1).max(128).default('-'),
  models: z.array(z.string().min(1).max(200)).min(1).default(['*']),
  /**
   * epoch ms, or one of EXPIRES_FORMS (as epoch ms); refused past
   * the last time a Date can hold, which no listing could show, and when not after now (a key born expired, which
   * authenticates nothing; the CLI's --expires refuses it too)
   */
  expiresAt: z
    .union([z.number().int().positive(), expiresText.transform(Date.parse)], { error: `epoch ms, or ${EXPIRES_FORMS}` })
    .refine((ms) => ms <= MAX_TIME_MS, `a time a Date can hold (at most ${MAX_TIME_MS} ms, +275760-09-13)`)
    .refine((ms) => ms > Date.now(), 'a time in the future (a key that has already expired authenticates nothing)')
    .optional(),
  limits: limitsSchema.default({}),
  budget: budgetSchema.optional(),
  acp: z.boolean().default(false),
});
export type CreateKeyInput = z.input<typeof createKeySchema>;

export function hashSecret(secret: string): string {
  return hash('sha256', secret, 'hex');
}

export function newSecret(): string {
  return KEY_SECRET_PREFIX + randomBytes(32).toString('base64url');
}

export function hintOf(secret: string): string {
  return `${secret.slice(0, 7)}…`;
}

export function newKeyId(): string {
  return `key_${randomBytes(8).toString('hex')}`;
}

/**
 * Whether `name` matches `glob` (`*` any run of characters, empty too; `?` one character; anything else itself).
 * Matched without backtracking: the text between stars, in order, each at its first place after the one before
 * (the leftmost place is always a right choice), so the time is at most the name's length times the glob's. A
 * regular expression (`.*` per star) backtracks: `*-*-*-mini` against a few thousand dashes took tens of seconds
 * of the event loop, and the caller picks the name.
 */
export function globMatch(glob: string, name: string): boolean {
  const parts = glob.split('*');
  const first = parts[0]!;
  if (parts.length === 1) return name.length === glob.length && partAt(first, name, 0);
  const last = parts[parts.length - 1]!;
  const end = name.length - last.length;
  if (end < first.length || !partAt(first, name, 0) || !partAt(last, name, end)) return false;
  let at = first.length;
  for (let i = 1; i < parts.length - 1; i++) {
    const part = parts[i]!;
    const found = findPart(part, name, at, end);
    if (found < 0) return false;
    at = found + part.length;
  }
  return true;
}

/** `part` (without stars; `?` any one character) is at `at` in `name` */
function partAt(part: string, name: string, at: number): boolean {
  if (at < 0 || at + part.length > name.length) return false;
  for (let i = 0; i < part.length; i++) if (part[i] !== '?' && part[i] !== name[at + i]) return false;
  return true;
}

/** The first place at or after `from` where `part` is in `name` and ends by `end`; -1 when none. */
function findPart(part: string, name: string, from: number, end: number): number {
  if (!part.includes('?')) {
    const i = name.indexOf(part, from);
    return i >= 0 && i + part.length <= end ? i : -1;
  }
  for (let i = from; i + part.length <= end; i++) if (partAt(part, name, i)) return i;
  return -1;
}

export function modelAllowed(k: Pick<VirtualKey, 'models'>, model: string): boolean {
  for (const g of k.models) if (g === '*' || g === model || globMatch(g, model)) return true;
  return false;
}

/** A key as lists and `show` print it: everything but the hash. */
export function keySummary(k: VirtualKey, now = Date.now()) {
  return {
    id: k.id,
    name: k.name,
    owner: k.owner,
    hint: k.hint,
    models: k.models,
    status: k.disabled ? 'disabled' : k.expiresAt !== undefined && k.expiresAt <= now ? 'expired' : 'active',
    expiresAt: k.expiresAt !== undefined ? isoTime(k.expiresAt) : null,
    limits: k.limits,
    budget: k.budget ?? null,
    acp: k.acp === true,
    createdAt: isoTime(k.createdAt),
    updatedAt: isoTime(k.updatedAt),
    rotatedAt: k.rotatedAt !== undefined ? isoTime(k.rotatedAt) : null,
  };
}
export type KeySummary = ReturnType<typeof keySummary>;

/**
 * A stored time as an ISO date. One a Date cannot hold (an expiresAt written before create refused it) shows as
 * the nearest one it can, so that one record never makes a listing fail.
 */
function isoTime(ms: number): string {
  const t = Number.isFinite(ms) ? Math.max(-MAX_TIME_MS, Math.min(MAX_TIME_MS, ms)) : 0;
  return new Date(t).toISOString();
}

/** Start of the budget period that contains `now` (UTC), and its end. */
export function periodOf(period: Budget['period'], now = Date.now()): { id: string; start: number; end: number } {
  const d = new Date(now);
  if (period === 'day') {
    const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
    return { id: new Date(start).toISOString().slice(0, 10), start, end: start + 86_400_000 };
  }
  const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  return { id: new Date(start).toISOString().slice(0, 7), start, end: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) };
}
