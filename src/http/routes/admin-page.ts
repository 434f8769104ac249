/**
 * The admin API's paged lists (`GET /admin/sessions`, `GET /admin/keys`): one `limit` rule and one cursor rule for
 * both. A list answers at most `limit` records (1 to ADMIN_LIST_MAX, ADMIN_LIST_DEFAULT when absent), `more: true`
 * when the store holds others, and then `next`, a cursor the next call sends as `after`; a bad value of either is 400
 * invalid_request naming the parameter.
 *
 * A cursor is opaque to clients: base64url of the position of the last record read. The keys are listed by name,
 * which is unique and never changes, so a key created, disabled or rotated between two calls neither repeats a key
 * nor hides one (a new key whose name sorts before the cursor is not listed: it was not there when the listing
 * began). The sessions are listed by their last update, then id (SessionPosition), the position a JSON pair
 * `[updatedAt, id]`: a session updated between two calls moves before the cursor, so a listing that had not reached
 * it yet does not list it (docs/operations.md#paged-lists).
 */
import { GatewayError } from '../../wire/errors.js';
import { intParam } from '../guard.js';
import type { SessionPosition } from '../../sessions/store.js';

/** `?limit=` of a paged admin list: the records listed when no limit is given, and the most one call lists */
export const ADMIN_LIST_DEFAULT = 100;
export const ADMIN_LIST_MAX = 1000;

/** `?limit=`: an integer from 1 to ADMIN_LIST_MAX, ADMIN_LIST_DEFAULT when absent */
export function listLimit(q: URLSearchParams): number {
  return intParam(q, 'limit', ADMIN_LIST_DEFAULT, 1, ADMIN_LIST_MAX);
}

/** The cursor answered as `next`: where the next page starts (after the record at `position`). */
export function cursorOf(position: string): string {
  return Buffer.from(position, 'utf8').toString('base64url');
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * `?after=`: the position a cursor names, undefined when absent (or empty, as an absent `limit`). A value no answer
 * could have given is refused, never read as another position: Buffer's base64url decoder skips what it does not
 * know, so `abc!` would have listed from `abc`'s position.
 */
export function afterParam(q: URLSearchParams): string | undefined {
  const raw = q.get('after');
  if (raw === null || raw === '') return undefined;
  const bytes = Buffer.from(raw, 'base64url');
  let position: string | undefined;
  try {
    position = bytes.toString('base64url') === raw ? utf8.decode(bytes) : undefined;
  } catch {
    position = undefined;
  }
  if (!position) throw notACursor();
  return position;
}

const notACursor = () => new GatewayError('INVALID_REQUEST', "after: not a cursor this list gave (the previous page's next)", { param: 'after' });

/** The sessions list's `next`: after the session at `p`. */
export function sessionCursorOf(p: SessionPosition): string {
  return cursorOf(JSON.stringify([p.updatedAt, p.id]));
}

/**
 * The sessions list's `?after=`: the position it names, undefined when absent. Refused unless it is what
 * sessionCursorOf gives: a pair of a time a Date can hold (epoch ms, whole, not before 1970) and a non-empty id.
 */
export function sessionAfterParam(q: URLSearchParams): SessionPosition | undefined {
  const text = afterParam(q);
  if (text === undefined) return undefined;
  let pair: unknown;
  try {
    pair = JSON.parse(text);
  } catch {
    throw notACursor();
  }
  if (!Array.isArray(pair) || pair.length !== 2) throw notACursor();
  const [updatedAt, id] = pair as [unknown, unknown];
  if (!Number.isSafeInteger(updatedAt) || (updatedAt as number) < 0 || Number.isNaN(new Date(updatedAt as number).getTime())) throw notACursor();
  if (typeof id !== 'string' || id.length === 0) throw notACursor();
  return { updatedAt: updatedAt as number, id };
}
