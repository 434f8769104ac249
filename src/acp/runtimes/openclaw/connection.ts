/**
 * One authenticated socket to an OpenClaw Gateway: the handshake (open → `connect.challenge` → `connect` →
 * `hello-ok`), requests correlated by id with a timeout each, and the tick watchdog (no frame for 2× the tick
 * interval closes it with 4000). A connection dies once; whoever owns it (OpenClawClient) reconnects.
 *
 * Errors: a lost connection (closed, watchdog) is UPSTREAM_CONNECTION_LOST (retryable); a socket that cannot be
 * opened or closes during the handshake is UPSTREAM_UNREACHABLE; a handshake or request without an answer in
 * time is UPSTREAM_TIMEOUT; a malformed handshake is UPSTREAM_BAD_RESPONSE. Messages reach /acp/rpc clients:
 * they never name the gateway's address, and server text that echoes the token is scrubbed.
 */
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { GatewayError } from '../../../wire/errors.js';
import {
  CLOSE_TICK_TIMEOUT,
  MAX_PROTOCOL,
  MIN_PROTOCOL,
  PRE_AUTH_MAX_BYTES,
  buildConnectParams,
  errorFromShape,
  parseChallenge,
  parseHelloOk,
  parseInboundFrame,
  requestFrame,
  scrub,
  type ErrorShape,
  type EventFrame,
  type HelloOk,
} from './protocol.js';
import { wsText } from '../../../util/ws-text.js';
import { PendingTable } from '../../../util/pending.js';
import { raiseMaxPayload } from '../../../util/ws-internals.js';
import { dialUrl } from '../../../util/dial-url.js';

/** What a connection reports to its owner. */
export interface ConnectionOwner {
  /** the token, to scrub server text */
  readonly secret: string;
  /** `chars`: the length of the frame the event came in */
  onEvent(conn: Connection, f: EventFrame, chars: number): void;
  connectionDied(conn: Connection, err: GatewayError): void;
}

/** A run following its events on a connection: told when the connection dies. */
export interface ConnectionRun {
  connectionLost(err: GatewayError): void;
}

export interface HandshakeOptions {
  url: string;
  token: string;
  displayName?: string | undefined;
  instanceId?: string | undefined;
  handshakeTimeoutMs: number;
  maxInboundBytes: number;
}

/** Why a handshake failed: the error, and the server's error shape when it answered with one. */
export interface HandshakeFailure {
  error: GatewayError;
  shape?: ErrorShape;
}

interface Pending {
  method: string;
  resolve(v: unknown): void;
  fail(e: Error): void;
}

export const lostError = (what: string): GatewayError => new GatewayError('UPSTREAM_CONNECTION_LOST', what, { details: { provider: 'openclaw' } });

/** A socket error without host names or addresses: the errno code when there is one. */
export function describeSocketError(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  // an errno code says it all; ws's own codes (WS_ERR_*: a frame over maxPayload, …) less than its message
  if (code && !code.startsWith('WS_ERR_')) return code;
  return err.message
    .replace(/\[[0-9a-fA-F:.]+\](:\d+)?/g, '<addr>')
    .replace(/\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b/g, '<addr>')
    .replace(/\b[a-z]+s?:\/\/\S+/gi, '<url>');
}

/** One authenticated socket. Created by OpenClawClient.handshake; dies once (close/error/watchdog). */
export class Connection {
  /** our requests (util/pending.ts: settled once, by the response, the timeout or the connection dying) */
  readonly pending = new PendingTable<Pending>();
  readonly runs = new Set<ConnectionRun>();
  lastFrameAt = Date.now();
  alive = true;
  private watchdog: NodeJS.Timeout | undefined;

  constructor(
    readonly ws: WebSocket,
    readonly hello: HelloOk,
    private readonly owner: ConnectionOwner,
  ) {
    const tick = hello.policy.tickIntervalMs;
    this.watchdog = setInterval(
      () => {
        if (Date.now() - this.lastFrameAt > 2 * tick) {
          this.kill(
            lostError(`no frame from the OpenClaw gateway for ${2 * tick} ms (2× tick interval): connection closed`),
            CLOSE_TICK_TIMEOUT,
            'tick timeout',
          );
        }
      },
      Math.max(10, Math.floor(tick / 2)),
    );
    this.watchdog.unref();
  }

  get protocol(): number {
    return this.hello.protocol;
  }

  request(method: string, params: unknown, timeoutMs: number): Promise<unknown> {
    if (!this.alive) return Promise.reject(lostError('connection to the OpenClaw gateway is closed'));
    const id = randomUUID();
    const text = JSON.stringify(requestFrame(id, method, params));
    const max = this.hello.policy.maxPayload;
    if (max !== undefined && Buffer.byteLength(text) > max) {
      return Promise.reject(
        new GatewayError('PAYLOAD_TOO_LARGE', `OpenClaw ${method} request is larger than the gateway's maxPayload (${max} bytes)`, {
          details: { provider: 'openclaw', method },
        }),
      );
    }
    return new Promise<unknown>((resolve, reject) => {
      this.pending.add(
        id,
        { method, resolve, fail: reject },
        {
          timeoutMs,
          timeoutError: () => {
            this.sendRaw(JSON.stringify({ type: 'cancel', id }));
            return new GatewayError('UPSTREAM_TIMEOUT', `OpenClaw ${method} got no response within ${timeoutMs} ms`, {
              details: { provider: 'openclaw', method },
            });
          },
        },
      );
      this.sendRaw(text);
    });
  }

  private sendRaw(text: string): void {
    try {
      this.ws.send(text);
    } catch {
      /* the close handler fails whatever is pending */
    }
  }

  onFrame(text: string): void {
    this.lastFrameAt = Date.now();
    const f = parseInboundFrame(text);
    if (!f) return;
    if (f.type === 'res') {
      const p = this.pending.take(f.id);
      if (!p) return;
      if (f.ok) p.resolve(f.payload);
      else p.fail(errorFromShape(p.method, f.error as ErrorShape, this.owner.secret));
      return;
    }
    this.owner.onEvent(this, f, text.length);
  }

  /** Marks the connection dead, fails everything on it and closes the socket (idempotent). */
  kill(err: GatewayError, code = 1000, reason = ''): void {
    if (!this.alive) return;
    this.alive = false;
    if (this.watchdog) clearInterval(this.watchdog);
    this.pending.close(err);
    for (const r of [...this.runs]) r.connectionLost(err);
    this.runs.clear();
    this.owner.connectionDied(this, err);
    try {
      if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code, reason);
    } catch {
      /* ignore */
    }
    const ws = this.ws;
    setTimeout(() => ws.terminate(), 1000).unref();
  }
}

/**
 * One socket: open → challenge → connect → hello-ok. Rejects with a HandshakeFailure. `signal` (the client
 * closing) ends a handshake still under way at once, with `abortError`.
 *
 * Until the client has sent `connect` the socket takes frames of at most PRE_AUTH_MAX_BYTES: ws refuses a larger
 * one as soon as its header is read, before buffering any of it, and the handshake fails. The answer to `connect`
 * (hello-ok, whose `snapshot` a real server fills with presence entries and a health report) is read under
 * `maxInboundBytes`, the bound of every later frame: the limit is raised as `connect` goes out. It comes from the
 * gateway the config names, which has just been sent our token; nothing it sends after hello-ok is bounded more
 * tightly, so a tighter bound on hello-ok would only refuse real servers. ws (8.x) takes `maxPayload` only when the
 * socket is created and has no public way to change it, so the limit is raised through the receiver's private
 * field, the way the bridge does (src/util/ws-internals.ts, pinned by test/bridge/ws-limits.test.ts); if this ws
 * has no such field the handshake fails rather than run on a 64 KiB limit.
 */
export function openConnection(o: HandshakeOptions, owner: ConnectionOwner, signal: AbortSignal, abortError: () => GatewayError): Promise<Connection> {
  return new Promise<Connection>((resolve, reject) => {
    const preAuthLimit = Math.min(PRE_AUTH_MAX_BYTES, o.maxInboundBytes);
    const url = dialUrl(o.url);
    // refused before (the config's schema, OpenClawClient): a message that names no address, it reaches /acp/rpc clients
    if (!url) throw new GatewayError('UPSTREAM_UNREACHABLE', 'the OpenClaw gateway URL does not parse as a URL', { details: { provider: 'openclaw' } });
    const ws = new WebSocket(url, { handshakeTimeout: o.handshakeTimeoutMs, maxPayload: preAuthLimit, perMessageDeflate: false });
    let phase: 'challenge' | 'hello' | 'done' = 'challenge';
    let connectId = '';
    let conn: Connection | undefined;
    const onAbort = () => fail(abortError());
    const fail = (error: GatewayError, shape?: ErrorShape) => {
      if (phase === 'done') return;
      phase = 'done';
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      ws.removeAllListeners('message');
      ws.on('error', () => undefined);
      try {
        ws.terminate();
      } catch {
        /* ignore */
      }
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- a handshake outcome ({error, shape}) unpacked by this module's caller, never thrown on
      reject(shape ? { error, shape } : { error });
    };
    const timer = setTimeout(
      () =>
        fail(
          new GatewayError(
            'UPSTREAM_TIMEOUT',
            `OpenClaw handshake did not complete within ${o.handshakeTimeoutMs} ms (${phase === 'challenge' ? 'no connect.challenge' : 'no hello-ok'})`,
            { details: { provider: 'openclaw' } },
          ),
        ),
      o.handshakeTimeoutMs,
    );
    const bad = (msg: string) => new GatewayError('UPSTREAM_BAD_RESPONSE', `OpenClaw handshake: ${msg}`, { details: { provider: 'openclaw' } });
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });

    ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      if (conn) {
        if (!isBinary) conn.onFrame(wsText(data));
        return;
      }
      if (isBinary) return;
      // (no larger than preAuthLimit before connect went out, maxInboundBytes after: ws refused anything larger)
      const f = parseInboundFrame(wsText(data));
      if (!f) return;
      if (phase === 'challenge') {
        if (f.type !== 'event' || f.event !== 'connect.challenge') return;
        if (!parseChallenge(f.payload)) return fail(bad('connect.challenge without nonce/ts'));
        connectId = randomUUID();
        const frame = JSON.stringify(
          requestFrame(
            connectId,
            'connect',
            buildConnectParams({
              token: o.token,
              ...(o.displayName ? { displayName: o.displayName } : {}),
              ...(o.instanceId ? { instanceId: o.instanceId } : {}),
            }),
          ),
        );
        if (Buffer.byteLength(frame) > PRE_AUTH_MAX_BYTES)
          return fail(new GatewayError('CONFIG_INVALID', 'OpenClaw connect frame would exceed 64 KiB (token too long?)'));
        // from the next frame on (the answer to connect), the limit after the handshake
        if (!raiseMaxPayload(ws, o.maxInboundBytes))
          return fail(
            new GatewayError('INTERNAL', 'cannot raise the WebSocket message limit for the OpenClaw handshake (the installed ws changed its internals)'),
          );
        phase = 'hello';
        ws.send(frame);
        return;
      }
      if (phase === 'hello' && f.type === 'res' && f.id === connectId) {
        if (!f.ok) {
          const shape = f.error as ErrorShape;
          return fail(errorFromShape('connect', shape, o.token), shape);
        }
        const hello = parseHelloOk(f.payload);
        if (!hello) return fail(bad('connect succeeded without a hello-ok payload'));
        if (hello.protocol < MIN_PROTOCOL || hello.protocol > MAX_PROTOCOL)
          return fail(bad(`server chose protocol ${hello.protocol}, outside ${MIN_PROTOCOL}–${MAX_PROTOCOL}`));
        phase = 'done';
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        conn = new Connection(ws, hello, owner);
        ws.removeAllListeners('close');
        ws.removeAllListeners('error');
        // An error ends the connection at once, saying what broke it. On a frame ws refuses (over maxInboundBytes, a
        // text frame that is not UTF-8, a protocol error) ws stops reading and starts the close handshake (1009,
        // 1007, 1002); its 'close' comes only once the server answers that, or after ws's close timeout (30 s),
        // and a run must not wait for a server that does not answer. A socket error is followed by 'close' anyway.
        ws.on('error', (err: Error) => conn?.kill(lostError(`connection to the OpenClaw gateway closed (${scrub(describeSocketError(err), o.token, 200)})`)));
        ws.on('close', (code: number, reason: Buffer) => {
          const why = reason.length ? `: ${scrub(reason.toString(), o.token, 120)}` : '';
          conn?.kill(lostError(`connection to the OpenClaw gateway closed (code ${code}${why})`));
        });
        resolve(conn);
      }
    });
    ws.on('error', (err: Error) => {
      // ws read the header of a frame over the limit and closed the socket without taking the frame in
      if ((err as NodeJS.ErrnoException).code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH')
        return fail(
          bad(
            phase === 'challenge'
              ? `a frame before the connect request is over the pre-auth limit (${preAuthLimit} bytes)`
              : `the answer to connect is over the inbound frame limit (${o.maxInboundBytes} bytes)`,
          ),
        );
      fail(
        new GatewayError('UPSTREAM_UNREACHABLE', `cannot connect to the OpenClaw gateway: ${scrub(describeSocketError(err), o.token, 200)}`, {
          details: { provider: 'openclaw' },
        }),
      );
    });
    ws.on('close', (code: number) => {
      // 1008 (policy violation) while waiting for hello-ok: refused without an error response
      if (phase === 'hello' && code === 1008) {
        const shape: ErrorShape = { code: 'UNAUTHORIZED', message: 'connection closed with 1008 (policy violation) during connect' };
        return fail(errorFromShape('connect', shape, o.token), shape);
      }
      fail(
        new GatewayError('UPSTREAM_UNREACHABLE', `OpenClaw gateway closed the connection during the handshake (code ${code})`, {
          details: { provider: 'openclaw', closeCode: code },
        }),
      );
    });
  });
}
