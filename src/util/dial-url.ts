/**
 * The URL a WebSocket is dialled with (a bridge's, an OpenClaw gateway's), made from the URL as configured.
 *
 * - Its fragment is dropped: a fragment is never sent, and ws refuses to dial a URL that has one (RFC 6455 forbids it
 *   in a WebSocket URI) by throwing from its constructor: a gateway with `…/bridge#dc` in its config died at its first
 *   dial, and an OpenClaw URL with a fragment failed every connect as an internal error. Shown URLs drop it too
 *   (redactUrl).
 * - It is handed to ws parsed, so ws does not parse the text itself: its error for text that does not parse quotes
 *   it (`Invalid URL: <the text>`), credentials and all. Such text gives `undefined` here, for the caller to refuse in
 *   words of its own (the config schema and `mesh.connect` refuse it before it comes here).
 */
export function dialUrl(url: string): URL | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  u.hash = '';
  return u;
}
