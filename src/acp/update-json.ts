/**
 * The JSON of one `session.update`'s params, made once per update and shared: the update log stores it as it is
 * and every stream that carries the update writes it into its envelope (src/http/acp/envelope.ts,
 * `notificationText`). Before, the log serialised each update and every stream serialised its whole envelope,
 * which carries the params twice (`params` and the `payload` mirror): a 1 MiB delta (its text is in `delta`,
 * `text` and `structuredEvent`) cost about 3 MiB for the log plus 6 MiB per stream.
 *
 * Kept in a WeakMap keyed by the params object: it lives as long as the update does (at most until the log's
 * next flush, or while a resume holds it), and an update is never changed after it is emitted.
 */
const made = new WeakMap<object, string>();

export function updateJson(params: Record<string, unknown>): string {
  let json = made.get(params);
  if (json === undefined) {
    json = JSON.stringify(params);
    made.set(params, json);
  }
  return json;
}
