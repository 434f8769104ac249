/**
 * A graceful stop is not held by clients that stopped reading. Before, a response counted as in flight until its
 * last byte had left for the kernel, so a client that stopped reading with the kernel's buffers full (an `/acp/rpc`
 * stream, a large `/v1` answer) held the stop for the whole grace period, though nothing more was to be done for it;
 * and a status page's `/ui/events` stream ended only at its next snapshot (up to `interval`, 10 s, later). Now
 * `/ui/events` ends when the stop begins, and during a stop a response whose end is written but whose client takes
 * nothing of it for a second is cut. A client that reads gets its whole stream. Real processes, raw sockets whose
 * read side is paused.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { adminGet, startProcess, tmpDir, waitFor } from '../helpers/env.js';
import { selfSigned } from '../helpers/tls.js';
import { exitWithin } from '../helpers/sharing-pair.js';

const FAKE = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const ACP = 'stop-unread-acp-token-4c1f';
/** longer than any of these tests may take: a stop that waits for the grace fails them */
const GRACE_MS = 30_000;
const MIB = 1024 * 1024;
const started: GatewayProcess[] = [];
const sockets: Socket[] = [];

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(started.map((g) => g.stop()));
});

async function gateway(extra: Record<string, unknown> = {}): Promise<GatewayProcess> {
  const g = await startProcess({
    gateway: { id: 'gw_unread', shutdownGraceMs: GRACE_MS },
    // embeddings of 8192 dimensions: 512 of them are a ~22 MiB answer (base64), more than the kernel's buffers take
    // for a client that does not read
    channels: [{ name: 'big', provider: 'mock', models: ['big-1'], options: { embeddingDims: 8192 } }],
    acp: {
      tokens: [ACP],
      // a stream is not cut as too slow here: what is tested is the stop
      maxStreamBacklogBytes: 256 * MIB,
      agents: [{ id: 'fake', label: 'Fake', command: process.execPath, args: [FAKE], permissions: 'allow' }],
    },
    ...extra,
  });
  started.push(g);
  return g;
}

/**
 * A client that sends its request, reads the first bytes of the answer (so the answer has begun), then stops
 * reading: its socket's read side stays paused, the kernel's buffers fill up.
 */
async function nonReader(g: GatewayProcess, method: string, path: string, headers: Record<string, string>, body = '', ca?: string): Promise<Socket> {
  const { port } = new URL(g.url);
  const socket: Socket = ca ? tlsConnect({ port: Number(port), host: '127.0.0.1', ca }) : connect(Number(port), '127.0.0.1');
  sockets.push(socket);
  socket.on('error', () => undefined);
  const head = Object.entries({ host: `127.0.0.1:${port}`, 'content-length': String(Buffer.byteLength(body)), ...headers })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  const first = new Promise<string>((resolve) => socket.once('data', (b: Buffer) => (socket.pause(), resolve(b.toString('latin1')))));
  socket.write(`${method} ${path} HTTP/1.1\r\n${head}\r\n${body}`);
  expect((await first).startsWith('HTTP/1.1 200')).toBe(true);
  return socket;
}

const rpc = (id: string, method: string, params: Record<string, unknown>) => JSON.stringify({ jsonrpc: '2.0', id, method, params });
const routing = { routingMode: 'explicit', explicitExecutionTarget: 'agent', explicitProviderId: 'fake' };
const sseHeaders = { authorization: `Bearer ${ACP}`, 'content-type': 'application/json', accept: 'text/event-stream' };
/** what the fake agent's `flood N SIZE` writes: the i-th chunk all one letter, a–z in turn */
const flooded = (n: number, size: number) => Array.from({ length: n }, (_, i) => String.fromCharCode(97 + (i % 26)).repeat(size)).join('');

/** Resolves once session `id` has a turn and none of its turns runs. */
function turnEnded(g: GatewayProcess, id: string): Promise<true> {
  return waitFor(
    async () => {
      const { session } = await adminGet<{ session: { history: Array<{ status: string }> } }>(g.url, `/admin/sessions/${id}`);
      return session.history.length > 0 && session.history.every((t) => t.status !== 'running') ? true : undefined;
    },
    `the turn of ${id} ended`,
    30_000,
  );
}

describe('a graceful stop with clients that do not read', () => {
  it('cuts an /acp/rpc stream whose client stopped reading, while a client that reads gets its whole stream', { timeout: 90_000 }, async () => {
    const g = await gateway();
    // ~30 MiB of SSE: far more than the kernel's buffers hold for the client that does not read
    const [n, size] = [320, 16 * 1024];
    await nonReader(g, 'POST', '/acp/rpc', sseHeaders, rpc('deaf', 'session.start', { sessionId: 'deaf', taskPrompt: `flood ${n} ${size}`, routing }));
    // its turn has ended: its stream's last bytes are written and wait for a client that takes nothing
    await turnEnded(g, 'deaf');

    const res = await fetch(`${g.url}/acp/rpc`, {
      method: 'POST',
      headers: sseHeaders,
      body: rpc('reader', 'session.start', { sessionId: 'reader', taskPrompt: `flood ${n} ${size}`, routing }),
    });
    const reader = res.body!.getReader();
    let text = '';
    const decoder = new TextDecoder();
    const first = await reader.read();
    text += decoder.decode(first.value, { stream: true });
    // the stop begins while the reader's stream runs
    const t0 = Date.now();
    g.proc.kill('SIGTERM');
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    const messages = text.split('\n\n').filter((b) => b.startsWith('data: '));
    expect(messages.at(-1)).toBe('data: [DONE]');
    const final = JSON.parse(messages.at(-2)!.slice(6));
    expect(final).toMatchObject({ id: 'reader', result: { success: true, status: 'completed' } });
    const deltas = messages
      .slice(0, -2)
      .map((m) => JSON.parse(m.slice(6)).params)
      .filter((u) => u.type === 'delta')
      .map((u) => u.delta as string)
      .join('');
    expect(deltas.length).toBe(n * size);
    expect(deltas === flooded(n, size)).toBe(true);

    // the client that does not read is cut about a second after the stop began, not at the end of the 30 s grace
    expect(await exitWithin(g, 10_000)).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(g.logs()).toContain('graceful stop: cut a connection whose client did not read the end of its response');
  });

  it('cuts a large /v1 answer whose client stopped reading', { timeout: 60_000 }, async () => {
    const g = await gateway();
    const input = Array.from({ length: 512 }, (_, i) => `text ${i}`);
    await nonReader(g, 'POST', '/v1/embeddings', { 'content-type': 'application/json' }, JSON.stringify({ model: 'big-1', input, encoding_format: 'base64' }));
    g.proc.kill('SIGTERM');
    expect(await exitWithin(g, 10_000)).toBe(0);
    expect(g.logs()).toContain('graceful stop: cut a connection whose client did not read the end of its response');
  });

  it('with gateway.tls: cuts the large answer a client does not read, while one that reads gets it whole', { timeout: 60_000 }, async () => {
    const dir = tmpDir();
    const files = selfSigned(dir, 'unread');
    const ca = readFileSync(files.cert, 'utf8');
    const g = await gateway({ gateway: { id: 'gw_unread_tls', shutdownGraceMs: GRACE_MS, tls: files } });
    const body = JSON.stringify({ model: 'big-1', input: Array.from({ length: 512 }, (_, i) => `text ${i}`), encoding_format: 'base64' });
    await nonReader(g, 'POST', '/v1/embeddings', { 'content-type': 'application/json' }, body, ca);
    // a client that reads the same answer, begun before the stop
    const { port } = new URL(g.url);
    let answered!: () => void;
    const begun = new Promise<void>((r) => (answered = r));
    const whole = new Promise<{ data: unknown[] }>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: Number(port), path: '/v1/embeddings', method: 'POST', ca, headers: { 'content-type': 'application/json' } },
        (res) => {
          answered();
          const parts: Buffer[] = [];
          res.on('data', (b: Buffer) => parts.push(b));
          res.on('end', () => resolve(JSON.parse(Buffer.concat(parts).toString()) as { data: unknown[] }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    await begun;
    g.proc.kill('SIGTERM');
    expect((await whole).data).toHaveLength(512);
    expect(await exitWithin(g, 10_000)).toBe(0);
    expect(g.logs()).toContain('graceful stop: cut a connection whose client did not read the end of its response');
  });

  it('ends /ui/events streams when the stop begins, for a page that reads and for one that does not', { timeout: 60_000 }, async () => {
    const g = await gateway();
    // a snapshot every 10 s: before, the stream saw the stop only at its next snapshot
    await nonReader(g, 'GET', '/ui/events?interval=10000', {});
    const res = await fetch(`${g.url}/ui/events?interval=10000`);
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain('data: ');
    const t0 = Date.now();
    g.proc.kill('SIGTERM');
    for (;;) if ((await reader.read()).done) break;
    const ended = Date.now() - t0;
    expect(ended).toBeLessThan(3_000);
    expect(await exitWithin(g, 5_000)).toBe(0);
  });
});
