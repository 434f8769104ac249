/**
 * Keeps V8's young generation at its initial size while a gateway starts, then lets it grow as before.
 *
 * Startup is one burst of allocation that mostly survives (modules, the config schema, the routing table).
 * V8 reads that survival as "this program needs a big young generation" and doubles the semi-spaces, to
 * 2 × 8 MiB by the time the gateway listens; it shrinks them only at a memory-reducing GC, which an idle
 * process gets about 8 s later at the earliest. So a fresh gateway held ~12 MiB of young generation that
 * served nothing (docs/benchmarks.md, "Idle memory").
 *
 * `--semi-space-growth-factor` is read each time V8 decides to grow the young generation, so setting it to 1
 * for the startup burst and back to V8's default (2) once the gateway listens keeps startup small without
 * touching the sizes under load: requests grow the young generation exactly as they did. A fixed
 * `--max-semi-space-size` would also keep it small, but for good (15–20 % more CPU per request, measured).
 */
import { setFlagsFromString } from 'node:v8';

/** V8's default growth factor (Node 20, V8 11.3) */
const DEFAULT_GROWTH = 2;

export function holdYoungGeneration(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
}

export function releaseYoungGeneration(): void {
  setFlagsFromString(`--semi-space-growth-factor=${DEFAULT_GROWTH}`);
}
