/**
 * A fake OpenAI Responses API (POST /v1/responses) on 127.0.0.1:0 that replays a recorded stream
 * (test/apis/fixtures/openai-responses-text.sse, from OpenAI's API reference) event by event, or answers
 * the completed response as JSON when `stream` is not true. `cutAfterEvents` destroys the socket after that
 * many events (no response.completed); `failAfterEvents` ends the stream there with the API's own
 * `response.failed` (the same response id, the next sequence_number, `error: {code, message}`), or with an
 * `error` event (`errorEvent`). For native pass-through tests of `options.responsesApi`.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

const FIXTURE = fileURLToPath(new URL('../apis/fixtures/openai-responses-text.sse', import.meta.url));

export interface ResponsesFake {
  baseUrl: string;
  lastRequest(): Record<string, unknown> | undefined;
  lastHeaders(): IncomingMessage['headers'] | undefined;
  /** requests received */
  count(): number;
  close(): Promise<void>;
}

export interface ResponsesFakeOptions {
  cutAfterEvents?: number;
  /** after this many events, `response.failed` with `failure` as its `response.error` */
  failAfterEvents?: number;
  failure?: { code: string; message: string };
  /**
   * with `failAfterEvents`: end there with an `error` event instead, whose data is this (after `type` and
   * `sequence_number`): `{code, message, param}` as the API reference has it, or `{error: {…}}` as the API
   * has been seen to send it
   */
  errorEvent?: Record<string, unknown>;
  /** the completed response (JSON, and the stream's `response.completed`) without `usage`; read per request */
  omitUsage?: boolean;
}

export async function startResponsesUpstream(opts: ResponsesFakeOptions = {}): Promise<ResponsesFake> {
  const events = readFileSync(FIXTURE, 'utf8')
    .split(/\n\n/)
    .filter((e) => e.trim())
    .map((e) => e + '\n\n');
  const completed = JSON.parse(events.at(-1)!.split('\ndata: ')[1]!).response;
  const { usage: _usage, ...uncounted } = completed as Record<string, unknown>;
  const lastEvent = JSON.parse(events.at(-1)!.split('\ndata: ')[1]!) as Record<string, unknown>;
  const uncountedEnd = `event: response.completed\ndata: ${JSON.stringify({ ...lastEvent, response: uncounted })}\n\n`;
  const created = JSON.parse(events[0]!.split('\ndata: ')[1]!).response;
  const failed = (n: number) => {
    const response = { ...created, status: 'failed', error: opts.failure ?? { code: 'server_error', message: 'The model failed' } };
    if (opts.errorEvent) return `event: error\ndata: ${JSON.stringify({ type: 'error', sequence_number: n, ...opts.errorEvent })}\n\n`;
    return `event: response.failed\ndata: ${JSON.stringify({ type: 'response.failed', sequence_number: n, response })}\n\n`;
  };
  let last: { body?: Record<string, unknown>; headers?: IncomingMessage['headers'] } = {};
  let received = 0;
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    // the handler is async (it paces the stream); a throw fails the test run as an unhandled rejection
    req.on(
      'end',
      () =>
        void (async () => {
          const body = JSON.parse(Buffer.concat(parts).toString('utf8') || '{}') as Record<string, unknown>;
          last = { body, headers: req.headers };
          received++;
          if (req.url !== '/v1/responses') {
            res
              .writeHead(404, { 'content-type': 'application/json' })
              .end(JSON.stringify({ error: { message: 'Not found', type: 'invalid_request_error', param: null, code: null } }));
            return;
          }
          if (body.stream !== true) {
            res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ...(opts.omitUsage ? uncounted : completed), model: body.model }));
            return;
          }
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          let n = 0;
          for (const e of events) {
            if (opts.failAfterEvents !== undefined && n >= opts.failAfterEvents) {
              res.end(failed(n));
              return;
            }
            if (opts.cutAfterEvents !== undefined && n >= opts.cutAfterEvents) {
              res.socket?.destroy();
              return;
            }
            const text = opts.omitUsage && n === events.length - 1 ? uncountedEnd : e;
            await new Promise<void>((r) => res.write(text, () => setImmediate(r)));
            n++;
          }
          res.end();
        })(),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    lastRequest: () => last.body,
    lastHeaders: () => last.headers,
    count: () => received,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
