/**
 * The validating scanner (src/wire/json-scan.ts) against JSON.parse, its definition: a table of the grammar's
 * corners, then a seeded (deterministic) fuzz over the recorded OpenAI chunks and generated JSON, mutated byte
 * by byte. For every input, `valid` must equal "JSON.parse succeeds", and the top-level findings must equal
 * what JSON.parse's object says.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { JsonScan, MAX_DEPTH, scanJson, StreamJsonScan } from '../../src/wire/json-scan.js';
import { MAX_VALUE_DEPTH, pathDeeperThan } from '../../src/wire/json-depth.js';
import { rng } from '../helpers/rng.js';

interface Findings {
  valid: boolean;
  object?: boolean;
  choicesArray?: boolean;
  choicesEmpty?: boolean;
  usage?: string;
  usageValue?: unknown;
  error?: boolean;
}

/** What JSON.parse says, in the scanner's terms. */
function truth(text: string): Findings {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { valid: false };
  }
  // the scanner's one rule beyond the grammar: nothing the gateway would serialise again past MAX_VALUE_DEPTH
  if (pathDeeperThan(v, MAX_VALUE_DEPTH)) return { valid: false };
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    return { valid: true, object: false, choicesArray: false, choicesEmpty: false, usage: 'absent', usageValue: undefined, error: false };
  }
  const o = v as Record<string, unknown>;
  const u = o['usage'];
  const usage = u === undefined ? 'absent' : u === null ? 'null' : typeof u === 'object' && !Array.isArray(u) ? 'object' : 'other';
  const ch = o['choices'];
  return {
    valid: true,
    object: true,
    choicesArray: Array.isArray(ch),
    choicesEmpty: Array.isArray(ch) && ch.length === 0,
    usage,
    usageValue: usage === 'object' ? u : undefined,
    error: o['error'] !== undefined && o['error'] !== null,
  };
}

const scan = new JsonScan();
function scanned(text: string): Findings {
  if (!scanJson(text, scan)) return { valid: scan.valid };
  return {
    valid: true,
    object: scan.object,
    choicesArray: scan.choicesArray,
    choicesEmpty: scan.choicesEmpty,
    usage: scan.usage,
    usageValue: scan.usageOf(text),
    error: scan.error,
  };
}

const agrees = (text: string): boolean => JSON.stringify(scanned(text)) === JSON.stringify(truth(text));

/** The same findings through a per-stream scanner (prefix checkpoints): `s` keeps its state across calls. */
function streamed(s: StreamJsonScan, text: string): Findings {
  if (!s.scan(text)) return { valid: s.valid };
  return {
    valid: true,
    object: s.object,
    choicesArray: s.choicesArray,
    choicesEmpty: s.choicesEmpty,
    usage: s.usage,
    usageValue: s.usageOf(text),
    error: s.error,
  };
}

const deep = (d: number, inner = '1') => '['.repeat(d) + inner + ']'.repeat(d);
const deepObj = (d: number) => '{"a":'.repeat(d) + '1' + '}'.repeat(d);

/** [text, JSON.parse accepts it] — the expectation is written out so the table also checks JSON.parse itself. */
const TABLE: [string, boolean][] = [
  ['', false],
  [' ', false],
  ['\uFEFF{}', false],
  ['{}', true],
  ['[]', true],
  [' \t\n\r{ \t\n\r} \t\n\r', true],
  ['\f{}', false],
  ['\u00a0{}', false],
  ['{}\u00a0', false],
  ['{} x', false],
  ['{}{}', false],
  ['0', true],
  ['-0', true],
  ['-', false],
  ['--1', false],
  ['+1', false],
  ['01', false],
  ['-01', false],
  ['00', false],
  ['1.', false],
  ['.5', false],
  ['1.5', true],
  ['1e5', true],
  ['1E+5', true],
  ['1e-5', true],
  ['1e', false],
  ['1e+', false],
  ['1.e5', false],
  ['0.0e0', true],
  ['-0.0E-0', true],
  ['1_000', false],
  ['0x10', false],
  ['Infinity', false],
  ['NaN', false],
  ['1e400', true],
  ['true', true],
  ['tru', false],
  ['True', false],
  ['null', true],
  ['nul', false],
  ['nullx', false],
  ['false', true],
  ['"abc"', true],
  ['"abc', false],
  ['"a\\"b"', true],
  ['"\\\\"', true],
  ['"\\/"', true],
  ['"\\b\\f\\n\\r\\t"', true],
  ['"\\a"', false],
  ['"\\x41"', false],
  ['"\\u0041"', true],
  ['"\\u00e9\\u00E9"', true],
  ['"\\u004"', false],
  ['"\\u004g"', false],
  ['"\\U0041"', false],
  ['"\\ud800"', true],
  ['"\\udc00\\ud800"', true],
  ['"\ud800"', true],
  ['"\\', false],
  ['"\\"', false],
  ['"a\u0000b"', false],
  ['"a\nb"', false],
  ['"a\tb"', false],
  ['"a\u001fb"', false],
  ['"a\u007fb"', true],
  ['"\u2028\u2029"', true],
  ["'a'", false],
  ['[1,]', false],
  ['[,1]', false],
  ['[1,,2]', false],
  ['[1 2]', false],
  ['{"a":1,}', false],
  ['{,"a":1}', false],
  ['{"a" 1}', false],
  ['{"a":}', false],
  ['{"a"}', false],
  ['{a:1}', false],
  ['{"a":1 "b":2}', false],
  ['{"a":1]', false],
  ['[1}', false],
  ['[', false],
  ['{', false],
  [']', false],
  [deep(MAX_DEPTH), true],
  [deep(MAX_DEPTH + 1), true],
  [deep(MAX_VALUE_DEPTH), true],
  [deep(MAX_VALUE_DEPTH + 1), false],
  [deep(5000), false],
  [deep(5000).slice(0, -1), false],
  [deepObj(MAX_DEPTH + 3), true],
  ['{"choices":' + deep(MAX_DEPTH + 2) + ',"usage":{"a":' + deep(MAX_DEPTH) + '}}', true],
];

/** Top-level findings: [text, expected findings beyond validity]. */
const MEMBERS: [string, Partial<Findings>][] = [
  ['{"choices":[{"delta":{"content":"hi"}}],"usage":null}', { choicesArray: true, choicesEmpty: false, usage: 'null', error: false }],
  ['{"choices":[],"usage":{"total_tokens":3}}', { choicesArray: true, choicesEmpty: true, usage: 'object', usageValue: { total_tokens: 3 } }],
  ['{"choices":[ \n ],"usage" : { "total_tokens" : 3 } }', { choicesEmpty: true, usage: 'object', usageValue: { total_tokens: 3 } }],
  ['{"\\u0063hoices":[],"\\u0075sage":{"a":1},"\\u0065rror":"x"}', { choicesArray: true, choicesEmpty: true, usage: 'object', error: true }],
  ['{"cho\\u0069ces":[1],"us\\u0061ge":null,"err\\u006Fr":null}', { choicesArray: true, usage: 'null', error: false }],
  ['{"choices\\u0000":[],"usage\\n":{},"error\\"":1}', { choicesArray: false, usage: 'absent', error: false }],
  ['{"Choices":[],"USAGE":{},"errors":1}', { choicesArray: false, usage: 'absent', error: false }],
  ['{"choices":[],"choices":"x"}', { choicesArray: false }],
  ['{"choices":"x","choices":[]}', { choicesArray: true, choicesEmpty: true }],
  ['{"usage":{"a":1},"usage":{"b":2}}', { usage: 'object', usageValue: { b: 2 } }],
  ['{"usage":{"a":1},"usage":null}', { usage: 'null' }],
  ['{"error":1,"error":null}', { error: false }],
  ['{"error":null,"error":false}', { error: true }],
  ['{"error":0}', { error: true }],
  ['{"usage":[1]}', { usage: 'other' }],
  ['{"usage":5}', { usage: 'other' }],
  ['{"x":{"choices":[],"usage":{},"error":1}}', { choicesArray: false, usage: 'absent', error: false }],
  ['[{"choices":[],"usage":{},"error":1}]', { object: false, choicesArray: false, usage: 'absent', error: false }],
  ['{"__proto__":{"error":1},"choices":[]}', { choicesArray: true, error: false }],
  ['{"a":"\\"choices\\":[],\\"error\\":1"}', { choicesArray: false, error: false }],
];

describe('scanJson: the grammar', () => {
  it('the table agrees with JSON.parse, case by case', () => {
    for (const [text, ok] of TABLE) {
      const label = JSON.stringify(text.length > 60 ? text.slice(0, 60) + '…' : text);
      expect(truth(text).valid, `JSON.parse (and the depth rule) on ${label}`).toBe(ok);
      expect(scanned(text), label).toEqual(truth(text));
    }
  });

  it('reports the top-level choices, usage and error as JSON.parse sees them (escaped keys, last duplicate wins)', () => {
    for (const [text, want] of MEMBERS) {
      expect(scanned(text), text).toMatchObject({ valid: true, ...want });
      expect(scanned(text), text).toEqual(truth(text));
    }
  });

  it('gives the usage object as a slice of the text', () => {
    const text = '{"choices":[],"usage":{"prompt_tokens":3,"total_tokens":8}}';
    scanJson(text, scan);
    expect(text.slice(scan.usageStart, scan.usageEnd)).toBe('{"prompt_tokens":3,"total_tokens":8}');
  });

  it('resets every finding between scans of one JsonScan', () => {
    scanJson('{"choices":[],"usage":{"a":1},"error":1}', scan);
    scanJson('{"id":1}', scan);
    expect(scanned('{"id":1}')).toEqual(truth('{"id":1}'));
    expect([scan.choicesArray, scan.usage, scan.usageStart, scan.error]).toEqual([false, 'absent', -1, false]);
    expect(scanJson('{"choices":[],"usage":{"a":1}', scan)).toBe(false);
    expect(scan.valid).toBe(false);
  });
});

// ---- seeded fuzz ------------------------------------------------------------------------------------------

function recordedChunks(): string[] {
  const sse = readFileSync(new URL('../providers/fixtures/openai/text.sse', import.meta.url), 'utf8');
  const fromSse = sse
    .split('\n\n')
    .filter((b) => b.startsWith('data: {'))
    .map((b) => b.slice('data: '.length));
  const jsonl = readFileSync(new URL('../apis/fixtures/openai-chat-tool.chunks.jsonl', import.meta.url), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'));
  return [...fromSse, ...jsonl];
}

/** Random JSON text with the shapes the scanner cares about: our keys (plain, escaped, repeated), odd spacing. */
function generator(r: () => number): () => string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const ws = () => (r() < 0.7 ? '' : pick([' ', '\n', '\t', '\r\n', '  ']));
  const NUMBERS = ['0', '-0', '1', '-1', '12', '1.5', '-0.25', '1e5', '1E+5', '2e-3', '-1.0E-10', '123456789012345678901234567890', '0.000001'];
  const STRINGS = ['', 'a', 'hé', '✓', '😀', '\ud800', 'q"q', 'b\\s', 'l\nf', '\u0001', '</script>', 'choices', '"usage":null'];
  const escapeKey = (k: string): string =>
    [...k].map((ch) => (r() < 0.3 ? '\\u' + ch.charCodeAt(0).toString(16).padStart(4, '0')[r() < 0.5 ? 'toUpperCase' : 'toLowerCase']() : ch)).join('');
  const str = (s: string): string => {
    let out = JSON.stringify(s);
    if (r() < 0.3) out = out.replace(/[a-z]/, (ch) => '\\u' + ch.charCodeAt(0).toString(16).padStart(4, '0'));
    if (r() < 0.1) out = out.replace('/', '\\/');
    return out;
  };
  const value = (depth: number): string => {
    const k = r();
    if (depth > 4 || k < 0.35) {
      const s = r();
      if (s < 0.3) return pick(NUMBERS);
      if (s < 0.6) return str(pick(STRINGS));
      return pick(['true', 'false', 'null']);
    }
    if (k < 0.6) {
      const n = Math.floor(r() * 4);
      return '[' + ws() + Array.from({ length: n }, () => value(depth + 1)).join(ws() + ',' + ws()) + ws() + ']';
    }
    return object(depth);
  };
  const object = (depth: number): string => {
    const n = Math.floor(r() * 5);
    const members = Array.from({ length: n }, () => {
      const key = pick(['choices', 'usage', 'error', 'id', 'object', 'model', '__proto__', 'choice', 'usages']);
      const k = r() < 0.25 ? escapeKey(key) : key;
      const v =
        key === 'choices' && r() < 0.6
          ? r() < 0.3
            ? '[' + ws() + ']'
            : '[' + value(depth + 1) + ']'
          : key === 'usage' && r() < 0.5
            ? object(depth + 1)
            : value(depth + 1);
      return '"' + k + '"' + ws() + ':' + ws() + v;
    });
    return '{' + ws() + members.join(ws() + ',' + ws()) + ws() + '}';
  };
  return () => ws() + (r() < 0.85 ? object(0) : value(0)) + ws();
}

/** Characters a mutation inserts: JSON's structure, escapes, digits, whitespace, controls, non-ASCII, surrogates. */
const ALPHABET = '{}[],:"\\/ -+.eE0123456789tfnulrsabcu\t\n\r\f\u0000\u001f\u007f\u00a0\u2028\ufeffé✓\ud800\udc00';

function mutate(text: string, r: () => number): string {
  let t = text;
  const times = 1 + Math.floor(r() * 3);
  for (let m = 0; m < times; m++) {
    const at = Math.floor(r() * (t.length + 1));
    const op = Math.floor(r() * 5);
    if (op === 0) t = t.slice(0, at) + t.slice(at + 1 + Math.floor(r() * 3));
    else if (op === 1) t = t.slice(0, at) + ALPHABET[Math.floor(r() * ALPHABET.length)]! + t.slice(at);
    else if (op === 2) t = t.slice(0, at) + ALPHABET[Math.floor(r() * ALPHABET.length)]! + t.slice(at + 1);
    else if (op === 3) t = t.slice(0, at);
    else {
      const len = 1 + Math.floor(r() * 12);
      t = t.slice(0, at) + t.slice(at, at + len) + t.slice(at);
    }
  }
  return t;
}

describe('scanJson: seeded fuzz against JSON.parse', () => {
  it('agrees on every recorded OpenAI chunk as recorded', () => {
    const chunks = recordedChunks();
    expect(chunks.length).toBeGreaterThan(15);
    for (const c of chunks) expect(scanned(c), c).toEqual(truth(c));
    expect(chunks.filter((c) => scanned(c).usage === 'object').length).toBeGreaterThan(0);
  });

  for (const seed of [1, 2, 3]) {
    it(`agrees on 6,000 mutated recorded chunks and 6,000 mutated generated texts (seed ${seed})`, () => {
      const r = rng(seed);
      const gen = generator(r);
      const chunks = recordedChunks();
      const failures: string[] = [];
      let valid = 0;
      let total = 0;
      const check = (text: string) => {
        total++;
        if (truth(text).valid) valid++;
        if (!agrees(text) && failures.length < 5) failures.push(text);
      };
      for (let k = 0; k < 6000; k++) check(mutate(chunks[Math.floor(r() * chunks.length)]!, r));
      for (let k = 0; k < 6000; k++) {
        const g = gen();
        check(g);
        check(mutate(g, r));
      }
      expect(failures.map((f) => ({ text: f, scan: scanned(f), parse: truth(f) }))).toEqual([]);
      // Neither side of the fuzz is vacuous: plenty of inputs are valid and plenty are not.
      expect(valid).toBeGreaterThan(total * 0.2);
      expect(valid).toBeLessThan(total * 0.8);
    });
  }
});

describe('StreamJsonScan: prefix checkpoints across the chunks of a stream', () => {
  it('the recorded stream, chunk after chunk, then every chunk with every single character changed at its prefix end', () => {
    const chunks = recordedChunks().slice(0, 10);
    const s = new StreamJsonScan();
    for (let round = 0; round < 3; round++) for (const c of chunks) expect(streamed(s, c), c).toEqual(truth(c));
    // Once the checkpoint is learnt, a chunk equal up to any position and broken right after it is still caught.
    const base = chunks[3]!;
    const trained = (): StreamJsonScan => {
      const t = new StreamJsonScan();
      for (const c of chunks.slice(1, 5)) t.scan(c);
      return t;
    };
    const failures: string[] = [];
    for (let at = 0; at < base.length; at++) {
      for (const ch of ['', ' ', '}', '"', '\\', '\n', '1', ',', 'x']) {
        for (const text of [base.slice(0, at) + ch + base.slice(at + 1), base.slice(0, at) + ch + base.slice(at)]) {
          if (JSON.stringify(streamed(trained(), text)) !== JSON.stringify(truth(text)) && failures.length < 5) failures.push(text);
        }
      }
    }
    expect(failures).toEqual([]);
  });

  it('whitespace where the checkpointed value started, and members seen before the checkpoint, are kept exact', () => {
    const s = new StreamJsonScan();
    const seq = [
      '{"id":1,"choices":[1]}',
      '{"id":1,"choices":[2]}',
      '{"id":1,"choices":[3]}',
      '{"id":1,"choices":[4]}',
      '{"id":1,"choices": [5]}',
      '{"id":1,"choices":\n[]}',
    ];
    for (const text of seq) expect(streamed(s, text), text).toEqual(truth(text));
    const before = [
      '{"error":1,"usage":{"a":1},"choices":[],"x":1}',
      '{"error":1,"usage":{"a":1},"choices":[],"x":2}',
      '{"error":1,"usage":{"a":1},"choices":[],"x":3}',
    ];
    const after = [
      '{"error":1,"usage":{"a":1},"choices":[],"x":4}',
      '{"error":1,"usage":{"a":1},"choices":[],"x":5,"error":null,"usage":{"b":2}}',
      '{"error":1,"usage":{"a":1},"choices":[],"x":6,"choices":[1]}',
    ];
    const t = new StreamJsonScan();
    for (const text of [...before, ...after]) expect(streamed(t, text), text).toEqual(truth(text));
  });

  it('chunks nested past MAX_DEPTH after the checkpoint still go to JSON.parse, and agree', () => {
    const s = new StreamJsonScan();
    const texts = [1, 2, 3, 4, 5].map((k) => `{"id":1,"x":${deep(MAX_DEPTH + 10, String(k))},"choices":[${k}],"usage":${k === 4 ? '{"t":4}' : 'null'}}`);
    texts.push(`{"id":1,"x":${deep(MAX_DEPTH + 10).slice(0, -1)},"choices":[]}`);
    for (const text of texts) expect(streamed(s, text), text.slice(-40)).toEqual(truth(text));
  });

  for (const seed of [11, 12, 13]) {
    it(`agrees with JSON.parse on 300 streams of similar, mutated chunks (seed ${seed})`, () => {
      const r = rng(seed);
      const gen = generator(r);
      const recorded = recordedChunks();
      const failures: unknown[] = [];
      let total = 0;
      let valid = 0;
      for (let stream = 0; stream < 300; stream++) {
        const s = new StreamJsonScan();
        // A stream: a shared head (recorded or generated), then tails that vary, some chunks mutated anywhere.
        const heads = [
          '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":17',
          '{"a":[{"b":{"choices":',
          '{"error":{"m":1},"usage":{"total_tokens":1},"choices":[],"x":',
        ];
        const head = heads[Math.floor(r() * heads.length)]!;
        const length = 5 + Math.floor(r() * 25);
        for (let k = 0; k < length; k++) {
          let text: string;
          const kind = r();
          if (kind < 0.3) text = recorded[Math.floor(r() * recorded.length)]!;
          else if (kind < 0.6)
            text = head + (r() < 0.5 ? '' : String(Math.floor(r() * 3))) + ',"choices":[{"delta":{"content":' + gen() + '}}],"usage":' + gen() + '}';
          else if (kind < 0.8)
            text = head.startsWith('{"a"')
              ? head + gen() + '}}]}'
              : head.endsWith(':')
                ? head + gen() + (r() < 0.5 ? '}' : ',' + gen().slice(1))
                : head + ',"choices":' + gen() + '}';
          else text = gen();
          if (r() < 0.35) text = mutate(text, r);
          total++;
          const want = truth(text);
          if (want.valid) valid++;
          const got = streamed(s, text);
          if (JSON.stringify(got) !== JSON.stringify(want) && failures.length < 5) failures.push({ stream, k, text, got, want });
        }
      }
      expect(failures).toEqual([]);
      expect(valid).toBeGreaterThan(total * 0.2);
      expect(valid).toBeLessThan(total * 0.9);
    });
  }
});
