/** A plain JSON object (not null, not an array): the first check on any untrusted parsed JSON. */
export function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
