/**
 * The benchmark's upstream: a small OpenAI-compatible server with a fixed reply, run in a CHILD process so
 * it never shares an event loop with the harness or a gateway. Behaviour is chosen by the request's model:
 *
 * - `bench`        no delay; a stream sends its chunks back to back
 * - `bench-paced`  a stream's first chunk at once, then one every `pacedChunkMs` (unsaturated first-chunk runs)
 * - `bench-slow`   a stream's first chunk at once, then one every `slowChunkMs` (many long-lived streams)
 *
 * Streams carry `chunks` content chunks, then a usage chunk when `stream_options.include_usage` is set, then
 * `data: [DONE]`. Each chunk is its own write, as a real upstream's would be.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface MockUpstreamOptions {
  /** content chunks per stream */
  chunks: number;
  /** gap between chunks for model `bench-paced` */
  pacedChunkMs: number;
  /** gap between chunks for model `bench-slow` */
  slowChunkMs: number;
}

export interface MockUpstream {
  /** http://127.0.0.1:PORT — the OpenAI base URL is `${url}/v1` */
  url: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

export const MOCK_MODELS = { fast: 'bench', paced: 'bench-paced', slow: 'bench-slow' } as const;

const CREATED = 1_700_000_000;

function completionBody(): Buffer {
  return Buffer.from(
    JSON.stringify({
      id: 'chatcmpl-bench',
      object: 'chat.completion',
      created: CREATED,
      model: 'bench',
      choices: [{ index: 0, message: { role: 'assistant', content: 'This is the fixed benchmark reply from the mock upstream.' }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 12, completion_tokens: 11, total_tokens: 23 },
    }),
  );
}

function streamFrames(chunks: number): { content: string[]; usage: string; done: string } {
  const frame = (o: unknown) => `data: ${JSON.stringify(o)}\n\n`;
  const base = { id: 'chatcmpl-bench', object: 'chat.completion.chunk', created: CREATED, model: 'bench' };
  const content: string[] = [];
  for (let i = 0; i < chunks; i++) {
    const delta = i === 0 ? { role: 'assistant', content: 'tok ' } : { content: 'tok ' };
    content.push(frame({ ...base, choices: [{ index: 0, delta, finish_reason: i === chunks - 1 ? 'stop' : null }] }));
  }
  const usage = frame({ ...base, choices: [], usage: { prompt_tokens: 12, completion_tokens: chunks, total_tokens: 12 + chunks } });
  return { content, usage, done: 'data: [DONE]\n\n' };
}

/** Runs the server in this process (the child side). */
export function serveMock(opts: MockUpstreamOptions, port = 0): Promise<AddressInfo> {
  const body = completionBody();
  const frames = streamFrames(opts.chunks);
  const gapFor = (model: unknown): number => (model === MOCK_MODELS.paced ? opts.pacedChunkMs : model === MOCK_MODELS.slow ? opts.slowChunkMs : 0);

  const stream = (res: ServerResponse, gapMs: number, usage: boolean) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.socket?.setNoDelay(true);
    const all = usage ? [...frames.content, frames.usage, frames.done] : [...frames.content, frames.done];
    if (gapMs === 0) {
      for (let i = 0; i < all.length - 1; i++) res.write(all[i]!);
      res.end(all[all.length - 1]);
      return;
    }
    let i = 0;
    const next = () => {
      if (res.destroyed) return;
      if (i === all.length - 1) return void res.end(all[i]);
      res.write(all[i++]!);
      // the usage chunk and [DONE] follow the last content chunk at once
      if (i >= opts.chunks) return next();
      setTimeout(next, gapMs);
    };
    next();
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const parts: Buffer[] = [];
    req.on('data', (b: Buffer) => parts.push(b));
    req.on('end', () => {
      if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
        res.writeHead(404, { 'content-type': 'application/json' });
        return void res.end('{"error":{"message":"not found","type":"invalid_request_error"}}');
      }
      let parsed: { model?: unknown; stream?: unknown; stream_options?: { include_usage?: unknown } | null };
      try {
        parsed = JSON.parse(Buffer.concat(parts).toString('utf8')) as typeof parsed;
      } catch {
        res.writeHead(400, { 'content-type': 'application/json' });
        return void res.end('{"error":{"message":"bad json","type":"invalid_request_error"}}');
      }
      if (parsed.stream === true) return stream(res, gapFor(parsed.model), parsed.stream_options?.include_usage === true);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    });
  };

  const server = createServer(handle);
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 121_000;
  server.requestTimeout = 0;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', 2048, () => resolve(server.address() as AddressInfo));
  });
}

/** Starts the mock in a child process and resolves once it listens. */
export function startMockUpstream(opts: MockUpstreamOptions, timeoutMs = 10_000): Promise<MockUpstream> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--serve', JSON.stringify(opts)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`mock upstream did not start within ${timeoutMs} ms`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`mock upstream exited with ${code} before listening`));
    });
    child.once('message', (m: { port?: number }) => {
      clearTimeout(timer);
      const port = m.port!;
      resolve({
        url: `http://127.0.0.1:${port}`,
        port,
        pid: child.pid!,
        stop: () => stopChild(child, exited),
      });
    });
  });
}

/** SIGTERM a child process, SIGKILL it if it is still there after 3 s, and wait for it to exit. */
export async function stopChild(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(t);
}

// Child side: `node mock-upstream.js --serve '<options json>'`; exits when the parent goes away.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && process.argv[2] === '--serve') {
  const opts = JSON.parse(process.argv[3] ?? '{}') as MockUpstreamOptions;
  process.on('disconnect', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
  void serveMock(opts).then((addr) => process.send?.({ port: addr.port }));
}
