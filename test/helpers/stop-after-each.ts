/**
 * The gateway processes and fault upstreams a fault test file starts: each test pushes what it starts into
 * `procs` and `ups`, and all of them are stopped after the test (the temp dirs after the file).
 */
import { afterAll, afterEach } from 'vitest';
import { cleanupDirs, type GatewayProcess } from './env.js';
import type { FaultUpstream } from '../fakes/fault-upstream.js';

export function stopAfterEach(): { procs: GatewayProcess[]; ups: FaultUpstream[] } {
  const procs: GatewayProcess[] = [];
  const ups: FaultUpstream[] = [];
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.stop(2000)));
    await Promise.all(ups.splice(0).map((u) => u.close()));
  });
  afterAll(() => cleanupDirs());
  return { procs, ups };
}
