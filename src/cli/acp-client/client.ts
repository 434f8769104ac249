/**
 * `AcpClient`: the app-side client of `/acp/rpc` (../shared/spec/acp-rpc.md). Every call goes to the one
 * normalised endpoint (base-url.ts), as JSON-RPC 2.0 with `Authorization: Bearer`. Streaming calls ask for SSE
 * and get `session.update` (and keepalive) notifications in order, then the final envelope, then `[DONE]`;
 * plain calls get one JSON envelope. Envelopes are read tolerantly: `result` or its `payload` mirror, `error`
 * or `ok:false`, notifications by `method` or `type:"event"`/`event`.
 *
 * Failures are typed: `AcpRpcError` = the server answered with a JSON-RPC error (branch on `dataCode`);
 * `AcpTransportError` = no usable answer (unreachable, timeout, aborted, not JSON-RPC, stream cut short).
 *
 * Just over 400 lines: it is the whole client of one endpoint (envelope reading, SSE, each method's call), and
 * is published as one unit for apps to read.
 */
import { randomBytes } from 'node:crypto';
import { request, type Dispatcher } from 'undici';
import { parseSse } from '../../util/lines.js';
import { normaliseAcpBase } from './base-url.js';
import { isObj } from '../../util/is-object.js';

export type RpcId = string | number;

/** A JSON-RPC error answered by the server. `data.code` (= `dataCode`) is the stable machine code. */
export class AcpRpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data: Record<string, unknown> | undefined,
    /** HTTP status of the reply (200 for method-level errors; 401/403/410/413… for transport-level ones) */
    readonly httpStatus: number,
  ) {
    super(message);
    this.name = 'AcpRpcError';
  }

  /** `data.code`, e.g. SESSION_CONTINUATION_UNAVAILABLE, ROUTING_REQUIRED, UNAUTHORIZED */
  get dataCode(): string | undefined {
    return typeof this.data?.code === 'string' ? this.data.code : undefined;
  }
}

export type TransportFailure = 'unreachable' | 'timeout' | 'aborted' | 'bad-response' | 'http';

/** No usable JSON-RPC answer. `cause` carries the low-level code (ECONNREFUSED, …) where there was one. */
export class AcpTransportError extends Error {
  constructor(
    readonly reason: TransportFailure,
    message: string,
    readonly httpStatus?: number,
    readonly causeCode?: string,
  ) {
    super(message);
    this.name = 'AcpTransportError';
  }
}

export interface AcpNotification {
  method: string;
  params: Record<string, unknown>;
}

/** `session.update` params: the ids and `seq` are always present (spec "Notifications while a turn runs"). */
export interface SessionUpdate {
  sessionId: string;
  threadId: string;
  turnId: string;
  seq: number;
  type: 'status' | 'delta' | 'step' | (string & {});
  event: string;
  text?: string;
  delta?: string;
  structuredEvent?: unknown;
  [k: string]: unknown;
}

export interface CallOptions {
  /** ask for an SSE reply and deliver notifications as they arrive (default false) */
  stream?: boolean;
  /** every notification of a streamed call, in arrival order (keepalives included) */
  onNotification?: (n: AcpNotification) => void;
  signal?: AbortSignal;
  /** whole-call deadline; default: the client's `timeoutMs` for plain calls, none for streamed calls */
  timeoutMs?: number;
}

export interface AcpClientOptions {
  /** gateway base (`https://h`, `https://h/acp`, `https://h/acp/rpc` …), normalised by `normaliseAcpBase` */
  baseUrl: string;
  /** ACP token (`acp.tokens`), sent as `Authorization: Bearer` */
  token?: string;
  /** local use: allow loopback / LAN / link-local bases (CLI `--local`); default false = managed mode */
  allowLocal?: boolean;
  /** deadline of plain (non-streamed) calls, ms; default 120 000 */
  timeoutMs?: number;
  /** streamed calls: the longest silence between SSE messages, ms (the server keeps alive every 20 s); default 60 000 */
  idleTimeoutMs?: number;
  /** time to connect and receive the reply's headers, ms; default 30 000 */
  connectTimeoutMs?: number;
  /** prefix of generated request ids; default "acp" */
  idPrefix?: string;
  dispatcher?: Dispatcher;
}

/** Routing params of `session.start` (and optionally `session.message`); see the spec's "Routing resolution". */
export interface SessionParams {
  sessionId: string;
  taskPrompt: string;
  threadId?: string;
  workingDirectory?: string;
  provider?: string;
  model?: string;
  requestedExecutionTarget?: 'agent' | 'gateway' | (string & {});
  executionTarget?: string;
  gatewayProviderId?: string;
  routing?: {
    routingMode?: 'auto' | 'explicit';
    explicitExecutionTarget?: string;
    explicitProviderId?: string;
    preferredGatewayProviderId?: string;
    explicitModel?: string;
  };
  [k: string]: unknown;
}

export interface TaskResult {
  success: boolean;
  status: 'completed' | 'failed' | 'cancelled' | 'unavailable' | (string & {});
  sessionId?: string;
  threadId?: string;
  turnId?: string;
  runId?: string;
  output?: string;
  /** `output` was cut to the result's bound; `outputChars` is the whole output's length */
  outputTruncated?: boolean;
  outputChars?: number;
  summary?: string;
  stopReason?: string;
  error?: string;
  unavailable?: boolean;
  unavailableCode?: string;
  unavailableMessage?: string;
  resolvedExecutionTarget?: string;
  resolvedProviderId?: string;
  resolvedGatewayProviderId?: string;
  resolvedModel?: string;
  [k: string]: unknown;
}

export interface ProviderEntry {
  providerId: string;
  label: string;
  targets: string[];
  enabled: boolean;
  unavailableReason?: string;
}

export interface Capabilities {
  singleAgent: boolean;
  multiAgent: boolean;
  availableExecutionTargets: string[];
  providerCatalog: ProviderEntry[];
  gatewayProviders: ProviderEntry[];
  [k: string]: unknown;
}

export interface TurnCallOptions extends Omit<CallOptions, 'stream'> {
  /** default true: stream, so updates arrive live and a long turn is kept alive */
  stream?: boolean;
  /** the `session.update` notifications of this call, in order */
  onUpdate?: (u: SessionUpdate) => void;
}

export const KEEPALIVE_METHOD = 'xworkmate.bridge.keepalive';

export type Envelope =
  | { kind: 'notification'; notification: AcpNotification }
  | { kind: 'result'; id: unknown; result: unknown }
  | { kind: 'error'; id: unknown; error: AcpRpcError }
  | { kind: 'invalid'; why: string };

/**
 * Classifies one decoded envelope. Pure. A notification has a `method` (or `event`) and no result/error;
 * anything else is a response. Mirrors are read when the JSON-RPC field is missing.
 */
export function readEnvelope(v: unknown, httpStatus = 200): Envelope {
  if (!isObj(v)) return { kind: 'invalid', why: 'not a JSON object' };
  const hasResponse = 'result' in v || 'error' in v || 'ok' in v || v.type === 'res';
  const method = typeof v.method === 'string' ? v.method : typeof v.event === 'string' ? v.event : undefined;
  if (method !== undefined && (!hasResponse || v.type === 'event')) {
    const params = isObj(v.params) ? v.params : isObj(v.payload) ? v.payload : {};
    return { kind: 'notification', notification: { method, params } };
  }
  if (!hasResponse && !('payload' in v)) return { kind: 'invalid', why: 'neither a result, an error nor a notification' };
  if (v.error !== undefined && v.error !== null) {
    const e = isObj(v.error) ? v.error : { message: typeof v.error === 'string' ? v.error : JSON.stringify(v.error) };
    const code = typeof e.code === 'number' ? e.code : -32603;
    const message = typeof e.message === 'string' && e.message ? e.message : 'request failed';
    return { kind: 'error', id: v.id, error: new AcpRpcError(code, message, isObj(e.data) ? e.data : undefined, httpStatus) };
  }
  if (v.ok === false) {
    return {
      kind: 'error',
      id: v.id,
      error: new AcpRpcError(-32603, 'request failed (ok:false without an error)', isObj(v.payload) ? v.payload : undefined, httpStatus),
    };
  }
  return { kind: 'result', id: v.id, result: 'result' in v ? v.result : v.payload };
}

/** Errors thrown by a caller's onNotification: passed through as they are, never relabelled as transport errors. */
const callbackErrors = new WeakSet<object>();

const sameId = (got: unknown, want: RpcId): boolean =>
  got === undefined || got === null || ((typeof got === 'string' || typeof got === 'number') && String(got) === String(want));

export class AcpClient {
  /** the one endpoint every call goes to: `…/acp/rpc` */
  readonly endpoint: URL;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;
  private readonly idleTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly idPrefix: string;
  private readonly dispatcher: Dispatcher | undefined;
  private seq = 0;

  /** Throws AcpBaseUrlError when the base breaks a routing rule (see base-url.ts). */
  constructor(o: AcpClientOptions) {
    this.endpoint = normaliseAcpBase(o.baseUrl, { allowLocal: o.allowLocal ?? false });
    this.token = o.token;
    this.timeoutMs = o.timeoutMs ?? 120_000;
    this.idleTimeoutMs = o.idleTimeoutMs ?? 60_000;
    this.connectTimeoutMs = o.connectTimeoutMs ?? 30_000;
    this.idPrefix = o.idPrefix ?? 'acp';
    this.dispatcher = o.dispatcher;
  }

  /** A fresh request id: prefix, per-client counter, random suffix (unique across clients and restarts). */
  nextId(): string {
    return `${this.idPrefix}-${++this.seq}-${randomBytes(4).toString('hex')}`;
  }

  async call<T = unknown>(method: string, params: Record<string, unknown> = {}, opts: CallOptions = {}): Promise<T> {
    const id = this.nextId();
    const stream = opts.stream ?? false;
    const deadline = opts.timeoutMs ?? (stream ? 0 : this.timeoutMs);
    const ac = new AbortController();
    let timedOut = false;
    const timer =
      deadline > 0
        ? setTimeout(() => {
            timedOut = true;
            ac.abort();
          }, deadline)
        : undefined;
    const onAbort = () => ac.abort();
    if (opts.signal?.aborted) ac.abort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const fail = (err: unknown): never => {
      if (err instanceof AcpRpcError || err instanceof AcpTransportError || callbackErrors.has(err as object)) throw err;
      if (timedOut) throw new AcpTransportError('timeout', `${method}: no complete reply from ${this.endpoint.href} within ${deadline} ms`);
      if (opts.signal?.aborted) throw new AcpTransportError('aborted', `${method}: aborted`);
      const code = (err as { code?: string }).code;
      if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
        throw new AcpTransportError('timeout', `${method}: ${this.endpoint.origin} did not answer within ${this.connectTimeoutMs} ms`, undefined, code);
      }
      if (code === 'UND_ERR_BODY_TIMEOUT') {
        throw new AcpTransportError(
          'timeout',
          `${method}: the reply stream from ${this.endpoint.origin} was silent for ${stream ? this.idleTimeoutMs : deadline} ms`,
          undefined,
          code,
        );
      }
      throw new AcpTransportError('unreachable', `cannot reach ${this.endpoint.href} (${code ?? (err as Error)?.message ?? String(err)})`, undefined, code);
    };
    try {
      let res: Dispatcher.ResponseData;
      try {
        res = await request(this.endpoint, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: stream ? 'text/event-stream' : 'application/json',
            ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
          },
          body: JSON.stringify({ jsonrpc: '2.0', id, method, params }),
          signal: ac.signal,
          // a plain reply to a turn comes only when the turn ends: its headers are bounded by the deadline
          headersTimeout: stream ? this.connectTimeoutMs : deadline,
          bodyTimeout: stream ? this.idleTimeoutMs : deadline,
          ...(this.dispatcher ? { dispatcher: this.dispatcher } : {}),
        });
      } catch (err) {
        return fail(err);
      }
      const type = String(res.headers['content-type'] ?? '');
      try {
        if (type.includes('text/event-stream')) return (await this.readStream(res, id, method, opts)) as T;
        return (await this.readJson(res, id, method)) as T;
      } catch (err) {
        res.body.destroy();
        return fail(err);
      }
    } finally {
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  private async readJson(res: Dispatcher.ResponseData, id: RpcId, method: string): Promise<unknown> {
    const text = await res.body.text();
    if (text.trim() === '') {
      if (res.statusCode >= 400) throw new AcpTransportError('http', `${method}: HTTP ${res.statusCode} from ${this.endpoint.href}`, res.statusCode);
      throw new AcpTransportError('bad-response', `${method}: empty reply from ${this.endpoint.href}`, res.statusCode);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new AcpTransportError(
        res.statusCode >= 400 ? 'http' : 'bad-response',
        `${method}: unexpected reply from ${this.endpoint.href} (HTTP ${res.statusCode}, not JSON); is this a Switchyard /acp/rpc endpoint?`,
        res.statusCode,
      );
    }
    return this.settle(json, id, method, res.statusCode);
  }

  private settle(json: unknown, id: RpcId, method: string, status: number): unknown {
    const env = readEnvelope(json, status);
    if (env.kind === 'error') {
      if (!sameId(env.id, id))
        throw new AcpTransportError('bad-response', `${method}: reply carries id ${JSON.stringify(env.id)}, expected ${JSON.stringify(id)}`, status);
      throw env.error;
    }
    if (env.kind === 'result' && status < 400) {
      if (!sameId(env.id, id))
        throw new AcpTransportError('bad-response', `${method}: reply carries id ${JSON.stringify(env.id)}, expected ${JSON.stringify(id)}`, status);
      return env.result;
    }
    if (status >= 400) throw new AcpTransportError('http', `${method}: HTTP ${status} from ${this.endpoint.href}`, status);
    throw new AcpTransportError(
      'bad-response',
      `${method}: the reply is not a JSON-RPC response (${env.kind === 'invalid' ? env.why : 'a notification'})`,
      status,
    );
  }

  private async readStream(res: Dispatcher.ResponseData, id: RpcId, method: string, opts: CallOptions): Promise<unknown> {
    for await (const ev of parseSse(res.body)) {
      const data = ev.data.trim();
      if (data === '') continue;
      if (data === '[DONE]') break;
      let json: unknown;
      try {
        json = JSON.parse(data);
      } catch {
        throw new AcpTransportError('bad-response', `${method}: the event stream carried a message that is not JSON`, res.statusCode);
      }
      const env = readEnvelope(json, res.statusCode);
      if (env.kind === 'notification') {
        try {
          opts.onNotification?.(env.notification);
        } catch (err) {
          // the caller's own error: it ends the call and reaches the caller unchanged
          if (typeof err === 'object' && err !== null) callbackErrors.add(err);
          throw err;
        }
        continue;
      }
      if (env.kind === 'invalid')
        throw new AcpTransportError('bad-response', `${method}: the event stream carried a message that is not JSON-RPC (${env.why})`, res.statusCode);
      // the final envelope settles the call; `[DONE]` is not waited for (leaving the loop ends the body)
      return this.settle(json, id, method, res.statusCode);
    }
    throw new AcpTransportError('bad-response', `${method}: the event stream ended before the final reply`, res.statusCode);
  }

  // ---- helpers: one per method of the contract --------------------------------------------------------------

  capabilities(opts?: CallOptions): Promise<Capabilities> {
    return this.call<Capabilities>('acp.capabilities', {}, opts);
  }

  health(opts?: CallOptions): Promise<{ status: string; version: string }> {
    return this.call('health', {}, opts);
  }

  /** `session.start`: a new (or restarted) session's first turn. Streams by default. */
  start(params: SessionParams, opts: TurnCallOptions = {}): Promise<TaskResult> {
    return this.turn('session.start', params, opts);
  }

  /** `session.message`: the next turn of a session; SESSION_CONTINUATION_UNAVAILABLE if it is unknown or closed. */
  message(params: SessionParams, opts: TurnCallOptions = {}): Promise<TaskResult> {
    return this.turn('session.message', params, opts);
  }

  cancel(sessionId: string, opts?: CallOptions): Promise<{ accepted: boolean; cancelled: boolean }> {
    return this.call('session.cancel', { sessionId }, opts);
  }

  close(sessionId: string, opts?: CallOptions): Promise<{ accepted: boolean; closed: boolean }> {
    return this.call('session.close', { sessionId }, opts);
  }

  /** `xworkmate.tasks.get`: a task snapshot (`status`, `output`, `progress`), or `{ status: "not_found" }`. */
  tasksGet(by: { runId: string } | { sessionId: string }, opts?: CallOptions): Promise<Record<string, unknown> & { status: string }> {
    return this.call('xworkmate.tasks.get', by, opts);
  }

  /** `xworkmate.routing.resolve`: the routing decision for these params, without running anything. */
  resolveRouting(params: Partial<SessionParams>, opts?: CallOptions): Promise<Record<string, unknown>> {
    return this.call('xworkmate.routing.resolve', params, opts);
  }

  private turn(method: string, params: SessionParams, opts: TurnCallOptions): Promise<TaskResult> {
    const { onUpdate, onNotification, ...rest } = opts;
    return this.call<TaskResult>(method, params, {
      ...rest,
      stream: opts.stream ?? true,
      onNotification: (n) => {
        onNotification?.(n);
        if (n.method === 'session.update' && onUpdate) onUpdate(n.params as SessionUpdate);
      },
    });
  }
}
