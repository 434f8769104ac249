import type { ServerResponse } from 'node:http';

/**
 * Starts a server-sent-events response: the SSE headers (plus `headers`), proxies told not to buffer, and Nagle
 * off on the socket so each event goes out as it is written. Every streaming surface starts its response here.
 */
export function startSse(res: ServerResponse, headers: Record<string, string>): void {
  res.socket?.setNoDelay(true);
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
    ...headers,
  });
}
