/**
 * Node's floor for the benchmark: a bare pass-through, node:http in and an undici `Pool` out, with no
 * validation, routing, ids, timeouts or logging. It forwards the request body to the mock and streams the
 * reply back with `Pool.stream` (headers: status, content-type, content-length when the upstream sent one).
 * Whatever a Node gateway does per request, it cannot do less than this; the harness reads Switchyard's
 * figures against it ("÷ bare"). Runs in a CHILD process, like the mock, so it has its own event loop.
 */
import { fork } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Pool } from 'undici';
import { stopChild } from './mock-upstream.js';

export interface BareProxy {
  /** http://127.0.0.1:PORT — forwards every POST path to the same path on the upstream */
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** Runs the pass-through in this process (the child side). */
export function serveBare(upstream: string): Promise<AddressInfo> {
  const pool = new Pool(upstream, { connections: 1024, keepAliveTimeout: 120_000 });
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (b: Buffer) => parts.push(b));
    req.on('end', () => {
      const headers = { 'content-type': 'application/json', authorization: req.headers.authorization ?? '' };
      pool
        .stream({ path: req.url ?? '/', method: 'POST', headers, body: Buffer.concat(parts) }, ({ statusCode, headers: h }) => {
          const type = String(h['content-type'] ?? 'application/json');
          const length = h['content-length'];
          res.writeHead(statusCode, typeof length === 'string' ? { 'content-type': type, 'content-length': length } : { 'content-type': type });
          return res;
        })
        .catch(() => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
    });
  });
  server.keepAliveTimeout = 120_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', 2048, () => resolve(server.address() as AddressInfo));
  });
}

/** Starts the pass-through in a child process in front of `upstream` (http://host:port) once it listens. */
export function startBareProxy(upstream: string, timeoutMs = 10_000): Promise<BareProxy> {
  const child = fork(fileURLToPath(import.meta.url), ['--serve', upstream], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
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

// Child side: `node bare-proxy.js --serve http://127.0.0.1:PORT`; exits when the parent goes away.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && process.argv[2] === '--serve') {
  process.on('disconnect', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
  void serveBare(process.argv[3]!).then((addr) => process.send?.({ port: addr.port }));
}
