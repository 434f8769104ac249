/**
 * A body over `gateway.maxBodyBytes` is answered 413 while its client is still sending it, and the connection is
 * then closed. Closed at once, the client's next write met a reset (EPIPE / ECONNRESET), and a reset can discard the
 * 413 before the client reads it: `sessions-rest.e2e` lost its 413 that way on a loaded machine. The close now
 * lingers (src/http/body.ts, `lingerOnClose`). Deterministic here: a raw client sends its headers, waits until the
 * whole 413 is in, and only then sends the body, which the old code met with a reset every time.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { LINGER_BYTES } from '../../src/http/body.js';
import { startGw } from '../helpers/env.js';

const MAX_BODY = 64 * 1024;
let gw: Gateway;

beforeAll(async () => {
  gw = await startGw({ gateway: { maxBodyBytes: MAX_BODY }, channels: [{ name: 'mk', provider: 'mock', models: ['mock-1'] }] });
});
afterAll(() => gw?.close());

interface Outcome {
  answer: string;
  /** the socket's error, if any, after the answer was in */
  error: string | undefined;
}

/**
 * Sends `head`, waits for the whole answer (it ends at the close), writes `body` meanwhile once the answer's headers
 * and JSON are in, and reports the answer and any socket error.
 */
function sendAfterAnswer(head: string, body: Buffer[]): Promise<Outcome> {
  const { port } = new URL(gw.url);
  return new Promise((resolve) => {
    const s: Socket = connect(Number(port), '127.0.0.1');
    let answer = '';
    let error: string | undefined;
    let sent = false;
    s.on('data', (d: Buffer) => {
      answer += d.toString('latin1');
      // the whole 413 is in (its JSON body ends the answer): now the rest of the request goes
      if (!sent && answer.includes('\r\n\r\n') && answer.trimEnd().endsWith('}')) {
        sent = true;
        for (const b of body) s.write(b);
        s.end();
      }
    });
    s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    s.on('close', () => resolve({ answer, error }));
    s.write(head);
  });
}

describe('a body over gateway.maxBodyBytes: the 413, and a close that lets the client finish', () => {
  it('with content-length: the client sends its whole body after the 413 and meets no reset', async () => {
    // more than the sockets' buffers take, so the client is still writing when the gateway closes
    const size = LINGER_BYTES / 2;
    const head = `POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${size}\r\n\r\n`;
    const { answer, error } = await sendAfterAnswer(head, [Buffer.alloc(size, 0x78)]);
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer.toLowerCase()).toContain('connection: close');
    expect(answer).toContain('payload_too_large');
    expect(error).toBeUndefined();
  });

  it('chunked: the rest of the chunks after the 413 meet no reset either', async () => {
    const head = `POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n`;
    const chunk = (n: number) => Buffer.concat([Buffer.from(`${n.toString(16)}\r\n`), Buffer.alloc(n, 0x79), Buffer.from('\r\n')]);
    const { port } = new URL(gw.url);
    // over the limit at once, so the 413 comes while the client still has chunks to send
    const { answer, error } = await new Promise<Outcome>((resolve) => {
      const s = connect(Number(port), '127.0.0.1');
      let a = '';
      let err: string | undefined;
      let sent = false;
      s.on('data', (d: Buffer) => {
        a += d.toString('latin1');
        if (!sent && a.trimEnd().endsWith('}')) {
          sent = true;
          for (let i = 0; i < 8; i++) s.write(chunk(MAX_BODY));
          s.end('0\r\n\r\n');
        }
      });
      s.on('error', (e: NodeJS.ErrnoException) => (err = e.code ?? e.message));
      s.on('close', () => resolve({ answer: a, error: err }));
      s.write(head);
      s.write(chunk(2 * MAX_BODY));
    });
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(error).toBeUndefined();
  });

  it('a client that goes on sending is cut once LINGER_BYTES more came: lingering is bounded', async () => {
    const head = `POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${8 * LINGER_BYTES}\r\n\r\n`;
    const piece = Buffer.alloc(1024 * 1024, 0x7a);
    const { answer, error } = await sendAfterAnswer(
      head,
      Array.from({ length: (2 * LINGER_BYTES) / piece.length }, () => piece),
    );
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    // the gateway destroyed the socket before the client could send it all
    expect(error).toMatch(/EPIPE|ECONNRESET/);
  });
});
