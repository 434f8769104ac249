import { describe, expect, it } from 'vitest';
import { AcpRpcError, errorEnvelope, notificationText, parseRequest, resultEnvelope, toRpcError } from './envelope.js';
import { GatewayError } from '../../wire/errors.js';

describe('parseRequest', () => {
  it('accepts requests and notifications; params default to {}', () => {
    expect(parseRequest({ jsonrpc: '2.0', id: 'a', method: 'm', params: { x: 1 } })).toEqual({ ok: true, request: { id: 'a', method: 'm', params: { x: 1 } } });
    expect(parseRequest({ jsonrpc: '2.0', id: 0, method: 'm' })).toEqual({ ok: true, request: { id: 0, method: 'm', params: {} } });
    expect(parseRequest({ jsonrpc: '2.0', method: 'm' })).toEqual({ ok: true, request: { id: undefined, method: 'm', params: {} } });
    expect(parseRequest({ jsonrpc: '2.0', id: 2 ** 53 - 1, method: 'm' })).toMatchObject({ ok: true, request: { id: 2 ** 53 - 1 } });
    expect(parseRequest({ jsonrpc: '2.0', id: 1.5, method: 'm' })).toMatchObject({ ok: true, request: { id: 1.5 } });
    // JSON-RPC 2.0 §4: null is an id (discouraged, but valid): a request, answered with id null; not a notification
    expect(parseRequest({ jsonrpc: '2.0', id: null, method: 'm' })).toEqual({ ok: true, request: { id: null, method: 'm', params: {} } });
  });
  it('rejects malformed requests with -32600 / -32602, keeping a readable id', () => {
    const cases: Array<[unknown, number, unknown]> = [
      [[], -32600, null],
      [null, -32600, null],
      ['x', -32600, null],
      [{ jsonrpc: '2.0', id: true, method: 'm' }, -32600, null],
      // an integer past 2^53 - 1 was rounded when read: never echoed as another id
      [{ jsonrpc: '2.0', id: 2 ** 64, method: 'm' }, -32600, null],
      [{ jsonrpc: '2.0', id: -(2 ** 53), method: 'm' }, -32600, null],
      [{ jsonrpc: '2.0', id: 5 }, -32600, 5],
      [{ jsonrpc: '2.0', id: 5, method: '' }, -32600, 5],
      [{ id: 'k', method: 'm' }, -32600, 'k'],
      [{ jsonrpc: '2.0', id: 5, method: 'm', params: [1] }, -32602, 5],
      [{ jsonrpc: '2.0', id: 5, method: 'm', params: 'p' }, -32602, 5],
    ];
    for (const [v, code, id] of cases) {
      const r = parseRequest(v);
      expect(r.ok, JSON.stringify(v)).toBe(false);
      if (!r.ok) {
        expect(r.error.rpcCode).toBe(code);
        expect(r.error.httpStatus).toBe(400);
        expect(r.id).toBe(id);
      }
    }
  });
});

describe('envelopes', () => {
  it('result, error and notification carry their mirrors', () => {
    expect(resultEnvelope(1, { a: 1 })).toEqual({ jsonrpc: '2.0', id: 1, result: { a: 1 }, type: 'res', ok: true, payload: { a: 1 } });
    expect(errorEnvelope('x', new AcpRpcError(-32002, 'SESSION_CONTINUATION_UNAVAILABLE', 'gone', { sessionId: 's' }))).toEqual({
      jsonrpc: '2.0',
      id: 'x',
      error: { code: -32002, message: 'gone', data: { sessionId: 's', code: 'SESSION_CONTINUATION_UNAVAILABLE' } },
      type: 'res',
      ok: false,
    });
    expect(JSON.parse(notificationText('session.update', { seq: 1 }))).toEqual({
      jsonrpc: '2.0',
      method: 'session.update',
      params: { seq: 1 },
      type: 'event',
      event: 'session.update',
      payload: { seq: 1 },
    });
  });
  it('GatewayErrors map through ERROR_TABLE; unknown throwables become INTERNAL without leaking', () => {
    const e = toRpcError(new GatewayError('MODEL_NOT_FOUND', 'no model', { param: 'model' }));
    expect(e).toMatchObject({ rpcCode: -32602, dataCode: 'MODEL_NOT_FOUND', data: { field: 'model' } });
    expect(toRpcError(new GatewayError('UNAUTHORIZED', 'x')).rpcCode).toBe(-32001);
    const i = toRpcError(new Error('secret path /etc/x'));
    expect(i).toMatchObject({ rpcCode: -32603, dataCode: 'INTERNAL', message: 'internal error' });
  });
});
