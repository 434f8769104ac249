/**
 * The admin API's paged lists (`GET /admin/sessions`, `GET /admin/keys`): one `limit` rule for both, and the cursor of
 * the list that has one. A list answers at most `limit` records (1 to ADMIN_LIST_MAX, ADMIN_LIST_DEFAULT when absent)
 * and `more: true` when the store holds others; a bad value is 400 invalid_request naming the parameter.
 *
 * The keys list also answers `next` with `more`, a cursor the next call sends as `after`. It is opaque to clients
 * (today the name of the last record read, base64url): the keys are listed by name, which is unique and never changes,
 * so a key created, disabled or rotated between two calls neither repeats a key nor hides one (a new key whose name
 * sorts before the cursor is not listed: it was not there when the listing began). The sessions list has no cursor:
 * it is ordered by `updatedAt`, which every turn moves, so no position in it holds still.
 */
import { GatewayError } from '../../wire/errors.js';
import { intParam } from '../guard.js';

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
  if (!position) throw new GatewayError('INVALID_REQUEST', "after: not a cursor this list gave (the previous page's next)", { param: 'after' });
  return position;
}
