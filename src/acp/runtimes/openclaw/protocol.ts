/**
 * OpenClaw Gateway WebSocket protocol (v3–v4), the operator-client subset Switchyard speaks: frame types, the
 * `connect` params, defensive frame/payload parsing, `chat` event → text mapping for both protocol versions,
 * and error mapping. Pure: no sockets, no timers. See docs/openclaw.md for what was verified and what was not.
 *
 * Wire summary (OpenClaw docs/gateway/protocol.md, packages/gateway-protocol/src/schema/{frames,logs-chat}.ts):
 *   req   { type:"req", id, method, params? }
 *   res   { type:"res", id, ok, payload?, error?: ErrorShape }
 *   event { type:"event", event, payload?, seq?, stateVersion? }
 * The server opens with event `connect.challenge {nonce, ts}`; the client's first request must be `connect`.
 *
 * Over 400 lines on purpose: it is the one pure codec of a foreign protocol (types, parsers and error mapping
 * that follow its schema files one to one); split, the mapping from its schema would be harder to check.
 */
import { GatewayError, RELAYED_TEXT_MAX, cutText } from '../../../wire/errors.js';
import { isObj, jsonObject } from '../../../util/is-object.js';
import { VERSION } from '../../../version.js';

/** Lowest / highest protocol this client can speak. v3 = cumulative `message` deltas only; v4 adds `deltaText`. */
export const MIN_PROTOCOL = 3;
export const MAX_PROTOCOL = 4;
/** OpenClaw caps frames before the handshake completes at 64 KiB. */
export const PRE_AUTH_MAX_BYTES = 64 * 1024;
/** Ticks are assumed this often until hello-ok says otherwise (OpenClaw's own clients assume 30 s pre-hello). */
export const DEFAULT_TICK_INTERVAL_MS = 30_000;
/**
 * The longest tick interval taken from hello-ok: the watchdog runs every half tick, and a timer over 2^31-1 ms
 * overflows (Node then fires it every millisecond); past 10 min liveness would hardly be watched anyway.
 */
export const MAX_TICK_INTERVAL_MS = 600_000;
/** The shortest: below it the watchdog would fail every run between two frames (0.001 gave a 0.002 ms limit). */
export const MIN_TICK_INTERVAL_MS = 50;
/** Close code OpenClaw clients use when they give up on a silent connection (2× tick without a frame). */
export const CLOSE_TICK_TIMEOUT = 4000;

/** `client.id` values are a closed enum on the server; third-party backends use this one. */
export const CLIENT_ID = 'gateway-client';
/** `client.mode` for a server-side (backend) client. */
export const CLIENT_MODE = 'backend';
export const OPERATOR_ROLE = 'operator';
/** The minimum a chat client needs: read (chat events, history) + write (chat.send / chat.abort). */
export const OPERATOR_SCOPES: readonly string[] = ['operator.read', 'operator.write'];

export const CLIENT_VERSION: string = VERSION;

// ---------------------------------------------------------------------------------------------------------------
// frames

export interface ErrorShape {
  code: string;
  message: string;
  details?: unknown;
  retryable?: boolean;
  retryAfterMs?: number;
}
export interface RequestFrame {
  type: 'req';
  id: string;
  method: string;
  params?: unknown;
}
export interface ResponseFrame {
  type: 'res';
  id: string;
  ok: boolean;
  payload?: unknown;
  error?: ErrorShape;
}
export interface EventFrame {
  type: 'event';
  event: string;
  payload?: unknown;
  seq?: number;
  stateVersion?: { presence: number; health: number };
}
export type InboundFrame = ResponseFrame | EventFrame;

const nonEmpty = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
const nonNegInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

/** An ErrorShape from untrusted input, or undefined when it is not one. Unknown fields are dropped. */
export function parseErrorShape(v: unknown): ErrorShape | undefined {
  if (!isObj(v) || !nonEmpty(v.code)) return undefined;
  const e: ErrorShape = { code: v.code, message: typeof v.message === 'string' ? v.message : '' };
  if (v.details !== undefined) e.details = v.details;
  if (typeof v.retryable === 'boolean') e.retryable = v.retryable;
  if (nonNegInt(v.retryAfterMs)) e.retryAfterMs = v.retryAfterMs;
  return e;
}

/**
 * Parses one text frame the server sent. Returns undefined for anything that is not a well-formed `res` or
 * `event` frame (bad JSON, unknown `type`, missing ids): the caller ignores those, as OpenClaw clients ignore
 * unknown frame types.
 */
export function parseInboundFrame(text: string): InboundFrame | undefined {
  const v = jsonObject(text);
  if (!v) return undefined;
  if (v.type === 'res') {
    if (!nonEmpty(v.id) || typeof v.ok !== 'boolean') return undefined;
    const f: ResponseFrame = { type: 'res', id: v.id, ok: v.ok };
    if (v.payload !== undefined) f.payload = v.payload;
    const err = parseErrorShape(v.error);
    if (err) f.error = err;
    else if (!v.ok) f.error = { code: 'UNKNOWN', message: 'request failed without an error shape' };
    return f;
  }
  if (v.type === 'event') {
    if (!nonEmpty(v.event)) return undefined;
    const f: EventFrame = { type: 'event', event: v.event };
    if (v.payload !== undefined) f.payload = v.payload;
    if (nonNegInt(v.seq)) f.seq = v.seq;
    if (isObj(v.stateVersion) && nonNegInt(v.stateVersion.presence) && nonNegInt(v.stateVersion.health)) {
      f.stateVersion = { presence: v.stateVersion.presence, health: v.stateVersion.health };
    }
    return f;
  }
  return undefined;
}

export function requestFrame(id: string, method: string, params?: unknown): RequestFrame {
  return params === undefined ? { type: 'req', id, method } : { type: 'req', id, method, params };
}

// ---------------------------------------------------------------------------------------------------------------
// handshake

export interface ConnectChallenge {
  nonce: string;
  ts: number;
}
export function parseChallenge(payload: unknown): ConnectChallenge | undefined {
  if (!isObj(payload) || !nonEmpty(payload.nonce) || !nonNegInt(payload.ts)) return undefined;
  return { nonce: payload.nonce, ts: payload.ts };
}

/**
 * `connect` params. Only fields the v3 and v4 schemas both know are ever sent (the server rejects unknown
 * fields: `additionalProperties:false`). No `device`: Switchyard has no device identity (see docs/openclaw.md).
 */
export interface ConnectParams {
  minProtocol: number;
  maxProtocol: number;
  client: { id: string; displayName?: string; version: string; platform: string; mode: string; instanceId?: string };
  role: string;
  scopes: string[];
  caps: string[];
  auth: { token: string };
  userAgent?: string;
}

export interface ConnectOptions {
  token: string;
  /** shown in OpenClaw's presence list */
  displayName?: string;
  /** stable id of this client instance (OpenClaw uses it to group presence) */
  instanceId?: string;
  version?: string;
  platform?: string;
}

export function buildConnectParams(o: ConnectOptions): ConnectParams {
  const client: ConnectParams['client'] = {
    id: CLIENT_ID,
    version: o.version ?? CLIENT_VERSION,
    platform: o.platform ?? process.platform,
    mode: CLIENT_MODE,
  };
  if (o.displayName) client.displayName = o.displayName;
  if (o.instanceId) client.instanceId = o.instanceId;
  return {
    minProtocol: MIN_PROTOCOL,
    maxProtocol: MAX_PROTOCOL,
    client,
    role: OPERATOR_ROLE,
    scopes: [...OPERATOR_SCOPES],
    caps: [],
    auth: { token: o.token },
    userAgent: `switchyard/${client.version}`,
  };
}

/** What the client keeps from `hello-ok`. */
export interface HelloOk {
  type: 'hello-ok';
  protocol: number;
  server?: { version?: string; connId?: string };
  features?: { methods: string[]; events: string[] };
  auth?: { role?: string; scopes: string[] };
  policy: { maxPayload?: number; maxBufferedBytes?: number; tickIntervalMs: number };
}

/** Validates the parts of hello-ok the client relies on (`type`, `protocol`); the rest is read leniently. */
export function parseHelloOk(payload: unknown): HelloOk | undefined {
  if (!isObj(payload) || payload.type !== 'hello-ok' || !nonNegInt(payload.protocol)) return undefined;
  const strs = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  const policy = isObj(payload.policy) ? payload.policy : {};
  const tick =
    typeof policy.tickIntervalMs === 'number' && policy.tickIntervalMs > 0
      ? Math.min(Math.max(policy.tickIntervalMs, MIN_TICK_INTERVAL_MS), MAX_TICK_INTERVAL_MS)
      : DEFAULT_TICK_INTERVAL_MS;
  const h: HelloOk = { type: 'hello-ok', protocol: payload.protocol, policy: { tickIntervalMs: tick } };
  if (nonNegInt(policy.maxPayload) && policy.maxPayload > 0) h.policy.maxPayload = policy.maxPayload;
  if (nonNegInt(policy.maxBufferedBytes) && policy.maxBufferedBytes > 0) h.policy.maxBufferedBytes = policy.maxBufferedBytes;
  if (isObj(payload.server)) {
    h.server = {};
    if (typeof payload.server.version === 'string') h.server.version = payload.server.version;
    if (typeof payload.server.connId === 'string') h.server.connId = payload.server.connId;
  }
  if (isObj(payload.features)) h.features = { methods: strs(payload.features.methods), events: strs(payload.features.events) };
  if (isObj(payload.auth)) {
    h.auth = { scopes: strs(payload.auth.scopes) };
    if (typeof payload.auth.role === 'string') h.auth.role = payload.auth.role;
  }
  return h;
}

// ---------------------------------------------------------------------------------------------------------------
// chat

export interface ChatSendParams {
  sessionKey: string;
  message: string;
  idempotencyKey: string;
}
export interface ChatAbortParams {
  sessionKey: string;
  runId?: string;
}
/** chat.send ack; OpenClaw answers `{ runId, status: "started" }` (a duplicate idempotency key → in-flight / ok). */
export interface ChatSendAck {
  runId: string;
  status: string;
}
/**
 * The longest run id taken from an ack (OpenClaw's are UUIDs): every update of the run carries it, so a longer
 * one would make each of them large.
 */
export const MAX_RUN_ID_CHARS = 256;
/** The ack's `status` is cut to this many characters (it goes to the client in the `running` update). */
export const MAX_ACK_STATUS_CHARS = 64;
/** The ack, or undefined without a non-empty `runId` of at most MAX_RUN_ID_CHARS characters. */
export function parseChatSendAck(payload: unknown): ChatSendAck | undefined {
  if (!isObj(payload) || !nonEmpty(payload.runId) || payload.runId.length > MAX_RUN_ID_CHARS) return undefined;
  return { runId: payload.runId, status: typeof payload.status === 'string' ? payload.status.slice(0, MAX_ACK_STATUS_CHARS) : 'started' };
}

export type ChatState = 'delta' | 'final' | 'aborted' | 'error';
export type ChatErrorKind = 'refusal' | 'timeout' | 'rate_limit' | 'context_length' | 'unknown';

/** A `chat` event payload (union on `state`), read leniently: only runId/sessionKey/state are required. */
export interface ChatEvent {
  runId: string;
  sessionKey: string;
  state: ChatState;
  seq?: number;
  /** v4 delta: the new text (or, with `replace`, the whole text so far) */
  deltaText?: string;
  replace?: boolean;
  /** cumulative assistant message (v3 deltas; final/aborted/error on both) */
  message?: unknown;
  usage?: unknown;
  stopReason?: string;
  errorMessage?: string;
  errorKind?: string;
}

const CHAT_STATES: ReadonlySet<string> = new Set(['delta', 'final', 'aborted', 'error']);

/**
 * What an update carries of a `chat` event as its `structuredEvent`: the event's own short fields, never its
 * text (the change is the update's `delta`/`text`; `deltaText` and the cumulative `message` would repeat the text
 * so far on every update), nor `usage` or fields this client does not know. Its size is bounded whatever the
 * server sends: `runId` names the run (a run handles only events that name its acked run id, at most
 * MAX_RUN_ID_CHARS, or its own idempotency key) and `sessionKey` is the one this client derived.
 */
export interface ChatEventSummary {
  runId: string;
  sessionKey: string;
  state: ChatState;
  seq?: number;
  replace?: boolean;
}
export function chatEventSummary(ev: ChatEvent, sessionKey: string): ChatEventSummary {
  const s: ChatEventSummary = { runId: ev.runId, sessionKey, state: ev.state };
  if (ev.seq !== undefined) s.seq = ev.seq;
  if (ev.replace !== undefined) s.replace = ev.replace;
  return s;
}

export function parseChatEvent(payload: unknown): ChatEvent | undefined {
  if (!isObj(payload) || !nonEmpty(payload.runId) || !nonEmpty(payload.sessionKey)) return undefined;
  if (typeof payload.state !== 'string' || !CHAT_STATES.has(payload.state)) return undefined;
  const e: ChatEvent = { runId: payload.runId, sessionKey: payload.sessionKey, state: payload.state as ChatState };
  if (nonNegInt(payload.seq)) e.seq = payload.seq;
  if (typeof payload.deltaText === 'string') e.deltaText = payload.deltaText;
  if (typeof payload.replace === 'boolean') e.replace = payload.replace;
  if (payload.message !== undefined) e.message = payload.message;
  if (payload.usage !== undefined) e.usage = payload.usage;
  if (typeof payload.stopReason === 'string') e.stopReason = payload.stopReason;
  if (typeof payload.errorMessage === 'string') e.errorMessage = payload.errorMessage;
  if (typeof payload.errorKind === 'string') e.errorKind = payload.errorKind;
  return e;
}

/**
 * The displayable text of an OpenClaw message: a plain string, `{ text }`, or `{ content }` where content is a
 * string or an array of parts of which the `{ type:"text", text }` ones count (thinking, tool calls and images
 * are not text). Undefined when the value carries no text field at all.
 */
export function messageText(message: unknown): string | undefined {
  if (typeof message === 'string') return message;
  if (!isObj(message)) return undefined;
  const c = message.content;
  if (typeof c === 'string') return c;
  if (Array.isArray(c)) {
    let out = '';
    let any = false;
    for (const part of c) {
      if (isObj(part) && part.type === 'text' && typeof part.text === 'string') {
        out += part.text;
        any = true;
      }
    }
    return any ? out : '';
  }
  if (typeof message.text === 'string') return message.text;
  return undefined;
}

/** A text change: `append` adds `text` to what was shown; `replace` means the whole text is now `text`. */
export type TextChange = { kind: 'append'; text: string } | { kind: 'replace'; text: string };

/**
 * Turns the `chat` events of one run into text changes, for the negotiated protocol:
 * - v4: `deltaText` is the new piece; with `replace:true` it is the whole text so far (a refresh).
 *   A v4 delta without `deltaText` falls back to its cumulative `message`.
 * - v3: only the cumulative `message` is sent (throttled); the piece is what it adds to the previous text. A
 *   cumulative text that is not an extension of the previous one (rewritten after a tool call) is a `replace`.
 * `final` carries the full message: if it extends what was streamed, the rest is one last `append`; if it
 * differs otherwise, a `replace`. A replacement that merely extends the shown text is reported as an `append`.
 */
export class ChatTextAccumulator {
  private current = '';
  constructor(readonly protocol: number) {}

  get text(): string {
    return this.current;
  }

  /** Applies one event of the run; returns the change to show, or undefined when nothing changed. */
  apply(ev: ChatEvent): TextChange | undefined {
    if (ev.state === 'delta') {
      if (this.protocol >= 4 && ev.deltaText !== undefined) {
        return ev.replace ? this.setTo(ev.deltaText) : this.append(ev.deltaText);
      }
      const cum = messageText(ev.message);
      return cum === undefined ? undefined : this.setTo(cum);
    }
    // terminal states: the message (when present) is the authoritative full text
    const full = messageText(ev.message);
    // (an empty terminal message next to streamed text is a message without text parts, not an erasure)
    if (full === undefined || (full === '' && this.current !== '')) return undefined;
    return this.setTo(full);
  }

  private append(piece: string): TextChange | undefined {
    if (piece === '') return undefined;
    this.current += piece;
    return { kind: 'append', text: piece };
  }

  private setTo(full: string): TextChange | undefined {
    if (full === this.current) return undefined;
    if (full.startsWith(this.current)) return this.append(full.slice(this.current.length));
    this.current = full;
    return { kind: 'replace', text: full };
  }
}

/** OpenClaw/pi stop reasons → ACP stop reasons (end_turn | max_tokens | refusal | cancelled). */
export function mapStopReason(r: string | undefined): string {
  switch (r) {
    case 'length':
    case 'max_tokens':
      return 'max_tokens';
    case 'refusal':
    case 'content_filter':
      return 'refusal';
    case 'aborted':
    case 'cancelled':
      return 'cancelled';
    default:
      return 'end_turn';
  }
}

// ---------------------------------------------------------------------------------------------------------------
// errors

/** `details.code` of an ErrorShape, when the server sent one. */
export function detailCode(e: ErrorShape): string | undefined {
  return isObj(e.details) && typeof e.details.code === 'string' ? e.details.code : undefined;
}

/**
 * Whether a failed `connect` is an authentication/authorisation refusal that retrying with the same config
 * cannot fix: OpenClaw reports these with `details.code` `AUTH_*` (token missing/mismatch/…, except the
 * rate limiter), `PAIRING_REQUIRED` / `DEVICE_AUTH_*` / `DEVICE_IDENTITY_REQUIRED`, or with top-level codes
 * `UNAUTHORIZED` / `FORBIDDEN` / `NOT_PAIRED`. Branches on codes only, never on the message.
 */
export function isAuthFailure(e: ErrorShape): boolean {
  const d = detailCode(e);
  if (d) {
    if (d === 'AUTH_RATE_LIMITED') return false;
    if (d.startsWith('AUTH_') || d.startsWith('DEVICE_AUTH_') || d === 'PAIRING_REQUIRED' || d === 'DEVICE_IDENTITY_REQUIRED') return true;
  }
  return e.code === 'UNAUTHORIZED' || e.code === 'FORBIDDEN' || e.code === 'NOT_PAIRED' || e.code === 'PAIRING_REQUIRED';
}

/**
 * Replaces every occurrence of the secret in server-provided text, then bounds its length: by default the bound
 * of every upstream's text in an error (RELAYED_TEXT_MAX, src/wire/errors.ts).
 */
export function scrub(text: string, secret: string, max = RELAYED_TEXT_MAX): string {
  return cutText(secret.length > 0 ? text.split(secret).join('[redacted]') : text, max);
}

/** A code-like value from the server (error code, detail code, error kind, run id), as it may be shown: scrubbed, short. */
export function serverLabel(text: string, secret: string): string {
  return scrub(text, secret, 100);
}

/**
 * Maps an OpenClaw ErrorShape returned for `method` to the gateway's error type. Every server value that goes
 * into the message or the details (codes included, not only the message) is scrubbed and bounded.
 */
export function errorFromShape(method: string, e: ErrorShape, secret: string): GatewayError {
  const dc = detailCode(e);
  const code = serverLabel(e.code, secret);
  const detail = dc === undefined ? undefined : serverLabel(dc, secret);
  const codeText = detail ? `${code}/${detail}` : code;
  const msg = `OpenClaw ${method} failed (${codeText}): ${scrub(e.message, secret) || 'no message'}`;
  const details: Record<string, unknown> = { provider: 'openclaw', method, openclawCode: code };
  if (detail) details.openclawDetailCode = detail;
  const retryAfterSec = e.retryAfterMs !== undefined ? Math.ceil(e.retryAfterMs / 1000) : undefined;
  const opts = { details, ...(retryAfterSec !== undefined ? { retryAfterSec } : {}) };
  if (e.code === 'UNAVAILABLE') return new GatewayError('UPSTREAM_ERROR', msg, { ...opts, retryable: true });
  if (e.code === 'AGENT_TIMEOUT') return new GatewayError('UPSTREAM_TIMEOUT', msg, opts);
  if (e.code === 'INVALID_REQUEST' || e.code === 'FORBIDDEN' || e.code === 'NOT_LINKED' || e.code === 'NOT_PAIRED') {
    return new GatewayError('UPSTREAM_CLIENT_ERROR', msg, { ...opts, status: 502, retryable: false });
  }
  return new GatewayError('UPSTREAM_ERROR', msg, { ...opts, ...(e.retryable !== undefined ? { retryable: e.retryable } : {}) });
}

/** Maps a `chat` event with state `error` to the gateway's error type. */
export function errorFromChatEvent(ev: ChatEvent, secret: string): GatewayError {
  const kind = serverLabel(ev.errorKind ?? 'unknown', secret);
  const msg = `OpenClaw run failed${kind !== 'unknown' ? ` (${kind})` : ''}: ${scrub(ev.errorMessage ?? '', secret) || 'no error message'}`;
  const details = { provider: 'openclaw', runId: serverLabel(ev.runId, secret), errorKind: kind };
  switch (kind) {
    case 'rate_limit':
      return new GatewayError('RATE_LIMITED', msg, { details });
    case 'timeout':
      return new GatewayError('UPSTREAM_TIMEOUT', msg, { details });
    case 'context_length':
    case 'refusal':
      return new GatewayError('UPSTREAM_CLIENT_ERROR', msg, { details, status: 502 });
    default:
      return new GatewayError('UPSTREAM_ERROR', msg, { details });
  }
}
