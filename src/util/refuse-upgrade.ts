/**
 * Answers an upgrade request with an HTTP refusal and closes the socket once the answer is written. Node's server
 * sockets are half-open ones and node lets go of a socket it hands to 'upgrade', so an end alone would leave the
 * socket open for as long as the client keeps its side open: a leak, and a listener's close waiting on it.
 */
import type { Duplex } from 'node:stream';

/** `status`: the status line's code and text (`404 Not Found`); `headers`: more header lines, each ending in CRLF */
export function refuseUpgrade(socket: Duplex, status: string, headers = '', body = ''): void {
  socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\n${headers}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`, () => socket.destroy());
}
