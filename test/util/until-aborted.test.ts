import { describe, expect, it } from 'vitest';
import { untilAborted } from '../../src/util/until-aborted.js';

/** a promise and the functions that settle it */
function pending<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const p = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { p, resolve, reject };
}

describe('untilAborted', () => {
  it('is the step itself without a signal, and its value when it ends first', async () => {
    expect(await untilAborted(Promise.resolve(1), undefined)).toBe(1);
    const c = new AbortController();
    expect(await untilAborted(Promise.resolve(2), c.signal)).toBe(2);
    await expect(untilAborted(Promise.reject(new Error('no')), c.signal)).rejects.toThrow('no');
  });

  it('rejects at the abort, and closes what the step opens after it', async () => {
    const c = new AbortController();
    const step = pending<{ closed: boolean }>();
    const closed: unknown[] = [];
    const raced = untilAborted(step.p, c.signal, (v) => closed.push(v));
    c.abort(new Error('stop'));
    await expect(raced).rejects.toThrow('stop');
    const opened = { closed: false };
    step.resolve(opened);
    await new Promise((r) => setImmediate(r));
    expect(closed).toEqual([opened]);
  });

  it('rejects at once when already aborted; a step that fails later is no unhandled rejection', async () => {
    const c = new AbortController();
    c.abort(new Error('before'));
    const step = pending<number>();
    await expect(untilAborted(step.p, c.signal)).rejects.toThrow('before');
    step.reject(new Error('late failure'));
    await new Promise((r) => setImmediate(r));
  });
});
