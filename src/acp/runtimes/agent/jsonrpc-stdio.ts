/**
 * JSON-RPC 2.0 over newline-delimited JSON (the ACP stdio transport): one peer per agent process.
 * Parsing is pure (`NdjsonLineBuffer`, `classifyMessage`); `JsonRpcStdioPeer` adds the pending map, timeouts,
 * `$/cancel_request`, routing of the agent's own requests to handlers, and close handling.
 *
 * Garbage policy: a stdout line that is not a JSON-RPC 2.0 message is counted, logged (first bytes only) and
 * fails every request in flight with UPSTREAM_BAD_RESPONSE; the connection itself stays up, because agents that
 * print a stray banner line are common and the next turn may well succeed.
 */
import type { Readable, Writable } from 'node:stream';
import { cutText, GatewayError } from '../../../wire/errors.js';
import { rootLogger, type Logger } from '../../../util/log.js';
import { PendingTable } from '../../../util/pending.js';
import { MAX_VALUE_DEPTH, pathDeeperThan } from '../../../wire/json-depth.js';
import { upstreamText } from '../../../providers/upstream.js';

export type JsonRpcId = number | string;
/** the most of an agent's method name a log line quotes: it is the agent's text, and a line may hold megabytes */
const LOGGED_METHOD_MAX = 256;

export const DEFAULT_MAX_LINE_BYTES = 8 * 1024 * 1024;
/**
 * What may wait for the agent to read it from its stdin before the peer closes (`maxUnreadBytes`): eight of the
 * largest answers an agent asks for (an 8 MiB file), the bridge's cap on a link's backlog. What is written to an
 * agent is mostly the answers to its own requests, and the agent's stdout is read whatever it reads: an agent that
 * goes on asking (fs/read_text_file of a large file, in a loop) without reading what it was answered had every
 * answer held in the gateway's memory, without bound.
 */
export const DEFAULT_MAX_UNREAD_BYTES = 64 * 1024 * 1024;
const GARBAGE_SAMPLE_CHARS = 120;

/** An error to answer an incoming request with, or the error a remote peer answered ours with. */
export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
    this.name = 'RpcError';
  }
}

export type RpcMessage =
  | { kind: 'request'; id: JsonRpcId; method: string; params: unknown }
  | { kind: 'notification'; method: string; params: unknown }
  | { kind: 'response'; id: JsonRpcId; result?: unknown; error?: { code: number; message: string; data?: unknown } }
  | { kind: 'garbage'; reason: string };

const isId = (v: unknown): v is JsonRpcId => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));

/** Pure: one NDJSON line → a typed JSON-RPC message, or `garbage` with the reason. */
export function classifyMessage(line: string): RpcMessage {
  let msg: unknown;
  try {
    msg = JSON.parse(line);
  } catch {
    return { kind: 'garbage', reason: 'not JSON' };
  }
  if (!msg || typeof msg !== 'object' || Array.isArray(msg)) return { kind: 'garbage', reason: 'not a JSON object' };
  // parsed at any depth, but what an agent sends is stored, scrubbed and serialised again: none of that may
  // recurse past the bound every value from outside is held to
  if (pathDeeperThan(msg, MAX_VALUE_DEPTH)) return { kind: 'garbage', reason: `nested deeper than ${MAX_VALUE_DEPTH} levels` };
  const m = msg as Record<string, unknown>;
  if (m.jsonrpc !== '2.0') return { kind: 'garbage', reason: 'missing jsonrpc:"2.0"' };
  if (typeof m.method === 'string') {
    if (m.id === undefined) return { kind: 'notification', method: m.method, params: m.params };
    if (isId(m.id)) return { kind: 'request', id: m.id, method: m.method, params: m.params };
    return { kind: 'garbage', reason: 'invalid id' };
  }
  if (!isId(m.id)) return { kind: 'garbage', reason: 'neither a request nor a response' };
  if ('error' in m) {
    const e = m.error as { code?: unknown; message?: unknown; data?: unknown } | null;
    if (!e || typeof e.code !== 'number' || !Number.isInteger(e.code) || typeof e.message !== 'string')
      return { kind: 'garbage', reason: 'malformed error object' };
    // an agent's error text ends up in results, the capabilities answer and the log: bounded (and scrubbed) here
    return { kind: 'response', id: m.id, error: { code: e.code, message: upstreamText(e.message), data: e.data } };
  }
  if (!('result' in m)) return { kind: 'garbage', reason: 'response without result or error' };
  return { kind: 'response', id: m.id, result: m.result };
}

/** Pure byte-level NDJSON splitter with a per-line bound (splitLines in util/lines.ts has no bound). */
export class NdjsonLineBuffer {
  private parts: Buffer[] = [];
  private size = 0;
  private discarding = false;
  constructor(private readonly maxLineBytes = DEFAULT_MAX_LINE_BYTES) {}

  /** Returns complete lines (without \n / \r\n) and, once per over-long line (as soon as it crosses the bound,
   * so a line that never ends cannot grow memory), `{ oversize: bytes-so-far }`; the rest of that line is dropped. */
  push(chunk: Buffer): Array<string | { oversize: number }> {
    const out: Array<string | { oversize: number }> = [];
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
      this.append(chunk.subarray(start, nl), out);
      if (!this.discarding) {
        let line = Buffer.concat(this.parts).toString('utf8');
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line.trim().length > 0) out.push(line);
      }
      this.parts = [];
      this.size = 0;
      this.discarding = false;
      start = nl + 1;
    }
    this.append(chunk.subarray(start), out);
    return out;
  }

  private append(part: Buffer, out: Array<string | { oversize: number }>): void {
    this.size += part.length;
    if (this.discarding) return;
    if (this.size > this.maxLineBytes) {
      this.discarding = true;
      this.parts = [];
      out.push({ oversize: this.size });
    } else if (part.length > 0) this.parts.push(part);
  }
}

export interface RequestContext {
  id: JsonRpcId;
  /** aborted when the agent sends `$/cancel_request` for this id, or the peer closes */
  signal: AbortSignal;
}
export type RequestHandler = (params: unknown, ctx: RequestContext) => unknown;
export type NotificationHandler = (params: unknown) => void;

export interface JsonRpcStdioPeerOptions {
  /** names the other side in every error message, e.g. `agent "codex"` */
  name: string;
  maxLineBytes?: number;
  /** what may wait unread on the agent's stdin; past it the peer closes (`onStalled`). Default DEFAULT_MAX_UNREAD_BYTES */
  maxUnreadBytes?: number;
  /** default per-request timeout; 0 = none */
  requestTimeoutMs?: number;
  /** after stdout ends, wait this long for the owner to close with a better reason (e.g. the exit code) */
  endGraceMs?: number;
  log?: Logger;
}

interface Pending {
  method: string;
  resolve(v: unknown): void;
  fail(e: Error): void;
}

export class JsonRpcStdioPeer {
  private nextId = 1;
  /** our requests, by String(id) (util/pending.ts: settled exactly once, by answer, timeout, abort or close) */
  private readonly pending = new PendingTable<Pending>();
  private readonly handlers = new Map<string, RequestHandler>();
  private readonly notificationHandlers = new Map<string, NotificationHandler>();
  private readonly incoming = new Map<JsonRpcId, AbortController>();
  private readonly log: Logger;
  private closeError: Error | undefined;
  /** told of an answer to a request no longer pending (failed by garbage, abandoned, timed out): see onStrayAnswer */
  private strayAnswer: ((id: JsonRpcId) => void) | undefined;
  /** told once the peer closed because the agent does not read its stdin: see onStalled */
  private stalled: ((err: GatewayError) => void) | undefined;
  private readonly maxUnread: number;
  garbageLines = 0;

  constructor(
    private readonly input: Readable,
    private readonly output: Writable,
    private readonly opts: JsonRpcStdioPeerOptions,
  ) {
    this.log = (opts.log ?? rootLogger).child({ peer: opts.name });
    this.maxUnread = opts.maxUnreadBytes ?? DEFAULT_MAX_UNREAD_BYTES;
    const lines = new NdjsonLineBuffer(opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES);
    input.on('data', (chunk: Buffer | string) => {
      for (const item of lines.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)) {
        if (typeof item === 'string') this.dispatch(classifyMessage(item), item);
        else this.garbage(`a line exceeds the ${opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES}-byte limit`, '');
      }
    });
    const ended = (): void => {
      setTimeout(() => this.close(new GatewayError('UPSTREAM_ERROR', `${opts.name} closed its stdout`)), opts.endGraceMs ?? 100).unref();
    };
    input.once('end', ended);
    input.once('error', ended);
    output.on('error', (err) => this.log.debug('write to peer failed', { error: String(err) }));
  }

  get closed(): boolean {
    return this.closeError !== undefined;
  }

  onRequest(method: string, handler: RequestHandler): void {
    this.handlers.set(method, handler);
  }

  onNotification(method: string, handler: NotificationHandler): void {
    this.notificationHandlers.set(method, handler);
  }

  /** `handler` hears of each answer that arrives for a request no longer pending (it already failed here). */
  onStrayAnswer(handler: (id: JsonRpcId) => void): void {
    this.strayAnswer = handler;
  }

  /**
   * `handler` hears that the agent left more than `maxUnreadBytes` unread on its stdin: the peer closed (everything
   * in flight failed with that error); the owner stops the process, which the peer has no say over.
   */
  onStalled(handler: (err: GatewayError) => void): void {
    this.stalled = handler;
  }

  /** `opts.onId`: told the request's id as it is sent (to recognise a stray answer to it later) */
  request<T = unknown>(method: string, params: unknown, opts: { timeoutMs?: number; signal?: AbortSignal; onId?: (id: JsonRpcId) => void } = {}): Promise<T> {
    if (this.closeError) return Promise.reject(this.closeError);
    if (opts.signal?.aborted) return Promise.reject(new GatewayError('CANCELLED', `${method} to ${this.opts.name} was cancelled`));
    const id = this.nextId++;
    opts.onId?.(id);
    return new Promise<T>((resolve, reject) => {
      const timeoutMs = opts.timeoutMs ?? this.opts.requestTimeoutMs ?? 0;
      const onAbort = (): void => this.abandon(id, new GatewayError('CANCELLED', `${method} to ${this.opts.name} was cancelled`));
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.add(
        String(id),
        { method, resolve, fail: reject },
        {
          timeoutMs,
          timeoutError: () => {
            this.notify('$/cancel_request', { id }); // we give up on it: tell the agent
            return new GatewayError('UPSTREAM_TIMEOUT', `${this.opts.name} did not answer ${method} within ${timeoutMs} ms`);
          },
          cleanup: () => opts.signal?.removeEventListener('abort', onAbort),
        },
      );
      this.send({ jsonrpc: '2.0', id, method, params });
    });
  }

  notify(method: string, params: unknown): void {
    if (!this.closeError) this.send({ jsonrpc: '2.0', method, params });
  }

  /** Rejects everything in flight with `reason` and stops answering. Idempotent. */
  close(reason: Error = new GatewayError('UPSTREAM_ERROR', `connection to ${this.opts.name} closed`)): void {
    if (this.closeError) return;
    this.closeError = reason;
    for (const ac of this.incoming.values()) ac.abort();
    this.incoming.clear();
    this.pending.close(reason);
  }

  /** Our side gives up on a request: tell the agent (`$/cancel_request`) and reject locally. */
  private abandon(id: JsonRpcId, err: Error): void {
    const p = this.pending.take(String(id));
    if (!p) return;
    this.notify('$/cancel_request', { id });
    p.fail(err);
  }

  private send(msg: object): void {
    // what the agent has not read waits in its stdin's buffer: counted there, before it grows by this message
    const unread = this.output.writableLength;
    if (unread > this.maxUnread) return this.stall(unread);
    try {
      this.output.write(JSON.stringify(msg) + '\n');
    } catch (err) {
      this.log.debug('write to peer failed', { error: String(err) });
    }
  }

  private stall(unread: number): void {
    if (this.closeError) return;
    const err = new GatewayError(
      'UPSTREAM_ERROR',
      `${this.opts.name} does not read what it is sent: ${unread} bytes wait unread on its stdin (the limit is ${this.maxUnread}); the agent was stopped`,
    );
    this.log.warn('agent does not read its stdin: closing', { unreadBytes: unread });
    this.close(err);
    // what waits is dropped with the pipe: the agent is stopped anyway
    this.output.destroy();
    this.stalled?.(err);
  }

  private garbage(reason: string, line: string): void {
    this.garbageLines++;
    const sample = line.length > GARBAGE_SAMPLE_CHARS ? line.slice(0, GARBAGE_SAMPLE_CHARS) + '…' : line;
    // the first few, then one in a hundred: an agent writing binary to stdout must not flood the log
    if (this.garbageLines <= 5 || this.garbageLines % 100 === 0) this.log.warn('non-JSON-RPC output on stdout', { reason, sample, count: this.garbageLines });
    const detail = sample ? `${reason}: ${JSON.stringify(sample)}` : reason;
    this.pending.failAll(
      new GatewayError('UPSTREAM_BAD_RESPONSE', `${this.opts.name} wrote non-JSON-RPC output on stdout (${detail})`, {
        details: { garbageLines: this.garbageLines },
      }),
    );
  }

  private dispatch(msg: RpcMessage, line: string): void {
    if (this.closeError) return;
    switch (msg.kind) {
      case 'garbage':
        return this.garbage(msg.reason, line);
      case 'response': {
        const p = this.pending.take(String(msg.id));
        if (!p) {
          this.log.debug('response for an unknown or abandoned id', { id: msg.id });
          return this.strayAnswer?.(msg.id);
        }
        if (msg.error) p.fail(new RpcError(msg.error.code, msg.error.message, msg.error.data));
        else p.resolve(msg.result);
        return;
      }
      case 'notification': {
        if (msg.method === '$/cancel_request') {
          const id = (msg.params as { id?: unknown } | undefined)?.id;
          if (isId(id)) this.incoming.get(id)?.abort();
          return;
        }
        const h = this.notificationHandlers.get(msg.method);
        if (!h) return this.log.debug('unhandled notification', { method: cutText(msg.method, LOGGED_METHOD_MAX) });
        try {
          h(msg.params);
        } catch (err) {
          this.log.warn('notification handler failed', { method: msg.method, error: String(err) });
        }
        return;
      }
      case 'request':
        void this.answer(msg.id, msg.method, msg.params);
    }
  }

  private async answer(id: JsonRpcId, method: string, params: unknown): Promise<void> {
    const h = this.handlers.get(method);
    if (!h) return this.send({ jsonrpc: '2.0', id, error: { code: -32601, message: `method not found: ${method}` } });
    const ac = new AbortController();
    this.incoming.set(id, ac);
    try {
      const result = await h(params, { id, signal: ac.signal });
      if (ac.signal.aborted) throw new RpcError(-32800, 'request cancelled');
      this.send({ jsonrpc: '2.0', id, result: result ?? null });
    } catch (err) {
      const e = err instanceof RpcError ? err : ac.signal.aborted ? new RpcError(-32800, 'request cancelled') : undefined;
      if (!e) this.log.warn('request handler failed', { method, error: String(err) });
      const error = e ? { code: e.code, message: e.message, ...(e.data === undefined ? {} : { data: e.data }) } : { code: -32603, message: 'internal error' };
      if (!this.closeError) this.send({ jsonrpc: '2.0', id, error });
    } finally {
      this.incoming.delete(id);
    }
  }
}
