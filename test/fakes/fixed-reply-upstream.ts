/**
 * The smallest OpenAI-compatible upstream: every request gets 200 and the JSON text `answer(requestBody)` returns,
 * exactly as given. For the tests that check a body is relayed byte for byte (a pretty-printed reply shows any
 * re-serialisation) or that bad bodies keep their errors.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FixedReplyUpstream {
  /** http://127.0.0.1:PORT/v1, a channel's `baseUrl` */
  baseUrl: string;
  close(): Promise<void>;
}

/** `contentType`: what the answer is sent as (`text/event-stream` for a raw SSE body, written as given). */
export async function startFixedReplyUpstream(answer: (requestBody: string) => string, contentType = 'application/json'): Promise<FixedReplyUpstream> {
  const server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (text += c));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': contentType });
      res.end(answer(text));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
