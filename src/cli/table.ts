/**
 * Plain-text output for the CLI: tables (header row, aligned columns, no colours: pipes stay clean) and the
 * one writer every command prints through. What a command prints comes from a gateway, and much of it from
 * that gateway's bridge peers (a peer's announced name, its channels' models, its error text): control
 * characters in it are shown escaped (`\u001b`), so no peer can drive the operator's terminal (escape
 * sequences, `\r` rewriting a line, a `\n` faking a table row, bidi overrides reordering text).
 */

import { secrets } from '../util/redact.js';

/** C0 controls, DEL, C1 controls (a terminal may take U+009B as CSI), bidi embeddings, overrides and isolates */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
// eslint-disable-next-line no-control-regex -- as above
const CONTROL_BUT_NEWLINE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
const escapeChar = (c: string) => (c === '\r' ? '\\r' : c === '\n' ? '\\n' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/** One table cell or line: every control character escaped, newlines too. */
export function printableCell(s: string): string {
  return s.replace(CONTROL, escapeChar);
}

/** Whole output (JSON included: an escape inside a JSON string is still that string): controls but `\n` escaped. */
export function printable(s: string): string {
  return s.replace(CONTROL_BUT_NEWLINE, escapeChar);
}

/** stdout, made printable, with the secrets this process knows (the token it sends: remote.ts) scrubbed */
export function out(s: string): void {
  process.stdout.write(printable(secrets.scrub(s)));
}

/**
 * `out`, except for `shown`: the one secret the command exists to print (a key's new secret, on create and rotate),
 * which has a key secret's shape and would be scrubbed with the rest. Every other part of `s` is scrubbed as `out`
 * scrubs it.
 */
export function outShowing(s: string, shown: string): void {
  process.stdout.write(
    s
      .split(shown)
      .map((part) => printable(secrets.scrub(part)))
      .join(printable(shown)),
  );
}

/** marks drawn on the character before them (accents, skin tones), joiners and variation selectors: no column of their own */
const ZERO_WIDTH = /^(?:\p{Mn}|\p{Me}|\p{Variation_Selector}|\p{Emoji_Modifier}|[\u200b-\u200f\u2060])$/u;
/** East Asian wide and fullwidth characters, and emoji drawn as emoji by default: two columns in a terminal */
const WIDE =
  /^(?:\p{Emoji_Presentation}|[\u{1100}-\u{115f}\u{2e80}-\u{303e}\u{3041}-\u{33ff}\u{3400}-\u{4dbf}\u{4e00}-\u{9fff}\u{a000}-\u{a4cf}\u{ac00}-\u{d7a3}\u{f900}-\u{faff}\u{fe30}-\u{fe4f}\u{ff00}-\u{ff60}\u{ffe0}-\u{ffe6}\u{20000}-\u{3fffd}])$/u;

/** How many terminal columns `s` takes (by code point, not UTF-16 unit: a CJK name is twice its length). */
export function displayWidth(s: string): number {
  let w = 0;
  for (const ch of s) w += ZERO_WIDTH.test(ch) ? 0 : WIDE.test(ch) ? 2 : 1;
  return w;
}

export function table(headers: string[], rows: Array<Array<string | number | null | undefined>>): string {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined || c === '' ? '-' : printableCell(String(c)))));
  const widths = headers.map((h, i) => Math.max(displayWidth(h), ...cells.map((r) => displayWidth(r[i]!))));
  const line = (r: string[]) =>
    r
      .map((c, i) => c + ' '.repeat(widths[i]! - displayWidth(c)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...cells.map(line)].join('\n') + '\n';
}

export function ago(iso: string): string {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}
