/**
 * The admin API's calls to a store (the key store for /admin/keys and /admin/usage, the session store for
 * /admin/sessions and the sessions part of /admin/overview): bounded and named. A store that fails (Redis down,
 * a SQLite error) or gives no answer within STORE_READ_TIMEOUT_MS (a stalled Redis, or ioredis queueing commands
 * while it reconnects) is answered 503 KEY_STORE_UNAVAILABLE / SESSION_STORE_UNAVAILABLE with Retry-After, never
 * 500 internal and never a hung request. The answer names nothing of the store (not its URL, not its client's
 * error text); the cause is logged, scrubbed. A refusal the route or the service made itself (a GatewayError:
 * NOT_FOUND, INVALID_REQUEST, …) passes through unchanged.
 */
import { STORE_READ_TIMEOUT_MS } from '../../keys/key-cache.js';
import { TRANSFER_TIMEOUT_MS } from '../../sessions/transfer.js';
import type { Logger } from '../../util/log.js';
import { secrets } from '../../util/redact.js';
import { settledWithin } from '../../util/settled-within.js';
import { GatewayError } from '../../wire/errors.js';

export type AdminStore = 'key' | 'session';

const CODE = { key: 'KEY_STORE_UNAVAILABLE', session: 'SESSION_STORE_UNAVAILABLE' } as const;

/**
 * What the admin API knows of a store's health (the key store's: its KeyCache). `failFast`: the store is known to
 * fail now, so a call is answered at once (a probe keeps checking); `failed`: a call found it failing.
 */
export interface StoreHealth {
  failFast(): boolean;
  storeFailed(err: unknown): void;
}

/**
 * The bound of an admin session transfer (`POST /admin/sessions/<id>/transfer`, so `sessions transfer` and `sessions
 * drain`): the transfer's own TRANSFER_TIMEOUT_MS (a running turn waited for, the peer's answer) and one store read's
 * bound past it. Its store reads and writes do not follow its timeout: a store that stops answering under it (a
 * Redis stopped) is answered SESSION_STORE_UNAVAILABLE at this bound, not held for as long as the store is away.
 */
export const ADMIN_TRANSFER_BOUND_MS = TRANSFER_TIMEOUT_MS + STORE_READ_TIMEOUT_MS;

/** Retry-After of an admin store refusal: the store is asked again on every call, so a retry soon may succeed. */
export const ADMIN_STORE_RETRY_AFTER_SEC = 1;

/**
 * `change`: the call writes: `maybe`, it was sent to the store, which stopped answering (it may or may not have been
 * made); `not-made`, it was not sent (the store was known to fail). `false`: the call only reads.
 */
function storeUnavailable(store: AdminStore, change: false | 'maybe' | 'not-made'): GatewayError {
  const what =
    change === 'maybe'
      ? `the ${store} store cannot be reached now, so the change may not have been made: check, and retry shortly`
      : change === 'not-made'
        ? `the ${store} store cannot be reached now, so the change was not made: retry shortly`
        : `the ${store} store cannot be reached now: retry shortly`;
  return new GatewayError(CODE[store], what, { retryAfterSec: ADMIN_STORE_RETRY_AFTER_SEC });
}

/**
 * `work` (which calls the store) within `timeoutMs` (settledWithin); a failure that is not the gateway's own refusal,
 * or no answer in time, becomes the store's 503. `change`: `work` writes (the message says it may not have been made).
 * `timeoutMs`: STORE_READ_TIMEOUT_MS unless told (a session transfer: ADMIN_TRANSFER_BOUND_MS).
 * `health`: while it says the store is known to fail, the call is answered at once, `work` not run (see StoreHealth; a change says it was not made);
 * a failure of `work` is reported to it.
 */
export async function fromStore<T>(
  store: AdminStore,
  what: string,
  logger: Logger,
  work: () => Promise<T>,
  { change = false, timeoutMs = STORE_READ_TIMEOUT_MS, health }: { change?: boolean; timeoutMs?: number; health?: StoreHealth } = {},
): Promise<T> {
  // known to fail (a read just failed or timed out): not waited for again; the cause was logged when it was found
  if (health?.failFast()) throw storeUnavailable(store, change && 'not-made');
  const p = work();
  try {
    // the abandoned call may still fail later: settledWithin handles that, nobody waits for it
    if (!(await settledWithin(p, timeoutMs))) throw new StoreTimeout(timeoutMs);
    return await p;
  } catch (err) {
    if (err instanceof GatewayError) throw err;
    logger.warn(`admin: the ${store} store failed`, { what, err: secrets.scrubError(String((err as Error)?.message ?? err)) });
    health?.storeFailed(err);
    throw storeUnavailable(store, change && 'maybe');
  }
}

class StoreTimeout extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
  }
}
