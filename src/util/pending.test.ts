import { describe, expect, it } from 'vitest';
import { PendingTable } from './pending.js';

function entry() {
  const failures: Error[] = [];
  return { failures, e: { fail: (err: Error) => failures.push(err) } };
}

describe('PendingTable', () => {
  it('take settles once: the entry leaves, its cleanup runs, a second take finds nothing', () => {
    const t = new PendingTable<{ fail(e: Error): void }>();
    let cleaned = 0;
    const { e } = entry();
    t.add('a', e, { cleanup: () => cleaned++ });
    expect(t.size).toBe(1);
    expect(t.take('a')).toBe(e);
    expect(t.take('a')).toBeUndefined();
    expect([t.size, cleaned]).toEqual([0, 1]);
  });

  it('a timeout fails the entry with the given error and removes it', async () => {
    const t = new PendingTable<{ fail(e: Error): void }>();
    const { e, failures } = entry();
    t.add('a', e, { timeoutMs: 20, timeoutError: () => new Error('too slow') });
    const deadline = Date.now() + 2000;
    while (failures.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(failures.map((f) => f.message)).toEqual(['too slow']);
    expect(t.has('a')).toBe(false);
  });

  it('close fails everything pending, and anything added later at once', () => {
    const t = new PendingTable<{ fail(e: Error): void }>();
    const a = entry();
    const b = entry();
    t.add('a', a.e, { timeoutMs: 60_000 });
    t.add('b', b.e);
    t.close(new Error('link gone'));
    expect([a.failures[0]?.message, b.failures[0]?.message, t.size]).toEqual(['link gone', 'link gone', 0]);
    const c = entry();
    t.add('c', c.e);
    expect([c.failures[0]?.message, t.size]).toEqual(['link gone', 0]);
  });

  it('takeIf takes only an entry that passes the test', () => {
    type E = { kind: 'x' | 'y'; fail(e: Error): void };
    const t = new PendingTable<E>();
    t.add('a', { kind: 'x', fail: () => undefined });
    expect(t.takeIf('a', (p): p is E => p.kind === 'y')).toBeUndefined();
    expect(t.has('a')).toBe(true);
    expect(t.takeIf('a', (p): p is E => p.kind === 'x')?.kind).toBe('x');
  });
});
