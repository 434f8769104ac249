/**
 * AcpClient against a small local fake of `/acp/rpc` that follows the spec byte for byte (envelopes with
 * mirrors, SSE: notifications, final envelope, `data: [DONE]`), plus the ways a reply can go wrong: JSON-RPC
 * errors, mirror-only envelopes, a cut stream, HTML instead of JSON, silence, wrong ids, aborts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AcpBaseUrlError } from './base-url.js';
import { AcpClient, AcpRpcError, AcpTransportError, readEnvelope, type AcpNotification, type SessionUpdate } from './client.js';

const TOKEN = 'client-test-token-7c1d';
let server: Server;
let base: string;
const seen: Array<{ path: string; headers: IncomingMessage['headers']; body: { id?: unknown; method?: unknown; params?: unknown } }> = [];
/** resolves the held final reply of method "held" */
let release: (() => void) | undefined;

const res_ = (id: unknown, result: unknown) => ({ jsonrpc: '2.0', id, result, type: 'res', ok: true, payload: result });
const err_ = (id: unknown, code: number, message: string, data: Record<string, unknown>) => ({
  jsonrpc: '2.0',
  id,
  error: { code, message, data },
  type: 'res',
  ok: false,
});
const note = (method: string, params: Record<string, unknown>) => ({ jsonrpc: '2.0', method, params, type: 'event', event: method, payload: params });
const upd = (seq: number, extra: Record<string, unknown>) => note('session.update', { sessionId: 's1', threadId: 's1', turnId: 't1', seq, ...extra });

function sse(res: ServerResponse, messages: unknown[], done = true): void {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
  for (const m of messages) res.write(`data: ${JSON.stringify(m)}\n\n`);
  if (done) res.end('data: [DONE]\n\n');
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : undefined;
  seen.push({ path: req.url ?? '', headers: req.headers, body });
  if (req.url !== '/acp/rpc') return json(res, 404, { error: 'not found' });
  if (req.headers.authorization !== `Bearer ${TOKEN}`) return json(res, 401, err_(null, -32001, 'missing or invalid ACP token', { code: 'UNAUTHORIZED' }));
  const { id, method, params } = body;
  const stream = String(req.headers.accept).includes('text/event-stream');
  const result = { success: true, status: 'completed', sessionId: params.sessionId, output: 'hello world', stopReason: 'end_turn' };
  switch (method) {
    case 'acp.capabilities':
      return json(
        res,
        200,
        res_(id, {
          singleAgent: false,
          multiAgent: false,
          availableExecutionTargets: ['gateway'],
          providerCatalog: [],
          gatewayProviders: [{ providerId: 'switchyard', label: 'Switchyard', targets: ['gateway'], enabled: true }],
        }),
      );
    case 'session.start':
      if (!stream) return json(res, 200, res_(id, result));
      return sse(res, [
        upd(1, { type: 'status', event: 'started' }),
        note('xworkmate.bridge.keepalive', { intervalMs: 20000 }),
        upd(2, { type: 'delta', event: 'delta', delta: 'hello ', text: 'hello ' }),
        upd(3, {
          type: 'step',
          event: 'tool_call',
          text: 'read',
          structuredEvent: { sessionUpdate: 'tool_call', toolCallId: 'c1', title: 'read', status: 'pending' },
        }),
        upd(4, { type: 'delta', event: 'delta', delta: 'world', text: 'world' }),
        res_(id, result),
      ]);
    case 'session.message':
      if (stream) return sse(res, [err_(id, -32002, 'session "gone" cannot be continued', { code: 'SESSION_CONTINUATION_UNAVAILABLE' })]);
      return json(res, 200, err_(id, -32002, 'session "gone" cannot be continued', { code: 'SESSION_CONTINUATION_UNAVAILABLE' }));
    case 'session.cancel':
      return json(res, 200, res_(id, { accepted: true, cancelled: true }));
    case 'session.close':
      return json(res, 200, res_(id, { accepted: true, closed: true }));
    case 'xworkmate.tasks.get':
      return json(res, 200, res_(id, { status: 'not_found' }));
    case 'xworkmate.routing.resolve':
      return json(res, 200, res_(id, { resolvedExecutionTarget: 'gateway', resolvedGatewayProviderId: 'switchyard' }));
    case 'health':
      return json(res, 200, res_(id, { status: 'ok', version: '0.1.0' }));
    case 'mirror-only':
      // an envelope with only the app mirrors: payload instead of result
      return json(res, 200, { jsonrpc: '2.0', id, type: 'res', ok: true, payload: { via: 'payload' } });
    case 'ok-false':
      return json(res, 200, { jsonrpc: '2.0', id, type: 'res', ok: false, payload: { why: 'x' } });
    case 'event-only':
      // notifications carried only as `event` + `payload`
      return sse(res, [
        {
          jsonrpc: '2.0',
          type: 'event',
          event: 'session.update',
          payload: { sessionId: 's1', threadId: 's1', turnId: 't1', seq: 1, type: 'delta', event: 'delta', delta: 'x' },
        },
        res_(id, 'ok'),
      ]);
    case 'cut':
      return (sse(res, [upd(1, { type: 'status', event: 'started' })], false), void res.end());
    case 'no-done':
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify(res_(id, 'fine'))}\n\n`);
      return void res.end();
    case 'final-then-open':
      // the final envelope, then the stream stays open: the call must not wait for [DONE]
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify(res_(id, 'settled'))}\n\n`);
      return;
    case 'garbage-sse':
      return (sse(res, ['not-an-envelope']), undefined);
    case 'bad-json-sse':
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      return void res.end('data: {nope\n\n');
    case 'html':
      res.writeHead(502, { 'content-type': 'text/html' });
      return void res.end('<html>bad gateway</html>');
    case 'wrong-id':
      return json(res, 200, res_('someone-else', 1));
    case 'null-id-error':
      return json(res, 400, err_(null, -32700, 'parse error', { code: 'PARSE_ERROR' }));
    case 'silent':
      return; // never answers
    case 'silent-stream':
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify(upd(1, { type: 'status', event: 'started' }))}\n\n`);
      return; // then nothing
    case 'held':
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify(upd(1, { type: 'delta', event: 'delta', delta: 'first' }))}\n\n`);
      release = () => {
        res.write(`data: ${JSON.stringify(res_(id, 'released'))}\n\n`);
        res.end('data: [DONE]\n\n');
      };
      return;
    default:
      return json(res, 200, err_(id, -32601, `method not found: ${method}`, { code: 'METHOD_NOT_FOUND' }));
  }
}

beforeAll(async () => {
  server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const client = (o: Partial<ConstructorParameters<typeof AcpClient>[0]> = {}) => new AcpClient({ baseUrl: base, token: TOKEN, allowLocal: true, ...o });

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('AcpClient: endpoint', () => {
  it('normalises the base and enforces the routing rules at construction', () => {
    expect(client({ baseUrl: `${base}/acp` }).endpoint.href).toBe(`${base}/acp/rpc`);
    expect(() => new AcpClient({ baseUrl: base })).toThrow(AcpBaseUrlError);
    expect(() => new AcpClient({ baseUrl: 'https://bridge.example.com/gateway/openclaw' })).toThrow(/\/gateway\//);
    expect(() => new AcpClient({ baseUrl: 'https://bridge.example.com/acp-server/codex', allowLocal: true })).toThrow(/acp-server/);
  });

  it('posts JSON-RPC 2.0 with the Bearer token and a fresh id each time', async () => {
    const c = client({ baseUrl: `${base}/acp/rpc/` });
    seen.length = 0;
    await c.health();
    await c.health();
    expect(seen.map((s) => s.path)).toEqual(['/acp/rpc', '/acp/rpc']);
    expect(seen[0]!.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(seen[0]!.headers['content-type']).toBe('application/json');
    expect(seen[0]!.headers.accept).toBe('application/json');
    expect(seen[0]!.body).toMatchObject({ jsonrpc: '2.0', method: 'health', params: {} });
    expect(typeof seen[0]!.body.id).toBe('string');
    expect(seen[0]!.body.id).not.toBe(seen[1]!.body.id);
  });
});

describe('AcpClient: plain calls', () => {
  it('helpers send the contract methods and params and return results', async () => {
    const c = client();
    seen.length = 0;
    expect((await c.capabilities()).gatewayProviders[0]).toMatchObject({ providerId: 'switchyard', enabled: true });
    expect(await c.cancel('s1')).toEqual({ accepted: true, cancelled: true });
    expect(await c.close('s1')).toEqual({ accepted: true, closed: true });
    expect(await c.tasksGet({ runId: 'r1' })).toEqual({ status: 'not_found' });
    expect(await c.resolveRouting({ routing: { routingMode: 'auto' } })).toMatchObject({ resolvedExecutionTarget: 'gateway' });
    expect(await c.start({ sessionId: 's1', taskPrompt: 'hi' }, { stream: false })).toMatchObject({ status: 'completed', output: 'hello world' });
    expect(seen.map((s) => [s.body.method, s.body.params])).toEqual([
      ['acp.capabilities', {}],
      ['session.cancel', { sessionId: 's1' }],
      ['session.close', { sessionId: 's1' }],
      ['xworkmate.tasks.get', { runId: 'r1' }],
      ['xworkmate.routing.resolve', { routing: { routingMode: 'auto' } }],
      ['session.start', { sessionId: 's1', taskPrompt: 'hi' }],
    ]);
    expect(seen[5]!.headers.accept).toBe('application/json');
  });

  it('a JSON-RPC error becomes AcpRpcError with code, message, data and dataCode', async () => {
    const e = await rejection(client().message({ sessionId: 'gone', taskPrompt: 'x' }, { stream: false }));
    expect(e).toBeInstanceOf(AcpRpcError);
    expect(e).toMatchObject({
      code: -32002,
      message: 'session "gone" cannot be continued',
      data: { code: 'SESSION_CONTINUATION_UNAVAILABLE' },
      httpStatus: 200,
    });
    expect((e as AcpRpcError).dataCode).toBe('SESSION_CONTINUATION_UNAVAILABLE');
    const nf = await rejection(client().call('nope'));
    expect(nf).toMatchObject({ code: -32601, dataCode: 'METHOD_NOT_FOUND' });
  });

  it('a rejected token is an AcpRpcError with the HTTP status', async () => {
    const e = await rejection(client({ token: 'wrong' }).health());
    expect(e).toBeInstanceOf(AcpRpcError);
    expect(e).toMatchObject({ code: -32001, httpStatus: 401, dataCode: 'UNAUTHORIZED' });
    const none = await rejection(client({ token: undefined }).health());
    expect(none).toMatchObject({ code: -32001, httpStatus: 401 });
  });

  it('tolerates mirror-only envelopes (payload instead of result; ok:false without error)', async () => {
    expect(await client().call('mirror-only')).toEqual({ via: 'payload' });
    const e = await rejection(client().call('ok-false'));
    expect(e).toBeInstanceOf(AcpRpcError);
    expect(e).toMatchObject({ code: -32603, data: { why: 'x' } });
  });

  it('an error envelope with a null id (parse error) is still the error', async () => {
    expect(await rejection(client().call('null-id-error'))).toMatchObject({ code: -32700, httpStatus: 400, dataCode: 'PARSE_ERROR' });
  });

  it('a reply for another id is refused', async () => {
    const e = await rejection(client().call('wrong-id'));
    expect(e).toBeInstanceOf(AcpTransportError);
    expect(e).toMatchObject({ reason: 'bad-response' });
    expect((e as Error).message).toMatch(/reply carries id "someone-else"/);
  });

  it('HTML instead of JSON is a transport error naming the status', async () => {
    const e = await rejection(client().call('html'));
    expect(e).toMatchObject({ reason: 'http', httpStatus: 502 });
    expect((e as Error).message).toMatch(/HTTP 502, not JSON/);
  });

  it('an unreachable gateway is a transport error with the socket code', async () => {
    const e = await rejection(new AcpClient({ baseUrl: 'http://127.0.0.1:9', allowLocal: true, token: TOKEN }).health());
    expect(e).toMatchObject({ reason: 'unreachable', causeCode: 'ECONNREFUSED' });
    expect((e as Error).message).toBe('cannot reach http://127.0.0.1:9/acp/rpc (ECONNREFUSED)');
  });

  it('a plain call that never answers times out (bounded)', async () => {
    const t0 = Date.now();
    const e = await rejection(client({ timeoutMs: 300 }).call('silent'));
    expect(e).toMatchObject({ reason: 'timeout' });
    expect(Date.now() - t0).toBeLessThan(3000);
  });
});

describe('AcpClient: streamed calls (SSE)', () => {
  it('delivers notifications in order (keepalive included), then resolves with the final result', async () => {
    const notes: AcpNotification[] = [];
    const updates: SessionUpdate[] = [];
    seen.length = 0;
    const r = await client().start({ sessionId: 's1', taskPrompt: 'hi' }, { onNotification: (n) => notes.push(n), onUpdate: (u) => updates.push(u) });
    expect(seen[0]!.headers.accept).toBe('text/event-stream');
    expect(r).toMatchObject({ status: 'completed', output: 'hello world', stopReason: 'end_turn' });
    expect(notes.map((n) => n.method)).toEqual(['session.update', 'xworkmate.bridge.keepalive', 'session.update', 'session.update', 'session.update']);
    expect(updates.map((u) => u.seq)).toEqual([1, 2, 3, 4]);
    expect(updates.map((u) => u.delta ?? '').join('')).toBe('hello world');
    expect(updates[2]).toMatchObject({ event: 'tool_call', structuredEvent: { toolCallId: 'c1' } });
  });

  it('notifications arrive live, before the final envelope', async () => {
    const got: string[] = [];
    const p = client().call('held', {}, { stream: true, onNotification: (n) => got.push(String(n.params.delta)) });
    await expect.poll(() => got, { timeout: 3000 }).toEqual(['first']);
    release!();
    expect(await p).toBe('released');
  });

  it('reads notifications carried only as event + payload', async () => {
    const got: string[] = [];
    expect(await client().call('event-only', {}, { stream: true, onNotification: (n) => got.push(`${n.method}:${String(n.params.delta)}`) })).toBe('ok');
    expect(got).toEqual(['session.update:x']);
  });

  it('an error as the final envelope rejects with AcpRpcError', async () => {
    const e = await rejection(client().message({ sessionId: 'gone', taskPrompt: 'x' }));
    expect(e).toMatchObject({ code: -32002, dataCode: 'SESSION_CONTINUATION_UNAVAILABLE' });
  });

  it('a stream without [DONE] after the final envelope still resolves', async () => {
    expect(await client().call('no-done', {}, { stream: true })).toBe('fine');
  });

  it('the final envelope settles the call at once, without waiting for [DONE]', async () => {
    const t0 = Date.now();
    expect(await client({ idleTimeoutMs: 5000 }).call('final-then-open', {}, { stream: true })).toBe('settled');
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('a stream cut before the final envelope is a transport error, never a fake success', async () => {
    const e = await rejection(client().call('cut', {}, { stream: true }));
    expect(e).toMatchObject({ reason: 'bad-response' });
    expect((e as Error).message).toMatch(/ended before the final reply/);
  });

  it('non-JSON or non-JSON-RPC stream messages are transport errors', async () => {
    expect(await rejection(client().call('bad-json-sse', {}, { stream: true }))).toMatchObject({ reason: 'bad-response' });
    expect(await rejection(client().call('garbage-sse', {}, { stream: true }))).toMatchObject({ reason: 'bad-response' });
  });

  it('a silent stream hits the idle timeout (bounded)', async () => {
    const t0 = Date.now();
    const e = await rejection(client({ idleTimeoutMs: 300 }).call('silent-stream', {}, { stream: true }));
    expect(e).toMatchObject({ reason: 'timeout' });
    expect((e as Error).message).toMatch(/silent for 300 ms/);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('aborting the signal ends the call with reason "aborted"', async () => {
    const ac = new AbortController();
    const p = client().call('silent-stream', {}, { stream: true, signal: ac.signal, onNotification: () => ac.abort() });
    expect(await rejection(p)).toMatchObject({ reason: 'aborted' });
    const pre = new AbortController();
    pre.abort();
    expect(await rejection(client().health({ signal: pre.signal }))).toMatchObject({ reason: 'aborted' });
  });

  it("an error thrown by the caller's onNotification reaches the caller unchanged", async () => {
    const mine = new Error('mine');
    const e = await rejection(
      client().start(
        { sessionId: 's1', taskPrompt: 'x' },
        {
          onUpdate: () => {
            throw mine;
          },
        },
      ),
    );
    expect(e).toBe(mine);
  });
});

describe('readEnvelope', () => {
  it.each([
    [{ jsonrpc: '2.0', id: 1, result: 0 }, 'result'],
    [{ jsonrpc: '2.0', id: 1, result: null, ok: true, type: 'res', payload: null }, 'result'],
    [{ jsonrpc: '2.0', id: 1, error: { code: -1, message: 'm' } }, 'error'],
    [{ jsonrpc: '2.0', method: 'session.update', params: {} }, 'notification'],
    [{ type: 'event', event: 'session.update', payload: {} }, 'notification'],
    [{ jsonrpc: '2.0', id: 1 }, 'invalid'],
    ['[DONE]', 'invalid'],
    [null, 'invalid'],
  ])('%j → %s', (v, kind) => {
    expect(readEnvelope(v).kind).toBe(kind);
  });
});
