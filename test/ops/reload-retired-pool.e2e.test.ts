/**
 * A channel a reload changes or removes keeps serving the stream already on it from its old upstream pool, and that
 * pool is closed once the stream ends (docs/operations.md, Hot reload): its keep-alive sockets (kept 30 s otherwise)
 * do not outlive it. Real process; the fake upstream counts its open connections: after a change, once the old
 * stream ended, only the new pool's socket is open; after a removal, none.
 */
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { cleanupDirs, readAll, slowClient, startProcess, waitFor } from '../helpers/env.js';

let gw: GatewayProcess & { configPath: string };
let upstream: http.Server;
let upstreamUrl = '';
const open = new Set<Socket>();
/** the socket each request came on, by the Authorization it carried */
const socketOf = new Map<string, Socket>();

const chunk = (content: string | null) =>
  `data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', model: 'gpt-x', choices: [{ index: 0, delta: content === null ? {} : { content }, finish_reason: content === null ? 'stop' : null }] })}\n\n`;

const config = (channels: object[]) => ({ gateway: { id: 'gw_retired' }, channels, store: { kind: 'sqlite', path: './data/r.db' } });
const channel = (key: string) => ({ name: 'oa', provider: 'openai', baseUrl: upstreamUrl, apiKey: key, models: ['gpt-x'] });

beforeAll(async () => {
  // a stream of 20 chunks 100 ms apart; a request without `stream` is answered at once
  upstream = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      socketOf.set(String(req.headers.authorization), req.socket);
      if (!(JSON.parse(body) as { stream?: boolean }).stream) {
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            id: 'x',
            object: 'chat.completion',
            model: 'gpt-x',
            choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
          }),
        );
        return;
      }
      res.setHeader('content-type', 'text/event-stream');
      let i = 0;
      const t = setInterval(() => {
        if (i++ < 20) return void res.write(chunk(`c${i}`));
        clearInterval(t);
        res.end(`${chunk(null)}data: [DONE]\n\n`);
      }, 100);
    });
  });
  // the upstream keeps idle sockets longer than the test runs: a socket closed is one the gateway closed
  upstream.keepAliveTimeout = 120_000;
  upstream.on('connection', (s: Socket) => {
    open.add(s);
    s.on('close', () => open.delete(s));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/v1`;
  gw = await startProcess(config([channel('sk-retired-old-key-0000001')]));
});

afterAll(async () => {
  await gw?.stop();
  await new Promise<void>((r) => upstream.close(() => r()));
  cleanupDirs();
});

async function reload(): Promise<any> {
  const res = await fetch(`${gw.url}/admin/config/reload`, { method: 'POST' });
  expect(res.status).toBe(200);
  return res.json();
}

describe('a retired upstream pool', () => {
  it('serves its stream to the end and is closed then (channel changed, then removed)', { timeout: 30_000 }, async () => {
    const first = await slowClient(gw.url, 'gpt-x', 'a long answer');
    const firstEvents = readAll(first);
    await waitFor(() => socketOf.get('Bearer sk-retired-old-key-0000001'), 'the stream on the old pool');
    const oldSocket = socketOf.get('Bearer sk-retired-old-key-0000001')!;

    writeFileSync(gw.configPath, JSON.stringify(config([channel('sk-retired-new-key-0000002')])));
    expect((await reload()).applied).toEqual(['channel oa changed']);
    const second = await slowClient(gw.url, 'gpt-x', 'another long answer');
    const secondEvents = readAll(second);
    await waitFor(() => socketOf.get('Bearer sk-retired-new-key-0000002'), 'the next stream on the new pool');
    expect(socketOf.get('Bearer sk-retired-new-key-0000002')).not.toBe(oldSocket);

    // the old stream runs to its end on the old pool, whose socket is closed then (not kept alive for 30 s)
    expect((await firstEvents).at(-1)).toBe('[DONE]');
    await waitFor(() => oldSocket.destroyed || undefined, "the old pool's socket closed once its stream ended");
    expect(open.size).toBe(1);

    writeFileSync(gw.configPath, JSON.stringify(config([])));
    expect((await reload()).applied).toEqual(['channel oa removed']);
    expect((await secondEvents).at(-1)).toBe('[DONE]');
    await waitFor(() => open.size === 0 || undefined, "the removed channel's pool closed once its stream ended");
  });
});
