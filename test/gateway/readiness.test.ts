/** /readyz readiness and method errors: ready only when a model is routable; 405 names the allowed methods. */
import { afterAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { connect } from 'node:net';
import { cleanupDirs, startInProcess, waitFor, waitForInflight, within, wsUrl } from '../helpers/env.js';

const open: Gateway[] = [];
afterAll(async () => {
  for (const g of open.reverse()) await g.close();
  cleanupDirs();
});

describe('readiness', () => {
  it('a gateway with no channel is not ready until a peer shares one', async () => {
    const b = await startInProcess({
      gateway: { id: 'gw_ready_b', bridge: { enabled: true, allowedTokens: ['ready-token-1234'], shareChannels: ['m'] } },
      channels: [{ name: 'm', provider: 'mock', models: ['m1'] }],
    });
    open.push(b);
    const a = await startInProcess({ gateway: { id: 'gw_ready_a' }, channels: [] });
    open.push(a);
    const before = await fetch(`${a.url}/readyz`);
    expect(before.status).toBe(503);
    expect(await before.json()).toEqual({ status: 'not_ready', models: 0, peers: 0 });
    const add = await fetch(`${a.url}/admin/bridges`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ url: wsUrl(b.url), token: 'ready-token-1234', name: 'b' }),
    });
    expect(add.status).toBe(201);
    await waitFor(async () => (await fetch(`${a.url}/readyz`)).status === 200, 'A ready through its peer');
    expect(await (await fetch(`${a.url}/readyz`)).json()).toEqual({ status: 'ready', models: 1, peers: 1 });
    expect((await fetch(`${b.url}/readyz`)).status).toBe(200);
  });

  it('draining during shutdown answers 503 draining', async () => {
    const g = await startInProcess({ channels: [{ name: 'slow', provider: 'mock', models: ['slow'], options: { delayMs: 600 } }] });
    const pending = fetch(`${g.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'slow', messages: [{ role: 'user', content: 'x' }] }),
    });
    await waitForInflight(g.url, 'slow');
    // The listener closes at once and idle sockets are dropped (docs/operations.md), so only a client already
    // on a connection sees the draining /readyz: this socket has begun its request (not idle) before close().
    const probe = connect(Number(new URL(g.url).port), '127.0.0.1');
    await new Promise<void>((resolve, reject) => probe.once('connect', resolve).once('error', reject));
    let answer = '';
    probe.on('data', (b: Buffer) => (answer += b.toString()));
    const ended = new Promise<void>((resolve) => probe.once('close', () => resolve()));
    probe.write('GET /readyz HTTP/1.1\r\nhost: 127.0.0.1\r\n');
    const closing = g.close();
    probe.write('connection: close\r\n\r\n');
    await within(ended, 3_000, 'the /readyz answer during the drain');
    const [head = '', body = ''] = answer.split('\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1\.1 503 /);
    expect(JSON.parse(body)).toMatchObject({ status: 'draining' });
    // the listener stops accepting at once; the in-flight request still finishes
    expect((await pending).status).toBe(200);
    await closing;
  });
});

describe('method errors', () => {
  it('a known path with the wrong method → 405 with Allow, on /v1 and /admin', async () => {
    const g = await startInProcess({ channels: [{ name: 'm', provider: 'mock', models: ['m1'] }] });
    open.push(g);
    const v1 = await fetch(`${g.url}/v1/chat/completions`);
    expect(v1.status).toBe(405);
    expect(v1.headers.get('allow')).toBe('POST');
    expect(((await v1.json()) as any).error.code).toBe('method_not_allowed');
    const admin = await fetch(`${g.url}/admin/bridges`, { method: 'PUT' });
    expect(admin.status).toBe(405);
    expect(admin.headers.get('allow')).toBe('GET, POST');
    const unknown = await fetch(`${g.url}/admin/nothing-here`);
    expect(unknown.status).toBe(404);
  });
});
