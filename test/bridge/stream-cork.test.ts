/**
 * Frames sent in one turn of the event loop leave in one socket write (`Link.corkTurn`):
 * - A stream B serves for a peer: the chunks of one upstream read leave B in one write, not one per
 *   bridge-stream frame. The upstream writes its whole answer in one corked write, so it reaches B as one read
 *   (or, at worst, a few); B's bridge socket is watched for the writes it makes while A relays the stream, and
 *   A's client still gets every chunk, in order, then [DONE].
 * - Frames sent from different ticks of the same turn (as the forwards of requests that arrived together are:
 *   each is sent from its own request's callback) share one write too.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { adminGet, cleanupDirs, startBridgedPair, waitFor } from '../helpers/env.js';

const TOKEN = 'cork-bridge-token-16180';
const ADMIN = 'cork-admin-token-14142';
const CHUNKS = 20;
const chunk = (i: number) =>
  JSON.stringify({
    id: 'c1',
    object: 'chat.completion.chunk',
    model: 'cork-model',
    choices: [{ index: 0, delta: { content: `w${i} ` }, finish_reason: null }],
  });
const usage = JSON.stringify({
  id: 'c1',
  object: 'chat.completion.chunk',
  model: 'cork-model',
  choices: [],
  usage: { prompt_tokens: 3, completion_tokens: CHUNKS, total_tokens: 3 + CHUNKS },
});

let upstream: Server;
let a: Gateway & { logs: string[] };
let b: Gateway & { logs: string[] };

beforeAll(async () => {
  upstream = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.cork(); // one segment: B gets the whole answer in one read
    for (let i = 0; i < CHUNKS; i++) res.write(`data: ${chunk(i)}\n\n`);
    res.write(`data: ${usage}\n\ndata: [DONE]\n\n`);
    res.end();
    res.uncork();
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const baseUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/v1`;
  ({ a, b } = await startBridgedPair('cork', { provider: 'openai', baseUrl, apiKey: 'sk-up', models: ['cork-model'] }, { token: TOKEN, admin: ADMIN }));
});

afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await new Promise((r) => upstream?.close(r));
  cleanupDirs();
});

/** Counts the writes a link's socket makes until `stop()`. */
function watchWrites(link: unknown): { count: () => number; stop: () => void } {
  const sock = (link as { ws: { _socket: Socket } }).ws._socket;
  let writes = 0;
  const writev = sock._writev!.bind(sock);
  const write = sock._write.bind(sock);
  sock._writev = (chunks, cb) => {
    writes++;
    writev(chunks, cb);
  };
  sock._write = (c, enc, cb) => {
    writes++;
    write(c, enc, cb);
  };
  return {
    count: () => writes,
    stop: () => {
      delete (sock as Partial<Socket>)._writev;
      delete (sock as Partial<Socket>)._write;
    },
  };
}

describe('frames sent in one turn of the event loop', () => {
  it('leave in one socket write, even when each was sent from its own tick', async () => {
    const link = a.mesh.peers()[0]!;
    const w = watchWrites(link);
    try {
      const sent = new Promise<void>((resolve) => {
        // ten frames, each from a different tick of this turn: a nextTick chain and a promise chain interleaved
        let n = 0;
        const ping = () => link.send({ type: 'bridge-ping', ts: Date.now() });
        const viaTick = () => {
          ping();
          if (++n < 5) process.nextTick(viaTick);
        };
        process.nextTick(viaTick);
        void Promise.resolve()
          .then(ping)
          .then(ping)
          .then(ping)
          .then(ping)
          .then(ping)
          .then(() => setImmediate(resolve));
      });
      await sent;
      expect(w.count()).toBe(1);
    } finally {
      w.stop();
    }
  });
});

describe('a stream served to a peer', () => {
  it("leaves B in a few socket writes, not one per chunk, and reaches A's client whole", async () => {
    const links = b.mesh.peers();
    expect(links).toHaveLength(1);
    const w = watchWrites(links[0]);
    try {
      const res = await fetch(`${a.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'cork-model', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] }),
      });
      const events = (await res.text()).split('\n\n').filter((e) => e.startsWith('data: '));
      expect(events.at(-1)).toBe('data: [DONE]');
      const content = events
        .slice(0, -1)
        .map((e) => (JSON.parse(e.slice(6)) as { choices: Array<{ delta: { content?: string } }> }).choices[0]?.delta.content ?? '');
      expect(content.join('')).toBe(Array.from({ length: CHUNKS }, (_, i) => `w${i} `).join(''));
    } finally {
      w.stop();
    }
    // 22 frames (20 chunks, the usage chunk, the stream's end): one write per upstream read, and the end
    expect(w.count()).toBeGreaterThan(0);
    expect(w.count()).toBeLessThanOrEqual(4);
    // A took the relayed usage chunk as text (splitRelayFrame) and still read its usage for its own records
    const u = await waitFor(async () => {
      const r = await adminGet(a.url, '/admin/usage?by=model', ADMIN);
      return r.total?.requests >= 1 ? r : undefined;
    }, 'usage recorded on A');
    expect(u.total).toMatchObject({ requests: 1, inputTokens: 3, outputTokens: CHUNKS });
  });
});
