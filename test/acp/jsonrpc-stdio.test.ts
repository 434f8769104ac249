import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { JsonRpcStdioPeer, NdjsonLineBuffer, RpcError, classifyMessage } from '../../src/acp/runtimes/agent/jsonrpc-stdio.js';
import { createLogger } from '../../src/util/log.js';
import { GatewayError } from '../../src/wire/errors.js';

const silent = createLogger({}, () => {});

describe('classifyMessage', () => {
  it('tells requests, notifications and responses apart', () => {
    expect(classifyMessage('{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"a":1}}')).toEqual({
      kind: 'request',
      id: 1,
      method: 'initialize',
      params: { a: 1 },
    });
    expect(classifyMessage('{"jsonrpc":"2.0","method":"session/update","params":{}}')).toEqual({ kind: 'notification', method: 'session/update', params: {} });
    expect(classifyMessage('{"jsonrpc":"2.0","id":"x","result":null}')).toEqual({ kind: 'response', id: 'x', result: null });
    expect(classifyMessage('{"jsonrpc":"2.0","id":2,"error":{"code":-32601,"message":"nope"}}')).toMatchObject({
      kind: 'response',
      id: 2,
      error: { code: -32601, message: 'nope' },
    });
  });

  it('calls everything else garbage, with a reason', () => {
    expect(classifyMessage('hello world')).toEqual({ kind: 'garbage', reason: 'not JSON' });
    expect(classifyMessage('[1,2]')).toMatchObject({ kind: 'garbage', reason: 'not a JSON object' });
    expect(classifyMessage('{"id":1,"result":1}')).toMatchObject({ kind: 'garbage', reason: 'missing jsonrpc:"2.0"' });
    expect(classifyMessage('{"jsonrpc":"2.0","id":{},"method":"m"}')).toMatchObject({ kind: 'garbage' });
    expect(classifyMessage('{"jsonrpc":"2.0","id":1}')).toMatchObject({ kind: 'garbage' });
    expect(classifyMessage('{"jsonrpc":"2.0","id":1,"error":{"message":"no code"}}')).toMatchObject({ kind: 'garbage' });
  });
});

describe('NdjsonLineBuffer', () => {
  it('splits across chunks, strips \\r and keeps multi-byte characters whole', () => {
    const b = new NdjsonLineBuffer(1024);
    const euro = Buffer.from('€'); // 3 bytes
    expect(b.push(Buffer.from('{"a":1}\r\n{"b":'))).toEqual(['{"a":1}']);
    expect(b.push(Buffer.concat([Buffer.from('"'), euro.subarray(0, 1)]))).toEqual([]);
    expect(b.push(Buffer.concat([euro.subarray(1), Buffer.from('"}\n\n')]))).toEqual(['{"b":"€"}']);
  });

  it('reports an over-long line once, drops it, and carries on with the next', () => {
    const b = new NdjsonLineBuffer(10);
    const out = [...b.push(Buffer.from('x'.repeat(8))), ...b.push(Buffer.from('x'.repeat(8))), ...b.push(Buffer.from('x'.repeat(8) + '\nok\n'))];
    expect(out).toEqual([{ oversize: 16 }, 'ok']);
  });
});

describe('JsonRpcStdioPeer', () => {
  let toPeer: PassThrough;
  let fromPeer: PassThrough;
  let peer: JsonRpcStdioPeer;
  const sent: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];

  function setup(opts: { requestTimeoutMs?: number; maxLineBytes?: number } = {}): void {
    toPeer = new PassThrough();
    fromPeer = new PassThrough();
    sent.length = 0;
    fromPeer.on('data', (c: Buffer) => {
      for (const line of c.toString().split('\n').filter(Boolean)) sent.push(JSON.parse(line));
      waiters.splice(0).forEach((w) => w());
    });
    peer = new JsonRpcStdioPeer(toPeer, fromPeer, { name: 'agent "t"', log: silent, endGraceMs: 10, ...opts });
  }
  async function nextSent(pred: (m: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    for (let i = 0; i < 100; i++) {
      const m = sent.find(pred);
      if (m) return m;
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 20);
      });
    }
    throw new Error('message never sent');
  }
  const agentWrites = (msg: object | string): boolean => toPeer.write((typeof msg === 'string' ? msg : JSON.stringify({ jsonrpc: '2.0', ...msg })) + '\n');

  afterEach(() => peer?.close());

  it('sends requests with increasing ids and resolves them by id, in any order', async () => {
    setup();
    const a = peer.request('a', { x: 1 });
    const b = peer.request('b', {});
    const ma = await nextSent((m) => m.method === 'a');
    const mb = await nextSent((m) => m.method === 'b');
    expect(ma).toEqual({ jsonrpc: '2.0', id: 1, method: 'a', params: { x: 1 } });
    agentWrites({ id: mb.id, result: 'B' });
    agentWrites({ id: ma.id, error: { code: -32602, message: 'bad a', data: { why: 1 } } });
    await expect(b).resolves.toBe('B');
    const err = await a.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcError);
    expect(err).toMatchObject({ code: -32602, message: 'bad a', data: { why: 1 } });
  });

  it("logs an unhandled notification's method cut: the agent's text, at any length", async () => {
    const debug: Array<Record<string, unknown> | undefined> = [];
    const recording = { ...silent, debug: (msg: string, f?: Record<string, unknown>) => void (msg === 'unhandled notification' && debug.push(f)) };
    toPeer = new PassThrough();
    fromPeer = new PassThrough();
    peer = new JsonRpcStdioPeer(toPeer, fromPeer, { name: 'agent "t"', log: { ...recording, child: () => recording }, endGraceMs: 10 });
    agentWrites({ method: `x/${'m'.repeat(100_000)}`, params: {} });
    await vi.waitFor(() => expect(debug).toHaveLength(1));
    expect(debug[0]).toEqual({ method: `x/${'m'.repeat(254)}…` });
  });

  it("routes notifications and answers the agent's requests through handlers", async () => {
    setup();
    const seen: unknown[] = [];
    peer.onNotification('session/update', (p) => seen.push(p));
    peer.onRequest('fs/read_text_file', async (p) => ({ content: `read ${(p as { path: string }).path}` }));
    peer.onRequest('boom', () => {
      throw new Error('secret internals');
    });
    peer.onRequest('refuse', () => {
      throw new RpcError(-32602, 'path is outside the workspace');
    });
    agentWrites({ method: 'session/update', params: { n: 1 } });
    agentWrites({ id: 7, method: 'fs/read_text_file', params: { path: '/w/a' } });
    agentWrites({ id: 8, method: 'nope', params: {} });
    agentWrites({ id: 9, method: 'boom', params: {} });
    agentWrites({ id: 'r', method: 'refuse', params: {} });
    expect(await nextSent((m) => m.id === 7)).toEqual({ jsonrpc: '2.0', id: 7, result: { content: 'read /w/a' } });
    expect(await nextSent((m) => m.id === 8)).toMatchObject({ error: { code: -32601, message: 'method not found: nope' } });
    expect(await nextSent((m) => m.id === 9)).toEqual({ jsonrpc: '2.0', id: 9, error: { code: -32603, message: 'internal error' } });
    expect(await nextSent((m) => m.id === 'r')).toMatchObject({ error: { code: -32602, message: 'path is outside the workspace' } });
    expect(seen).toEqual([{ n: 1 }]);
  });

  it('aborts a handler on $/cancel_request and answers -32800', async () => {
    setup();
    let aborted = false;
    let running = false;
    peer.onRequest(
      'slow',
      (_p, ctx) => (
        (running = true),
        new Promise((resolve) =>
          ctx.signal.addEventListener('abort', () => {
            aborted = true;
            resolve('late');
          }),
        )
      ),
    );
    agentWrites({ id: 3, method: 'slow', params: {} });
    await vi.waitFor(() => expect(running, 'the slow handler is running').toBe(true));
    agentWrites({ method: '$/cancel_request', params: { id: 3 } });
    expect(await nextSent((m) => m.id === 3)).toMatchObject({ error: { code: -32800 } });
    expect(aborted).toBe(true);
  });

  it('times a request out, tells the agent with $/cancel_request, and ignores the late answer', async () => {
    setup({ requestTimeoutMs: 50 });
    const err = await peer.request('session/prompt', {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect(err).toMatchObject({ code: 'UPSTREAM_TIMEOUT', message: 'agent "t" did not answer session/prompt within 50 ms' });
    expect(await nextSent((m) => m.method === '$/cancel_request')).toMatchObject({ params: { id: 1 } });
    agentWrites({ id: 1, result: {} });
    await expect(peer.request('ping', {}, { timeoutMs: 20 })).rejects.toMatchObject({ code: 'UPSTREAM_TIMEOUT' });
  });

  it('cancels a request through an AbortSignal', async () => {
    setup();
    const ac = new AbortController();
    const p = peer.request('session/prompt', {}, { signal: ac.signal });
    ac.abort();
    await expect(p).rejects.toMatchObject({ code: 'CANCELLED' });
    expect(await nextSent((m) => m.method === '$/cancel_request')).toBeTruthy();
  });

  it('fails the in-flight request on garbage with a truncated sample, counts it, and stays usable', async () => {
    setup();
    const p = peer.request('session/prompt', {});
    agentWrites('npm WARN ' + 'x'.repeat(500));
    const err = (await p.catch((e: unknown) => e)) as GatewayError;
    expect(err.code).toBe('UPSTREAM_BAD_RESPONSE');
    expect(err.message).toMatch(/^agent "t" wrote non-JSON-RPC output on stdout \(not JSON: "npm WARN x+…"\)$/);
    expect(err.message.length).toBeLessThan(220);
    expect(peer.garbageLines).toBe(1);
    const q = peer.request('again', {});
    const m = await nextSent((x) => x.method === 'again');
    agentWrites({ id: m.id, result: 'fine' });
    await expect(q).resolves.toBe('fine');
  });

  it('treats an over-long line as garbage', async () => {
    setup({ maxLineBytes: 64 });
    const p = peer.request('x', {});
    agentWrites({ method: 'session/update', params: { big: 'y'.repeat(200) } });
    await expect(p).rejects.toMatchObject({ code: 'UPSTREAM_BAD_RESPONSE', message: expect.stringContaining('64-byte limit') });
  });

  it('rejects everything pending on close, and later requests at once', async () => {
    setup();
    const p = peer.request('a', {});
    peer.close(new GatewayError('UPSTREAM_ERROR', 'agent "t" exited with code 3'));
    await expect(p).rejects.toThrow('agent "t" exited with code 3');
    await expect(peer.request('b', {})).rejects.toThrow('exited with code 3');
    expect(peer.closed).toBe(true);
  });

  it('rejects pending requests when the agent closes stdout', async () => {
    setup();
    const p = peer.request('a', {});
    toPeer.end();
    await expect(p).rejects.toMatchObject({ code: 'UPSTREAM_ERROR', message: 'agent "t" closed its stdout' });
  });
});
