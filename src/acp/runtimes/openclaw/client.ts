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
 *   the signal, the run's deadline and output past `maxOutputChars` send `chat.abort { sessionKey, runId }`; a
 *   `chat.send` never answered in time sends `chat.abort { sessionKey }` (its run id is unknown, and the server
 *   may be running it). If the connection drops before the ack, the send is retried once on a new connection
 *   with the same idempotency key (OpenClaw dedupes it); a drop after the ack fails the run.
 * - Keepalive: the connection is closed (code 4000) when no frame arrived for 2× the tick interval.
 * - Back-off between failed connects: 1 s doubling to 30 s, ±20 % jitter; a request waits out a short back-off
 *   and fails fast (retryable, with retryAfter) on a long one. `UNAVAILABLE` at connect (gateway starting)
 *   is retried after its `retryAfterMs` within the connect budget. An authentication refusal is never retried
 *   automatically: requests fail at once with the same error until `authRetryAfterMs` has passed.
 * - The token is only ever written into the `connect` frame; server text that echoes it is scrubbed.
 *
 * Files: connection.ts (one socket: handshake, requests, watchdog), run.ts (one chat.send run), this file (the
 * client: lazy connect, back-off, auth refusal memory, chatSend's resend-before-ack rule). Errors: an auth refusal
 * is UPSTREAM_AUTH_FAILED (not retryable); a failed connect, and a request refused during a long back-off (with
 * retryAfterSec), is UPSTREAM_UNREACHABLE; a loss mid-run is UPSTREAM_CONNECTION_LOST.
 */
import { setTimeout as pause } from 'node:timers/promises';
import { randomUUID } from 'node:crypto';
import { GatewayError, toGatewayError } from '../../../wire/errors.js';
import { rootLogger, type Logger } from '../../../util/log.js';
import { redactUrl } from '../../../util/redact.js';
import { isAuthFailure, parseChatEvent, parseChatSendAck, scrub, type ChatSendAck, type EventFrame, type HelloOk } from './protocol.js';
import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from '../../../util/backoff.js';
import { openConnection, type Connection, type ConnectionOwner, type HandshakeFailure } from './connection.js';
import { Run, type ChatResult, type ChatSendOptions } from './run.js';

export { backoffDelay } from '../../../util/backoff.js';
export { describeSocketError } from './connection.js';
export type { ChatResult, ChatSendOptions } from './run.js';

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

const closedError = (): GatewayError => new GatewayError('SHUTTING_DOWN', 'OpenClaw client closed', { details: { provider: 'openclaw' } });

/** Waits `ms`, or less if `signal` aborts (resolves either way). */
const sleep = (ms: number, signal?: AbortSignal): Promise<void> => pause(ms, undefined, signal ? { signal } : undefined).catch(() => undefined);

export class OpenClawClient implements ConnectionOwner {
  /** the gateway's URL as its log lines show it (redactUrl, as the admin API shows bridge URLs); never in an error message */
  readonly logUrl: string;
  private readonly o: Required<Omit<OpenClawClientOptions, 'displayName' | 'instanceId' | 'backoff' | 'log'>> &
    Pick<OpenClawClientOptions, 'displayName' | 'instanceId'>;
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
  /** aborted by close(): ends a connect under way (its handshake and its waits) at once */
  private readonly closing = new AbortController();
  /** sockets opened so far (handshake attempts included); for diagnostics and tests */
  connectAttempts = 0;

  constructor(opts: OpenClawClientOptions) {
    if (!/^wss?:\/\//i.test(opts.url) || !URL.canParse(opts.url)) throw new GatewayError('CONFIG_INVALID', 'OpenClaw url must be a ws:// or wss:// URL');
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
    this.logUrl = redactUrl(opts.url);
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
  /** requests waiting for an answer on the live connection, and runs being followed; for diagnostics and tests */
  get inFlight(): { requests: number; runs: number } {
    return { requests: this.conn?.alive ? this.conn.pending.size : 0, runs: this.runs.size };
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
    if (this.runs.has(key))
      throw new GatewayError('INVALID_REQUEST', 'a run is already active on this OpenClaw session', { details: { provider: 'openclaw' } });
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
          run.fail(
            new GatewayError('UPSTREAM_TIMEOUT', `OpenClaw run did not finish within ${opts.timeoutMs} ms (aborted)`, { details: { provider: 'openclaw' } }),
          );
        }, opts.timeoutMs),
      );
    }
    try {
      const params = { sessionKey, message, idempotencyKey: run.idempotencyKey };
      let ack: ChatSendAck | undefined;
      for (let attempt = 1; ack === undefined; attempt++) {
        let conn: Connection | undefined;
        try {
          // run.done settles first when the run was cancelled or timed out while connecting
          conn = await Promise.race([this.ensureConnected(signal), run.done.then(() => undefined)]);
        } catch (err) {
          if (run.settled) return await run.done;
          if (signal?.aborted) return { status: 'cancelled', runId: '', text: '', stopReason: 'cancelled' };
          throw err;
        }
        if (run.settled || !conn) return await run.done;
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
            (err: unknown) => {
              // no answer in time: the server may be running it all the same, under a run id we never learn; abort
              // the session's current run (chat.abort without a runId), before this session's next turn can start one
              if (err instanceof GatewayError && err.code === 'UPSTREAM_TIMEOUT') this.sendAbort(run);
            },
          );
          const payload = await Promise.race([sent, run.done.then(() => undefined)]);
          if (run.settled) return await run.done;
          const parsed = parseChatSendAck(payload);
          if (!parsed) throw new GatewayError('UPSTREAM_BAD_RESPONSE', 'OpenClaw chat.send answered without a runId', { details: { provider: 'openclaw' } });
          ack = parsed;
        } catch (err) {
          if (run.settled) return await run.done;
          // lost before the ack: the server may or may not have the message; the same idempotency key makes a resend safe
          if (err instanceof GatewayError && err.code === 'UPSTREAM_CONNECTION_LOST') {
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
      try {
        return await run.done;
      } catch (err) {
        // stopped here for too much output: stop it on the server too
        if (run.overflowed) this.sendAbort(run);
        throw err;
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      for (const t of timers) clearTimeout(t);
      run.settled = true;
      run.conn?.runs.delete(run);
      if (this.runs.get(key) === run) this.runs.delete(key);
    }
  }

  /** `chat.abort` for the run (once): with its runId when known, else for the session's current run. */
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
    this.closing.abort();
    const err = closedError();
    for (const r of this.runs.values()) r.fail(err);
    this.conn?.kill(err, 1000, 'client closing');
    this.conn = undefined;
    await this.connecting?.catch(() => undefined);
  }

  // -------------------------------------------------------------------------------------------------------------
  // connection management

  /** from Connection; `chars`: the length of the frame */
  onEvent(conn: Connection, f: EventFrame, chars: number): void {
    if (f.event === 'chat') {
      const ev = parseChatEvent(f.payload);
      if (!ev) return;
      let run = this.runs.get(ev.sessionKey.toLowerCase());
      // a server that reports the key in another canonical form: fall back to the run id
      if (!run) for (const r of this.runs.values()) if (r.runId !== undefined && r.matches(ev.runId)) run = r;
      if (run && run.conn === conn) run.event(ev, f.payload, chars);
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

  /** from Connection.kill */
  connectionDied(conn: Connection, err: GatewayError): void {
    if (this.conn === conn) this.conn = undefined;
    if (!this.closed) this.log.warn('openclaw connection lost', { code: err.code, error: err.message });
  }

  private async ensureConnected(signal?: AbortSignal): Promise<Connection> {
    if (this.closed) throw closedError();
    if (this.conn?.alive) return this.conn;
    if (this.authFailure) {
      if (Date.now() < this.authFailure.until) throw this.authFailure.error;
      this.authFailure = undefined;
    }
    if (!this.connecting) {
      const wait = this.nextAttemptAt - Date.now();
      if (wait > this.o.maxBackoffWaitMs) {
        throw new GatewayError(
          'UPSTREAM_UNREACHABLE',
          `OpenClaw gateway is unreachable${this.lastError ? ` (${this.lastError.message})` : ''}; next connect attempt in ${Math.ceil(wait / 1000)} s`,
          {
            retryAfterSec: Math.ceil(wait / 1000),
            details: { provider: 'openclaw' },
          },
        );
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
    const closing = this.closing.signal;
    if (initialWait > 0) await sleep(initialWait, closing);
    const deadline = Date.now() + this.o.connectBudgetMs;
    let unavailable = 0;
    for (;;) {
      if (this.closed) throw closedError();
      try {
        this.connectAttempts++;
        const conn = await openConnection(this.o, this, closing, closedError);
        if (this.closed) {
          conn.kill(closedError(), 1000, 'client closing');
          throw closedError();
        }
        this.failures = 0;
        this.nextAttemptAt = 0;
        this.lastError = undefined;
        this.conn = conn;
        this.log.info('openclaw connected', { protocol: conn.protocol, tickIntervalMs: conn.hello.policy.tickIntervalMs, connId: conn.hello.server?.connId });
        return conn;
      } catch (e) {
        if (this.closed) throw closedError();
        const wrapped = e as Partial<HandshakeFailure> | undefined;
        const error = wrapped?.error instanceof GatewayError ? wrapped.error : toGatewayError(e);
        const shape = wrapped?.error instanceof GatewayError ? wrapped.shape : undefined;
        if (shape && isAuthFailure(shape)) {
          const err = new GatewayError(
            'UPSTREAM_AUTH_FAILED',
            `OpenClaw gateway refused the configured token or identity: ${error.message}; not retrying automatically (check acp.gateways[].token)`,
            {
              details: { ...error.details },
            },
          );
          this.authFailure = { error: err, until: Date.now() + this.o.authRetryAfterMs };
          this.log.error('openclaw authentication failed', { error: err.message });
          throw err;
        }
        // a delay the server asks for counts up to the back-off cap, however long it says
        const retryAfter = shape?.retryAfterMs === undefined ? undefined : Math.min(shape.retryAfterMs, this.backoff.maxMs);
        if (shape?.code === 'UNAVAILABLE' && shape.retryable !== false && retryAfter !== undefined && Date.now() + retryAfter < deadline) {
          // no sooner than the back-off schedule either: a retryAfterMs of 0 would reconnect in a tight loop
          const delay = Math.min(Math.max(retryAfter, backoffDelay(++unavailable, this.backoff)), this.backoff.maxMs);
          this.log.info('openclaw gateway is starting; retrying connect', { retryAfterMs: delay });
          await sleep(delay, closing);
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
}
