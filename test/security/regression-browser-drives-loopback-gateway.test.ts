/**
 * Regression (issue 10.3): a loopback gateway with no tokens could be driven by any web page: a text/plain
 * POST /admin/bridges from Origin http://evil.example (no CORS preflight) made it dial a URL the page chose,
 * DELETE /admin/bridges/… worked, a rebinding `Host: evil.example` read /admin/status, and /v1 accepted a
 * text/plain body. Real sockets; raw node:http where fetch may not set the header (Host).
 */
import { request } from 'node:http';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { cleanupDirs, startGw } from '../helpers/env.js';
import { waitFor } from '../helpers/env.js';
import type { Gateway } from '../../src/gateway.js';

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: any;
}

/** One request with exactly these headers (node:http lets us set Host). */
function raw(gw: Gateway, method: string, path: string, headers: Record<string, string>, body?: string): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: gw.port,
        method,
        path,
        headers: { ...headers, ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}) },
        agent: false,
      },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += String(c)));
        res.on('end', () => {
          let json: any;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, json });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** A TCP listener that only counts who dials it (the "URL the page chose"). */
async function dialTarget(): Promise<{ server: Server; port: number; dials: () => number }> {
  let n = 0;
  const server = createServer((s) => {
    n++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, dials: () => n };
}

const EVIL = 'http://evil.example';
let gw: Gateway;
let open: Gateway;
const targets: Server[] = [];

beforeAll(async () => {
  gw = await startGw({ channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }] });
  open = await startGw({
    gateway: { allowedOrigins: ['http://app.example'], allowedHosts: ['gw.internal'] },
    channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
  });
});
afterAll(async () => {
  await Promise.all([gw?.close(), open?.close()]);
  for (const t of targets) t.close();
  cleanupDirs();
});

describe("a loopback gateway without tokens is not a web page's tool", () => {
  it('Origin evil + text/plain POST /admin/bridges is refused and nothing is dialled', async () => {
    const evil = await dialTarget();
    const control = await dialTarget();
    targets.push(evil.server, control.server);
    const body = JSON.stringify({ url: `ws://127.0.0.1:${evil.port}/bridge`, token: 'page-chosen-token', name: 'evil' });
    const r = await raw(gw, 'POST', '/admin/bridges', { host: `127.0.0.1:${gw.port}`, origin: EVIL, 'content-type': 'text/plain' }, body);
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe('origin_not_allowed');
    // the same page with a JSON content type is refused for its Origin too
    const r2 = await raw(gw, 'POST', '/admin/bridges', { host: `127.0.0.1:${gw.port}`, origin: EVIL, 'content-type': 'application/json' }, body);
    expect(r2.status).toBe(403);
    // no Origin (a CLI, a script) but text/plain: 415, still no dial
    const r3 = await raw(gw, 'POST', '/admin/bridges', { host: `127.0.0.1:${gw.port}`, 'content-type': 'text/plain' }, body);
    expect(r3.status).toBe(415);
    expect(r3.json.error.code).toBe('unsupported_media_type');
    // the operator's own call (no Origin, JSON) dials; once it has, the refused ones provably did not
    const ok = await raw(
      gw,
      'POST',
      '/admin/bridges',
      { host: `127.0.0.1:${gw.port}`, 'content-type': 'application/json' },
      JSON.stringify({ url: `ws://127.0.0.1:${control.port}/bridge`, token: 'operator-token', name: 'control' }),
    );
    expect(ok.status).toBe(201);
    await waitFor(() => control.dials() > 0, "the operator's bridge to dial");
    expect(evil.dials()).toBe(0);
    const names = gw.mesh.list().map((p) => p.name);
    expect(names).toContain('control');
    expect(names).not.toContain('evil');
  });

  it('DELETE /admin/bridges/… from a foreign Origin is refused and the bridge stays', async () => {
    await waitFor(() => gw.mesh.list().some((p) => p.name === 'control'), 'the control bridge');
    const r = await raw(gw, 'DELETE', '/admin/bridges/control', { host: `127.0.0.1:${gw.port}`, origin: EVIL });
    expect(r.status).toBe(403);
    expect(gw.mesh.list().some((p) => p.name === 'control')).toBe(true);
    const mine = await raw(gw, 'DELETE', '/admin/bridges/control', { host: `localhost:${gw.port}` });
    expect(mine.status).toBe(200);
  });

  it('a rebinding Host on /admin/status is refused; loopback names and IPs are served', async () => {
    const r = await raw(gw, 'GET', '/admin/status', { host: `evil.example:${gw.port}` });
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe('host_not_allowed');
    expect(JSON.stringify(r.json)).not.toContain(gw.id);
    expect((await raw(gw, 'GET', '/v1/models', { host: 'evil.example' })).status).toBe(403);
    for (const host of [`127.0.0.1:${gw.port}`, `localhost:${gw.port}`, `[::1]:${gw.port}`, 'LOCALHOST']) {
      expect((await raw(gw, 'GET', '/admin/status', { host })).status, host).toBe(200);
    }
    // probes are not refused on their Host
    expect((await raw(gw, 'GET', '/healthz', { host: 'k8s-probe.internal' })).status).toBe(200);
  });

  it('text/plain to /v1/chat/completions is refused (415), from any origin', async () => {
    const body = JSON.stringify({ model: 'mock-1', messages: [{ role: 'user', content: 'hi' }] });
    const plain = await raw(gw, 'POST', '/v1/chat/completions', { host: `127.0.0.1:${gw.port}`, 'content-type': 'text/plain' }, body);
    expect(plain.status).toBe(415);
    expect(plain.json.error).toMatchObject({ code: 'unsupported_media_type', type: 'invalid_request_error', param: 'content-type' });
    const foreign = await raw(gw, 'POST', '/v1/chat/completions', { host: `127.0.0.1:${gw.port}`, origin: EVIL, 'content-type': 'text/plain' }, body);
    expect(foreign.status).toBe(403);
    const none = await raw(gw, 'POST', '/v1/chat/completions', { host: `127.0.0.1:${gw.port}` }, body);
    expect(none.status).toBe(415);
    const json = await raw(gw, 'POST', '/v1/chat/completions', { host: `127.0.0.1:${gw.port}`, 'content-type': 'application/json; charset=utf-8' }, body);
    expect(json.status).toBe(200);
  });

  it('every route outside /acp is covered, including ones added later; a path nobody serves stays 404', async () => {
    const body = '{}';
    expect((await raw(gw, 'POST', '/v1/messages', { host: `127.0.0.1:${gw.port}`, origin: EVIL, 'content-type': 'text/plain' }, body)).status).toBe(403);
    expect((await raw(gw, 'POST', '/api/chat', { host: `127.0.0.1:${gw.port}`, origin: EVIL, 'content-type': 'text/plain' }, body)).status).toBe(403);
    expect((await raw(gw, 'POST', '/nothing-here', { host: `127.0.0.1:${gw.port}`, 'content-type': 'text/plain' }, body)).status).toBe(404);
    expect((await raw(gw, 'POST', '/admin/sessions/x/transfer', { host: `127.0.0.1:${gw.port}`, 'content-type': 'text/plain' }, '{"to":"p"}')).status).toBe(
      415,
    );
  });

  it('SDK clients are untouched: no Origin, a proper Host, application/json', async () => {
    const client = new OpenAI({ apiKey: 'x', baseURL: `${gw.url}/v1`, maxRetries: 0 });
    const r = await client.chat.completions.create({ model: 'mock-1', messages: [{ role: 'user', content: 'sdk' }] });
    expect(r.choices[0]!.message.content).toContain('sdk');
  });

  it('an allowed origin gets CORS and its preflight; an allowed host name is served', async () => {
    const pre = await raw(open, 'OPTIONS', '/v1/chat/completions', {
      host: `127.0.0.1:${open.port}`,
      origin: 'http://app.example',
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type, authorization',
    });
    expect(pre.status).toBe(204);
    expect(pre.headers['access-control-allow-origin']).toBe('http://app.example');
    expect(String(pre.headers['access-control-allow-headers'])).toContain('content-type');
    const body = JSON.stringify({ model: 'mock-1', messages: [{ role: 'user', content: 'hi' }] });
    const post = await raw(
      open,
      'POST',
      '/v1/chat/completions',
      { host: `127.0.0.1:${open.port}`, origin: 'http://app.example', 'content-type': 'application/json' },
      body,
    );
    expect(post.status).toBe(200);
    expect(post.headers['access-control-allow-origin']).toBe('http://app.example');
    expect((await raw(open, 'GET', '/admin/status', { host: `gw.internal:${open.port}` })).status).toBe(200);
    expect((await raw(open, 'GET', '/admin/status', { host: `gw.internal.evil.example:${open.port}` })).status).toBe(403);
    expect(
      (await raw(open, 'POST', '/v1/chat/completions', { host: `127.0.0.1:${open.port}`, origin: EVIL, 'content-type': 'application/json' }, body)).status,
    ).toBe(403);
  });
});
