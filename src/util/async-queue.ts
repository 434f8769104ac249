/**
 * A single-consumer async queue: producers push values, end, or fail; the consumer iterates. Used to turn
 * frames arriving on a socket (bridge streams, ACP updates) into an AsyncIterable without buffering to the end.
 */
export class AsyncQueue<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = [];
  /** the weight (`weigh`) of the values pushed and not yet taken: what the queue holds in memory */
  held = 0;
  private waiting: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | undefined;
  private ended = false;
  private error: unknown;
  private failed = false;
  /** called once when the consumer stops early (return()) */
  onReturn: (() => void) | undefined;
  /** `whenHeldAtMost`'s watch */
  private lowWater = 0;
  private onLow: (() => void) | undefined;

  /** `weigh`: a value's weight in `held` (its size in memory, say); without it `held` stays 0 */
  constructor(private readonly weigh?: (v: T) => number) {}

  push(v: T): void {
    if (this.ended || this.failed) return;
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = undefined;
      w.resolve({ done: false, value: v });
    } else {
      this.items.push(v);
      if (this.weigh) this.held += this.weigh(v);
    }
  }

  private shift(): T {
    const v = this.items.shift()!;
    if (this.weigh) {
      this.held -= this.weigh(v);
      if (this.onLow !== undefined && this.held <= this.lowWater) {
        const fn = this.onLow;
        this.onLow = undefined;
        fn();
      }
    }
    return v;
  }

  /**
   * Calls `fn` once, when the consumer's takes have brought `held` down to `low` or below: flow control, for a
   * producer asked to pause past a high mark. A later call replaces the watch; return() drops it.
   */
  whenHeldAtMost(low: number, fn: () => void): void {
    this.lowWater = low;
    this.onLow = fn;
  }

  end(): void {
    if (this.ended || this.failed) return;
    this.ended = true;
    if (this.waiting && this.items.length === 0) {
      const w = this.waiting;
      this.waiting = undefined;
      w.resolve({ done: true, value: undefined });
    }
  }

  fail(err: unknown): void {
    if (this.ended || this.failed) return;
    this.failed = true;
    this.error = err;
    if (this.waiting && this.items.length === 0) {
      const w = this.waiting;
      this.waiting = undefined;
      w.reject(err);
    }
  }

  get closed(): boolean {
    return this.ended || this.failed;
  }

  /**
   * A value already pushed, without a promise, or undefined when none waits (the end and a failure are left to
   * `next()`): the frames of one socket read arrive together, and a consumer that drains them with this takes
   * them in one go (ChunkStream.takeReady).
   */
  takeReady(): T | undefined {
    return this.items.length > 0 ? this.shift() : undefined;
  }

  next(): Promise<IteratorResult<T>> {
    if (this.items.length > 0) return Promise.resolve({ done: false, value: this.shift() });
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- re-raises what fail() was given, unchanged
    if (this.failed) return Promise.reject(this.error);
    if (this.ended) return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
  }

  return(): Promise<IteratorResult<T>> {
    const wasOpen = !this.closed;
    this.ended = true;
    this.items.length = 0;
    this.held = 0;
    this.onLow = undefined;
    if (wasOpen) this.onReturn?.();
    return Promise.resolve({ done: true, value: undefined });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
