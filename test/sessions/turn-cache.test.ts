import { describe, expect, it } from 'vitest';
import { newTurn } from '../../src/sessions/model.js';
import { deepFreeze, isStoredAs, TurnCache } from '../../src/sessions/turn-cache.js';

const json = (i: number) => JSON.stringify({ ...newTurn(`p${i}`, [{ role: 'user', content: `p${i}` }]), output: 'x'.repeat(100) });

describe('TurnCache', () => {
  it('keeps at most its bound of JSON bytes, dropping the least recently used first', () => {
    const one = Buffer.byteLength(json(0));
    const cache = new TurnCache(3 * one + 10);
    for (let i = 0; i < 3; i++) cache.remember({ scope: 's', sessionId: 'a', index: i, rev: i + 1 }, json(i));
    expect(cache.cached('s', 'a', 0, 1)).toBeDefined(); // 0 is now the most recently used
    cache.remember({ scope: 's', sessionId: 'a', index: 3, rev: 4 }, json(3));
    expect(cache.stats().bytes).toBeLessThanOrEqual(3 * one + 10);
    expect(cache.cached('s', 'a', 1, 2)).toBeUndefined();
    expect(cache.cached('s', 'a', 0, 1)).toBeDefined();
    expect(cache.cached('s', 'a', 3, 4)).toBeDefined();
    // another revision, session or store is another entry
    expect(cache.cached('s', 'a', 0, 2)).toBeUndefined();
    expect(cache.cached('t', 'a', 0, 1)).toBeUndefined();
    expect(cache.cached('s', 'b', 0, 1)).toBeUndefined();
  });

  it('a turn larger than the bound is handed out (frozen, known) but not kept', () => {
    const cache = new TurnCache(10);
    const t = cache.remember({ scope: 's', sessionId: 'a', index: 0, rev: 1 }, json(0));
    expect(Object.isFrozen(t)).toBe(true);
    expect(isStoredAs(t, 's', 'a', 0, 1)).toBe(true);
    expect(cache.stats()).toMatchObject({ entries: 0, bytes: 0 });
  });

  it('a turn is known only at its own store, session, index and revision', () => {
    const t = new TurnCache().remember({ scope: 's', sessionId: 'a', index: 2, rev: 7 }, json(0));
    expect(isStoredAs(t, 's', 'a', 2, 7)).toBe(true);
    expect(isStoredAs(t, 's', 'a', 3, 7)).toBe(false);
    expect(isStoredAs(t, 's', 'a', 2, 8)).toBe(false);
    expect(isStoredAs(t, 's', 'b', 2, 7)).toBe(false);
    expect(isStoredAs(t, 'r', 'a', 2, 7)).toBe(false);
    expect(isStoredAs(t, 's', 'a', 2, undefined)).toBe(false);
    expect(isStoredAs({ ...t }, 's', 'a', 2, 7)).toBe(false); // a copy is not the stored object
  });

  it('deepFreeze freezes nested arrays and objects: mutation throws', () => {
    const t = deepFreeze({ ...newTurn('p', [{ role: 'user', content: 'p' }]) });
    expect(() => ((t as { prompt: string }).prompt = 'q')).toThrow(TypeError);
    expect(() => t.messages.push({ role: 'user', content: 'q' })).toThrow(TypeError);
    expect(() => ((t.messages[0] as { content: string }).content = 'q')).toThrow(TypeError);
  });
});
