/**
 * An answer that never ends, for the tests of what a reader holds of one: `prefix`, then `piece` again and again,
 * written as fast as the reader takes it (waiting for 'drain'), until the reader closes the connection. The
 * returned promise resolves then, with the bytes written (what the reader took plus what the sockets' buffers
 * held), so a test can check the reader let go.
 */
import type { ServerResponse } from 'node:http';

export function writeEndless(res: ServerResponse, prefix: string, piece: string): Promise<number> {
  let written = prefix.length;
  const closed = new Promise<number>((resolve) => res.once('close', () => resolve(written)));
  res.write(prefix);
  const pump = (): void => {
    while (!res.destroyed && res.write(piece)) written += piece.length;
    if (!res.destroyed) {
      written += piece.length; // the write that filled the buffer was taken too
      res.once('drain', pump);
    }
  };
  pump();
  return closed;
}
