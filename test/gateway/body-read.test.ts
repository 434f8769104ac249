/**
 * readBody on a body Node already holds whole (src/http/body.ts `received`): a real server and a raw socket.
 * The route reads only once the parser has the whole chunked message (the read that needs no listeners), and the
 * size limit, the bytes and their order must be what the listeners' path gives. Then as the gateway's routes
 * call it: at once, inside the parser's callback for the headers, before the parser has handed over the body
 * of the same read. A body that came with its headers is still taken whole (never held against the byte
 * budget), and one still to come still goes through the budget.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attachBodyPolicy, BodyBudget, readBody } from '../../src/http/body.js';
import { GatewayError } from '../../src/wire/errors.js';

const LIMIT = 1024;
let server: Server;
let port: number;

/** What readBody gave, read only when the parser had the whole message. */
async function readWhenComplete(req: IncomingMessage): Promise<{ complete: boolean; body?: string; code?: string }> {
  while (!req.complete) await new Promise((r) => setImmediate(r));
  try {
    const b = await readBody(req, LIMIT);
    return { complete: true, body: b.toString('utf8') };
  } catch (err) {
    return { complete: true, code: (err as GatewayError).code };
  }
}

beforeAll(async () => {
  server = createServer((req, res) => {
    void readWhenComplete(req).then((r) => {
      const text = JSON.stringify(r);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), connection: 'close' }).end(text);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});

/** One socket write: the request line, the headers and the body in chunks of `piece` bytes. */
function send(body: string, piece: number): Promise<{ complete: boolean; body?: string; code?: string }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let out = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (out += d));
    s.on('end', () => resolve(JSON.parse(out.slice(out.indexOf('\r\n\r\n') + 4)) as { complete: boolean; body?: string; code?: string }));
    s.on('error', reject);
    const bytes = Buffer.from(body);
    const parts: Buffer[] = [Buffer.from('POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n')];
    for (let i = 0; i < bytes.length; i += piece) {
      const c = bytes.subarray(i, i + piece);
      parts.push(Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n'));
    }
    parts.push(Buffer.from('0\r\n\r\n'));
    s.write(Buffer.concat(parts));
  });
}

describe('readBody of a body already received whole', () => {
  it('gives every byte, in order, across the chunks it arrived in (multi-byte text split mid-character)', async () => {
    const text = '{"q":"' + 'héllo ✓ '.repeat(40) + '"}';
    expect(Buffer.byteLength(text)).toBeLessThan(LIMIT);
    const r = await send(text, 7);
    expect(r).toEqual({ complete: true, body: text });
  });

  it('holds it to the size limit: PAYLOAD_TOO_LARGE when the whole body is over it', async () => {
    const r = await send('x'.repeat(LIMIT + 1), 100);
    expect(r).toEqual({ complete: true, code: 'PAYLOAD_TOO_LARGE' });
  });

  it('an empty body is empty', async () => {
    const r = await send('', 1);
    expect(r).toEqual({ complete: true, body: '' });
  });
});

describe('readBody called at once, from the request handler (as the routes call it)', () => {
  let at: Server;
  let atPort: number;

  beforeAll(async () => {
    // a byte budget of 1: any body that is charged to it is refused, so the answer says which path read it
    at = createServer((req, res) => {
      attachBodyPolicy(req, { requireJson: false, deadline: Date.now() + 10_000, timeoutMs: 10_000, budget: new BodyBudget(1), maxJsonDepth: 64 });
      readBody(req, LIMIT).then(
        (b) => answer(res, { body: b.toString('utf8') }),
        (err: GatewayError) => answer(res, { code: err.code }),
      );
    });
    await new Promise<void>((r) => at.listen(0, '127.0.0.1', r));
    atPort = (at.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await new Promise<void>((r) => at.close(() => r()));
  });

  function answer(res: import('node:http').ServerResponse, r: { body?: string; code?: string }): void {
    const text = JSON.stringify(r);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), connection: 'close' }).end(text);
  }

  /** Writes `raw` in one socket write and resolves with the answer's JSON. */
  function rawCall(raw: string): Promise<{ body?: string; code?: string }> {
    return new Promise((resolve, reject) => {
      const s = connect(atPort, '127.0.0.1');
      let out = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => (out += d));
      s.on('end', () => resolve(JSON.parse(out.slice(out.indexOf('\r\n\r\n') + 4)) as { body?: string; code?: string }));
      s.on('error', reject);
      s.write(raw);
    });
  }

  it('a body sent with its headers and content-length in one write is read whole, and not charged to the budget', async () => {
    const text = '{"q":"' + 'héllo ✓ '.repeat(20) + '"}';
    const n = Buffer.byteLength(text);
    expect(await rawCall(`POST / HTTP/1.1\r\nhost: x\r\ncontent-length: ${n}\r\n\r\n${text}`)).toEqual({ body: text });
  });

  it('a body still to come goes through the budget (here: refused at once, BODY_BUFFER_FULL)', async () => {
    expect(await rawCall('POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 20\r\n\r\n')).toEqual({ code: 'BODY_BUFFER_FULL' });
    // chunked: charged as it arrives. Node reports a chunked message complete only after the read that carried
    // its end (even when that is the read that carried its headers), so a chunked body takes this path too.
    expect(await rawCall('POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n')).toEqual({
      code: 'BODY_BUFFER_FULL',
    });
  });
});
