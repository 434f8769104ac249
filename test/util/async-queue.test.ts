/** AsyncQueue (src/util/async-queue.ts): the queue behind bridge streams, and `takeReady`, which drains it without a promise. */
import { describe, expect, it } from 'vitest';
import { AsyncQueue } from '../../src/util/async-queue.js';

describe('AsyncQueue.takeReady', () => {
  it('hands over what was pushed, in order, and leaves the end to next()', async () => {
    const q = new AsyncQueue<number>();
    expect(q.takeReady()).toBeUndefined();
    q.push(1);
    q.push(2);
    q.end();
    expect([q.takeReady(), q.takeReady(), q.takeReady()]).toEqual([1, 2, undefined]);
    expect(await q.next()).toEqual({ done: true, value: undefined });
  });

  it('leaves a failure to next(), after the values pushed before it', async () => {
    const q = new AsyncQueue<string>();
    q.push('a');
    q.fail(new Error('cut'));
    expect(q.takeReady()).toBe('a');
    expect(q.takeReady()).toBeUndefined();
    await expect(q.next()).rejects.toThrow('cut');
  });

  it('a value pushed to a waiting next() goes to it, not to takeReady', async () => {
    const q = new AsyncQueue<number>();
    const pending = q.next();
    q.push(7);
    q.push(8);
    expect(await pending).toEqual({ done: false, value: 7 });
    expect(q.takeReady()).toBe(8);
  });

  it('nothing is handed over after return()', () => {
    const q = new AsyncQueue<number>();
    q.push(1);
    void q.return();
    expect(q.takeReady()).toBeUndefined();
  });

  it('whenHeldAtMost calls back once, when takes bring the held weight down to the mark; return() drops the watch', async () => {
    const q = new AsyncQueue<string>((v) => v.length);
    for (const v of ['aaaa', 'bbbb', 'cccc']) q.push(v);
    expect(q.held).toBe(12);
    let calls = 0;
    q.whenHeldAtMost(4, () => calls++);
    expect(q.takeReady()).toBe('aaaa');
    expect([q.held, calls]).toEqual([8, 0]);
    expect((await q.next()).value).toBe('bbbb');
    expect([q.held, calls]).toEqual([4, 1]);
    q.takeReady();
    expect([q.held, calls]).toEqual([0, 1]);
    q.push('dddd');
    q.whenHeldAtMost(0, () => calls++);
    void q.return();
    expect([q.held, calls]).toEqual([0, 1]);
  });
});
