/**
 * Plain-text output for the CLI: tables (header row, aligned columns, no colours: pipes stay clean) and the
 * one writer every command prints through. What a command prints comes from a gateway, and much of it from
 * that gateway's bridge peers (a peer's announced name, its channels' models, its error text): control
 * characters in it are shown escaped (`\u001b`), so no peer can drive the operator's terminal (escape
 * sequences, `\r` rewriting a line, a `\n` faking a table row, bidi overrides reordering text).
 */

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

/** stdout, made printable */
export function out(s: string): void {
  process.stdout.write(printable(s));
}

export function table(headers: string[], rows: Array<Array<string | number | null | undefined>>): string {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined || c === '' ? '-' : printableCell(String(c)))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
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
