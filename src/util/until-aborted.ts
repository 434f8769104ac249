/**
 * A step of a start that may take long (a store that does not answer), raced against the start's abort (a SIGTERM
 * while the gateway starts, src/cli/gateway.ts).
 */

/**
 * `p`'s value, or a rejection with `signal.reason` as soon as `signal` aborts, whichever comes first. What `p` opens
 * once the abort has won is handed to `late` (which closes it; its failure is ignored), so a step given up leaves
 * nothing open behind it once it ends. Without a signal, `p` itself.
 */
export function untilAborted<T>(p: Promise<T>, signal: AbortSignal | undefined, late?: (value: T) => unknown): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    let gaveUp = false;
    const onAbort = (): void => {
      gaveUp = true;
      reject(asError(signal.reason));
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        if (!gaveUp) return resolve(value);
        void Promise.resolve()
          .then(() => late?.(value))
          .catch(() => undefined);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        if (!gaveUp) reject(asError(err));
      },
    );
  });
}

const asError = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)));
