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

// after end() the socket may already serve the next request: only uncork a response still open
function uncork(res: ServerResponse): void {
  if (!res.writableEnded) res.uncork();
}

/**
 * Writes to a streaming response, corked until the end of the current tick: what is written in one tick (the
 * events of one upstream read, then the end) leaves in one syscall, and nothing waits for later I/O. False
 * when the client's buffer is full (wait for 'drain').
 */
export function writeSse(res: ServerResponse, text: string): boolean {
  if (res.writableCorked === 0) {
    res.cork();
    process.nextTick(uncork, res);
  }
  return res.write(text);
}
