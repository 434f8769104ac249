/** A TCP relay that holds the connections it accepts: a dial across a slow network, or one still retrying. */
import net from 'node:net';

/**
 * A TCP relay to `target` port (127.0.0.1) that holds every connection it accepts, unanswered, until `release()`: what
 * a dial across a slow network, or one still retrying, looks like to the gateway that dials. `backMs`: what the target
 * sends back reaches the dialler that much later (in order), as over a slow path. The relay's server is pushed to
 * `servers`, for the test to close at its end.
 */
export async function heldRelay(target: number, backMs: number, servers: net.Server[]): Promise<{ port: number; held: () => number; release: () => void }> {
  const waiting: net.Socket[] = [];
  let released = false;
  const pipe = (client: net.Socket) => {
    const up = net.connect(target, '127.0.0.1');
    client.pipe(up);
    if (backMs === 0) up.pipe(client);
    else up.on('data', (chunk: Buffer) => setTimeout(() => client.destroyed || client.write(chunk), backMs));
    const end = () => {
      client.destroy();
      up.destroy();
    };
    client.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
  };
  const server = net.createServer((client) => {
    if (released) return pipe(client);
    client.pause();
    waiting.push(client);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    held: () => waiting.length,
    release: () => {
      released = true;
      for (const c of waiting.splice(0)) {
        pipe(c);
        c.resume();
      }
    },
  };
}
