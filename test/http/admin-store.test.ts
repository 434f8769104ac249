/**
 * fromStore (src/http/routes/admin-store.ts), the bound and the naming of every admin call to a store, branch by
 * branch: which 503 message a change gets depends on whether it was sent to the store (`may not have been made`) or
 * refused before it was sent because the store was known to fail (`was not made`). The end-to-end suites meet both,
 * but in whatever order concurrent calls happen to find the store failing; here each is pinned.
 */
import { describe, expect, it } from 'vitest';
import { fromStore, type StoreHealth } from '../../src/http/routes/admin-store.js';
import { createLogger } from '../../src/util/log.js';
import { secrets } from '../../src/util/redact.js';
import { GatewayError } from '../../src/wire/errors.js';

function logged() {
  const lines: string[] = [];
  return { lines, logger: createLogger({}, (l) => void lines.push(l)) };
}

/** a health that is known failing while `failing`, and counts the failures reported to it */
function health(failing: boolean): StoreHealth & { reported: unknown[] } {
  const reported: unknown[] = [];
  return { reported, failFast: () => failing, storeFailed: (err) => void reported.push(err) };
}

async function refusal(p: Promise<unknown>): Promise<GatewayError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GatewayError);
  return err as GatewayError;
}

describe('fromStore', () => {
  it('a change sent to a store that failed: 503, "may not have been made", the cause logged scrubbed and reported', async () => {
    const { lines, logger } = logged();
    const h = health(false);
    // the store's URL, registered as a config's is (src/config/secrets.ts)
    const url = 'redis://:hunter2-secret@10.0.0.9:6379';
    secrets.registerUrl(url);
    const err = await refusal(fromStore('key', 'create', logger, () => Promise.reject(new Error(`connect ECONNREFUSED ${url}`)), { change: true, health: h }));
    secrets.forget('hunter2-secret');
    expect([err.code, err.message, err.retryAfterSec]).toEqual([
      'KEY_STORE_UNAVAILABLE',
      'the key store cannot be reached now, so the change may not have been made: check, and retry shortly',
      1,
    ]);
    expect(h.reported).toHaveLength(1);
    expect(lines.join('')).toContain('admin: the key store failed');
    expect(lines.join('')).not.toContain('hunter2-secret');
  });

  it('a change while the store is known to fail: 503 at once, "was not made", the store not asked', async () => {
    const { logger } = logged();
    let asked = 0;
    const err = await refusal(fromStore('key', 'create', logger, async () => void asked++, { change: true, health: health(true) }));
    expect([err.code, err.message]).toEqual(['KEY_STORE_UNAVAILABLE', 'the key store cannot be reached now, so the change was not made: retry shortly']);
    expect(asked).toBe(0);
  });

  it('a read, failed or refused at once: the message says nothing of a change', async () => {
    const { logger } = logged();
    for (const [failing, work] of [
      [true, async () => 1],
      [false, () => Promise.reject(new Error('down'))],
    ] as const) {
      const err = await refusal(fromStore('session', 'list', logger, work, { health: health(failing) }));
      expect([err.code, err.message]).toEqual(['SESSION_STORE_UNAVAILABLE', 'the session store cannot be reached now: retry shortly']);
    }
  });

  it('a change the store does not answer within the bound: "may not have been made" (it was sent)', async () => {
    const { logger } = logged();
    const err = await refusal(fromStore('session', 'transfer', logger, () => new Promise(() => {}), { change: true, timeoutMs: 20 }));
    expect(err.message).toBe('the session store cannot be reached now, so the change may not have been made: check, and retry shortly');
  });

  it("the gateway's own refusal passes through unchanged, and is not reported as the store failing", async () => {
    const { logger } = logged();
    const h = health(false);
    const own = new GatewayError('NOT_FOUND', 'no key named x');
    expect(await refusal(fromStore('key', 'show', logger, () => Promise.reject(own), { health: h }))).toBe(own);
    expect(h.reported).toHaveLength(0);
  });

  it('an answer in time is returned', async () => {
    const { logger } = logged();
    await expect(fromStore('key', 'list', logger, async () => ['k'], { change: true, health: health(false) })).resolves.toEqual(['k']);
  });
});
