/**
 * Black-box contract of POST /acp/rpc over real HTTP against an in-process gateway
 * (../shared/spec/acp-rpc.md): auth, origins, CORS, envelopes and mirrors, id echo, notifications, errors and
 * their codes, routing resolution end to end, unavailable providers, parameter validation, limits.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { connect } from 'node:net';
import { startInProcess, cleanupDirs, waitFor } from '../helpers/env.js';
import type { Gateway } from '../../src/gateway.js';

const TOKEN = 'acp-contract-token-1';
const FAKE_AGENT = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));

const config = {
  gateway: { maxBodyBytes: 2 * 1024 * 1024 },
  channels: [
    { name: 'mock', provider: 'mock', models: ['mock-1'] },
    { name: 'empty', provider: 'mock', models: ['empty-1'], options: { reply: '' } },
    { name: 'broken', provider: 'mock', models: ['broken-1'], options: { failEvery: 1, failStatus: 400 } },
  ],
  acp: {
    tokens: [TOKEN],
    allowedOrigins: ['http://localhost:*', 'https://app.example.com'],
    agents: [
      { id: 'codex', label: 'Codex', command: 'switchyard-no-such-agent-cmd' },
      { id: 'fake', label: 'Fake Agent', command: process.execPath, args: [FAKE_AGENT], permissions: 'allow' },
    ],
    gateways: [
      { id: 'switchyard', label: 'Switchyard', kind: 'channels', model: 'mock-1' },
      { id: 'emptygw', label: 'Empty', kind: 'channels', model: 'empty-1' },
      { id: 'brokengw', label: 'Broken', kind: 'channels', model: 'broken-1' },
      { id: 'nomodel', label: 'No model', kind: 'channels', model: 'not-served-anywhere' },
      { id: 'openclaw', label: 'OpenClaw', kind: 'openclaw', url: 'ws://127.0.0.1:9/', token: 'oc-secret' },
    ],
  },
};

let gw: Gateway;
let url: string;

beforeAll(async () => {
  gw = await startInProcess(config);
  url = `${gw.url}/acp/rpc`;
});
afterAll(async () => {
  await gw?.close();
  cleanupDirs();
});

type Json = any;
async function post(body: unknown, headers: Record<string, string> = {}, raw = false): Promise<{ status: number; json: Json; text: string; headers: Headers }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}`, ...headers },
    body: raw ? (body as string) : JSON.stringify(body),
  });
  const text = await res.text();
  let json: Json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text, headers: res.headers };
}
let n = 0;
const rpc = (method: string, params?: unknown, headers?: Record<string, string>) =>
  post({ jsonrpc: '2.0', id: ++n, method, ...(params !== undefined ? { params } : {}) }, headers);
const sid = () => `s-${Math.random().toString(36).slice(2, 10)}`;

function expectError(json: Json, code: number, dataCode: string) {
  expect(json).toMatchObject({ jsonrpc: '2.0', type: 'res', ok: false, error: { code, data: { code: dataCode } } });
  expect(typeof json.error.message).toBe('string');
  expect(json.result).toBeUndefined();
}

describe('auth (Bearer, acp.tokens, fail closed)', () => {
  it('missing token → 401 -32001', async () => {
    const r = await post({ jsonrpc: '2.0', id: 1, method: 'health' }, { authorization: '' });
    expect(r.status).toBe(401);
    expectError(r.json, -32001, 'UNAUTHORIZED');
    expect(r.json.id).toBeNull();
  });
  it('wrong token → 401 -32001', async () => {
    const r = await post({ jsonrpc: '2.0', id: 1, method: 'health' }, { authorization: 'Bearer nope' });
    expect(r.status).toBe(401);
    expectError(r.json, -32001, 'UNAUTHORIZED');
  });
  it('the /v1 client token is not an acp token', async () => {
    const r = await post({ jsonrpc: '2.0', id: 1, method: 'health' }, { authorization: 'Basic ' + TOKEN });
    expect(r.status).toBe(401);
  });
  it('right token → 200', async () => {
    const r = await rpc('health');
    expect(r.status).toBe(200);
    expect(r.json.result.status).toBe('ok');
  });
  it('empty acp.tokens refuses everything with a message saying to configure acp.tokens', async () => {
    const open = await startInProcess({ channels: config.channels, acp: { gateways: [config.acp.gateways[0]] } });
    try {
      const res = await fetch(`${open.url}/acp/rpc`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer anything' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'health' }),
      });
      expect(res.status).toBe(401);
      const j = (await res.json()) as Json;
      expectError(j, -32001, 'UNAUTHORIZED');
      expect(j.error.message).toContain('acp.tokens');
    } finally {
      await open.close();
    }
  });
});

describe('origins and CORS', () => {
  it('allowed origin with a port wildcard → 200 with CORS headers', async () => {
    const r = await rpc('health', undefined, { origin: 'http://localhost:5173' });
    expect(r.status).toBe(200);
    expect(r.headers.get('access-control-allow-origin')).toBe('http://localhost:5173');
    const noPort = await rpc('health', undefined, { origin: 'http://localhost' });
    expect(noPort.status).toBe(200);
  });
  it('allowed exact origin → 200', async () => {
    expect((await rpc('health', undefined, { origin: 'https://app.example.com' })).status).toBe(200);
  });
  it('disallowed origin → 403 -32003 (even with a good token)', async () => {
    for (const origin of ['https://evil.example', 'https://localhost:5173', 'http://localhost.evil.example:80', 'https://app.example.com.evil.example']) {
      const r = await rpc('health', undefined, { origin });
      expect(r.status, origin).toBe(403);
      expectError(r.json, -32003, 'ORIGIN_NOT_ALLOWED');
    }
  });
  it('no Origin → allowed', async () => {
    const r = await rpc('health');
    expect(r.status).toBe(200);
    expect(r.headers.get('access-control-allow-origin')).toBeNull();
  });
  it('preflight: 204 with the allowlist, no token needed; disallowed origin → 403', async () => {
    const ok = await fetch(url, {
      method: 'OPTIONS',
      headers: { origin: 'http://localhost:3000', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    });
    expect(ok.status).toBe(204);
    expect(ok.headers.get('access-control-allow-origin')).toBe('http://localhost:3000');
    expect(ok.headers.get('access-control-allow-methods')).toContain('POST');
    expect(ok.headers.get('access-control-allow-headers')).toContain('authorization');
    const bad = await fetch(url, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
    expect(bad.status).toBe(403);
    expectError(await bad.json(), -32003, 'ORIGIN_NOT_ALLOWED');
  });
});

describe('envelopes, id echo, notifications', () => {
  it('result envelope with mirrors: type res, ok true, payload = result', async () => {
    const r = await rpc('health');
    expect(Object.keys(r.json).sort()).toEqual(['id', 'jsonrpc', 'ok', 'payload', 'result', 'type']);
    expect(r.json).toMatchObject({ jsonrpc: '2.0', type: 'res', ok: true });
    expect(r.json.payload).toEqual(r.json.result);
    expect(r.json.result).toEqual({ status: 'ok', version: expect.any(String) });
  });
  it('echoes string and number ids exactly', async () => {
    expect((await post({ jsonrpc: '2.0', id: 'req-α-1', method: 'health' })).json.id).toBe('req-α-1');
    expect((await post({ jsonrpc: '2.0', id: 42, method: 'health' })).json.id).toBe(42);
    expect((await post({ jsonrpc: '2.0', id: 0, method: 'health' })).json.id).toBe(0);
    expect((await post({ jsonrpc: '2.0', id: 'x', method: 'nope.nope' })).json.id).toBe('x');
  });
  it('a request without id is a notification: empty reply, and it still runs', async () => {
    const s = sid();
    const r = await post({ jsonrpc: '2.0', method: 'session.start', params: { sessionId: s, taskPrompt: 'from a notification', executionTarget: 'gateway' } });
    expect(r.status).toBe(204);
    expect(r.text).toBe('');
    const snap = await waitFor(async () => {
      const t = (await rpc('xworkmate.tasks.get', { sessionId: s })).json.result;
      return t.status === 'completed' ? t : undefined;
    }, 'notification turn to complete');
    expect(snap.output).toBe('[mock mock-1] You said: from a notification');
  });
  it('error envelope: jsonrpc, id, error{code,message,data{code}}, type res, ok false', async () => {
    const r = await rpc('no.such.method');
    expect(r.status).toBe(200);
    expect(Object.keys(r.json).sort()).toEqual(['error', 'id', 'jsonrpc', 'ok', 'type']);
    expectError(r.json, -32601, 'METHOD_NOT_FOUND');
    expect(r.json.error.message).toContain('no.such.method');
  });
});

describe('transport errors', () => {
  it('not POST → 405 -32600', async () => {
    const res = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(405);
    expectError(await res.json(), -32600, 'METHOD_NOT_ALLOWED');
  });
  it('unparsable JSON → 400 -32700', async () => {
    const r = await post('{"jsonrpc":"2.0",', {}, true);
    expect(r.status).toBe(400);
    expectError(r.json, -32700, 'PARSE_ERROR');
    expect(r.json.id).toBeNull();
  });
  it('no method → 400 -32600, id echoed', async () => {
    const r = await post({ jsonrpc: '2.0', id: 'm1' });
    expect(r.status).toBe(400);
    expectError(r.json, -32600, 'INVALID_REQUEST');
    expect(r.json.id).toBe('m1');
  });
  it('malformed JSON-RPC: wrong version, batch, non-object, bad id, params array', async () => {
    for (const body of [
      { id: 1, method: 'health' },
      { jsonrpc: '1.0', id: 1, method: 'health' },
      [{ jsonrpc: '2.0', id: 1, method: 'health' }],
      'health',
      17,
      { jsonrpc: '2.0', id: { x: 1 }, method: 'health' },
      { jsonrpc: '2.0', id: 1, method: 5 },
    ]) {
      const r = await post(body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json.error.code).toBe(-32600);
    }
    const p = await post({ jsonrpc: '2.0', id: 1, method: 'health', params: [1, 2] });
    expect(p.status).toBe(400);
    expectError(p.json, -32602, 'INVALID_PARAMS');
  });
  it('body over gateway.maxBodyBytes → 413', async () => {
    const big = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'session.start', params: { sessionId: 'big', taskPrompt: 'x'.repeat(3 * 1024 * 1024) } });
    const r = await post(big, {}, true);
    expect(r.status).toBe(413);
    expectError(r.json, -32600, 'PAYLOAD_TOO_LARGE');
  });
  it('a body nested past gateway.maxJsonDepth → 400 -32602 naming the path, as on every JSON body', async () => {
    const deep = `{"jsonrpc":"2.0","id":1,"method":"health","params":{"x":${'['.repeat(100)}${']'.repeat(100)}}}`;
    const r = await post(deep, {}, true);
    expect(r.status).toBe(400);
    expectError(r.json, -32602, 'INVALID_REQUEST');
    expect(r.json.error.message).toMatch(/^params\.x.*nested deeper than 64 levels/);
  });
  it('a body that stops arriving → 408 REQUEST_TIMEOUT (not 400), and the connection is closed', async () => {
    const slow = await startInProcess({ ...config, gateway: { ...config.gateway, bodyTimeoutMs: 300 } });
    try {
      const { port } = new URL(slow.url);
      const raw = await new Promise<string>((resolve, reject) => {
        const sock = connect(Number(port), '127.0.0.1', () =>
          sock.write(
            `POST /acp/rpc HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\nauthorization: Bearer ${TOKEN}\r\ncontent-length: 100\r\n\r\n{"jsonrpc"`,
          ),
        );
        let text = '';
        sock.on('data', (d) => (text += d.toString()));
        sock.on('close', () => resolve(text));
        sock.on('error', reject);
      });
      expect(raw).toMatch(/^HTTP\/1\.1 408 /);
      expect(raw.toLowerCase()).toContain('connection: close');
      const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4));
      expectError(body, -32600, 'REQUEST_TIMEOUT');
    } finally {
      await slow.close();
    }
  });
  it('ids that cannot be stored as they are (a lone surrogate) and folder names no filesystem holds → -32602', async () => {
    const lone = await post({ jsonrpc: '2.0', id: 1, method: 'session.start', params: { sessionId: '\ud800', taskPrompt: 'hi', provider: 'switchyard' } });
    expectError(lone.json, -32602, 'INVALID_PARAMS');
    expect(lone.json.error.data.field).toBe('sessionId');
    const long = await post({
      jsonrpc: '2.0',
      id: 2,
      method: 'session.start',
      params: { sessionId: 'long-folder', taskPrompt: 'hi', provider: 'fake', workingDirectory: `projects/${'w'.repeat(300)}` },
    });
    expectError(long.json, -32602, 'INVALID_PARAMS');
    expect(long.json.error.data.field).toBe('workingDirectory');
  });
  it('tasks.get by runId alone is one indexed lookup, never a scan of the stored sessions', async () => {
    const started = await post({
      jsonrpc: '2.0',
      id: 1,
      method: 'session.start',
      params: { sessionId: 'by-run', taskPrompt: 'index me', provider: 'switchyard' },
    });
    const runId = started.json.result.runId as string;
    const store = gw.store as unknown as { list: (...a: unknown[]) => Promise<unknown[]> };
    const list = store.list.bind(store);
    let scans = 0;
    store.list = (...a: unknown[]) => {
      scans++;
      return list(...a);
    };
    try {
      const miss = await post({ jsonrpc: '2.0', id: 2, method: 'xworkmate.tasks.get', params: { runId: 'run_never_was' } });
      expect(miss.json.result).toMatchObject({ status: 'not_found', runId: 'run_never_was' });
      // a known run is answered (here from memory; after a restart through the index: test/acp/sessions.test.ts)
      const hit = await post({ jsonrpc: '2.0', id: 3, method: 'xworkmate.tasks.get', params: { runId } });
      expect(hit.json.result).toMatchObject({ runId, sessionId: 'by-run', status: 'completed' });
      expect(scans).toBe(0);
    } finally {
      store.list = list;
    }
  });
  it('/acp-server/* → 401 without auth, 410 -32004 PROVIDER_DIRECT_PATH_DISABLED with it', async () => {
    const anon = await fetch(`${gw.url}/acp-server/codex/acp/rpc`, { method: 'POST', body: '{}' });
    expect(anon.status).toBe(401);
    for (const p of ['/acp-server', '/acp-server/codex', '/acp-server/gemini/acp/rpc']) {
      const res = await fetch(gw.url + p, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}` },
        body: '{"jsonrpc":"2.0","id":1,"method":"health"}',
      });
      expect(res.status, p).toBe(410);
      expectError(await res.json(), -32004, 'PROVIDER_DIRECT_PATH_DISABLED');
    }
  });
  it('/gateway/openclaw is not a route → 404', async () => {
    for (const method of ['GET', 'POST']) {
      const res = await fetch(`${gw.url}/gateway/openclaw`, {
        method,
        headers: { authorization: `Bearer ${TOKEN}` },
        ...(method === 'POST' ? { body: '{"jsonrpc":"2.0","id":1,"method":"session.start"}' } : {}),
      });
      expect(res.status).toBe(404);
      await res.text();
    }
  });
});

describe('acp.capabilities', () => {
  it('catalog from config, availability from probes, mirrors, no network address anywhere', async () => {
    const r = await rpc('acp.capabilities', {});
    const c = r.json.result;
    expect(c.singleAgent).toBe(true);
    expect(c.multiAgent).toBe(false);
    expect(c.availableExecutionTargets).toEqual(['agent', 'gateway']);
    expect(c.providerCatalog.map((e: Json) => e.providerId)).toEqual(['codex', 'fake']);
    expect(c.providerCatalog[0]).toMatchObject({ providerId: 'codex', label: 'Codex', targets: ['agent'], enabled: false });
    expect(c.providerCatalog[0].unavailableReason).toContain('not found');
    expect(c.providerCatalog[1]).toEqual({ providerId: 'fake', label: 'Fake Agent', targets: ['agent'], enabled: true });
    expect(c.gatewayProviders.map((e: Json) => [e.providerId, e.enabled])).toEqual([
      ['switchyard', true],
      ['emptygw', true],
      ['brokengw', true],
      ['nomodel', false],
      ['openclaw', false],
    ]);
    // the openclaw runtime probes its (unreachable) gateway; the reason never carries the address
    expect(c.gatewayProviders[4].unavailableReason).toMatch(/^cannot connect to the OpenClaw gateway/);
    expect(c.capabilities).toEqual({
      single_agent: true,
      multi_agent: false,
      providerCatalog: c.providerCatalog,
      gatewayProviders: c.gatewayProviders,
      availableExecutionTargets: c.availableExecutionTargets,
    });
    expect(r.json.payload).toEqual(c);
    const text = JSON.stringify(c);
    for (const leak of ['ws://', 'http', '127.0.0.1', 'oc-secret', FAKE_AGENT, process.execPath]) expect(text).not.toContain(leak);
  });
  it('a gateway with only gateways: availableExecutionTargets = ["gateway"]', async () => {
    const g = await startInProcess({ channels: config.channels, acp: { tokens: [TOKEN], gateways: [config.acp.gateways[0]] } });
    try {
      const res = await fetch(`${g.url}/acp/rpc`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'acp.capabilities' }),
      });
      const c = ((await res.json()) as Json).result;
      expect(c.availableExecutionTargets).toEqual(['gateway']);
      expect(c.providerCatalog).toEqual([]);
      expect(c.singleAgent).toBe(false);
    } finally {
      await g.close();
    }
  });
});

describe('routing resolution end to end (session.start)', () => {
  it('explicit gateway target: runs over the router, resolved fields, output', async () => {
    const s = sid();
    const r = await rpc('session.start', {
      sessionId: s,
      taskPrompt: 'hello there',
      routing: { routingMode: 'explicit', explicitExecutionTarget: 'gateway', preferredGatewayProviderId: 'switchyard' },
    });
    expect(r.status).toBe(200);
    expect(r.json.result).toMatchObject({
      success: true,
      status: 'completed',
      sessionId: s,
      threadId: s,
      output: '[mock mock-1] You said: hello there',
      summary: '[mock mock-1] You said: hello there',
      stopReason: 'end_turn',
      resolvedExecutionTarget: 'gateway',
      resolvedProviderId: '',
      resolvedGatewayProviderId: 'switchyard',
      resolvedModel: 'mock-1',
    });
    expect(r.json.result.turnId).toMatch(/^turn_/);
    expect(r.json.result.runId).toMatch(/^run_/);
    expect(JSON.stringify(r.json.result)).not.toMatch(/resolvedEndpointTarget|127\.0\.0\.1|ws:\/\//);
  });
  it('threadId defaults to sessionId, and is kept when given', async () => {
    const r = await rpc('session.start', { sessionId: sid(), threadId: 'thread-9', taskPrompt: 'x', executionTarget: 'gateway' });
    expect(r.json.result.threadId).toBe('thread-9');
  });
  it('requestedExecutionTarget / executionTarget / gatewayProviderId / provider=<gateway id> all reach the gateway', async () => {
    for (const params of [
      { requestedExecutionTarget: 'gateway' },
      { executionTarget: 'gateway', gatewayProviderId: 'switchyard' },
      { gatewayProviderId: 'switchyard' },
      { provider: 'switchyard' },
    ]) {
      const r = await rpc('session.start', { sessionId: sid(), taskPrompt: 'p', ...params });
      expect(r.json.result, JSON.stringify(params)).toMatchObject({
        status: 'completed',
        resolvedExecutionTarget: 'gateway',
        resolvedGatewayProviderId: 'switchyard',
      });
    }
  });
  it('explicit model on a channels gateway is used (and resolvedModel says so)', async () => {
    const r = await rpc('session.start', { sessionId: sid(), taskPrompt: 'p', executionTarget: 'gateway', routing: { explicitModel: 'empty-1' } });
    expect(r.json.result).toMatchObject({ resolvedModel: 'empty-1', status: 'failed' });
  });
  it('agent target with the named provider; preferredGatewayProviderId is ignored', async () => {
    const s = sid();
    const r = await rpc('session.start', {
      sessionId: s,
      taskPrompt: 'hi agent',
      routing: { routingMode: 'explicit', explicitExecutionTarget: 'agent', explicitProviderId: 'fake', preferredGatewayProviderId: 'openclaw' },
    });
    expect(r.json.result).toMatchObject({
      success: true,
      status: 'completed',
      resolvedExecutionTarget: 'single-agent',
      resolvedProviderId: 'fake',
      resolvedGatewayProviderId: '',
      stopReason: 'end_turn',
    });
    expect(r.json.result.output).toContain('echo: hi agent');
    await rpc('session.close', { sessionId: s });
  });
  it('single-agent alias without a provider → the first enabled agent (codex is disabled)', async () => {
    const s = sid();
    const r = await rpc('session.start', { sessionId: s, taskPrompt: 'alias', requestedExecutionTarget: 'single-agent' });
    expect(r.json.result).toMatchObject({ status: 'completed', resolvedExecutionTarget: 'single-agent', resolvedProviderId: 'fake' });
    await rpc('session.close', { sessionId: s });
  });
  it('auto mode without a target → agent when one is enabled', async () => {
    const s = sid();
    const r = await rpc('session.start', { sessionId: s, taskPrompt: 'auto', routing: { routingMode: 'auto', preferredGatewayProviderId: 'switchyard' } });
    expect(r.json.result).toMatchObject({ status: 'completed', resolvedExecutionTarget: 'single-agent', resolvedProviderId: 'fake' });
    await rpc('session.close', { sessionId: s });
  });
  it('unavailable agent (command not found) → result status unavailable PROVIDER_UNAVAILABLE, nothing runs', async () => {
    const s = sid();
    const r = await rpc('session.start', { sessionId: s, taskPrompt: 'p', executionTarget: 'agent', provider: 'codex' });
    expect(r.status).toBe(200);
    expect(r.json.ok).toBe(true);
    expect(r.json.result).toMatchObject({
      success: false,
      status: 'unavailable',
      unavailable: true,
      unavailableCode: 'PROVIDER_UNAVAILABLE',
      resolvedProviderId: 'codex',
    });
    expect(r.json.result.unavailableMessage).toContain('codex');
    expect(await gw.store.get(s)).toBeUndefined();
    expectError((await rpc('session.message', { sessionId: s, taskPrompt: 'again' })).json, -32002, 'SESSION_CONTINUATION_UNAVAILABLE');
  });
  it('unknown agent → PROVIDER_UNAVAILABLE; unknown, unimplemented and model-less gateways → GATEWAY_PROVIDER_UNAVAILABLE', async () => {
    expect((await rpc('session.start', { sessionId: sid(), taskPrompt: 'p', provider: 'hermes' })).json.result).toMatchObject({
      status: 'unavailable',
      unavailableCode: 'PROVIDER_UNAVAILABLE',
    });
    for (const g of ['nope', 'openclaw', 'nomodel']) {
      const r = await rpc('session.start', {
        sessionId: sid(),
        taskPrompt: 'p',
        routing: { explicitExecutionTarget: 'gateway', preferredGatewayProviderId: g },
      });
      expect(r.json.result, g).toMatchObject({
        success: false,
        status: 'unavailable',
        unavailable: true,
        unavailableCode: 'GATEWAY_PROVIDER_UNAVAILABLE',
        resolvedGatewayProviderId: g,
        resolvedExecutionTarget: 'gateway',
      });
    }
  });
  it('ROUTING_REQUIRED and ROUTING_CONFLICT are -32602 errors', async () => {
    const req = await rpc('session.start', { sessionId: sid(), taskPrompt: 'p' });
    expectError(req.json, -32602, 'ROUTING_REQUIRED');
    const conflict = await rpc('session.start', { sessionId: sid(), taskPrompt: 'p', provider: 'codex', routing: { explicitProviderId: 'gemini' } });
    expectError(conflict.json, -32602, 'ROUTING_CONFLICT');
    const t = await rpc('session.start', { sessionId: sid(), taskPrompt: 'p', executionTarget: 'agent', routing: { explicitExecutionTarget: 'gateway' } });
    expectError(t.json, -32602, 'ROUTING_CONFLICT');
  });
  it('xworkmate.routing.resolve answers the decision without running anything', async () => {
    const r = await rpc('xworkmate.routing.resolve', { routing: { explicitExecutionTarget: 'gateway', preferredGatewayProviderId: 'switchyard' } });
    expect(r.json.result).toEqual({
      unavailable: false,
      resolvedExecutionTarget: 'gateway',
      resolvedProviderId: '',
      resolvedGatewayProviderId: 'switchyard',
      resolvedModel: 'mock-1',
      roleSelection: null,
    }); // roleSelection: addendum 2026-10 §5
    const a = await rpc('xworkmate.routing.resolve', { routing: { routingMode: 'auto' } });
    expect(a.json.result).toMatchObject({ unavailable: false, resolvedExecutionTarget: 'single-agent', resolvedProviderId: 'fake' });
    const u = await rpc('xworkmate.routing.resolve', { provider: 'codex' });
    expect(u.json.result).toMatchObject({ unavailable: true, unavailableCode: 'PROVIDER_UNAVAILABLE', resolvedProviderId: 'codex' });
    expectError((await rpc('xworkmate.routing.resolve', {})).json, -32602, 'ROUTING_REQUIRED');
  });
});

describe('turn failures are results, never fake success', () => {
  it('a runtime that produced no text → failed, "provider returned no displayable output"', async () => {
    const r = await rpc('session.start', { sessionId: sid(), taskPrompt: 'p', executionTarget: 'gateway', gatewayProviderId: 'emptygw' });
    expect(r.json.result).toMatchObject({
      success: false,
      status: 'failed',
      stopReason: 'error',
      error: 'provider returned no displayable output',
      output: '',
    });
  });
  it('an upstream error → failed with the error and its code', async () => {
    const r = await rpc('session.start', { sessionId: sid(), taskPrompt: 'p', executionTarget: 'gateway', gatewayProviderId: 'brokengw' });
    expect(r.json.result).toMatchObject({ success: false, status: 'failed', errorCode: 'UPSTREAM_CLIENT_ERROR' });
    expect(r.json.result.error).toContain('mock: injected failure');
  });
});

describe('parameter validation (-32602 naming the field)', () => {
  const start = (p: Record<string, unknown>) => rpc('session.start', { executionTarget: 'gateway', ...p });
  async function field(p: Record<string, unknown>, name: string, method = 'session.start') {
    const r = method === 'session.start' ? await start(p) : await rpc(method, p);
    expect(r.status).toBe(200);
    expectError(r.json, -32602, 'INVALID_PARAMS');
    expect(r.json.error.data.field).toBe(name);
    expect(r.json.error.message).toContain(name);
  }
  it('sessionId missing, empty, wrong type', async () => {
    await field({ taskPrompt: 'p' }, 'sessionId');
    await field({ sessionId: '', taskPrompt: 'p' }, 'sessionId');
    await field({ sessionId: 12, taskPrompt: 'p' }, 'sessionId');
    await field({ sessionId: 'x'.repeat(300), taskPrompt: 'p' }, 'sessionId');
  });
  it('taskPrompt missing, empty, blank, wrong type, huge', async () => {
    await field({ sessionId: 'v1' }, 'taskPrompt');
    await field({ sessionId: 'v1', taskPrompt: '' }, 'taskPrompt');
    await field({ sessionId: 'v1', taskPrompt: '   \n' }, 'taskPrompt');
    await field({ sessionId: 'v1', taskPrompt: { text: 'x' } }, 'taskPrompt');
    await field({ sessionId: 'v1', taskPrompt: 'y'.repeat(1024 * 1024 + 1) }, 'taskPrompt');
    await field({ sessionId: 'v1', taskPrompt: '' }, 'taskPrompt', 'session.message');
  });
  it('workingDirectory: ".." and NUL are rejected; a relative folder is fine; absolute client paths are mapped, never used raw', async () => {
    // issue 12: an absolute path is the app's own folder: it maps under acp.workspaceRoot instead of being refused
    for (const wd of ['../outside', 'a/../../b', 'a/..', '..', 'a\\..\\..\\b', '/Users/me/../../etc', 'C:\\Users\\..\\..\\Windows', 'a\u0000b']) {
      await field({ sessionId: 'v2', taskPrompt: 'p', workingDirectory: wd }, 'workingDirectory');
    }
    await field({ sessionId: 'v2', taskPrompt: 'p', workingDirectory: 7 }, 'workingDirectory');
    const ok = await start({ sessionId: sid(), taskPrompt: 'p', workingDirectory: 'projects/app' });
    expect(ok.json.result.status).toBe('completed');
    expect(ok.json.result).toMatchObject({ remoteWorkingDirectory: 'projects/app', remoteWorkspaceRefKind: 'remotePath' });
    for (const wd of ['/etc', '/tmp/x', 'C:\\Windows', '\\\\server\\share', '~/x']) {
      const r = await start({ sessionId: sid(), taskPrompt: 'p', workingDirectory: wd });
      expect(r.json.result.status).toBe('completed');
      expect(r.json.result.remoteWorkingDirectory).toMatch(/^clients\/[A-Za-z0-9_.-]+-[0-9a-f]{12}$/);
    }
  });
  it('routing fields with wrong types', async () => {
    await field({ sessionId: 'v3', taskPrompt: 'p', routing: [] }, 'routing');
    await field({ sessionId: 'v3', taskPrompt: 'p', provider: 1 }, 'provider');
    await field({ sessionId: 'v3', taskPrompt: 'p', executionTarget: 'moon' }, 'executionTarget');
  });
  it('cancel / close / tasks.get need their ids', async () => {
    await field({}, 'sessionId', 'session.cancel');
    await field({ sessionId: 3 }, 'sessionId', 'session.close');
    await field({}, 'runId', 'xworkmate.tasks.get');
  });
  it('unknown method → -32601 naming it', async () => {
    const r = await rpc('session.explode', {});
    expectError(r.json, -32601, 'METHOD_NOT_FOUND');
    expect(r.json.error.message).toContain('session.explode');
  });
});

describe('continuation errors', () => {
  it('session.message on an unknown session → -32002 SESSION_CONTINUATION_UNAVAILABLE, and nothing is created', async () => {
    const s = sid();
    const r = await rpc('session.message', { sessionId: s, taskPrompt: 'hello?' });
    expect(r.status).toBe(200);
    expectError(r.json, -32002, 'SESSION_CONTINUATION_UNAVAILABLE');
    expect(await gw.store.get(s)).toBeUndefined();
  });
  it('session.message on a closed session → -32002', async () => {
    const s = sid();
    expect((await rpc('session.start', { sessionId: s, taskPrompt: 'one', executionTarget: 'gateway' })).json.result.status).toBe('completed');
    expect((await rpc('session.close', { sessionId: s })).json.result).toEqual({ accepted: true, closed: true });
    expectError((await rpc('session.message', { sessionId: s, taskPrompt: 'two' })).json, -32002, 'SESSION_CONTINUATION_UNAVAILABLE');
    expect((await rpc('session.close', { sessionId: s })).json.result).toEqual({ accepted: true, closed: false });
  });
  it('tasks.get of an unknown run → {status:"not_found"}', async () => {
    expect((await rpc('xworkmate.tasks.get', { runId: 'run_nope' })).json.result).toMatchObject({ status: 'not_found' });
    expect((await rpc('xworkmate.tasks.get', { sessionId: 'nope' })).json.result).toMatchObject({ status: 'not_found' });
  });
});
