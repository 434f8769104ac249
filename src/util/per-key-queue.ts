/**
 * Tasks run one after the other per key (a session's record writes, its update-log batches, its stored
 * prompts), so that writers of one key never race each other; keys run side by side. A key's chain is
 * forgotten once it is idle, so the map holds only keys with work queued.
 */
export class PerKeyQueue {
  private readonly tails = new Map<string, Promise<void>>();

  /** Runs `task` after every task queued before it for `key` has ended (however it ended); settles as it does. */
  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const result = (this.tails.get(key) ?? Promise.resolve()).then(task);
    holdUntilSettled(this.tails, key, result);
    return result;
  }

  /** Resolves once every task queued so far for `key` has ended. */
  idle(key: string): Promise<void> {
    return this.tails.get(key) ?? Promise.resolve();
  }

  /** The keys with work queued. */
  keys(): IterableIterator<string> {
    return this.tails.keys();
  }
}

/**
 * Keeps `work`, settled either way, in `map` under `key` until it settles (unless `key` was given to later work
 * by then): what others may wait for without inheriting its outcome. The queue above keeps its tails this way;
 * so do the turn runner's starts and closes, which wait for each other but are not one queue.
 */
export function holdUntilSettled(map: Map<string, Promise<void>>, key: string, work: Promise<unknown>): void {
  const settled = work.then(
    () => undefined,
    () => undefined,
  );
  map.set(key, settled);
  void settled.then(() => {
    if (map.get(key) === settled) map.delete(key);
  });
}
