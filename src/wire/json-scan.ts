/**
 * A validating JSON scanner for the streamed-chunk hot path: one charCodeAt pass that accepts exactly what
 * JSON.parse accepts (RFC 8259 / ECMA-404: objects, arrays, strings with every escape incl. \uXXXX and lone
 * surrogates, the exact number grammar, true/false/null, the four whitespace characters, nothing after the
 * value) and records, for the top-level object only, the members the gateway acts on. It builds no objects and
 * no strings, so an ordinary content chunk costs a pass over its text and nothing for the collector.
 *
 * Contract (test/wire/json-scan.test.ts checks it against JSON.parse on a table and a seeded fuzz):
 * - `valid` is true iff JSON.parse(text) would succeed.
 * - The member fields describe `JSON.parse(text)` when that is a plain object: `choices`, `usage`, `error` as
 *   JSON.parse would see them, i.e. the LAST occurrence of a repeated key wins, and keys are compared after
 *   unescaping (`"\u0063hoices"` is `choices`), without allocating.
 * - Nesting deeper than MAX_DEPTH is handed to JSON.parse (V8's is iterative, so it agrees at any depth); the
 *   scanner's own stack stays bounded. That is the only path that allocates, and no real chunk takes it.
 */

/** How deep the scanner follows containers itself before handing the text to JSON.parse. */
export const MAX_DEPTH = 128;

export type UsageKind = 'absent' | 'null' | 'object' | 'other';

/** One scan's findings. Reuse one instance per stream: scanJson overwrites every field. */
export class JsonScan {
  /** JSON.parse(text) would succeed */
  valid = false;
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
  out.valid = false;
  out.object = false;
  out.choicesArray = false;
  out.choicesEmpty = false;
  out.usage = 'absent';
  out.usageStart = -1;
  out.usageEnd = -1;
  out.error = false;
  out.usageValue = undefined;

  const n = text.length;
  let i = 0;
  let depth = 0;
  let member = M_NONE;
  let memberStart = 0;
  let c: number;

  // Each turn parses one value starting at i (whitespace already skipped), then closes what it can.
  for (;;) {
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
      if (!text.startsWith('true', i)) return false;
      i += 4;
    } else if (c === 102 /* f */) {
      if (!text.startsWith('false', i)) return false;
      i += 5;
    } else if (c === 110 /* n */) {
      if (!text.startsWith('null', i)) return false;
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
  if (len === 7 && text.startsWith('choices', s)) return M_CHOICES;
  if (len === 5) {
    if (text.startsWith('usage', s)) return M_USAGE;
    if (text.startsWith('error', s)) return M_ERROR;
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

/** Scans a string body from i (just after the opening quote); returns the index after the closing quote, or -1. */
function string(text: string, i: number): number {
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
    i++;
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

/** Too deep for the scanner's stack: JSON.parse decides, and the findings come from its object. */
function fallback(text: string, out: JsonScan): boolean {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
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
