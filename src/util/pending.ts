/**
 * A table of requests we sent and still wait for, keyed by request id: the one place where such a request
 * is settled exactly once — by its answer (`take`), its timeout, or the table closing (`close`, e.g. the
 * link went away: everything still pending fails with the given error, and anything added later fails at
 * once). Each entry settles itself through `fail`; what "succeed" means is the entry's business.
 */

/** What the table needs from an entry: a way to fail it. */
export interface Settleable {
  fail(err: Error): void;
}

export interface AddOptions {
  /** fail the entry with `timeoutError()` after this many ms (0 / absent: no timeout) */
  timeoutMs?: number;
  timeoutError?: () => Error;
  /** run once when the entry leaves the table, whichever way (e.g. remove an abort listener) */
  cleanup?: () => void;
}

interface Slot<T> {
  entry: T;
  timer: NodeJS.Timeout | undefined;
  cleanup: (() => void) | undefined;
}

export class PendingTable<T extends Settleable> {
  private readonly slots = new Map<string, Slot<T>>();
  private closedWith: Error | undefined;

  get size(): number {
    return this.slots.size;
  }

  has(id: string): boolean {
    return this.slots.has(id);
  }

  get(id: string): T | undefined {
    return this.slots.get(id)?.entry;
  }

  /** Adds an entry; on a closed table it fails at once. An id already present is replaced (and failed). */
  add(id: string, entry: T, o: AddOptions = {}): void {
    if (this.closedWith) {
      o.cleanup?.();
      entry.fail(this.closedWith);
      return;
    }
    const old = this.take(id);
    if (old) old.fail(new Error(`request ${id} was replaced`));
    let timer: NodeJS.Timeout | undefined;
    if (o.timeoutMs && o.timeoutMs > 0) {
      const timeoutError = o.timeoutError ?? (() => new Error(`request ${id} timed out after ${o.timeoutMs} ms`));
      timer = setTimeout(() => this.take(id)?.fail(timeoutError()), o.timeoutMs);
      timer.unref();
    }
    this.slots.set(id, { entry, timer, cleanup: o.cleanup });
  }

  /** Removes and returns the entry (its timer cleared, its cleanup run); the caller settles it. */
  take(id: string): T | undefined {
    const s = this.slots.get(id);
    if (!s) return undefined;
    this.slots.delete(id);
    clearTimeout(s.timer);
    s.cleanup?.();
    return s.entry;
  }

  /** `take` only when the entry passes `test` (e.g. is of the kind a frame answers). */
  takeIf<U extends T>(id: string, test: (e: T) => e is U): U | undefined {
    const e = this.slots.get(id)?.entry;
    if (e === undefined || !test(e)) return undefined;
    this.take(id);
    return e;
  }

  values(): IterableIterator<T> {
    return [...this.slots.values()].map((s) => s.entry)[Symbol.iterator]();
  }

  /** Fails every entry now with `err`; the table stays open for later requests. */
  failAll(err: Error): void {
    for (const id of [...this.slots.keys()]) this.take(id)?.fail(err);
  }

  /** Fails every entry with `err`; later `add`s fail at once. Idempotent. */
  close(err: Error): void {
    if (this.closedWith) return;
    this.closedWith = err;
    for (const id of [...this.slots.keys()]) this.take(id)?.fail(err);
  }
}
