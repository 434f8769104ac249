/**
 * Waiting for something that may never end, within a bound: the stop's waits on a store, a trace exporter or a
 * Redis that may not answer (src/gateway-stop.ts).
 */

/** `p` settled, or `ms` passed: true when `p` settled in time. Never rejects; a later rejection of `p` is handled. */
export async function settledWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const done = p.then(
    () => true,
    () => true,
  );
  try {
    return await Promise.race([done, late]);
  } finally {
    clearTimeout(timer);
  }
}
