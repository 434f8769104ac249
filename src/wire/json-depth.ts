/**
 * How deep a parsed JSON value nests, checked without following it further than the limit (so the check
 * itself cannot exhaust the stack). JSON.parse is iterative and takes any depth; JSON.stringify and every
 * recursive walk of ours are not, so a value from outside is bounded before anything walks it: the HTTP
 * bodies (`gateway.maxJsonDepth`, src/http/body.ts) and the bridge's frames (src/bridge/codec.ts).
 */

/**
 * How deep a value from outside that the gateway may serialise again can nest: an upstream's answer (src/providers),
 * a bridge frame (MAX_FRAME_DEPTH). Above any body a client may send (`gateway.maxJsonDepth` ≤ 1000), far below
 * what exhausts the stack of JSON.stringify.
 */
export const MAX_VALUE_DEPTH = 1024;

/** The path (keys and indices) to the first value nested deeper than `max`, or undefined. */
export function pathDeeperThan(v: unknown, max: number): Array<string | number> | undefined {
  return walk(v, max, 0);
}

function walk(v: unknown, max: number, depth: number): Array<string | number> | undefined {
  if (v === null || typeof v !== 'object') return undefined;
  if (depth >= max) return [];
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const p = walk(v[i], max, depth + 1);
      if (p) return [i, ...p];
    }
    return undefined;
  }
  for (const k in v) {
    const p = walk((v as Record<string, unknown>)[k], max, depth + 1);
    if (p) return [k, ...p];
  }
  return undefined;
}
