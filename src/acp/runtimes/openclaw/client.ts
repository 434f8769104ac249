/**
 * `OpenClawClient`: an operator client of one OpenClaw Gateway over its WebSocket protocol (v3–v4).
 *
 * - Connects lazily (the first request) and after a loss (the next request): wait for `connect.challenge` →
 *   send `connect` (token auth, role operator, scopes read+write, client gateway-client/backend) → `hello-ok`,
 *   recording the negotiated protocol and `policy.tickIntervalMs`.
 * - Requests are correlated by id, each with a timeout (a timed-out request also gets a `cancel` frame, which
 *   servers that do not know it ignore).
 * - `chatSend` sends `chat.send` with a fresh idempotency key and follows the run's `chat` events: deltas go to
 *   `onDelta`, `final` resolves with the full text, `error` rejects, `aborted` resolves as cancelled. Aborting
 *   the signal sends `chat.abort`. If the connection drops before the ack, the send is retried once on a new
 *   connection with the same idempotency key (OpenClaw dedupes it); a drop after the ack fails the run.
 * - Keepalive: the connection is closed (code 4000) when no frame arrived for 2× the tick interval.
 * - Back-off between failed connects: 1 s doubling to 30 s, ±20 % jitter; a request waits out a short back-off
 *   and fails fast (retryable, with retryAfter) on a long one. `UNAVAILABLE` at connect (gateway starting)
 *   is retried after its `retryAfterMs` within the connect budget. An authentication refusal is never retried
 *   automatically: requests fail at once with the same error until `authRetryAfterMs` has passed.
 * - The token is only ever written into the `connect` frame; server text that echoes it is scrubbed.
 */
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { GatewayError, toGatewayError } from '../../../wire/errors.js';
import { rootLogger, type Logger } from '../../../util/log.js';
import {
  CLOSE_TICK_TIMEOUT,
  ChatTextAccumulator,
  MAX_PROTOCOL,
  MIN_PROTOCOL,
  PRE_AUTH_MAX_BYTES,
  buildConnectParams,
  errorFromChatEvent,
  errorFromShape,
  isAuthFailure,
  mapStopReason,
  parseChallenge,
  parseChatEvent,
  parseChatSendAck,
  parseHelloOk,
  parseInboundFrame,
  requestFrame,
  safeUrl,
  scrub,
  type ChatEvent,
  type ChatSendAck,
  type ErrorShape,
  type EventFrame,
  type HelloOk,
  type TextChange,
} from './protocol.js';
import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from '../../../util/backoff.js';

export { backoffDelay } from '../../../util/backoff.js';

export interface OpenClawClientOptions {
  /** ws:// or wss:// URL of the OpenClaw Gateway (from config only) */
  url: string;
  /** shared gateway token (`gateway.auth.token` on the OpenClaw side) */
  token: string;
  displayName?: string;
  instanceId?: string;
  /** per-request timeout (chat.send ack, chat.abort); default 30 s */
  requestTimeoutMs?: number;
  /** socket open + challenge + hello; default 15 s */
  handshakeTimeoutMs?: number;
  /** how long one connect keeps retrying `UNAVAILABLE` (gateway still starting); default 60 s */
  connectBudgetMs?: number;
  backoff?: Partial<BackoffOptions>;
  /** a request waits out a back-off up to this long; a longer one fails fast. Default 5 s */
  maxBackoffWaitMs?: number;
  /** after an authentication refusal, requests fail without connecting for this long; default 5 min */
  authRetryAfterMs?: number;
  /** after chat.abort, how long to wait for the `aborted` event before reporting the run cancelled; 5 s */
  abortGraceMs?: number;
  /** largest inbound frame accepted; default 64 MiB (OpenClaw's own limit for clients is 25 MiB) */
  maxInboundBytes?: number;
  log?: Logger;
}

export interface ChatSendOptions {
  /** each text change of the run (append a piece / replace the whole text) */
  onDelta?: (change: TextChange, event: ChatEvent) => void;
  /** every `chat` event of the run, parsed and raw, before it is acted on */
  onEvent?: (event: ChatEvent, raw: unknown) => void;
  /** the chat.send ack (`{ runId, status }`) */
  onAck?: (ack: ChatSendAck) => void;
  signal?: AbortSignal;
  /** whole-run deadline; on expiry the run is aborted and the call rejects with UPSTREAM_TIMEOUT */
  timeoutMs?: number;
  /** defaults to a fresh UUID; the same key is reused if the send has to be retried on a new connection */
  idempotencyKey?: string;
}

export interface ChatResult {
  status: 'completed' | 'cancelled';
  runId: string;
  /** the full assistant text (for cancelled runs: what had arrived) */
  text: string;
  /** ACP stop reason: end_turn | max_tokens | refusal | cancelled */
  stopReason: string;
  /** the raw payload of the terminal `chat` event, when there was one */
  terminal?: unknown;
}

interface Pending {
  method: string;
  resolve: (payload: unknown) => void;
  reject: (err: GatewayError) => void;
  timer: NodeJS.Timeout;
}

// Error messages reach /acp/rpc clients: they never name the gateway's address (it is in the logs only).
const lostError = (what: string, detailsReason: string): GatewayError =>
  new GatewayError('UPSTREAM_STREAM_ERROR', what, { retryable: true, details: { provider: 'openclaw', reason: detailsReason } });

/** A socket error without host names or addresses: the errno code when there is one. */
export function describeSocketError(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code) return code;
  return err.message.replace(/\[[0-9a-fA-F:.]+\](:\d+)?/g, '<addr>').replace(/\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b/g, '<addr>').replace(/\b[a-z]+s?:\/\/\S+/gi, '<url>');
}

const reasonOf = (err: unknown): string | undefined => (err instanceof GatewayError ? (err.details?.reason as string | undefined) : undefined);

/** One authenticated socket. Created by OpenClawClient.handshake; dies once (close/error/watchdog). */
class Connection {
  readonly pending = new Map<string, Pending>();
  readonly runs = new Set<Run>();
  lastFrameAt = Date.now();
  alive = true;
  private watchdog: NodeJS.Timeout | undefined;

  constructor(
    readonly ws: WebSocket,
    readonly hello: HelloOk,
    private readonly owner: OpenClawClient,
  ) {
    const tick = hello.policy.tickIntervalMs;
    this.watchdog = setInterval(() => {
      if (Date.now() - this.lastFrameAt > 2 * tick) {
        this.kill(lostError(`no frame from the OpenClaw gateway for ${2 * tick} ms (2× tick interval): connection closed`, 'tick_timeout'), CLOSE_TICK_TIMEOUT, 'tick timeout');
      }
    }, Math.max(10, Math.floor(tick / 2)));
    this.watchdog.unref();
  }

  get protocol(): number {
    return this.hello.protocol;
  }

  request(method: string, params: unknown, timeoutMs: number): Promise<unknown> {
    if (!this.alive) return Promise.reject(lostError('connection to the OpenClaw gateway is closed', 'connection_lost'));
    const id = randomUUID();
    const text = JSON.stringify(requestFrame(id, method, params));
    const max = this.hello.policy.maxPayload;
    if (max !== undefined && Buffer.byteLength(text) > max) {
      return Promise.reject(new GatewayError('PAYLOAD_TOO_LARGE', `OpenClaw ${method} request is larger than the gateway's maxPayload (${max} bytes)`, { details: { provider: 'openclaw', method } }));
    }
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.sendRaw(JSON.stringify({ type: 'cancel', id }));
        reject(new GatewayError('UPSTREAM_TIMEOUT', `OpenClaw ${method} got no response within ${timeoutMs} ms`, { details: { provider: 'openclaw', method, reason: 'request_timeout' } }));
      }, timeoutMs);
      this.pending.set(id, { method, resolve, reject, timer });
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
      const p = this.pending.get(f.id);
      if (!p) return;
      this.pending.delete(f.id);
      clearTimeout(p.timer);
      if (f.ok) p.resolve(f.payload);
      else p.reject(errorFromShape(p.method, f.error as ErrorShape, this.owner.secret));
      return;
    }
    this.owner.onEvent(this, f);
  }

  /** Marks the connection dead, fails everything on it and closes the socket (idempotent). */
  kill(err: GatewayError, code = 1000, reason = ''): void {
    if (!this.alive) return;
    this.alive = false;
    if (this.watchdog) clearInterval(this.watchdog);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
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

/** The client side of one chat.send run. */
class Run {
  runId: string | undefined;
  conn: Connection | undefined;
  acc: ChatTextAccumulator | undefined;
  cancelRequested = false;
  abortSent = false;
  settled = false;
  buffered: Array<{ ev: ChatEvent; raw: unknown }> = [];
  readonly done: Promise<ChatResult>;
  private resolveDone!: (r: ChatResult) => void;
  private rejectDone!: (e: GatewayError) => void;

  constructor(
    readonly sessionKey: string,
    readonly idempotencyKey: string,
    readonly opts: ChatSendOptions,
    private readonly secret: string,
  ) {
    this.done = new Promise<ChatResult>((res, rej) => {
      this.resolveDone = res;
      this.rejectDone = rej;
    });
    this.done.catch(() => undefined);
  }

  attach(conn: Connection): void {
    this.conn = conn;
    // the text so far survives a reconnect; a new connection may speak another version: keep the longer-lived text
    const prev = this.acc;
    this.acc = new ChatTextAccumulator(conn.protocol);
    if (prev && prev.text) this.acc.apply({ runId: '-', sessionKey: '-', state: 'delta', message: prev.text });
    conn.runs.add(this);
  }

  matches(runId: string): boolean {
    return runId === this.runId || runId === this.idempotencyKey;
  }

  /** A `chat` event for this run's session key. */
  event(ev: ChatEvent, raw: unknown): void {
    if (this.settled) return;
    if (this.runId === undefined && !this.matches(ev.runId)) {
      // before the ack we do not know the run id yet: keep the session's events until we do
      if (this.buffered.length < 10_000) this.buffered.push({ ev, raw });
      return;
    }
    if (!this.matches(ev.runId)) return;
    this.handle(ev, raw);
  }

  acked(runId: string): void {
    this.runId = runId;
    const b = this.buffered;
    this.buffered = [];
    for (const { ev, raw } of b) if (this.matches(ev.runId)) this.handle(ev, raw);
  }

  private handle(ev: ChatEvent, raw: unknown): void {
    if (this.settled) return;
    try {
      this.opts.onEvent?.(ev, raw);
      const change = this.acc?.apply(ev);
      if (change) this.opts.onDelta?.(change, ev);
    } catch (err) {
      this.fail(toGatewayError(err));
      return;
    }
    const runId = this.runId ?? ev.runId;
    const text = this.acc?.text ?? '';
    switch (ev.state) {
      case 'final':
        this.finish({ status: 'completed', runId, text, stopReason: mapStopReason(ev.stopReason), terminal: raw });
        break;
      case 'aborted':
        this.finish({ status: 'cancelled', runId, text, stopReason: 'cancelled', terminal: raw });
        break;
      case 'error':
        this.fail(errorFromChatEvent(ev, this.secret));
        break;
      default:
        break;
    }
  }

  connectionLost(err: GatewayError): void {
    // before the ack the chat.send request itself fails and chatSend decides whether to resend
    if (this.runId === undefined) return;
    if (this.cancelRequested) this.cancelled();
    else this.fail(err);
  }

  cancelled(): void {
    this.finish({ status: 'cancelled', runId: this.runId ?? '', text: this.acc?.text ?? '', stopReason: 'cancelled' });
  }

  finish(r: ChatResult): void {
    if (this.settled) return;
    this.settled = true;
    this.resolveDone(r);
  }

  fail(e: GatewayError): void {
    if (this.settled) return;
    this.settled = true;
    this.rejectDone(e);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

export class OpenClawClient {
  readonly logUrl: string;
  private readonly o: Required<Omit<OpenClawClientOptions, 'displayName' | 'instanceId' | 'backoff' | 'log'>> & Pick<OpenClawClientOptions, 'displayName' | 'instanceId'>;
  private readonly backoff: BackoffOptions;
  private readonly log: Logger;
  private conn: Connection | undefined;
  private connecting: Promise<Connection> | undefined;
  private failures = 0;
  private nextAttemptAt = 0;
  private lastError: GatewayError | undefined;
  private authFailure: { error: GatewayError; until: number } | undefined;
  private readonly runs = new Map<string, Run>();
  private closed = false;
  /** sockets opened so far (handshake attempts included); for diagnostics and tests */
  connectAttempts = 0;

  constructor(opts: OpenClawClientOptions) {
    if (!/^wss?:\/\//i.test(opts.url)) throw new GatewayError('CONFIG_INVALID', 'OpenClaw url must be a ws:// or wss:// URL');
    if (!opts.token) throw new GatewayError('CONFIG_INVALID', 'OpenClaw token must not be empty');
    this.o = {
      url: opts.url,
      token: opts.token,
      displayName: opts.displayName,
      instanceId: opts.instanceId,
      requestTimeoutMs: opts.requestTimeoutMs ?? 30_000,
      handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 15_000,
      connectBudgetMs: opts.connectBudgetMs ?? 60_000,
      maxBackoffWaitMs: opts.maxBackoffWaitMs ?? 5_000,
      authRetryAfterMs: opts.authRetryAfterMs ?? 5 * 60_000,
      abortGraceMs: opts.abortGraceMs ?? 5_000,
      maxInboundBytes: opts.maxInboundBytes ?? 64 * 1024 * 1024,
    };
    this.backoff = { ...DEFAULT_BACKOFF, ...opts.backoff };
    this.logUrl = safeUrl(opts.url);
    this.log = (opts.log ?? rootLogger).child({ component: 'openclaw', url: this.logUrl });
  }

  /** @internal used to scrub server text */
  get secret(): string {
    return this.o.token;
  }

  /** negotiated protocol of the live connection (3 or 4), undefined when not connected */
  get protocol(): number | undefined {
    return this.conn?.alive ? this.conn.protocol : undefined;
  }
  get tickIntervalMs(): number | undefined {
    return this.conn?.alive ? this.conn.hello.policy.tickIntervalMs : undefined;
  }
  get hello(): HelloOk | undefined {
    return this.conn?.alive ? this.conn.hello : undefined;
  }
  get connected(): boolean {
    return this.conn?.alive === true;
  }

  /** Connects now if not connected (waiting out a short back-off); resolves with the hello-ok. */
  async connect(signal?: AbortSignal): Promise<HelloOk> {
    return (await this.ensureConnected(signal)).hello;
  }

  /** One request/response over the (re)connected socket. */
  async request(method: string, params: unknown, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<unknown> {
    const conn = await this.ensureConnected(opts.signal);
    return conn.request(method, params, opts.timeoutMs ?? this.o.requestTimeoutMs);
  }

  /** `chat.abort { sessionKey, runId? }`. */
  abort(sessionKey: string, runId?: string): Promise<unknown> {
    return this.request('chat.abort', runId ? { sessionKey, runId } : { sessionKey });
  }

  /**
   * Sends one message to a session and follows the run to its end. Resolves `completed` on `final`,
   * `cancelled` on `aborted` (or when the signal aborted it); rejects with a GatewayError on `error`, on a
   * connection loss after the ack, on a refused request and on timeouts. One run per session key at a time.
   */
  async chatSend(sessionKey: string, message: string, opts: ChatSendOptions = {}): Promise<ChatResult> {
    const key = sessionKey.toLowerCase();
    if (this.runs.has(key)) throw new GatewayError('INVALID_REQUEST', 'a run is already active on this OpenClaw session', { details: { provider: 'openclaw' } });
    const signal = opts.signal;
    const run = new Run(sessionKey, opts.idempotencyKey ?? randomUUID(), opts, this.o.token);
    if (signal?.aborted) return { status: 'cancelled', runId: '', text: '', stopReason: 'cancelled' };
    this.runs.set(key, run);
    const timers: NodeJS.Timeout[] = [];
    const requestAbort = () => {
      if (run.cancelRequested || run.settled) return;
      run.cancelRequested = true;
      timers.push(setTimeout(() => run.cancelled(), this.o.abortGraceMs));
      if (run.runId !== undefined) this.sendAbort(run);
    };
    const onAbort = () => requestAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.timeoutMs !== undefined) {
      timers.push(
        setTimeout(() => {
          if (run.settled) return;
          if (run.runId !== undefined) this.sendAbort(run);
          run.fail(new GatewayError('UPSTREAM_TIMEOUT', `OpenClaw run did not finish within ${opts.timeoutMs} ms (aborted)`, { details: { provider: 'openclaw', reason: 'run_timeout' } }));
        }, opts.timeoutMs),
      );
    }
    try {
      const params = { sessionKey, message, idempotencyKey: run.idempotencyKey };
      let ack: ChatSendAck | undefined;
      for (let attempt = 1; ack === undefined; attempt++) {
        let conn: Connection;
        try {
          conn = await Promise.race([this.ensureConnected(signal), run.done.then(() => undefined as never)]);
        } catch (err) {
          if (run.settled) return await run.done;
          if (signal?.aborted) return { status: 'cancelled', runId: '', text: '', stopReason: 'cancelled' };
          throw err;
        }
        if (run.settled) return await run.done;
        if (signal?.aborted) return { status: 'cancelled', runId: '', text: '', stopReason: 'cancelled' };
        run.attach(conn);
        try {
          const sent = conn.request('chat.send', params, this.o.requestTimeoutMs);
          // an ack that arrives after the caller gave up (cancel/timeout before the ack): stop that orphaned run
          sent.then(
            (p) => {
              const late = parseChatSendAck(p);
              if (late && run.settled && run.runId === undefined) {
                run.runId = late.runId;
                this.sendAbort(run);
              }
            },
            () => undefined,
          );
          const payload = await Promise.race([sent, run.done.then(() => undefined)]);
          if (run.settled) return await run.done;
          const parsed = parseChatSendAck(payload);
          if (!parsed) throw new GatewayError('UPSTREAM_BAD_RESPONSE', 'OpenClaw chat.send answered without a runId', { details: { provider: 'openclaw' } });
          ack = parsed;
        } catch (err) {
          if (run.settled) return await run.done;
          // lost before the ack: the server may or may not have the message; the same idempotency key makes a resend safe
          if (reasonOf(err) === 'connection_lost' || reasonOf(err) === 'tick_timeout') {
            if (attempt < 2 && !signal?.aborted) {
              this.log.warn('openclaw connection lost before chat.send was acknowledged; resending with the same idempotency key');
              continue;
            }
          }
          if (signal?.aborted) return { status: 'cancelled', runId: '', text: '', stopReason: 'cancelled' };
          throw err;
        }
      }
      run.acked(ack.runId);
      opts.onAck?.(ack);
      if (run.cancelRequested && !run.settled) this.sendAbort(run);
      return await run.done;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      for (const t of timers) clearTimeout(t);
      run.settled = true;
      run.conn?.runs.delete(run);
      if (this.runs.get(key) === run) this.runs.delete(key);
    }
  }

  private sendAbort(run: Run): void {
    const conn = run.conn;
    if (!conn?.alive || run.abortSent) return;
    run.abortSent = true;
    const params = run.runId ? { sessionKey: run.sessionKey, runId: run.runId } : { sessionKey: run.sessionKey };
    conn.request('chat.abort', params, this.o.requestTimeoutMs).catch((err: unknown) => {
      this.log.warn('openclaw chat.abort failed', { error: scrub(String((err as Error)?.message ?? err), this.o.token) });
    });
  }

  /** Closes the connection and fails whatever is running. Idempotent; the client cannot be used afterwards. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new GatewayError('SHUTTING_DOWN', 'OpenClaw client closed', { details: { provider: 'openclaw' } });
    for (const r of this.runs.values()) r.fail(err);
    this.conn?.kill(err, 1000, 'client closing');
    this.conn = undefined;
    await this.connecting?.catch(() => undefined);
  }

  // -------------------------------------------------------------------------------------------------------------
  // connection management

  /** @internal from Connection */
  onEvent(conn: Connection, f: EventFrame): void {
    if (f.event === 'chat') {
      const ev = parseChatEvent(f.payload);
      if (!ev) return;
      let run = this.runs.get(ev.sessionKey.toLowerCase());
      // a server that reports the key in another canonical form: fall back to the run id
      if (!run) for (const r of this.runs.values()) if (r.runId !== undefined && r.matches(ev.runId)) run = r;
      if (run && run.conn === conn) run.event(ev, f.payload);
      return;
    }
    if (f.event === 'shutdown') {
      const p = f.payload as { restartExpectedMs?: unknown } | undefined;
      const ms = typeof p?.restartExpectedMs === 'number' && p.restartExpectedMs > 0 ? Math.min(p.restartExpectedMs, this.backoff.maxMs) : 0;
      this.nextAttemptAt = Math.max(this.nextAttemptAt, Date.now() + ms);
      this.log.info('openclaw gateway is shutting down', { restartExpectedMs: ms });
    }
    // tick: liveness only (every frame refreshes the watchdog); agent/presence/health: not used
  }

  /** @internal from Connection.kill */
  connectionDied(conn: Connection, err: GatewayError): void {
    if (this.conn === conn) this.conn = undefined;
    if (!this.closed) this.log.warn('openclaw connection lost', { reason: reasonOf(err), error: err.message });
  }

  private async ensureConnected(signal?: AbortSignal): Promise<Connection> {
    if (this.closed) throw new GatewayError('SHUTTING_DOWN', 'OpenClaw client closed', { details: { provider: 'openclaw' } });
    if (this.conn?.alive) return this.conn;
    if (this.authFailure) {
      if (Date.now() < this.authFailure.until) throw this.authFailure.error;
      this.authFailure = undefined;
    }
    if (!this.connecting) {
      const wait = this.nextAttemptAt - Date.now();
      if (wait > this.o.maxBackoffWaitMs) {
        throw new GatewayError('UPSTREAM_ERROR', `OpenClaw gateway is unreachable${this.lastError ? ` (${this.lastError.message})` : ''}; next connect attempt in ${Math.ceil(wait / 1000)} s`, {
          retryable: true,
          retryAfterSec: Math.ceil(wait / 1000),
          details: { provider: 'openclaw', reason: 'backoff' },
        });
      }
      this.connecting = this.connectLoop(Math.max(0, wait)).finally(() => {
        this.connecting = undefined;
      });
    }
    const p = this.connecting;
    if (!signal) return p;
    return new Promise<Connection>((resolve, reject) => {
      const onAbort = () => reject(new GatewayError('CANCELLED', 'cancelled while connecting to OpenClaw'));
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  private async connectLoop(initialWait: number): Promise<Connection> {
    if (initialWait > 0) await sleep(initialWait);
    const deadline = Date.now() + this.o.connectBudgetMs;
    for (;;) {
      if (this.closed) throw new GatewayError('SHUTTING_DOWN', 'OpenClaw client closed', { details: { provider: 'openclaw' } });
      try {
        const conn = await this.handshake();
        if (this.closed) {
          conn.kill(new GatewayError('SHUTTING_DOWN', 'OpenClaw client closed'), 1000, 'client closing');
          throw new GatewayError('SHUTTING_DOWN', 'OpenClaw client closed', { details: { provider: 'openclaw' } });
        }
        this.failures = 0;
        this.nextAttemptAt = 0;
        this.lastError = undefined;
        this.conn = conn;
        this.log.info('openclaw connected', { protocol: conn.protocol, tickIntervalMs: conn.hello.policy.tickIntervalMs, connId: conn.hello.server?.connId });
        return conn;
      } catch (e) {
        const wrapped = e as { error?: unknown; shape?: ErrorShape };
        const error = wrapped?.error instanceof GatewayError ? wrapped.error : toGatewayError(e);
        const shape = wrapped?.error instanceof GatewayError ? wrapped.shape : undefined;
        if (shape && isAuthFailure(shape)) {
          const err = new GatewayError('UPSTREAM_ERROR', `OpenClaw gateway refused the configured token or identity: ${error.message}; not retrying automatically (check acp.gateways[].token)`, {
            retryable: false,
            details: { ...error.details, reason: 'auth_failed' },
          });
          this.authFailure = { error: err, until: Date.now() + this.o.authRetryAfterMs };
          this.log.error('openclaw authentication failed', { error: err.message });
          throw err;
        }
        const retryAfter = shape?.retryAfterMs;
        if (shape?.code === 'UNAVAILABLE' && shape.retryable !== false && retryAfter !== undefined && Date.now() + retryAfter < deadline) {
          this.log.info('openclaw gateway is starting; retrying connect', { retryAfterMs: retryAfter });
          await sleep(Math.min(retryAfter, this.backoff.maxMs));
          continue;
        }
        this.failures++;
        this.lastError = error;
        this.nextAttemptAt = Date.now() + Math.max(backoffDelay(this.failures, this.backoff), retryAfter ?? 0);
        this.log.warn('openclaw connect failed', { error: error.message, failures: this.failures, nextAttemptInMs: this.nextAttemptAt - Date.now() });
        throw error;
      }
    }
  }

  /** One socket: open → challenge → connect → hello-ok. Rejects with `{ error, shape? }`. */
  private handshake(): Promise<Connection> {
    this.connectAttempts++;
    return new Promise<Connection>((resolve, reject) => {
      const ws = new WebSocket(this.o.url, { handshakeTimeout: this.o.handshakeTimeoutMs, maxPayload: this.o.maxInboundBytes, perMessageDeflate: false });
      let phase: 'challenge' | 'hello' | 'done' = 'challenge';
      let connectId = '';
      let conn: Connection | undefined;
      const fail = (error: GatewayError, shape?: ErrorShape) => {
        if (phase === 'done') return;
        phase = 'done';
        clearTimeout(timer);
        ws.removeAllListeners('message');
        ws.on('error', () => undefined);
        try {
          ws.terminate();
        } catch {
          /* ignore */
        }
        reject(shape ? { error, shape } : { error });
      };
      const timer = setTimeout(
        () => fail(new GatewayError('UPSTREAM_TIMEOUT', `OpenClaw handshake did not complete within ${this.o.handshakeTimeoutMs} ms (${phase === 'challenge' ? 'no connect.challenge' : 'no hello-ok'})`, { details: { provider: 'openclaw', reason: 'handshake_timeout' } })),
        this.o.handshakeTimeoutMs,
      );
      const bad = (msg: string) => new GatewayError('UPSTREAM_BAD_RESPONSE', `OpenClaw handshake: ${msg}`, { details: { provider: 'openclaw', reason: 'protocol' } });

      ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
        if (conn) {
          if (!isBinary) conn.onFrame(data.toString());
          return;
        }
        if (isBinary) return;
        const text = data.toString();
        if (Buffer.byteLength(text) > PRE_AUTH_MAX_BYTES) return fail(bad('pre-auth frame larger than 64 KiB'));
        const f = parseInboundFrame(text);
        if (!f) return;
        if (phase === 'challenge') {
          if (f.type !== 'event' || f.event !== 'connect.challenge') return;
          if (!parseChallenge(f.payload)) return fail(bad('connect.challenge without nonce/ts'));
          connectId = randomUUID();
          const frame = JSON.stringify(requestFrame(connectId, 'connect', buildConnectParams({ token: this.o.token, ...(this.o.displayName ? { displayName: this.o.displayName } : {}), ...(this.o.instanceId ? { instanceId: this.o.instanceId } : {}) })));
          if (Buffer.byteLength(frame) > PRE_AUTH_MAX_BYTES) return fail(new GatewayError('CONFIG_INVALID', 'OpenClaw connect frame would exceed 64 KiB (token too long?)'));
          phase = 'hello';
          ws.send(frame);
          return;
        }
        if (phase === 'hello' && f.type === 'res' && f.id === connectId) {
          if (!f.ok) {
            const shape = f.error as ErrorShape;
            return fail(errorFromShape('connect', shape, this.o.token), shape);
          }
          const hello = parseHelloOk(f.payload);
          if (!hello) return fail(bad('connect succeeded without a hello-ok payload'));
          if (hello.protocol < MIN_PROTOCOL || hello.protocol > MAX_PROTOCOL) return fail(bad(`server chose protocol ${hello.protocol}, outside ${MIN_PROTOCOL}–${MAX_PROTOCOL}`));
          phase = 'done';
          clearTimeout(timer);
          conn = new Connection(ws, hello, this);
          ws.removeAllListeners('close');
          ws.removeAllListeners('error');
          ws.on('error', () => undefined);
          ws.on('close', (code: number, reason: Buffer) => {
            conn?.kill(lostError(`connection to the OpenClaw gateway closed (code ${code}${reason.length ? `: ${scrub(reason.toString(), this.o.token, 120)}` : ''})`, 'connection_lost'));
          });
          resolve(conn);
        }
      });
      ws.on('error', (err: Error) => fail(new GatewayError('UPSTREAM_ERROR', `cannot connect to the OpenClaw gateway: ${scrub(describeSocketError(err), this.o.token, 200)}`, { retryable: true, details: { provider: 'openclaw', reason: 'connect_failed' } })));
      ws.on('close', (code: number) => {
        // 1008 (policy violation) while waiting for hello-ok: refused without an error response
        if (phase === 'hello' && code === 1008) {
          const shape: ErrorShape = { code: 'UNAUTHORIZED', message: 'connection closed with 1008 (policy violation) during connect' };
          return fail(errorFromShape('connect', shape, this.o.token), shape);
        }
        fail(new GatewayError('UPSTREAM_ERROR', `OpenClaw gateway closed the connection during the handshake (code ${code})`, { retryable: true, details: { provider: 'openclaw', reason: 'connect_failed', closeCode: code } }));
      });
    });
  }
}
