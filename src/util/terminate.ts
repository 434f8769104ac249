/**
 * Terminate after grace: the one way a process (or process group) we started is stopped. SIGTERM, wait up
 * to `graceMs` for it to exit, then SIGKILL — only if it is still running (`'if-running'`), or regardless
 * (`'always'`: for process groups, where children that ignore SIGTERM may outlive a leader that exited).
 * Resolves with whatever `exited` resolves to; the grace timer never outlives the call.
 */

export interface TerminateOptions<T> {
  /** delivers a signal (to the process, or its group); must not throw when it is already gone */
  kill: (signal: NodeJS.Signals) => void;
  /** settles when the process has exited */
  exited: Promise<T>;
  graceMs: number;
  /** default 'if-running' */
  sigkill?: 'if-running' | 'always';
}

export async function terminateAfterGrace<T>(o: TerminateOptions<T>): Promise<T> {
  let gone = false;
  void o.exited.then(
    () => (gone = true),
    () => (gone = true),
  );
  o.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, o.graceMs);
  });
  await Promise.race([
    o.exited.then(
      () => undefined,
      () => undefined,
    ),
    grace,
  ]);
  clearTimeout(timer);
  if (!gone || o.sigkill === 'always') o.kill('SIGKILL');
  return o.exited;
}
