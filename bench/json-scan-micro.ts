/**
 * Micro-benchmark, not a test and not part of `npm run bench`: what one streamed OpenAI chunk costs to check,
 * JSON.parse (the relay before issue 15's scanner) against scanJson (src/wire/json-scan.ts), on the recorded
 * chunks (test/providers/fixtures/openai/text.sse), in stream order: scanJson alone (every chunk scanned from its
 * first character) and StreamJsonScan (the relay's: resumes after the prefix the stream's chunks share). Prints ns per chunk (median of rounds) and how many
 * garbage collections each loop triggered (a proxy for what it allocates).
 * Run after `npm run build`: `node dist-bench/json-scan-micro.js`.
 */
import { readFileSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';
import { JsonScan, scanJson, StreamJsonScan } from '../dist/wire/json-scan.js';

const sse = readFileSync(new URL('../test/providers/fixtures/openai/text.sse', import.meta.url), 'utf8');
const chunks = sse
  .split('\n\n')
  .filter((b) => b.startsWith('data: {'))
  .map((b) => b.slice('data: '.length));

let gcs = 0;
new PerformanceObserver((list) => {
  gcs += list.getEntries().length;
}).observe({ entryTypes: ['gc'] });

const ROUNDS = 15;
const PER_ROUND = 40_000;
let sink = 0;

/** What the relay did per chunk before: parse, then read choices/usage/error off the object. */
function viaParse(text: string): void {
  const p = JSON.parse(text) as { choices?: unknown[]; usage?: unknown; error?: unknown };
  if (Array.isArray(p.choices) && p.choices.length === 0 && p.usage) sink++;
  if (p.error !== undefined && p.error !== null) sink++;
}
const scan = new JsonScan();
function viaScan(text: string): void {
  if (!scanJson(text, scan)) throw new Error('invalid');
  if (scan.choicesEmpty && scan.usage === 'object') sink++;
  if (scan.error) sink++;
}

/** The relay's scanner: one per stream, chunks in stream order (a stream of 20 chunks, then a new stream). */
let stream = new StreamJsonScan();
let inStream = 0;
function viaStreamScan(text: string): void {
  if (inStream++ === streamOrder.length) {
    stream = new StreamJsonScan();
    inStream = 1;
  }
  if (!stream.scan(text)) throw new Error('invalid');
  if (stream.choicesEmpty && stream.usage === 'object') sink++;
  if (stream.error) sink++;
}

async function measure(name: string, fn: (t: string) => void, set: string[]): Promise<{ name: string; ns: number; gcs: number }> {
  for (let k = 0; k < 20_000; k++) fn(set[k % set.length]!); // warm up (JIT)
  await new Promise((r) => setImmediate(r));
  gcs = 0;
  const times: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    for (let k = 0; k < PER_ROUND; k++) fn(set[k % set.length]!);
    times.push(Number(process.hrtime.bigint() - t0) / PER_ROUND);
  }
  await new Promise((r) => setTimeout(r, 50)); // gc entries arrive asynchronously
  times.sort((a, b) => a - b);
  return { name, ns: times[Math.floor(times.length / 2)]!, gcs };
}

// A 20-chunk stream in the recording's order: the role chunk, 17 content chunks (the recording's 7, repeated),
// the finish chunk, the usage chunk. The per-stream scanner starts afresh every 20 chunks.
const streamOrder = [chunks[0]!, ...Array.from({ length: 17 }, (_, k) => chunks[1 + (k % 7)]!), chunks[8]!, chunks[9]!];
const content = chunks.slice(1, 8);
const avgLen = Math.round(chunks.reduce((a, c) => a + c.length, 0) / chunks.length);
console.log(`${chunks.length} recorded chunks, ${avgLen} chars on average; ${ROUNDS} rounds × ${PER_ROUND} chunks, median`);
for (const [label, set] of [
  ['20-chunk streams of the recorded chunks', streamOrder],
  ['content chunks only', content],
] as const) {
  const a = await measure('JSON.parse', viaParse, set);
  const b = await measure('scanJson', viaScan, set);
  const c = await measure('StreamJsonScan', viaStreamScan, set);
  console.log(`${label}:`);
  for (const m of [a, b, c])
    console.log(
      `  ${m.name.padEnd(15)} ${m.ns.toFixed(0).padStart(6)} ns/chunk (${(m.ns / a.ns).toFixed(2)}× JSON.parse)  ${String(m.gcs).padStart(4)} GCs over ${ROUNDS * PER_ROUND} chunks`,
    );
}
if (sink < 0) console.log(sink);
