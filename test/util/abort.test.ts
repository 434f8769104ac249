/** Abort: the router's per-attempt cancellation (src/util/abort.ts), held to AbortController's behaviour. */
import { describe, expect, it } from 'vitest';
import { Abort, type CancelSignal } from '../../src/util/abort.js';

describe('Abort', () => {
  it('behaves like an AbortController for what the attempt code uses: aborted, reason, listeners once, in order', () => {
    for (const make of [() => new AbortController(), () => new Abort()]) {
      const ac = make();
      const s: CancelSignal = ac.signal;
      const calls: string[] = [];
      const a = () => calls.push('a');
      const b = () => calls.push('b');
      const gone = () => calls.push('removed');
      s.addEventListener('abort', a, { once: true });
      s.addEventListener('abort', gone, { once: true });
      s.addEventListener('abort', b, { once: true });
      s.removeEventListener('abort', gone);
      expect(s.aborted).toBe(false);
      expect(s.reason).toBeUndefined();
      ac.abort();
      ac.abort();
      expect(calls).toEqual(['a', 'b']);
      expect(s.aborted).toBe(true);
      expect(s.reason).toBeInstanceOf(DOMException);
      expect((s.reason as DOMException).name).toBe('AbortError');
      // a listener added after the abort is never called
      s.addEventListener('abort', () => calls.push('late'));
      expect(calls).toEqual(['a', 'b']);
    }
  });

  it('keeps a given reason; removing the only listener leaves none; a second listener after a removal still runs', () => {
    const ac = new Abort();
    const reason = new Error('first-byte timeout');
    const calls: number[] = [];
    const one = () => calls.push(1);
    ac.addEventListener('abort', one);
    ac.removeEventListener('abort', one);
    ac.addEventListener('abort', () => calls.push(2));
    ac.addEventListener('abort', () => calls.push(3));
    ac.removeEventListener('abort', () => calls.push(4)); // not registered: no effect
    ac.abort(reason);
    expect(ac.reason).toBe(reason);
    expect(calls).toEqual([2, 3]);
  });

  it('a throwing listener does not stop the others or reach abort()’s caller; it surfaces as an uncaught exception', async () => {
    const ac = new Abort();
    const calls: string[] = [];
    ac.addEventListener('abort', () => {
      throw new Error('listener broke');
    });
    ac.addEventListener('abort', () => calls.push('after'));
    const uncaught = new Promise<Error>((resolve) => process.prependOnceListener('uncaughtException', resolve));
    // vitest reports uncaught exceptions as failures: take this one over for the duration of the test
    const listeners = process.listeners('uncaughtException');
    for (const l of listeners.slice(1)) process.off('uncaughtException', l);
    try {
      expect(() => ac.abort()).not.toThrow();
      expect(calls).toEqual(['after']);
      expect((await uncaught).message).toBe('listener broke');
    } finally {
      for (const l of listeners.slice(1)) process.on('uncaughtException', l);
    }
  });
});
