/**
 * readBody on a body Node already holds whole (src/http/body.ts `received`): a real server and a raw socket.
 * The route reads only once the parser has the whole chunked message (the read that needs no listeners), and the
 * size limit, the bytes and their order must be what the listeners' path gives.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBody } from '../../src/http/body.js';
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
