/**
 * The startup hold on V8's young generation (src/util/young-generation.ts), in a child process so the test
 * runner's own heap is untouched: while held, a burst of surviving allocations leaves the young generation at
 * its initial size; once released, the same burst grows it (to V8's maximum). Runs the built module (dist/),
 * the one `bin/switchyard gateway` loads before anything else.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const MODULE = new URL('../../dist/util/young-generation.js', import.meta.url).href;

const SCRIPT = `
import { getHeapSpaceStatistics } from 'node:v8';
const { holdYoungGeneration, releaseYoungGeneration } = await import(${JSON.stringify(MODULE)});
const newSpace = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
const keep = [];
const burst = () => { for (let i = 0; i < 300000; i++) keep.push({ i, s: 'x' + i }); };
const initial = newSpace();
holdYoungGeneration();
burst();
const held = newSpace();
releaseYoungGeneration();
burst();
const released = newSpace();
process.stdout.write(JSON.stringify({ initial, held, released, kept: keep.length }));
`;

describe('young generation hold', () => {
  it('keeps the young generation small through a surviving burst while held, and lets it grow once released', () => {
    const r = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', SCRIPT], { encoding: 'utf8' })) as Record<string, number>;
    expect(r.kept).toBe(600_000);
    // held: at most one step above V8's initial size (the burst retains ~25 MB)
    expect(r.held).toBeLessThanOrEqual(2 * r.initial!);
    // released: the same burst grows it again (to V8's maximum, 2 × 16 MiB)
    expect(r.released).toBeGreaterThanOrEqual(8 * r.held!);
  });
});
