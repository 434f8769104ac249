/**
 * The HTTP(S) server: node:http (see docs/operations.md for why not a framework), one dispatch table,
 * bearer auth per surface, request ids, WebSocket upgrades handed to their owners (/bridge, /acp), and a
 * graceful shutdown that stops accepting, lets in-flight requests finish up to a deadline, then closes.
 *
 * Every request passes one pipeline before its route: the guard (Host, Origin, content type: guard.ts) and
 * the body policy (deadline, shared byte budget, JSON depth: body.ts), so routes added later inherit both.
 * node's own `requestTimeout` is the backstop for bodies no route reads (a refused request's rest).
 */
import { STATUS_CODES, createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Server as HttpsServer, createServer as createHttps } from 'node:https';
import type { Duplex } from 'node:stream';
import { refuseUpgrade } from '../util/refuse-upgrade.js';
import { cutUnread } from './unread.js';
import { Server as TlsServer } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { GatewayError, stackOf, toGatewayError } from '../wire/errors.js';
import { clientCredential, tokenMatches } from '../util/secret.js';
import type { Logger } from '../util/log.js';
import type { ModelTokens } from '../util/model-tokens.js';
import { requestIdOf, sendError, sendJson } from './respond.js';
import { RequestGuard, type GuardOptions, type GuardPass } from './guard.js';
import { BodyBudget, attachBodyPolicy } from './body.js';
import { handleChat, handleEmbeddings, handleModels, type V1Context } from './routes/v1.js';
import type { Principal } from '../keys/service.js';
import type { ApiSurface } from './routes/api-surface.js';

/** A route owned by another layer (admin API, /acp/rpc): returns false when the path is not its own. */
export type RouteHandler = (req: IncomingMessage, res: ServerResponse, path: string, requestId: string) => Promise<boolean> | boolean;
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

export interface HttpServerOptions {
  host: string;
  port: number;
  /**
   * the node server to serve with, made by `createNodeServer` (the config check makes the HTTPS one at a start,
   * so the certificate and key are parsed once); absent: one is made here from `tls` and `body.timeoutMs`
   */
  server?: Server | undefined;
  tls?: { cert: string; key: string } | undefined;
  /** Bearer tokens for /v1/*; empty = open (only allowed on loopback, enforced by config validation) */
  clientTokens: string[];
  /** the client check for /v1/* (virtual keys + static tokens, src/keys/service.ts); replaces `clientTokens` */
  authenticate?: (req: IncomingMessage, query: string, allowQueryKey: boolean) => Principal | Promise<Principal>;
  v1: V1Context;
  logger: Logger;
  routes?: RouteHandler[];
  /** Anthropic Messages, OpenAI Responses, Gemini: checked before /v1/*, each with its own error format */
  apis?: ApiSurface[];
  upgrades?: Record<string, UpgradeHandler>;
  /** per-session agent tokens: accepted by the model APIs only, each pinned to its session's model */
  modelTokens?: ModelTokens;
  /** per-request metrics and server spans (src/obs); called once per request before dispatch */
  observer?: { begin(req: IncomingMessage, res: ServerResponse, path: string): void } | undefined;
  /** extra readiness checks for /readyz */
  ready?: () => { ready: boolean; detail?: Record<string, unknown> };
  /** Host / Origin allowlists (`gateway.allowedHosts`, `gateway.allowedOrigins`); `host` is taken from above */
  access?: Omit<GuardOptions, 'host'>;
  /** request body bounds; defaults are the config defaults */
  body?: { timeoutMs: number; maxBufferedBytes: number; maxJsonDepth: number };
}

const DEFAULT_BODY = { timeoutMs: 30_000, maxBufferedBytes: 32 * 1024 * 1024, maxJsonDepth: 64 };

/**
 * The node server an HttpServer serves with, with no handler yet: HTTPS when `tls` is given (making it parses
 * the PEM text into the server's TLS context, and throws when they are not a usable certificate and key; node
 * takes no ready-made context), else HTTP. It holds no socket and no timer until it listens, so one made only
 * to check the files can be dropped. `bodyTimeoutMs`: `gateway.bodyTimeoutMs`, which the socket timeouts follow.
 */
export function createNodeServer(tls: { cert: string; key: string } | undefined, bodyTimeoutMs = DEFAULT_BODY.timeoutMs): Server {
  // requestTimeout covers receiving the request only (not the response: streams may be long, the router's
  // deadline bounds them); a little above the body deadline so routes that read bodies answer first.
  const requestTimeout = bodyTimeoutMs + 1000;
  const serverOpts = {
    requestTimeout,
    headersTimeout: Math.min(66_000, requestTimeout),
    keepAliveTimeout: 65_000,
    connectionsCheckingInterval: Math.min(30_000, Math.max(100, Math.floor(bodyTimeoutMs / 4))),
  };
  const server: Server = tls ? createHttps({ cert: tls.cert, key: tls.key, ...serverOpts }) : createHttp(serverOpts);
  server.keepAliveTimeout = serverOpts.keepAliveTimeout;
  return server;
}

export class HttpServer {
  readonly server: Server;
  private inflight = 0;
  private draining = false;
  private idleWaiters: Array<() => void> = [];
  /** sockets handed to an upgrade handler and still open: the listener's close waits for them (shutdown) */
  private readonly upgraded = new Set<Duplex>();
  /**
   * HTTPS only: every TCP connection accepted and still open. node's HTTP layer tracks a TLS connection (and
   * closeAllConnections cuts it) only once its handshake is done; one still in its handshake (a client that
   * connected and sent nothing, or part of its hello) would keep the listener's close waiting until the TLS
   * handshake timeout (120 s). Tracked per connection, not per request.
   */
  private readonly tcpConnections: Set<Duplex> | undefined;
  /**
   * Every connection the HTTP layer serves and still open (with TLS, the TLS socket, once its handshake is done): a
   * stop cuts the ones whose ended response their client does not read (unread.ts). Tracked per connection, not per
   * request.
   */
  private readonly served = new Set<Duplex>();
  /** while a stop runs: ends the watch for unread responses */
  private unwatchUnread: (() => void) | undefined;
  private readonly guard: RequestGuard;
  private readonly body: typeof DEFAULT_BODY;
  private readonly bodyBudget: BodyBudget;

  constructor(private readonly opts: HttpServerOptions) {
    this.guard = new RequestGuard({ host: opts.host, allowedHosts: opts.access?.allowedHosts ?? [], allowedOrigins: opts.access?.allowedOrigins ?? [] });
    this.body = opts.body ?? DEFAULT_BODY;
    this.bodyBudget = new BodyBudget(this.body.maxBufferedBytes);
    this.server = opts.server ?? createNodeServer(opts.tls, this.body.timeoutMs);
    this.server.on('request', (req: IncomingMessage, res: ServerResponse) => this.handle(req, res));
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
    const served = this.served;
    this.server.on(this.server instanceof TlsServer ? 'secureConnection' : 'connection', (socket: Duplex) => {
      served.add(socket);
      socket.once('close', () => served.delete(socket));
    });
    if (this.server instanceof TlsServer) {
      const open = (this.tcpConnections = new Set<Duplex>());
      this.server.on('connection', (socket: Duplex) => {
        open.add(socket);
        socket.once('close', () => open.delete(socket));
      });
    }
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      if (!socket.writable) return socket.destroy(err);
      socket.end(clientErrorResponse(err.code));
    });
  }

  get scheme(): 'http' | 'https' {
    return this.server instanceof HttpsServer ? 'https' : 'http';
  }

  async listen(): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.port, this.opts.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return this.server.address() as AddressInfo;
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? '/').split('?')[0]!;
    const h = this.opts.upgrades?.[path];
    // node's HTTP layer lets go of a socket it emits 'upgrade' for: closeAllConnections no longer reaches it, so every
    // one is kept here for shutdown to cut
    this.upgraded.add(socket);
    socket.once('close', () => this.upgraded.delete(socket));
    if (!h || this.draining) {
      refuseUpgrade(socket, this.draining ? '503 Service Unavailable' : '404 Not Found');
      return;
    }
    h(req, socket, head);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const requestId = requestIdOf(req);
    this.inflight++;
    // 'close' is emitted once per response: `on` spares the wrapper `once` allocates
    res.on('close', () => {
      this.inflight--;
      if (this.inflight === 0) for (const w of this.idleWaiters.splice(0)) w();
    });
    this.dispatch(req, res, requestId).catch((err) => {
      const e = toGatewayError(err);
      if (e.code === 'INTERNAL') this.opts.logger.error('unhandled error', { requestId, err: stackOf(err) });
      if (!res.headersSent) res.setHeader('x-request-id', requestId);
      sendError(res, e);
    });
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const method = req.method ?? 'GET';
    this.opts.observer?.begin(req, res, path);

    let pass: GuardPass;
    try {
      pass = this.guard.check(req, path);
    } catch (err) {
      // refused before any body is read, but in the format of the API the path belongs to
      const api = this.opts.apis?.find((a) => a.owns(path));
      if (!api) throw err;
      res.setHeader('x-request-id', requestId);
      api.sendError(res, toGatewayError(err), requestId);
      return;
    }
    attachBodyPolicy(req, {
      deadline: Date.now() + this.body.timeoutMs,
      timeoutMs: this.body.timeoutMs,
      budget: this.bodyBudget,
      maxJsonDepth: this.body.maxJsonDepth,
      requireJson: pass.requireJson,
    });
    if (pass.cors) {
      for (const [k, v] of Object.entries(pass.cors)) res.setHeader(k, v);
      if (pass.preflight) {
        res.writeHead(204, { 'x-request-id': requestId, 'content-length': '0' });
        res.end();
        return;
      }
    }
    if (path === '/healthz') return sendJson(res, 200, { status: 'ok' }, { 'x-request-id': requestId });
    if (path === '/readyz') {
      const r = this.opts.ready?.() ?? { ready: true };
      const ready = r.ready && !this.draining;
      return sendJson(
        res,
        ready ? 200 : 503,
        { status: ready ? 'ready' : this.draining ? 'draining' : 'not_ready', ...(r.detail ?? {}) },
        { 'x-request-id': requestId },
      );
    }
    const api = this.opts.apis?.find((a) => a.owns(path));
    if (api) return await this.serveApi(api, req, res, path, q === -1 ? '' : url.slice(q + 1), requestId);
    if (path.startsWith('/v1/')) {
      // no res.setHeader here: every /v1 answer names its request id in writeHead, and an error thrown on the way
      // gets it in handle()'s catch. A header set before writeHead sends Node's writeHead down its slow path (each
      // of the answer's headers through setHeader's validation again; docs/benchmarks.md, seventh pass).
      const auth = this.authenticate(req);
      const principal = auth instanceof Promise ? await auth : auth;
      if (this.draining) throw new GatewayError('SHUTTING_DOWN', 'gateway is shutting down', { retryAfterSec: 1 });
      // awaited rather than returned: an async function resolved with a promise takes two more microtasks
      if (path === '/v1/chat/completions')
        return method === 'POST' ? await handleChat(this.opts.v1, req, res, requestId, principal) : notAllowed(method, 'POST');
      if (path === '/v1/embeddings')
        return method === 'POST' ? await handleEmbeddings(this.opts.v1, req, res, requestId, principal) : notAllowed(method, 'POST');
      // HEAD as GET: Node sends the headers (content-length included) and no body
      if (path === '/v1/models')
        return method === 'GET' || method === 'HEAD' ? handleModels(this.opts.v1, req, res, requestId, principal) : notAllowed(method, 'GET, HEAD');
      throw new GatewayError('NOT_FOUND', `no route ${method} ${path}`);
    }
    for (const r of this.opts.routes ?? []) {
      if (await r(req, res, path, requestId)) return;
    }
    throw new GatewayError('NOT_FOUND', `no route ${method} ${path}`);
  }

  /**
   * Graceful stop, first step: /readyz says draining and new /v1 requests get 503 + Retry-After; the listener stays
   * open. From now on a response whose last bytes are written but whose client does not read them is cut after a
   * second without progress (unread.ts), instead of holding the stop for the whole grace period.
   */
  drain(): void {
    this.draining = true;
    this.unwatchUnread ??= cutUnread(this.served, (waitingBytes) =>
      this.opts.logger.info('graceful stop: cut a connection whose client did not read the end of its response', { waitingBytes }),
    );
  }

  /** requests being served now (streams until they end) */
  get inflightRequests(): number {
    return this.inflight;
  }

  /** The one client check of every inbound surface: virtual keys + static tokens (src/keys/service.ts). */
  private authenticate(req: IncomingMessage, query = '', allowQueryKey = false): Principal | Promise<Principal> {
    // an agent's per-session token (util/model-tokens.ts): the model APIs accept it and pin the request's model
    const grant = this.opts.modelTokens?.authorize(req, clientCredential(req.headers, query, allowQueryKey));
    if (grant) return { kind: 'agent', agentId: grant.agentId, sessionId: grant.sessionId, keyId: grant.keyId };
    if (this.opts.authenticate) return this.opts.authenticate(req, query, allowQueryKey);
    if (this.opts.clientTokens.length > 0 && !tokenMatches(clientCredential(req.headers, query, allowQueryKey), this.opts.clientTokens)) {
      throw new GatewayError('UNAUTHORIZED', req.headers.authorization ? 'invalid API key' : 'missing API key (send Authorization: Bearer <key>)');
    }
    return OPEN;
  }

  /** An inbound API: its own auth headers, and every error in its own format. */
  private async serveApi(api: ApiSurface, req: IncomingMessage, res: ServerResponse, path: string, query: string, requestId: string): Promise<void> {
    // as on /v1: answers name the request id in writeHead, errors get it here (no setHeader before writeHead)
    try {
      const principal = await this.authenticate(req, query, api.queryKey === true);
      if (this.draining) throw new GatewayError('SHUTTING_DOWN', 'gateway is shutting down', { retryAfterSec: 1 });
      await api.handle(req, res, path, query, requestId, principal);
    } catch (err) {
      const e = toGatewayError(err);
      if (e.code === 'INTERNAL') this.opts.logger.error('unhandled error', { requestId, api: api.name, err: stackOf(err) });
      if (!res.headersSent) res.setHeader('x-request-id', requestId);
      api.sendError(res, e, requestId);
    }
  }

  /**
   * Graceful shutdown: readiness goes to 503 and new /v1 requests are refused, the listener stops
   * accepting, idle keep-alive sockets close, in-flight requests get `graceMs` to finish, the rest are cut.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.draining = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    if (this.inflight > 0) {
      await Promise.race([new Promise<void>((r) => this.idleWaiters.push(r)), new Promise<void>((r) => setTimeout(r, graceMs).unref())]);
    }
    this.server.closeAllConnections();
    // what the upgrade handlers closed before (the bridge's links, the /acp WebSockets) is gone by now; a socket one
    // still holds (an upgrade still under way) would keep the close waiting: cut like the rest
    for (const s of this.upgraded) s.destroy();
    // HTTPS: a connection still in its TLS handshake is not one of node's HTTP connections: cut like the rest
    if (this.tcpConnections) for (const s of this.tcpConnections) s.destroy();
    await closed;
    this.unwatchUnread?.();
  }
}

const OPEN: Principal = { kind: 'open' };

function notAllowed(method: string, allowed: string): never {
  throw new GatewayError('METHOD_NOT_ALLOWED', `method ${method} not allowed here; use ${allowed}`, { details: { allow: allowed } });
}

/**
 * The answer to a request Node's HTTP parser refused before any route saw it (a malformed request line or
 * header, a bad chunk size, Content-Length with Transfer-Encoding, headers over Node's limit) or that timed
 * out (requestTimeout / headersTimeout): the catalogue's status and an OpenAI-style error body like every other
 * refusal, then the connection is closed. The parser's detail names no client data (Node's error codes only).
 */
export function clientErrorResponse(parserCode: string | undefined): string {
  const e =
    parserCode === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? new GatewayError('REQUEST_TIMEOUT', 'the request did not arrive in time')
      : parserCode === 'HPE_HEADER_OVERFLOW'
        ? new GatewayError('HEADERS_TOO_LARGE', 'the request headers are larger than this gateway takes')
        : new GatewayError('INVALID_REQUEST', `malformed HTTP request (${parserCode ?? 'parse error'})`);
  const body = JSON.stringify(e.toOpenAI());
  const reason = STATUS_CODES[e.status] ?? 'Error';
  return `HTTP/1.1 ${e.status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}
