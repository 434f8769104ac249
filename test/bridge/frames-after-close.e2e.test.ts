/**
 * A link this gateway closed serves nothing more. Closing a link (operator disconnect, a newer link replacing it,
 * dead peer, backlog full, shutdown) fails its requests at once and the peer learns of it when our close frame
 * reaches it; frames the peer sent before that still arrive while the socket finishes closing (up to 1 s). A
 * forward, agent call or session offer among them must not run: the peer already counts it as failed (its router
 * tries another candidate), so running it would do the work twice, charge the peer for an answer it never gets,
 * and start agent turns nobody waits for.
 */
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Duplex } from 'node:stream';
import { adminGet, channelHealth, startProcess, waitFor, wsUrl } from '../helpers/env.js';
import { helloFrame } from '../fakes/raw-bridge-peer.js';
import { stopAfterAll } from '../helpers/stop-after.js';

const TOKEN = 'frames-after-close-token-5150';
const { trackGateway: track } = stopAfterAll();

interface RawLink {
  ws: WebSocket;
  frames: Array<Record<string, unknown>>;
  closed: Promise<number>;
}

async function rawLink(url: string, id: string): Promise<RawLink> {
  const ws = new WebSocket(wsUrl(url));
  const frames: Array<Record<string, unknown>> = [];
  ws.on('message', (d) => frames.push(JSON.parse(String(d)) as Record<string, unknown>));
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
  ws.send(helloFrame(id, TOKEN));
  await waitFor(() => frames.find((f) => f.type === 'bridge-hello-ok'), `${id}: hello-ok`);
  return { ws, frames, closed };
}

const forward = (requestId: string) =>
  JSON.stringify({
    type: 'bridge-forward',
    requestId,
    targetChannel: 'm',
    payload: { model: 'mock-1', messages: [{ role: 'user', content: requestId }] },
  });

describe('frames that arrive on a link after this gateway closed it', () => {
  it('are not served: a forward sent before the close reached the peer never reaches the channel', async () => {
    const b = track(
      await startProcess({
        gateway: { id: 'gw_fac_b', name: 'server', bridge: { enabled: true, allowedTokens: [TOKEN], shareChannels: ['m'] } },
        channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
      }),
    );
    const late = await rawLink(b.url, 'gw_fac_late');
    // the peer stops reading: B's close frame waits unread, as when it is still on its way
    const socket = (late.ws as unknown as { _socket: Duplex })._socket;
    socket.pause();
    const del = await fetch(`${b.url}/admin/bridges/gw_fac_late`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    await waitFor(
      async () => !(await adminGet<{ peers: Array<{ id: string }> }>(b.url, '/admin/bridges')).peers.some((p) => p.id === 'gw_fac_late'),
      'link gone on B',
    );
    // sent on a link B has closed, before the peer has read the close
    late.ws.send(forward('late-1'));
    socket.resume();
    expect(await late.closed).toBe(4000);
    expect(late.frames.some((f) => f.requestId === 'late-1')).toBe(false);

    // a forward on a new link is served; it is the channel's only request
    const fresh = await rawLink(b.url, 'gw_fac_fresh');
    fresh.ws.send(forward('fresh-1'));
    await waitFor(() => fresh.frames.find((f) => f.type === 'bridge-response' && f.requestId === 'fresh-1'), 'fresh-1 answered');
    expect((await channelHealth(b.url, 'm')).windowRequests).toBe(1);
    fresh.ws.close();
  });
});
