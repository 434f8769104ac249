/**
 * A graceful stop finishes when clients hold connections whose WebSocket upgrade the gateway refused: one to a
 * path no upgrade belongs to (404), and one to `/acp` while the gateway drains (503). The refusal ended the socket
 * (a FIN) and nothing more; node's server sockets are half-open ones and node lets go of a socket it hands to
 * 'upgrade' (closeAllConnections no longer reaches it), so a client that kept its side open kept the socket, and
 * the listener's close waited on it for ever: the process never exited. Now the socket is closed once the answer
 * is written, and the stop cuts one still held. The refusals the upgrade handlers make (the bridge's, `/acp`'s) are
 * closed the same way (src/util/refuse-upgrade.ts). Real process; the clients are raw TCP sockets that never end.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { cleanupDirs, startProcess, waitFor, waitForInflight, within } from '../helpers/env.js';
import { exitWithin } from '../helpers/sharing-pair.js';

const ACP = 'stop-refused-upgrade-acp-6c0d2b';
const started: GatewayProcess[] = [];
const clients: Socket[] = [];

afterAll(async () => {
  for (const c of clients) c.destroy();
  await Promise.all(started.map((g) => g.stop()));
  cleanupDirs();
});

/**
 * Asks for a WebSocket upgrade on `path` from a client that never ends its side; resolves with the answer's status
 * line, and `closed`: the gateway closed the socket (not only ended its side).
 */
async function upgradeHalfOpen(url: string, path: string, token = ACP): Promise<{ status: string; closed: Promise<void> }> {
  const { port } = new URL(url);
  const socket = connect({ port: Number(port), host: '127.0.0.1', allowHalfOpen: true });
  clients.push(socket);
  socket.on('error', () => undefined);
  // the gateway's FIN does not end this side; bytes written after it are refused (a reset, then 'close') once the
  // gateway has closed its socket, and taken without a word while it holds it half-open
  let poke: NodeJS.Timeout | undefined;
  socket.once('end', () => (poke = setInterval(() => socket.write('x'), 50)));
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      clearInterval(poke);
      resolve();
    }),
  );
  let head = '';
  const status = await new Promise<string>((resolve, reject) => {
    socket.once('error', reject);
    socket.on('data', (b: Buffer) => {
      head += b.toString('latin1');
      if (head.includes('\r\n')) resolve(head.slice(0, head.indexOf('\r\n')));
    });
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${token}\r\n\r\n`,
    );
  });
  return { status, closed };
}

describe('a graceful stop with refused upgrades held open by their clients', () => {
  it('closes them and ends the process', { timeout: 60_000 }, async () => {
    const g = await startProcess({
      gateway: { id: 'gw_stop_upgrade', shutdownGraceMs: 30_000 },
      channels: [{ name: 'slow', provider: 'mock', models: ['slow-1'], options: { delayMs: 1500 } }],
      acp: { tokens: [ACP] },
    });
    started.push(g);
    const unknown = await upgradeHalfOpen(g.url, '/nope');
    expect(unknown.status).toBe('HTTP/1.1 404 Not Found');
    // the refused socket is closed by the gateway, not left to the client
    await within(unknown.closed, 5_000, 'the gateway to close the refused socket');
    // a request in flight keeps the gateway draining (the listener open) for a while after the signal
    const pending = fetch(`${g.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'slow-1', messages: [{ role: 'user', content: 'hi' }] }),
    });
    await waitForInflight(g.url, 'slow');
    g.proc.kill('SIGTERM');
    await waitFor(async () => (await fetch(`${g.url}/readyz`)).status === 503, 'the gateway draining');
    const draining = await upgradeHalfOpen(g.url, '/acp');
    expect(draining.status).toBe('HTTP/1.1 503 Service Unavailable');
    expect((await pending).status).toBe(200);
    // the request done, the stop goes on (the 30 s grace is not waited out); before, it never ended
    expect(await exitWithin(g, 10_000)).toBe(0);
    await within(draining.closed, 5_000, 'the refused socket closed');
  });

  it('closes the sockets the upgrade handlers refuse too (a bridge not enabled, a wrong /acp token)', { timeout: 60_000 }, async () => {
    const g = await startProcess({
      gateway: { id: 'gw_stop_upgrade_h', shutdownGraceMs: 30_000 },
      channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
      acp: { tokens: [ACP] },
    });
    started.push(g);
    const bridge = await upgradeHalfOpen(g.url, '/bridge');
    expect(bridge.status).toBe('HTTP/1.1 404 Not Found');
    await within(bridge.closed, 5_000, 'the gateway to close the socket the bridge refused');
    const acp = await upgradeHalfOpen(g.url, '/acp', 'not-the-acp-token-123');
    expect(acp.status).toBe('HTTP/1.1 401 Unauthorized');
    await within(acp.closed, 5_000, 'the gateway to close the socket /acp refused');
    g.proc.kill('SIGTERM');
    expect(await exitWithin(g, 10_000)).toBe(0);
  });
});
