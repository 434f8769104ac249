/**
 * `GET /acp` WebSocket: the same JSON-RPC methods as POST /acp/rpc, one JSON envelope per text message.
 * Origin and Bearer auth are checked at the upgrade (403 / 401, no socket), and the credential again on every call
 * and ping (an `acp.tokens` entry a reload removed, a key disabled, expired or rotated since: UNAUTHORIZED, then
 * close 1008). Requests on one socket run
 * concurrently; each request's notifications (`session.update`) are pushed on the socket before its reply.
 * A socket that closes does not stop the turns it started.
 *
 * Resume after a disconnect: `GET /acp?sessionId=<id>&afterSeq=<n>` pushes that session's `session.update`s with
 * seq > n from its update log, then its live ones as they happen, each once and in order, for as long as the
 * socket is open (`afterSeq` defaults to 0). A malformed resume parameter refuses the upgrade with 400. The replay
 * goes at the reader's pace; a socket whose client reads slower than its updates come is cut (streams.ts).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket, WebSocketServer } from 'ws';
import { withWs } from '../../util/lazy-ws.js';
import type { UpgradeHandler } from '../server.js';
import type { Logger } from '../../util/log.js';
import { AcpRpcError, RPC, errorEnvelope, notificationText, parseRequest, resultEnvelope } from './envelope.js';
import { GatewayError } from '../../wire/errors.js';
import { authorize, checkOrigin, type AcpKeys } from './access.js';
import type { Dispatch } from '../../acp/methods.js';
import type { AcpCore } from '../../acp/index.js';
import { wsText } from '../../util/ws-text.js';
import { clientTooSlow, type AcpStreams } from './streams.js';
import { quotedMethod } from '../../acp/params.js';
import { drainOrClose } from '../../util/drain.js';
import { wsSocket } from '../../util/ws-internals.js';
import { bearerToken, tokenMatches } from '../../util/secret.js';
import type { ReplayFlow } from '../../acp/update-log.js';
import { refuseUpgrade } from '../../util/refuse-upgrade.js';
import { decimalInt } from '../../util/decimal.js';

export interface AcpWsOptions {
  tokens: readonly string[];
  /** virtual keys created with `acp: true` are accepted too (absent: `tokens` only) */
  keys?: AcpKeys | undefined;
  allowedOrigins: readonly string[];
  /** max message size */
  maxPayloadBytes: number;
  dispatch: Dispatch;
  /** resume (the `sessionId` / `afterSeq` query parameters) */
  follow?: AcpCore['follow'];
  logger: Logger;
  /** ping interval for idle sockets; default 20 s */
  pingIntervalMs?: number;
  /** a socket with more than this waiting for its client is closed (`acp.maxStreamBacklogBytes`, streams.ts) */
  maxStreamBacklogBytes: number;
  /** open streams' backlog and cuts, for /metrics */
  streams?: AcpStreams | undefined;
}

export interface AcpWs {
  upgrade: UpgradeHandler;
  /** closes every open socket (1001, cut after CLOSE_WAIT_MS) and the server; a second call does nothing */
  close(): Promise<void>;
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 503: 'Service Unavailable' };

/** how long a stop waits for its WebSocket clients to answer the close before it cuts them */
const CLOSE_WAIT_MS = 1000;

/** close code of a socket cut for reading too slowly (RFC 6455 1013 "Try Again Later": reconnect and resume) */
export const CLOSE_CLIENT_TOO_SLOW = 1013;

/** close code of a resume that failed on the gateway's side (RFC 6455 1011 "Internal Error"), after its error envelope */
export const CLOSE_RESUME_FAILED = 1011;

/** Why an open socket's credential is no longer accepted: the UNAUTHORIZED message, and the close (1008) reason. */
interface Refusal {
  message: string;
  close: string;
}

const TOKEN_REMOVED: Refusal = { message: 'the token this socket was opened with is no longer in acp.tokens', close: 'token no longer accepted' };

/** The resume parameters of the upgrade URL; undefined = none; an AcpRpcError = malformed. */
function resumeOf(req: IncomingMessage): { sessionId: string; afterSeq: number } | AcpRpcError | undefined {
  const q = new URL(req.url ?? '/', 'http://x').searchParams;
  const sessionId = q.get('sessionId');
  const after = q.get('afterSeq');
  if (sessionId === null && after === null) return undefined;
  if (!sessionId || sessionId.length > 256)
    return new AcpRpcError(RPC.INVALID_PARAMS, 'INVALID_PARAMS', 'resume needs sessionId (1–256 chars)', { field: 'sessionId' }, 400);
  // decimal digits only, as the events route reads after_seq
  const afterSeq = after === null || after === '' ? 0 : decimalInt(after);
  if (!Number.isSafeInteger(afterSeq) || afterSeq < 0)
    return new AcpRpcError(RPC.INVALID_PARAMS, 'INVALID_PARAMS', 'afterSeq must be a non-negative integer', { field: 'afterSeq' }, 400);
  return { sessionId, afterSeq };
}

function refuse(socket: Duplex, e: AcpRpcError): void {
  const body = JSON.stringify(errorEnvelope(null, e));
  const retryAfter = e.retryAfterSec !== undefined ? `retry-after: ${Math.ceil(e.retryAfterSec)}\r\n` : '';
  refuseUpgrade(socket, `${e.httpStatus} ${STATUS_TEXT[e.httpStatus] ?? 'Error'}`, `${retryAfter}content-type: application/json\r\n`, body);
}

export function createAcpWs(o: AcpWsOptions): AcpWs {
  // created at the first upgrade: ws is loaded then (src/util/lazy-ws.ts)
  let wss: WebSocketServer | undefined;
  /** a stop closed the sockets (close): an upgrade still under way is not served */
  let closed = false;
  const pingMs = o.pingIntervalMs ?? 20_000;
  const maxBacklog = o.maxStreamBacklogBytes;

  /**
   * `refused`: why the credential the socket was opened with is no longer accepted, undefined while it is. An
   * `acp.tokens` entry a config reload removed, and a virtual key disabled, expired or rotated since (as this
   * instance's key cache has it: at once when the change was made here, within `gateway.keys.refreshMs` when on
   * another instance), are refused from then on, on a socket already open too: its next call is answered
   * UNAUTHORIZED and the socket closes (1008), and a socket that only follows a session is closed at its next ping.
   */
  const serve = (
    ws: WebSocket,
    resume: { sessionId: string; afterSeq: number } | undefined,
    caller: string | undefined,
    refused: () => Refusal | undefined,
  ) => {
    let alive = true;
    ws.on('pong', () => (alive = true));
    const revoked = (id: string | number | null, r: Refusal) => {
      send(errorEnvelope(id, new AcpRpcError(RPC.UNAUTHORIZED, 'UNAUTHORIZED', r.message, {}, 401)));
      ws.close(1008, r.close);
    };
    const ping = setInterval(() => {
      const r = refused();
      if (r) return revoked(null, r);
      if (!alive) return ws.terminate();
      alive = false;
      ws.ping();
    }, pingMs);
    ping.unref();
    const untrack = o.streams?.track(() => ws.bufferedAmount);
    ws.on('close', () => {
      clearInterval(ping);
      untrack?.();
    });
    ws.on('error', (err) => o.logger.debug('acp websocket error', { error: String(err) }));
    // a client that reads slower than the updates of its requests come is cut, as an SSE stream is (streams.ts):
    // one error envelope after what it was sent, then the close (ws ends a socket that does not answer it in 30 s)
    /** `env`: an envelope, or one already serialised (notificationText) */
    const send = (env: unknown) => {
      if (ws.readyState !== ws.OPEN) return;
      if (ws.bufferedAmount > maxBacklog) {
        if (o.streams) o.streams.cut.ws++;
        o.logger.info('acp websocket cut: the client reads slower than its updates come', {
          waitingBytes: ws.bufferedAmount,
          maxStreamBacklogBytes: maxBacklog,
        });
        ws.send(JSON.stringify(errorEnvelope(null, clientTooSlow(maxBacklog, undefined))));
        ws.close(CLOSE_CLIENT_TOO_SLOW, 'client too slow: resume from the last seq received');
        return;
      }
      ws.send(typeof env === 'string' ? env : JSON.stringify(env));
    };
    if (resume && o.follow) {
      let stop: (() => void) | undefined;
      let closed = false;
      ws.on('close', () => {
        closed = true;
        stop?.();
      });
      // the replay goes out at the client's pace (a log's worth of large updates would pass the bound at once):
      // past a quarter of the bound it waits for the socket to drain; the live updates after it are bounded as any.
      const socket = wsSocket(ws);
      const flow: ReplayFlow = {
        wait: () => (socket && socket.writableLength > maxBacklog / 4 && ws.readyState === ws.OPEN ? drainOrClose(socket) : undefined),
        gone: () => ws.readyState !== ws.OPEN,
      };
      o.follow(resume.sessionId, resume.afterSeq, (params) => send(notificationText('session.update', params)), caller, flow).then(
        (s) => (closed ? s() : (stop = s)),
        (err: unknown) => {
          // a key resuming a session another caller started: told so, and the socket closes (policy violation)
          if (err instanceof GatewayError && err.code === 'FORBIDDEN') {
            send(errorEnvelope(null, err));
            ws.close(1008, 'session not reachable with this key');
            return;
          }
          // a cursor the update log no longer reaches: told so (with the seq to resume after), and the socket closes
          if (err instanceof GatewayError && err.code === 'UPDATE_LOG_TRUNCATED') {
            send(errorEnvelope(null, err));
            ws.close(1000, 'resume point no longer in the update log');
            return;
          }
          // anything else (the store cannot be read): told so with its code, never left waiting on a silent socket
          o.logger.warn('acp resume failed', { sessionId: resume.sessionId, error: String(err) });
          send(errorEnvelope(null, err));
          ws.close(CLOSE_RESUME_FAILED, 'resume failed');
        },
      );
    }
    ws.on('message', (data, isBinary) => {
      if (isBinary)
        return send(errorEnvelope(null, new AcpRpcError(RPC.INVALID_REQUEST, 'INVALID_REQUEST', 'binary messages are not supported; send JSON text')));
      let value: unknown;
      try {
        value = JSON.parse(wsText(data));
      } catch (err) {
        return send(errorEnvelope(null, new GatewayError('INVALID_JSON', `message is not valid JSON: ${(err as Error).message}`)));
      }
      const parsed = parseRequest(value);
      if (!parsed.ok) return send(errorEnvelope(parsed.id, parsed.error));
      const rpc = parsed.request;
      const r = refused();
      if (r) return revoked(rpc.id ?? null, r);
      const run = o.dispatch(rpc, { notify: (method, params) => send(notificationText(method, params)), caller });
      if (rpc.id === undefined) {
        void run.catch((err: unknown) => o.logger.debug('acp notification failed', { method: quotedMethod(rpc.method), error: String(err) }));
        return;
      }
      const id = rpc.id;
      run.then(
        (result) => send(resultEnvelope(id, result)),
        (err: unknown) => send(errorEnvelope(id, err)),
      );
    });
  };

  return {
    upgrade(req: IncomingMessage, socket: Duplex, head: Buffer) {
      const originErr = checkOrigin(req, o.allowedOrigins);
      if (originErr) return refuse(socket, originErr);
      authorize(req, o.tokens, o.keys).then(
        (access) => {
          if (access instanceof AcpRpcError) return refuse(socket, access);
          if (socket.destroyed) return; // the client left while its key was looked up
          const resume = resumeOf(req);
          if (resume instanceof AcpRpcError) return refuse(socket, resume);
          withWs(
            ({ WebSocketServer }) => {
              // a stop closed the sockets while this one's key was looked up: it is not served
              if (closed) return void socket.destroy();
              wss ??= new WebSocketServer({ noServer: true, maxPayload: o.maxPayloadBytes });
              // the credential is checked again on each call and ping: a static token against the live acp.tokens (a
              // reload may remove it), a key against the loaded keys (disabled, expired or rotated since); no store call
              const secret = bearerToken(req.headers.authorization) ?? '';
              const keyCheck = access.caller.startsWith('key:') ? o.keys?.acpKeyCheck(secret, access.caller.slice(4)) : undefined;
              const refused = keyCheck
                ? () => {
                    const message = keyCheck();
                    return message === undefined ? undefined : { message, close: 'key no longer accepted' };
                  }
                : () => (tokenMatches(secret, o.tokens) ? undefined : TOKEN_REMOVED);
              wss.handleUpgrade(req, socket, head, (ws) => serve(ws, resume, access.caller, refused));
            },
            (e) => {
              o.logger.error('acp upgrade failed: cannot load ws', { error: String(e) });
              socket.destroy();
            },
          );
        },
        (err: unknown) => {
          o.logger.error('acp upgrade failed: the key check failed', { error: String(err) });
          socket.destroy();
        },
      );
    },
    async close() {
      closed = true;
      const s = wss;
      if (!s) return;
      wss = undefined;
      // 1001 "going away": the client reconnects (to another instance) and resumes from the last seq it read;
      // one that does not answer the close within CLOSE_WAIT_MS is cut
      const open = [...s.clients];
      await new Promise<void>((resolve) => {
        let left = open.length;
        if (left === 0) return resolve();
        const timer = setTimeout(resolve, CLOSE_WAIT_MS).unref();
        for (const c of open) {
          c.once('close', () => {
            if (--left === 0) {
              clearTimeout(timer);
              resolve();
            }
          });
          c.close(1001, 'gateway shutting down');
        }
      });
      for (const c of s.clients) c.terminate();
      await new Promise<void>((r) => s.close(() => r()));
    },
  };
}
