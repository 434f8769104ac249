/**
 * A validating JSON scanner for the streamed-chunk hot path: one pass that accepts exactly what
 * JSON.parse accepts (RFC 8259 / ECMA-404: objects, arrays, strings with every escape incl. \uXXXX and lone
 * surrogates, the exact number grammar, true/false/null, the four whitespace characters, nothing after the
 * value) and records, for the top-level object only, the members the gateway acts on. It builds no objects and
 * no strings, so an ordinary content chunk costs one pass over its text and nothing for the collector.
 *
 * Contract (test/wire/json-scan.test.ts checks it against JSON.parse on a table and a seeded fuzz):
 * - `valid` is true iff JSON.parse(text) would succeed and the value nests at most MAX_VALUE_DEPTH
 *   (src/wire/json-depth.ts) deep: past that (`tooDeep`) the gateway would serialise parts of it again.
 * - The member fields describe `JSON.parse(text)` when that is a plain object: `choices`, `usage`, `error` as
 *   JSON.parse would see them, i.e. the LAST occurrence of a repeated key wins, and keys are compared after
 *   unescaping (`"\u0063hoices"` is `choices`), without allocating.
 * - Nesting deeper than MAX_DEPTH is handed to JSON.parse (V8's is iterative, so it agrees at any depth); the
 *   scanner's own stack stays bounded. That path allocates; no real chunk takes it.
 * - String bodies without escapes or control characters are skipped natively (indexOf, a sticky regex), not
 *   walked; StreamJsonScan (at the end) resumes after a prefix the stream's chunks share. Its learning scans
 *   (a stream's first chunks, and after the shape changes) allocate a few short slices; resumed scans do not.
 *
 * Over 400 lines on purpose: one automaton, and the per-stream checkpoints resume it from saved state, so they
 * share its private stack and entry point rather than export them.
 */

import { MAX_VALUE_DEPTH, pathDeeperThan } from './json-depth.js';

/** How deep the scanner follows containers itself before handing the text to JSON.parse. */
export const MAX_DEPTH = 128;

export type UsageKind = 'absent' | 'null' | 'object' | 'other';

/** One scan's findings. Reuse one instance per stream: scanJson overwrites every field. */
export class JsonScan {
  /** JSON.parse(text) would succeed, and the value nests at most MAX_VALUE_DEPTH deep */
  valid = false;
  /** not valid only for nesting past MAX_VALUE_DEPTH */
  tooDeep = false;
  /** the value is an object (not an array, string, number, literal) */
  object = false;
  /** top-level `choices` exists and is an array */
  choicesArray = false;
  /** …and that array has no elements (meaningful when choicesArray) */
  choicesEmpty = false;
  /** what top-level `usage` is; an array counts as 'other' */
  usage: UsageKind = 'absent';
  /** [usageStart, usageEnd) is the usage object's text, when usage is 'object' and came from the scan */
  usageStart = -1;
  usageEnd = -1;
  /** top-level `error` exists and is not null */
  error = false;
  /** the usage object when the deep-nesting fallback parsed the whole text (then usageStart is -1) */
  usageValue: unknown = undefined;

  /** The usage object ('object' only): its slice parsed, or the fallback's value. */
  usageOf(text: string): unknown {
    if (this.usage !== 'object') return undefined;
    return this.usageStart >= 0 ? JSON.parse(text.slice(this.usageStart, this.usageEnd)) : this.usageValue;
  }
}

const OBJ = 1;
const ARR = 2;
/** Container kinds by depth; module-level because a scan is synchronous and never re-entered. */
const stack = new Uint8Array(MAX_DEPTH + 1);

// Members of the top-level object the scan reports.
const M_NONE = 0;
const M_CHOICES = 1;
const M_USAGE = 2;
const M_ERROR = 3;

/** Scans `text` into `out` and returns `out.valid`. */
export function scanJson(text: string, out: JsonScan): boolean {
  reset(out);
  return run(text, out, 0, 0, M_NONE, 0, false);
}

function reset(out: JsonScan): void {
  out.valid = false;
  out.object = false;
  out.choicesArray = false;
  out.choicesEmpty = false;
  out.usage = 'absent';
  out.usageStart = -1;
  out.usageEnd = -1;
  out.error = false;
  out.usageValue = undefined;
  out.tooDeep = false;
}

/**
 * The scan proper, from a state: `i` where a value (or whitespace before it) starts, `depth` open containers
 * whose kinds are in `stack`, the top-level member whose value is being read (if any), and the findings so far
 * in `out`. With `learn`, every such state is also written to the checkpoint table (StreamJsonScan).
 */
function run(text: string, out: JsonScan, i: number, depth: number, member: number, memberStart: number, learn: boolean): boolean {
  special = -1;
  const n = text.length;
  let c: number;

  // Each turn parses one value starting at i (whitespace already skipped), then closes what it can.
  for (;;) {
    if (learn) checkpoint(i, depth, member, memberStart, out);
    while (i < n && ((c = text.charCodeAt(i)) === 32 || c === 10 || c === 13 || c === 9)) i++;
    if (i >= n) return false;
    c = text.charCodeAt(i);
    if (c === 123 /* { */ || c === 91 /* [ */) {
      if (depth === MAX_DEPTH) return fallback(text, out);
      if (depth === 0 && c === 123) out.object = true;
      stack[depth++] = c === 123 ? OBJ : ARR;
      i++;
      while (i < n && ((c = text.charCodeAt(i)) === 32 || c === 10 || c === 13 || c === 9)) i++;
      if (i >= n) return false;
      if (c === (stack[depth - 1] === OBJ ? 125 : 93)) {
        depth--;
        i++;
      } else if (stack[depth - 1] === OBJ) {
        i = key(text, i, depth, out);
        if (i < 0) return false;
        if (keyMember !== M_NONE) {
          member = keyMember;
          memberStart = keyValueStart;
        }
        continue;
      } else {
        continue;
      }
    } else if (c === 34 /* " */) {
      i = string(text, i + 1);
      if (i < 0) return false;
    } else if (c === 45 /* - */ || (c >= 48 && c <= 57)) {
      i = number(text, i);
      if (i < 0) return false;
    } else if (c === 116 /* t */) {
      if (text.charCodeAt(i + 1) !== 114 || text.charCodeAt(i + 2) !== 117 || text.charCodeAt(i + 3) !== 101) return false;
      i += 4;
    } else if (c === 102 /* f */) {
      if (text.charCodeAt(i + 1) !== 97 || text.charCodeAt(i + 2) !== 108 || text.charCodeAt(i + 3) !== 115 || text.charCodeAt(i + 4) !== 101) return false;
      i += 5;
    } else if (c === 110 /* n */) {
      if (text.charCodeAt(i + 1) !== 117 || text.charCodeAt(i + 2) !== 108 || text.charCodeAt(i + 3) !== 108) return false;
      i += 4;
    } else {
      return false;
    }

    // A value ended at i. Close containers until one continues with a comma, or the text ends.
    for (;;) {
      if (member !== M_NONE && depth === 1) {
        record(text, member, memberStart, i, out);
        member = M_NONE;
      }
      while (i < n && ((c = text.charCodeAt(i)) === 32 || c === 10 || c === 13 || c === 9)) i++;
      if (depth === 0) {
        if (i !== n) return false;
        out.valid = true;
        return true;
      }
      if (i >= n) return false;
      const top = stack[depth - 1];
      if (c === 44 /* , */) {
        i++;
        if (top === OBJ) {
          while (i < n && ((c = text.charCodeAt(i)) === 32 || c === 10 || c === 13 || c === 9)) i++;
          i = key(text, i, depth, out);
          if (i < 0) return false;
          if (keyMember !== M_NONE) {
            member = keyMember;
            memberStart = keyValueStart;
          }
        }
        break;
      }
      if (c !== (top === OBJ ? 125 : 93)) return false;
      depth--;
      i++;
    }
  }
}

// key()'s second and third results (module-level, like the stack: no tuple per key).
let keyMember = M_NONE;
let keyValueStart = 0;

/**
 * Parses `"key" :` at i (whitespace before the key already skipped) and returns the index after the colon, or
 * -1. Sets keyMember to the member it names when it is in the top-level object, and keyValueStart to where its
 * value starts (after whitespace).
 */
function key(text: string, i: number, depth: number, out: JsonScan): number {
  const n = text.length;
  if (i >= n || text.charCodeAt(i) !== 34) return -1;
  const start = i + 1;
  const end = string(text, start);
  if (end < 0) return -1;
  keyMember = depth === 1 && out.object ? memberOf(text, start, end - 1) : M_NONE;
  i = end;
  let c = 0;
  while (i < n && ((c = text.charCodeAt(i)) === 32 || c === 10 || c === 13 || c === 9)) i++;
  if (i >= n || c !== 58 /* : */) return -1;
  i++;
  while (i < n && ((c = text.charCodeAt(i)) === 32 || c === 10 || c === 13 || c === 9)) i++;
  keyValueStart = i;
  return i;
}

/** Which reported member the raw key text [s, e) names (escapes decoded), or M_NONE. */
function memberOf(text: string, s: number, e: number): number {
  const len = e - s;
  if (len === 7 && equalsAt(text, s, 'choices')) return M_CHOICES;
  if (len === 5) {
    if (equalsAt(text, s, 'usage')) return M_USAGE;
    if (equalsAt(text, s, 'error')) return M_ERROR;
    return M_NONE;
  }
  // An escaped spelling is longer than the plain one; only then is decoding worth it.
  const backslash = len > 5 ? text.indexOf('\\', s) : -1;
  if (backslash !== -1 && backslash < e) {
    if (escapedEquals(text, s, e, 'choices')) return M_CHOICES;
    if (escapedEquals(text, s, e, 'usage')) return M_USAGE;
    if (escapedEquals(text, s, e, 'error')) return M_ERROR;
  }
  return M_NONE;
}

/** text.startsWith(word, s) for a short word, without the builtin's per-call cost. */
function equalsAt(text: string, s: number, word: string): boolean {
  for (let k = 0; k < word.length; k++) if (text.charCodeAt(s + k) !== word.charCodeAt(k)) return false;
  return true;
}

/** Whether the (already validated) escaped string body [s, e) decodes to `want`. */
function escapedEquals(text: string, s: number, e: number, want: string): boolean {
  let k = 0;
  let i = s;
  while (i < e) {
    let c = text.charCodeAt(i++);
    if (c === 92) {
      const x = text.charCodeAt(i++);
      if (x === 117 /* u */) {
        c = parseInt4(text, i);
        i += 4;
      } else {
        c = x === 98 ? 8 : x === 102 ? 12 : x === 110 ? 10 : x === 114 ? 13 : x === 116 ? 9 : x; // \b \f \n \r \t, or \" \\ \/
      }
    }
    if (k >= want.length || c !== want.charCodeAt(k++)) return false;
  }
  return k === want.length;
}

function hex(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

function parseInt4(text: string, i: number): number {
  return (hex(text.charCodeAt(i)) << 12) | (hex(text.charCodeAt(i + 1)) << 8) | (hex(text.charCodeAt(i + 2)) << 4) | hex(text.charCodeAt(i + 3));
}

/**
 * A run of characters that are neither backslashes nor control characters: the only characters a string body
 * needs a second look at. Sticky, so `lastIndex` after a test is where the run ends (V8 runs a negated class
 * loop like this several times faster than a search for the class).
 */
// eslint-disable-next-line no-control-regex -- JSON strings must not hold raw control characters: this finds them
const PLAIN_RUN = /[^\u0000-\u001f\\]*/y;
/**
 * Where the next backslash or control character is, at or after the last place it was looked for
 * (text.length when there is none); -1 before the first string of a scan. Module-level like the stack.
 */
let special = -1;

/**
 * Scans a string body from i (just after the opening quote); returns the index after the closing quote, or -1.
 * Most string bodies have neither escapes nor control characters: then the closing quote is the next `"`,
 * found by indexOf, and the body is not walked character by character. The next special position is looked
 * up by one native regex match and reused until the scan passes it.
 */
function string(text: string, i: number): number {
  if (special < i) {
    PLAIN_RUN.lastIndex = i;
    PLAIN_RUN.test(text);
    special = PLAIN_RUN.lastIndex;
  }
  const q = text.indexOf('"', i);
  if (q === -1) return -1;
  if (q < special) return q + 1;
  // [i, special) is plain and the closing quote is not before `special`: walk on from there
  return walkString(text, special, q);
}

/**
 * string() from i, a backslash or control character, for bodies with escapes or control characters: each
 * escape is checked character by character, and the plain runs between them are skipped natively (PLAIN_RUN,
 * and indexOf for the closing quote, looked up again only once the scan has passed `q`, the next `"` known),
 * so a long text with a newline every line costs a native call per escape rather than a step per character.
 */
function walkString(text: string, i: number, q: number): number {
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 34) return i + 1;
    if (c < 32) return -1;
    if (c === 92) {
      if (i + 1 >= n) return -1;
      const x = text.charCodeAt(i + 1);
      if (x === 117 /* u */) {
        if (i + 5 >= n) return -1;
        if (hex(text.charCodeAt(i + 2)) < 0 || hex(text.charCodeAt(i + 3)) < 0 || hex(text.charCodeAt(i + 4)) < 0 || hex(text.charCodeAt(i + 5)) < 0) return -1;
        i += 6;
        continue;
      }
      // \" \\ \/ \b \f \n \r \t
      if (x !== 34 && x !== 92 && x !== 47 && x !== 98 && x !== 102 && x !== 110 && x !== 114 && x !== 116) return -1;
      i += 2;
      continue;
    }
    // a plain run from i: it ends at the next backslash or control character (or the end of the text)
    PLAIN_RUN.lastIndex = i;
    PLAIN_RUN.test(text);
    const end = PLAIN_RUN.lastIndex;
    if (q < i) {
      q = text.indexOf('"', i);
      if (q === -1) return -1;
    }
    if (q < end) return q + 1;
    i = end;
  }
  return -1;
}

/** Scans `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?` at i; returns the index after it, or -1. */
function number(text: string, i: number): number {
  const n = text.length;
  let c = text.charCodeAt(i);
  if (c === 45) {
    if (++i >= n) return -1;
    c = text.charCodeAt(i);
  }
  if (c === 48) {
    i++;
  } else if (c >= 49 && c <= 57) {
    i++;
    while (i < n && (c = text.charCodeAt(i)) >= 48 && c <= 57) i++;
  } else {
    return -1;
  }
  if (i < n && text.charCodeAt(i) === 46 /* . */) {
    i++;
    const digits = i;
    while (i < n && (c = text.charCodeAt(i)) >= 48 && c <= 57) i++;
    if (i === digits) return -1;
  }
  if (i < n && ((c = text.charCodeAt(i)) === 101 || c === 69)) {
    i++;
    if (i < n && ((c = text.charCodeAt(i)) === 43 || c === 45)) i++;
    const digits = i;
    while (i < n && (c = text.charCodeAt(i)) >= 48 && c <= 57) i++;
    if (i === digits) return -1;
  }
  return i;
}

/** Records a top-level member whose (valid) value is text [s, e). Later occurrences overwrite: last wins. */
function record(text: string, member: number, s: number, e: number, out: JsonScan): void {
  const c = text.charCodeAt(s);
  if (member === M_CHOICES) {
    out.choicesArray = c === 91;
    if (c === 91) {
      let j = s + 1;
      let d: number;
      while ((d = text.charCodeAt(j)) === 32 || d === 10 || d === 13 || d === 9) j++;
      out.choicesEmpty = d === 93;
    } else {
      out.choicesEmpty = false;
    }
  } else if (member === M_USAGE) {
    out.usage = c === 123 ? 'object' : c === 110 ? 'null' : 'other';
    out.usageStart = c === 123 ? s : -1;
    out.usageEnd = c === 123 ? e : -1;
  } else {
    out.error = c !== 110;
  }
}

/**
 * Too deep for the scanner's stack: JSON.parse decides, and the findings come from its object. A value nested
 * past MAX_VALUE_DEPTH is refused (`tooDeep`): the gateway would serialise its parts again on some paths.
 */
function fallback(text: string, out: JsonScan): boolean {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    out.valid = false;
    return false;
  }
  reset(out);
  if (pathDeeperThan(v, MAX_VALUE_DEPTH)) {
    out.valid = false;
    out.tooDeep = true;
    return false;
  }
  out.valid = true;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return true;
  const o = v as { choices?: unknown; usage?: unknown; error?: unknown };
  out.object = true;
  out.choicesArray = Array.isArray(o.choices);
  out.choicesEmpty = Array.isArray(o.choices) && o.choices.length === 0;
  const u = o.usage;
  out.usage = u === undefined ? 'absent' : u === null ? 'null' : typeof u === 'object' && !Array.isArray(u) ? 'object' : 'other';
  out.usageValue = out.usage === 'object' ? u : undefined;
  out.error = o.error !== undefined && o.error !== null;
  return true;
}

// ---- prefix checkpoints, for a stream of similar chunks ----------------------------------------------------

/**
 * Per-stream scanner. Chunks of one stream repeat a long prefix (`{"id":"chatcmpl-…","object":…,"model":…,
 * "choices":[{"index":0,"delta":{"content":` is about 250 of a 340-character OpenAI chunk). The scan is a
 * deterministic left-to-right automaton, so two texts with the same prefix are in the same state after it:
 * having validated one chunk in full, the scanner keeps the state at a value start inside the prefix it shared
 * with the chunk before, and the prefix text up to and including that value's first character. A later chunk
 * that begins with that prefix (one native compare) resumes from the saved state; the rest of it is scanned as
 * usual, so every character of every chunk is still checked. Anything else is scanned in full. The saved state
 * is all the scan carries: position, open containers, the top-level member being read, findings so far.
 */
export class StreamJsonScan extends JsonScan {
  /** the validated prefix, through the first character of the checkpoint's value; '' when there is none */
  private prefix = '';
  private prev = '';
  /** full scans still to do (each may pick a better checkpoint), before trusting the prefix */
  private learning = 3;
  /** plain scans left before learning again, when learning found no shared prefix */
  private plain = PLAIN_SCANS;
  private cpPos = 0;
  private cpDepth = 0;
  /** open containers at the checkpoint: bit d set when depth d is an object */
  private cpStack = 0;
  private cpMember = M_NONE;
  private cpMemberStart = 0;
  private cpFlags = 0;
  private cpUsageStart = -1;
  private cpUsageEnd = -1;

  /** Scans `text` (a whole chunk), filling the findings; returns `valid`. */
  scan(text: string): boolean {
    if (this.learning === 0) {
      // a slice compared with === is the cheapest test of a prefix in V8 (measured per call on a 160-character
      // chunk prefix: ~50 ns, against ~77 for lastIndexOf(p, 0), which calls into the runtime, and ~105 for
      // startsWith, which walks characters)
      const p = this.prefix;
      if (p.length > 0 && text.length >= p.length && text.slice(0, p.length) === p) {
        this.prev = text;
        return this.resume(text);
      }
      if (this.prefix.length === 0 && this.plain > 0) {
        // Chunks that share no prefix: scan plainly for a while rather than pay for learning on every one.
        this.plain--;
        this.prev = text;
        reset(this);
        return run(text, this, 0, 0, M_NONE, 0, false);
      }
      this.learning = 2; // the shape moved (say, `created` ticked): learn from the next chunks again
      this.plain = PLAIN_SCANS;
    }
    reset(this);
    cpCount = 0;
    const ok = run(text, this, 0, 0, M_NONE, 0, true);
    if (ok) {
      if (this.prev.length > 0) this.choose(text);
      this.prev = text;
      this.learning--;
    }
    return ok;
  }

  private resume(text: string): boolean {
    const f = this.cpFlags;
    this.valid = false;
    this.object = (f & F_OBJECT) !== 0;
    this.choicesArray = (f & F_CHOICES_ARRAY) !== 0;
    this.choicesEmpty = (f & F_CHOICES_EMPTY) !== 0;
    this.error = (f & F_ERROR) !== 0;
    this.usage = USAGE_KINDS[(f >> 4) & 3]!;
    this.usageStart = this.cpUsageStart;
    this.usageEnd = this.cpUsageEnd;
    this.usageValue = undefined;
    for (let d = 0; d < this.cpDepth; d++) stack[d] = (this.cpStack >> d) & 1 ? OBJ : ARR;
    return run(text, this, this.cpPos, this.cpDepth, this.cpMember, this.cpMemberStart, false);
  }

  /**
   * Picks the last checkpoint of this (valid, fully scanned) text whose prefix, through the first character of
   * its value, the previous chunk shares. Prefixes only grow with the checkpoint, so a binary search over the
   * checkpoints with native compares finds it (a few short-lived slices, on learning scans only).
   */
  private choose(text: string): void {
    const prev = this.prev;
    let lo = 0;
    let hi = cpCount - 1;
    let k = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const end = cps[mid * CP_FIELDS]! + 1;
      if (end <= prev.length && end <= text.length && prev.lastIndexOf(text.slice(0, end), 0) === 0) {
        k = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    if (k < 0 || cps[k * CP_FIELDS]! === 0) {
      this.prefix = '';
      return;
    }
    const b = k * CP_FIELDS;
    this.cpPos = cps[b]!;
    this.cpDepth = cps[b + 1]!;
    this.cpStack = cps[b + 2]!;
    this.cpMember = cps[b + 3]!;
    this.cpMemberStart = cps[b + 4]!;
    this.cpFlags = cps[b + 5]!;
    this.cpUsageStart = cps[b + 6]!;
    this.cpUsageEnd = cps[b + 7]!;
    this.prefix = text.slice(0, this.cpPos + 1);
  }
}

/** How many chunks are scanned plainly after learning found no prefix, before learning is tried again. */
const PLAIN_SCANS = 16;
const F_OBJECT = 1;
const F_CHOICES_ARRAY = 2;
const F_CHOICES_EMPTY = 4;
const F_ERROR = 8;
const USAGE_KINDS: readonly UsageKind[] = ['absent', 'null', 'object', 'other'];

/** Checkpoints of the current learning scan: CP_FIELDS int32s each (module-level scratch, like the stack). */
const CP_MAX = 256;
const CP_FIELDS = 8;
const cps = new Int32Array(CP_MAX * CP_FIELDS);
let cpCount = 0;

function checkpoint(i: number, depth: number, member: number, memberStart: number, out: JsonScan): void {
  if (cpCount === CP_MAX || depth > 30) return;
  let mask = 0;
  for (let d = 0; d < depth; d++) if (stack[d] === OBJ) mask |= 1 << d;
  const b = cpCount++ * CP_FIELDS;
  cps[b] = i;
  cps[b + 1] = depth;
  cps[b + 2] = mask;
  cps[b + 3] = member;
  cps[b + 4] = memberStart;
  cps[b + 5] =
    (out.object ? F_OBJECT : 0) |
    (out.choicesArray ? F_CHOICES_ARRAY : 0) |
    (out.choicesEmpty ? F_CHOICES_EMPTY : 0) |
    (out.error ? F_ERROR : 0) |
    (USAGE_KINDS.indexOf(out.usage) << 4);
  cps[b + 6] = out.usageStart;
  cps[b + 7] = out.usageEnd;
}
