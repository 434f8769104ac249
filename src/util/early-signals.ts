/**
 * SIGTERM and SIGINT from the moment `switchyard gateway` starts. Loading the CLI's modules and reading the config
 * take a moment before the gateway command can handle a stop; a signal then would take its default action (the
 * process ends by the signal, 143 for SIGTERM). `bin/switchyard` calls `holdStopSignals` first thing, and the
 * command takes them over (`takeStopSignals`) with the ones held so far.
 */

const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const;
const held: string[] = [];
const hold = (signal: string): void => void held.push(signal);
const holders = new Map<string, () => void>();

/** From now on SIGTERM and SIGINT are recorded, not acted on, until `takeStopSignals`. */
export function holdStopSignals(): void {
  for (const s of STOP_SIGNALS) {
    if (holders.has(s)) continue;
    const h = () => hold(s);
    holders.set(s, h);
    process.on(s, h);
  }
}

/** `handler` gets every SIGTERM and SIGINT from now on, and at once the ones held before (in the order they came). */
export function takeStopSignals(handler: (signal: string) => void): void {
  for (const s of STOP_SIGNALS) {
    const h = holders.get(s);
    if (h) process.off(s, h);
    holders.delete(s);
    process.on(s, () => handler(s));
  }
  for (const s of held.splice(0)) handler(s);
}
