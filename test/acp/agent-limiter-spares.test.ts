/**
 * The process cap's rules for warm spares (limits.ts): a spare takes only a free slot, never while a session
 * waits for one; it is the first evicted; its slot moves to the session that takes it.
 */
import { describe, expect, it } from 'vitest';
import { AgentProcessLimiter, type LimitedSession } from '../../src/acp/runtimes/agent/limits.js';

function holder(lastUsed: number, opts: { idle?: boolean; reloadable?: boolean } = {}) {
  const h = {
    idle: opts.idle ?? true,
    reloadable: opts.reloadable ?? true,
    lastUsed,
    closed: [] as string[],
    limiter: undefined as AgentProcessLimiter | undefined,
    async close(reason: string) {
      h.closed.push(reason);
      h.limiter?.release(h);
    },
  };
  return h satisfies LimitedSession;
}

describe('AgentProcessLimiter with warm spares', () => {
  it('tryAcquire takes free slots only and never evicts', async () => {
    const l = new AgentProcessLimiter(2);
    const session = holder(Date.now());
    await l.acquire(session, 'agent "a"');
    const spare = holder(0);
    expect(l.tryAcquire(spare)).toBe(true);
    const another = holder(0);
    expect(l.tryAcquire(another)).toBe(false);
    expect(l.live).toBe(2);
    expect(session.closed).toEqual([]);
  });

  it('a session at the cap evicts the spare before an older idle session, and the freed slot is not taken by a spare', async () => {
    const l = new AgentProcessLimiter(2);
    const old = Object.assign(holder(1), { limiter: l });
    await l.acquire(old, 'agent "a"');
    const spare = Object.assign(holder(0), { limiter: l });
    expect(l.tryAcquire(spare)).toBe(true);
    let freed = 0;
    l.onFree(() => freed++);
    const raced: boolean[] = [];
    // while the session waits for its victim to close, a pool trying to refill is refused
    const origClose = spare.close.bind(spare);
    spare.close = async (reason: string) => {
      raced.push(l.tryAcquire(holder(0)));
      await origClose(reason);
    };
    const fresh = holder(Date.now());
    await l.acquire(fresh, 'agent "b"');
    expect(spare.closed).toEqual(['evicted']);
    expect(old.closed).toEqual([]);
    expect(raced).toEqual([false]);
    expect(l.live).toBe(2);
    await new Promise((r) => setImmediate(r));
    expect(freed).toBe(0); // the evicted spare's slot went to the session, not back to the pool
  });

  it('replace hands a spare’s slot to its session; release then frees it and tells listeners', async () => {
    const l = new AgentProcessLimiter(1);
    const spare = holder(0);
    expect(l.tryAcquire(spare)).toBe(true);
    const session = holder(Date.now());
    expect(l.replace(spare, session)).toBe(true);
    expect(l.replace(spare, session)).toBe(false);
    expect(l.live).toBe(1);
    let freed = 0;
    l.onFree(() => freed++);
    l.release(session);
    expect(l.live).toBe(0);
    await new Promise((r) => setImmediate(r));
    expect(freed).toBe(1);
  });
});
