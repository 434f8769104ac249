/**
 * docs/config.md against the schema, both ways: every key path the schema accepts has a row in a key table
 * (or is named in the `{ a, b? }` type of its parent's row), every row names a key the schema accepts, and a
 * row's default and numeric bounds are the schema's. The config examples of the README and of docs/config.md
 * pass the schema and the rules after it.
 *
 * How docs/config.md writes a key: tables whose first column is `key`, one backticked key per row, either
 * absolute (`gateway.port`, starting with a top-level key) or relative to the table's prefix, which is the path
 * of the line that introduces the table (`` `gateway.routing.health`: ``) or else of the section heading
 * (`### gateway.bridges[]`). `x[]` is the array `x`; its elements' keys are `x[].k`.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import JSON5 from 'json5';
import { z } from 'zod';
import { configSchema, TIMER_MAX_MS } from './schema.js';
import { ConfigError, validateConfig } from './load.js';

const read = (rel: string) => readFileSync(fileURLToPath(new URL(`../../${rel}`, import.meta.url)), 'utf8');

interface SchemaKey {
  /** `default` or `prefault` (the latter fills an object from its keys' defaults: "all defaults") */
  def?: { kind: 'default' | 'prefault'; value: unknown };
  min?: number;
  max?: number;
}

/**
 * Every key path of a schema. Records (`modelMap`, `headers`, `options`, `peerLimits.peers`) are leaves: their
 * keys are the user's, not the schema's.
 */
function schemaKeys(schema: z.ZodType, prefix = '', out = new Map<string, SchemaKey>()): Map<string, SchemaKey> {
  const at = (s: z.ZodType, info: SchemaKey): void => {
    const d = s._zod.def;
    if (d.type === 'default' || d.type === 'prefault') {
      const inner = (s as z.ZodDefault<z.ZodType>).def.innerType;
      return at(inner, { ...info, def: info.def ?? { kind: d.type, value: (s as z.ZodDefault<z.ZodType>).def.defaultValue } });
    }
    if (d.type === 'optional' || d.type === 'nullable') return at((s as z.ZodOptional<z.ZodType>).def.innerType, info);
    if (d.type === 'pipe') return at((s as z.ZodPipe).def.in as z.ZodType, info);
    if (d.type === 'number') {
      const n = s as z.ZodNumber;
      // int() alone bounds a number by the safe integers: no bound the doc need state
      if (n.minValue !== null && Math.abs(n.minValue) < Number.MAX_SAFE_INTEGER) info.min = n.minValue;
      if (n.maxValue !== null && Math.abs(n.maxValue) < Number.MAX_SAFE_INTEGER) info.max = n.maxValue;
    }
    // an array's element is no key of its own, and a union's options add keys to the union's
    if (!prefix.endsWith('[]') && !out.has(prefix)) out.set(prefix, info);
    if (d.type === 'object') for (const [k, v] of Object.entries((s as z.ZodObject).shape)) schemaKeys(v as z.ZodType, join(prefix, k), out);
    else if (d.type === 'union') for (const o of (s as z.ZodUnion).options) schemaKeys(o as z.ZodType, prefix, out);
    else if (d.type === 'array') {
      const el = (s as z.ZodArray<z.ZodType>).element;
      if (hasKeys(el)) schemaKeys(el, `${prefix}[]`, out);
    }
  };
  at(schema, {});
  return out;
}
const join = (prefix: string, k: string) => (prefix ? `${prefix}.${k}` : k);
/** an object, or a union of objects, maybe wrapped */
function hasKeys(s: z.ZodType): boolean {
  const d = s._zod.def;
  if (d.type === 'object') return true;
  if (d.type === 'union') return (s as z.ZodUnion).options.some((o) => hasKeys(o as z.ZodType));
  if (d.type === 'optional' || d.type === 'default' || d.type === 'prefault') return hasKeys((s as z.ZodOptional<z.ZodType>).def.innerType);
  return false;
}

interface DocRow {
  path: string;
  line: number;
  type: string;
  default: string;
}

/** The keys a markdown reference documents, read by the rule in this file's header. */
function docKeys(md: string, topLevel: readonly string[]): { rows: DocRow[]; named: Map<string, number> } {
  const lines = md.split('\n');
  const rows: DocRow[] = [];
  /** path → line number, for every documented path (rows, `{ a, b }` types, table prefixes) */
  const named = new Map<string, number>();
  /** a path names its parents too: `gateway.responses.storeTtlMs` documents `gateway.responses` */
  const name = (path: string, line: number) => {
    const parts = path.replace(/\[\]$/, '').split('.');
    for (let n = 1; n <= parts.length; n++) {
      const p = parts.slice(0, n).join('.').replace(/\[\]$/, '');
      if (!named.has(p)) named.set(p, line);
    }
  };
  const cells = (l: string) =>
    l
      .slice(1, -1)
      .split(/(?<!\\)\|/)
      .map((c) => c.trim());
  const absolute = (k: string) => topLevel.includes(k.split(/[.[]/)[0]!);
  let heading = '';
  let inFence = false;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (l.startsWith('```')) inFence = !inFence;
    if (inFence) continue;
    const h = /^#+ (.*)$/.exec(l);
    if (h) heading = h[1]!.replace(/`/g, '');
    const startsTable = l.startsWith('|') && !lines[i - 1]!.startsWith('|');
    if (!startsTable || cells(l)[0] !== 'key') continue;
    const header = cells(l);
    const typeCol = header.indexOf('type');
    const defaultCol = header.indexOf('default');
    let j = i - 1;
    while (j > 0 && lines[j]!.trim() === '') j--;
    const intro = /^`([A-Za-z][A-Za-z.[\]]*)`.*:$/.exec(lines[j]!);
    const prefix = intro ? intro[1]! : /^[A-Za-z][A-Za-z.[\]]*$/.test(heading) ? heading : undefined;
    if (prefix) name(prefix, j + 1);
    for (i += 2; i < lines.length && lines[i]!.startsWith('|'); i++) {
      const c = cells(lines[i]!);
      const key = /^`([A-Za-z][A-Za-z0-9.[\]]*)`$/.exec(c[0]!)?.[1];
      if (!key) throw new Error(`docs line ${i + 1}: a key table row must start with one backticked key, not ${c[0]}`);
      if (!absolute(key) && !prefix) throw new Error(`docs line ${i + 1}: relative key \`${key}\` in a table with no prefix`);
      const full = absolute(key) ? key : `${prefix}.${key}`;
      const path = full.replace(/\[\]$/, '');
      rows.push({ path, line: i + 1, type: c[typeCol] ?? '', default: c[defaultCol] ?? '' });
      name(path, i + 1);
      // `{ input, output, cachedInput? }` / `{ model: string }` as the type names the object's keys
      const obj = /^`\{([^`]*)\}`/.exec(c[typeCol] ?? '');
      for (const part of obj ? obj[1]!.split(',') : []) {
        const sub = /^\s*([A-Za-z_][A-Za-z0-9_]*)\??\s*(:.*)?$/.exec(part)?.[1];
        if (sub) name(`${full}.${sub}`, i + 1);
      }
    }
    i--;
  }
  return { rows, named };
}

/** `n` as a number of its own in `text` (not a digit of a longer number) */
const mentions = (text: string, n: number) => new RegExp(`(?<![\\d.])${String(n).replace('.', '\\.')}(?![\\d.]*\\d)`).test(text);

const doc = read('docs/config.md');
const schema = configSchema();
const keys = schemaKeys(schema);
keys.delete('');
const { rows, named } = docKeys(doc, Object.keys(schema.shape));

describe('docs/config.md against the config schema', () => {
  it('documents every key the schema accepts', () => {
    const missing = [...keys.keys()].filter((p) => !named.has(p));
    expect(missing, 'keys of src/config/schema.ts with no row in docs/config.md').toEqual([]);
  });

  it('documents no key the schema refuses', () => {
    const unknown = [...named.entries()].filter(([p]) => !keys.has(p)).map(([p, line]) => `${p} (line ${line})`);
    expect(unknown, 'keys in docs/config.md that src/config/schema.ts does not accept').toEqual([]);
  });

  it("gives each row the schema's default", () => {
    const wrong: string[] = [];
    for (const r of rows) {
      const def = keys.get(r.path)?.def;
      // a prefault is an object filled from its own keys' defaults, documented on their rows
      if (!def || def.kind === 'prefault') continue;
      const want = `\`${JSON.stringify(def.value)}\``;
      if (!r.default.includes(want)) wrong.push(`${r.path} (line ${r.line}): default ${want}, documented ${r.default}`);
    }
    expect(wrong).toEqual([]);
  });

  it("gives each numeric row the schema's bounds", () => {
    const wrong: string[] = [];
    for (const r of rows) {
      const k = keys.get(r.path);
      if (k?.min !== undefined && !mentions(r.type, k.min)) wrong.push(`${r.path} (line ${r.line}): min ${k.min}, documented ${r.type}`);
      // the timer ceiling is one rule for every duration, stated once under Validation
      if (k?.max !== undefined && k.max !== TIMER_MAX_MS && !mentions(r.type, k.max))
        wrong.push(`${r.path} (line ${r.line}): max ${k.max}, documented ${r.type}`);
    }
    expect(wrong).toEqual([]);
  });

  it('reads the forms the doc uses (the rule is not vacuous)', () => {
    // one of each: absolute, relative to a heading, relative to an intro line, an array's elements, `{ a, b? }`
    for (const p of [
      'gateway.port',
      'gateway.bridges[].reconnectInterval',
      'gateway.routing.health.windowMs',
      'acp.roles.roles[].models[].dataClasses',
      'channels[].pricing.cachedInput',
    ])
      expect(named.has(p), p).toBe(true);
    // a row deleted from the doc is missed
    const without = doc.replace(/^\| `maxInflightPerPeer` \|.*\n/m, '');
    expect(without).not.toBe(doc);
    expect(docKeys(without, Object.keys(schema.shape)).named.has('gateway.bridge.limits.maxInflightPerPeer')).toBe(false);
  });
});

/** The ```json5 blocks of `md` between the heading line `heading` and the next heading of its level. */
function json5Blocks(md: string, heading: string): string[] {
  const at = md.indexOf(`\n${heading}\n`);
  if (at < 0) throw new Error(`no "${heading}"`);
  const level = /^#+/.exec(heading)![0];
  const rest = md.slice(at + heading.length + 2);
  const end = rest.search(new RegExp(`^${level} `, 'm'));
  const section = end < 0 ? rest : rest.slice(0, end);
  return [...section.matchAll(/^```json5\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

/** every ${VAR} the text uses, set (the examples are checked with their variables set, as they say) */
const envFor = (text: string) => Object.fromEntries([...text.matchAll(/(?<!\$)\$\{([A-Z_][A-Z0-9_]*)\}/g)].map((m) => [m[1]!, `value-of-${m[1]!}`]));

describe('config examples pass the schema and the rules after it', () => {
  const cases = [
    ...json5Blocks(read('README.md'), '## Configuration').map((b, i) => ({ name: `README.md ## Configuration, example ${i + 1}`, text: b })),
    ...json5Blocks(doc, '## Complete example: two gateways bridged').map((b, i) => ({ name: `docs/config.md complete example ${i + 1}`, text: b })),
  ];
  it('finds the examples', () => {
    expect(cases.length).toBe(4);
  });
  it.each(cases)('$name', ({ name, text }) => {
    let problems: string[] = [];
    try {
      validateConfig(JSON5.parse(text), name, envFor(text));
    } catch (err) {
      problems = err instanceof ConfigError ? err.problems : [String(err)];
    }
    expect(problems).toEqual([]);
  });
});
