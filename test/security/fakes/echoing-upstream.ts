/**
 * An OpenAI-compatible upstream that leaks what it is sent, the way many proxies and self-hosted servers do:
 * the user message picks the failure.
 * - "please-401": 401 `Incorrect API key provided: <the bearer key it received>` (OpenAI's error shape)
 * - "please-500": 500 whose message is every request header it received, as JSON
 * - "please-stream-error": a 200 stream with one content chunk, then an in-band error event naming the key
 * - "please-say-key": a normal completion whose content contains the key (a model that repeats its context)
 * - "please-401-piece": 401 naming only pieces of the key: its last 22 characters, and `api:<key>` base64-encoded
 * Anything else: a normal completion.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface EchoingUpstream {
  /** http://127.0.0.1:port/v1 */
  baseUrl: string;
  /** requests received, by failure kind */
  hits: Record<string, number>;
  close(): Promise<void>;
}

async function bodyOf(req: IncomingMessage): Promise<string> {
  let s = '';
  for await (const c of req) s += String(c);
  return s;
}

export async function startEchoingUpstream(): Promise<EchoingUpstream> {
  const hits: Record<string, number> = {};
  const server: Server = createServer(
    (req, res) =>
      void (async () => {
        const raw = await bodyOf(req);
        const key = /^Bearer\s+(.*)$/i.exec(String(req.headers.authorization ?? ''))?.[1] ?? '';
        const kind = /please-(401-piece|401|500|stream-error|say-key)/.exec(raw)?.[0] ?? 'ok';
        hits[kind] = (hits[kind] ?? 0) + 1;
        const json = (status: number, body: unknown) => {
          const text = JSON.stringify(body);
          res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
          res.end(text);
        };
        if (kind === 'please-401') {
          return json(401, {
            error: {
              message: `Incorrect API key provided: ${key}. You can find your API key at https://platform.openai.com/account/api-keys.`,
              type: 'invalid_request_error',
              param: null,
              code: 'invalid_api_key',
            },
          });
        }
        if (kind === 'please-401-piece') {
          const basic = Buffer.from(`api:${key}`).toString('base64');
          return json(401, { error: { message: `Incorrect API key provided: ...${key.slice(-22)} (sent as Basic ${basic})`, type: 'invalid_request_error' } });
        }
        if (kind === 'please-500') {
          return json(500, { error: { message: `internal error; request headers were ${JSON.stringify(req.headers)}`, type: 'server_error' } });
        }
        const chunk = (delta: Record<string, unknown>, finish: string | null) =>
          `data: ${JSON.stringify({ id: 'chatcmpl-echo', object: 'chat.completion.chunk', created: 1, model: 'echo-model', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
        if (kind === 'please-stream-error') {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write(chunk({ role: 'assistant', content: 'partial ' }, null));
          setTimeout(() => res.end(`data: ${JSON.stringify({ error: { message: `stream aborted: key ${key} was revoked`, type: 'server_error' } })}\n\n`), 20);
          return;
        }
        const content = kind === 'please-say-key' ? `the key is ${key}` : 'fine';
        if (/"stream":\s*true/.test(raw)) {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.end(chunk({ role: 'assistant', content }, null) + chunk({}, 'stop') + 'data: [DONE]\n\n');
          return;
        }
        return json(200, {
          id: 'chatcmpl-ok',
          object: 'chat.completion',
          created: 1,
          model: 'echo-model',
          choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
          usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
        });
      })(),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    hits,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
