/**
 * Keeps V8's young generation at its initial size while a gateway starts, then lets load grow it to V8's maximum
 * in one step.
 *
 * Startup is one burst of allocation that mostly survives (modules, the config schema, the routing table).
 * V8 reads that survival as "this program needs a big young generation" and doubles the semi-spaces, to
 * 2 × 8 MiB by the time the gateway listens; it shrinks them only at a memory-reducing GC, which an idle
 * process gets about 8 s later at the earliest. So a fresh gateway held ~12 MiB of young generation that
 * served nothing (docs/benchmarks.md, "Idle memory").
 *
 * `--semi-space-growth-factor` is read each time V8 decides to grow the young generation, so it is 1 for the
 * startup burst. Once the gateway listens it is 16: the first load that needs a bigger young generation takes
 * it from its initial 1 MiB to V8's maximum (16 MiB semi-spaces) in one step. Back at V8's default (2) it
 * grew by doubling from 1 MiB under the load, and meanwhile the small young generation promoted request
 * state to the old generation: the 1,000-slow-streams peak rose by ~20 MB (measured: 184–193 MB against
 * 160–175 without the hold; with 16, 162–187). Under steady load the size is V8's maximum either way, as
 * before. A fixed `--max-semi-space-size` would also keep idle small, but for good (15–20 % more CPU per
 * request, measured).
 */
import { setFlagsFromString } from 'node:v8';

/** after startup: one growth step from the initial 1 MiB semi-space reaches V8's 16 MiB maximum */
const LOADED_GROWTH = 16;

export function holdYoungGeneration(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
}

export function releaseYoungGeneration(): void {
  setFlagsFromString(`--semi-space-growth-factor=${LOADED_GROWTH}`);
}
