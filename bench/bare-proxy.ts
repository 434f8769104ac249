/**
 * Node's floor for the benchmark: a bare pass-through, node:http in and an undici `Pool` out, with no
 * validation, routing, ids, timeouts or logging. It forwards the request body to the mock and streams the
 * reply back with `Pool.stream` (headers: status, content-type, content-length when the upstream sent one).
 * Whatever a Node gateway does per request, it cannot do less than this; the harness reads Switchyard's
 * figures against it ("÷ bare"). Runs in a CHILD process, like the mock, so it has its own event loop.
 *
 * `step` (1–5, used by `ab-builds --steps`) adds, one step on top of the other, the per-request work any
 * gateway does, to see what each costs against the bare floor and against Switchyard:
 *   1 the body parsed, checked (a `model` string, a `messages` array) and serialised again for the upstream
 *   2 + a Bearer check in constant time
 *   3 + the upstream answer taken by a dispatch handler: buffered and its usage read by a scan (non-streaming),
 *       a request id and the channel headers on the answer
 *   4 + an AbortController per request with a deadline timer, aborted when the client goes away
 *   5 + prom-client: a duration histogram and a request counter
 * Not in any step: routing state, health, retries, keys and limits, the usage ledger, logging.
 */
import { fork } from 'node:child_process';
import { randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Counter, Histogram, Registry } from 'prom-client';
import { Pool, type Dispatcher } from 'undici';
import { stopChild } from './mock-upstream.js';

export interface BareProxy {
  /** http://127.0.0.1:PORT — forwards every POST path to the same path on the upstream */
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** Runs the pass-through in this process (the child side); `step` as in the header. */
export function serveBare(upstream: string, step = 0): Promise<AddressInfo> {
  const pool = new Pool(upstream, { connections: 1024, keepAliveTimeout: 120_000 });
  const handle = step === 0 ? bare(pool) : stepped(pool, step);
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (b: Buffer) => parts.push(b));
    req.on('end', () => handle(req, res, Buffer.concat(parts)));
  });
  server.keepAliveTimeout = 120_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', 2048, () => resolve(server.address() as AddressInfo));
  });
}

type Handle = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

function bare(pool: Pool): Handle {
  return (req, res, body) => {
    const headers = { 'content-type': 'application/json', authorization: req.headers.authorization ?? '' };
    pool
      .stream({ path: req.url ?? '/', method: 'POST', headers, body }, ({ statusCode, headers: h }) => {
        const type = String(h['content-type'] ?? 'application/json');
        const length = h['content-length'];
        res.writeHead(statusCode, typeof length === 'string' ? { 'content-type': type, 'content-length': length } : { 'content-type': type });
        return res;
      })
      .catch(() => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
  };
}

const BENCH_TOKEN = Buffer.from('Bearer bench-key');
const USAGE = /"prompt_tokens":(\d+).*?"completion_tokens":(\d+)/;

function refuse(res: ServerResponse, status: number, message: string): void {
  const text = JSON.stringify({ error: { message, type: 'invalid_request_error' } });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

function stepped(pool: Pool, step: number): Handle {
  const registry = new Registry();
  const duration = step >= 5 ? new Histogram({ name: 'd', help: 'd', labelNames: ['model', 'channel'], registers: [registry] }) : undefined;
  const requests = step >= 5 ? new Counter({ name: 'r', help: 'r', labelNames: ['model', 'channel', 'status'], registers: [registry] }) : undefined;
  const spent = new Map<string, number>(); // the usage read by the scan goes somewhere, as a gateway's would
  return (req, res, raw) => {
    const t0 = duration ? performance.now() : 0;
    if (step >= 2) {
      const a = req.headers.authorization;
      const given = a === undefined ? undefined : Buffer.from(a);
      if (!given || given.length !== BENCH_TOKEN.length || !timingSafeEqual(given, BENCH_TOKEN)) return refuse(res, 401, 'invalid API key');
    }
    let parsed: { model?: unknown; messages?: unknown; stream?: unknown };
    try {
      parsed = JSON.parse(raw.toString('utf8')) as typeof parsed;
    } catch {
      return refuse(res, 400, 'body is not JSON');
    }
    if (typeof parsed !== 'object' || parsed === null || typeof parsed.model !== 'string' || !Array.isArray(parsed.messages))
      return refuse(res, 400, 'model and messages are required');
    const model = parsed.model;
    const stream = parsed.stream === true;
    const body = JSON.stringify(parsed);
    const headers = { 'content-type': 'application/json', authorization: 'Bearer bench-key' };
    if (step < 3) {
      pool
        .stream({ path: req.url ?? '/', method: 'POST', headers, body }, ({ statusCode, headers: h }) => {
          res.writeHead(statusCode, { 'content-type': String(h['content-type'] ?? 'application/json') });
          return res;
        })
        .catch(() => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
      return;
    }
    const id = randomUUID();
    let abort: AbortController | undefined;
    let timer: NodeJS.Timeout | undefined;
    if (step >= 4) {
      const ac = (abort = new AbortController());
      timer = setTimeout(() => ac.abort(), 600_000);
      res.once('close', () => {
        if (!res.writableFinished) ac.abort();
      });
    }
    const chunks: Buffer[] = [];
    let status = 502;
    let type = 'application/json';
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart() {}, // undici takes a handler without it for the legacy (onConnect …) shape
      onResponseStart(_c, statusCode, h) {
        status = statusCode;
        type = String(h['content-type'] ?? type);
        if (stream) res.writeHead(status, { 'content-type': type, 'cache-control': 'no-cache', 'x-request-id': id, 'x-switchyard-channel': 'mock' });
      },
      onResponseData(_c, chunk) {
        if (stream) res.write(chunk);
        else chunks.push(chunk);
      },
      onResponseEnd() {
        clearTimeout(timer);
        if (stream) res.end();
        else {
          const answer = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
          const text = answer.toString('latin1');
          const at = text.lastIndexOf('"usage"');
          const m = at >= 0 ? USAGE.exec(text.slice(at)) : null;
          if (m) spent.set(model, (spent.get(model) ?? 0) + Number(m[1]) + Number(m[2]));
          res.writeHead(status, { 'content-type': type, 'content-length': answer.length, 'x-request-id': id, 'x-switchyard-channel': 'mock' });
          res.end(answer);
        }
        if (duration && requests) {
          duration.observe({ model, channel: 'mock' }, (performance.now() - t0) / 1000);
          requests.inc({ model, channel: 'mock', status: String(status) });
        }
      },
      onResponseError() {
        clearTimeout(timer);
        if (res.headersSent) res.destroy();
        else refuse(res, 502, 'upstream failed');
      },
    };
    pool.dispatch({ path: req.url ?? '/', method: 'POST', headers, body, ...(abort ? { signal: abort.signal } : {}) }, handler);
  };
}

/** Starts the pass-through in a child process in front of `upstream` (http://host:port) once it listens. */
export function startBareProxy(upstream: string, timeoutMs = 10_000, step = 0): Promise<BareProxy> {
  const child = fork(fileURLToPath(import.meta.url), ['--serve', upstream, String(step)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`bare pass-through did not start within ${timeoutMs} ms`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`bare pass-through exited with ${code} before listening`));
    });
    child.once('message', (m: { port: number }) => {
      clearTimeout(timer);
      resolve({ url: `http://127.0.0.1:${m.port}`, pid: child.pid!, stop: () => stopChild(child, exited) });
    });
  });
}

// Child side: `node bare-proxy.js --serve http://127.0.0.1:PORT [step]`; exits when the parent goes away.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && process.argv[2] === '--serve') {
  process.on('disconnect', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
  void serveBare(process.argv[3]!, Number(process.argv[4] ?? 0)).then((addr) => process.send?.({ port: addr.port }));
}
