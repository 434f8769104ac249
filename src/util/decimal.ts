/**
 * A whole number written in decimal digits only, as text from outside (a query parameter, a command-line flag):
 * `Number()` would also take `0x10` (16), `1e3` (1000), ` 5`, `+3`, `3.0` and `-0`. At most 16 digits, so the
 * result is exact or past Number.MAX_SAFE_INTEGER (the caller's safe-integer check refuses it). NaN for anything else.
 */
export function decimalInt(text: string): number {
  return /^\d{1,16}$/.test(text) ? Number(text) : NaN;
}
