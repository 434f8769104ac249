/**
 * tokenMatches (src/util/secret.ts): the constant-time membership test every static-token surface uses (/v1,
 * /acp/rpc, /acp, /admin, /metrics). The allowed list's digests are made once per list; a list changed in place
 * is hashed again, so a token taken out of it is refused from the next call (fail closed).
 */
import { describe, expect, it } from 'vitest';
import { tokenMatches } from '../../src/util/secret.js';

describe('tokenMatches', () => {
  it('accepts a listed token, whatever its place in the list, and refuses anything else', () => {
    const allowed = ['first-token-1a2b', 'second-token-3c4d', 'third'];
    for (const t of allowed) expect(tokenMatches(t, allowed)).toBe(true);
    for (const t of ['first-token-1a2', 'first-token-1a2bX', 'FIRST-TOKEN-1A2B', ' third', 'thir', 'x'])
      expect([t, tokenMatches(t, allowed)]).toEqual([t, false]);
  });

  it('refuses a missing or empty candidate, and matches nothing against an empty list or an empty entry', () => {
    expect(tokenMatches(undefined, ['a-token'])).toBe(false);
    expect(tokenMatches('', ['a-token'])).toBe(false);
    expect(tokenMatches('a-token', [])).toBe(false);
    expect(tokenMatches('', [''])).toBe(false);
    expect(tokenMatches('a-token', ['', 'a-token'])).toBe(true);
  });

  it('a list changed in place is read again: a token removed is refused, one added is accepted', () => {
    const allowed = ['old-token-5e6f'];
    expect(tokenMatches('old-token-5e6f', allowed)).toBe(true);
    allowed[0] = 'new-token-7a8b';
    expect(tokenMatches('old-token-5e6f', allowed)).toBe(false);
    expect(tokenMatches('new-token-7a8b', allowed)).toBe(true);
    allowed.push('another-9c0d');
    expect(tokenMatches('another-9c0d', allowed)).toBe(true);
    allowed.length = 0;
    expect(tokenMatches('new-token-7a8b', allowed)).toBe(false);
  });

  it('lists are told apart: a token of one list does not match another', () => {
    const a = ['token-of-a-1111'];
    const b = ['token-of-b-2222'];
    expect(tokenMatches('token-of-a-1111', a)).toBe(true);
    expect(tokenMatches('token-of-a-1111', b)).toBe(false);
    expect(tokenMatches('token-of-b-2222', b)).toBe(true);
  });
});
