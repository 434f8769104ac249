/**
 * The gateways and fakes a test file starts, stopped by one helper: each is tracked as it is started, and all of
 * them are stopped after each test (`stopAfterEach`) or after the file (`stopAfterAll`), gateways first (so no
 * gateway is left calling a closed fake), then the fakes; the temp dirs after the file.
 */
import { afterAll, afterEach } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { cleanupDirs, type GatewayProcess } from './env.js';

/** a fake upstream or any other server a test starts: closed after the gateways */
export interface Closable {
  close(): Promise<unknown>;
}

export interface Started {
  /** gateway processes (SIGTERM, SIGKILL after the grace) and in-process gateways (closed) */
  procs: Array<GatewayProcess | Gateway>;
  /** fake upstreams and other servers */
  ups: Closable[];
  /** adds `f` to `ups` and returns it */
  track<T extends Closable>(f: T): T;
  /** adds `g` to `procs` and returns it */
  trackGateway<T extends GatewayProcess | Gateway>(g: T): T;
}

/** `graceMs`: how long a gateway process may take to stop before it is killed (default: GatewayProcess.stop's) */
function started(graceMs: number | undefined): Started & { stop(): Promise<void> } {
  const procs: Started['procs'] = [];
  const ups: Closable[] = [];
  return {
    procs,
    ups,
    track: (f) => (ups.push(f), f),
    trackGateway: (g) => (procs.push(g), g),
    async stop() {
      await Promise.all(procs.splice(0).map((p) => ('stop' in p ? p.stop(graceMs) : p.close())));
      await Promise.all(ups.splice(0).map((u) => u.close()));
    },
  };
}

/** What each test starts, stopped after it (gateway processes get 2 s unless `graceMs` says otherwise). */
export function stopAfterEach({ graceMs = 2000 }: { graceMs?: number } = {}): Started {
  const s = started(graceMs);
  afterEach(() => s.stop());
  afterAll(() => cleanupDirs());
  return s;
}

/** What the file starts, stopped after its last test, then the temp dirs removed. */
export function stopAfterAll({ graceMs }: { graceMs?: number } = {}): Started {
  const s = started(graceMs);
  afterAll(async () => {
    await s.stop();
    cleanupDirs();
  });
  return s;
}
