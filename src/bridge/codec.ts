/**
 * (Over 400 lines because it is one table: a field check per frame type of the protocol, kept together so the
 * whole wire format reads in one place.)
 *
 * The bridge frame codec: raw WebSocket message in, typed frame (or a typed error) out. Pure — no sockets, no
 * clocks, no I/O — so every rule is testable from raw strings (codec.test.ts). Parsed once with JSON.parse and
 * checked by hand: this runs for every streamed chunk.
 *
 * Error policy (the link layer sends `bridge-error` built from the error, then closes iff `closeCode` is set):
 * - over `maxBytes` → PAYLOAD_TOO_LARGE, close 4413 (always);
 * - binary frame (`isBinary`, or bytes that are not UTF-8) → BAD_FRAME, close 4400 (always);
 * - not JSON / not an object / no string `type` / nested deeper than MAX_FRAME_DEPTH → BAD_FRAME; close 4400
 *   before auth, no close after;
 * - before auth only the handshake frame of the caller's role is accepted (responder: bridge-hello; initiator:
 *   bridge-hello-ok or bridge-error); anything else, or an invalid handshake frame → BAD_HELLO, close 4400;
 * - after auth: an unknown `type` → UNKNOWN_TYPE, an invalid known frame → BAD_FRAME, neither closes;
 *   `requestId` is carried into the error whenever it is a valid id. Every known type parses after auth (the
 *   codec keeps no link state): a second hello on an open link is the link state machine's to refuse.
 * Typed results hold only the fields the protocol defines (unknown optional fields are dropped), except the
 * opaque bodies `payload`, `chunk`, `usage`, `session`, `params`, `result`, `error.data`, passed through as sent.
 * Error messages name the field, never its value (a hello carries a token).
 */
import {
  CHANNEL_NAME_PATTERN,
  CLOSE_CODES,
  GATEWAY_ID_PATTERN,
  MAX_DIAL_NONCES,
  MAX_FRAME_DEPTH,
  MAX_HOPS,
  MAX_ID_LENGTH,
  MAX_PING_NONCE_LENGTH,
  MAX_TRANSFER_EVENTS,
  SUPPORTED_VERSIONS,
} from '../wire/bridge-frames.js';
import { isBridgeErrorCode, type BridgeErrorCode, type BridgeFrame, type BridgeFrameType } from '../wire/bridge-frames.js';
import type {
  BridgeForwardFrame,
  BridgeSessionEvent,
  BridgeSessionTransferFrame,
  ChannelCapabilities,
  ChannelLoad,
  ChannelPricing,
  SharedAgent,
  SharedChannel,
  VersionRange,
} from '../wire/bridge-frames.js';
import { isErrorCode } from '../wire/errors.js';
import { isContractField } from '../wire/chat-contract.js';
import type { ChatCompletion, ChatCompletionChunk, EmbeddingsResponse, Usage } from '../wire/openai.js';
import { isObj } from '../util/is-object.js';
import { pathDeeperThan } from '../wire/json-depth.js';

export interface ParseOptions {
  /** byte limit for this frame: preAuthFrameBytes before the handshake, maxFrameBytes after */
  maxBytes: number;
  /** handshake completed on this link */
  authenticated: boolean;
  /** the WebSocket frame was binary (ws: the `isBinary` argument of 'message') */
  isBinary?: boolean;
  /** which handshake frame is acceptable before auth; default 'responder' (expects bridge-hello) */
  role?: 'responder' | 'initiator';
}

export interface FrameError {
  code: BridgeErrorCode;
  message: string;
  /** set when the link must be closed after answering */
  closeCode?: number;
  /** the request the bad frame belonged to, when readable: answer it with bridge-error */
  requestId?: string;
  /** the bad frame's type, when it is one of the protocol's (after the handshake) */
  type?: BridgeFrameType;
}

export type ParseResult = { ok: true; frame: BridgeFrame } | { ok: false; error: FrameError };

type Obj = Record<string, unknown>;

/**
 * Thrown by the field checks below and caught in parseFrame (it never leaves this file). No stack is
 * captured: a peer's bad frames should not cost a stack walk each.
 */
class FieldError extends Error {
  constructor(message: string) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const CLOSE_BAD_FRAME = CLOSE_CODES.BAD_FRAME;

const RESPONSE_HEAD = '{"type":"bridge-response","requestId":"';
const PAYLOAD_KEY = '","payload":';
const STREAM_HEAD = '{"type":"bridge-stream","requestId":"';
const CHUNK_KEY = '","chunk":';

/**
 * A frame whose body is already JSON text on the sending side, laid out exactly as a gateway sends it, split
 * without parsing: the request id and the body's text.
 * - `bridge-response` relaying an upstream's answer: `{"type":"bridge-response","requestId":"…","payload":…}`;
 * - `bridge-stream` relaying one upstream chunk: `{"type":"bridge-stream","requestId":"…","chunk":…}`
 * (both in serveForward). Undefined for any other text, which is parsed as usual. Nothing is validated here:
 * the caller validates the body (and parses the frame after all if it is not a JSON object), and `text` must
 * have passed the same size, binary and UTF-8 checks as parseFrame's.
 */
export function splitRelayFrame(text: string): { type: 'bridge-response' | 'bridge-stream'; requestId: string; body: string } | undefined {
  if (text.charCodeAt(text.length - 1) !== 125 /* } */) return undefined;
  if (text.startsWith(STREAM_HEAD)) return split(text, 'bridge-stream', STREAM_HEAD.length, CHUNK_KEY);
  if (text.startsWith(RESPONSE_HEAD)) return split(text, 'bridge-response', RESPONSE_HEAD.length, PAYLOAD_KEY);
  return undefined;
}

function split<T extends 'bridge-response' | 'bridge-stream'>(text: string, type: T, idStart: number, bodyKey: string) {
  const idEnd = text.indexOf('"', idStart);
  if (idEnd === -1 || idEnd - idStart > MAX_ID_LENGTH || !text.startsWith(bodyKey, idEnd)) return undefined;
  const requestId = text.slice(idStart, idEnd);
  // an escape in the id would need JSON's decoding: leave such a frame to the parser
  if (requestId.length === 0 || requestId.includes('\\')) return undefined;
  return { type, requestId, body: text.slice(idEnd + bodyKey.length, -1) };
}

/** Decodes a frame's bytes as parseFrame does (size, binary, strict UTF-8); undefined when parseFrame would refuse them. */
export function frameText(raw: Uint8Array, opts: Pick<ParseOptions, 'maxBytes' | 'isBinary'>): string | undefined {
  if (opts.isBinary || raw.byteLength > opts.maxBytes) return undefined;
  try {
    return utf8.decode(raw);
  } catch {
    return undefined;
  }
}

/** Whether `text` is over `maxBytes` as UTF-8. A UTF-16 code unit is 1 to 3 UTF-8 bytes: measured only when in doubt. */
export function textOverBytes(text: string, maxBytes: number): boolean {
  return text.length > maxBytes || (text.length * 3 > maxBytes && Buffer.byteLength(text, 'utf8') > maxBytes);
}

export function parseFrame(raw: string | Uint8Array, opts: ParseOptions): ParseResult {
  const pre = !opts.authenticated;
  const tooBig = typeof raw === 'string' ? textOverBytes(raw, opts.maxBytes) : raw.byteLength > opts.maxBytes;
  if (tooBig) return fail('PAYLOAD_TOO_LARGE', `frame exceeds ${opts.maxBytes} bytes`, CLOSE_CODES.FRAME_TOO_LARGE);
  if (opts.isBinary) return fail('BAD_FRAME', 'binary frames are not allowed; send JSON text', CLOSE_BAD_FRAME);
  let text: string;
  try {
    text = typeof raw === 'string' ? raw : utf8.decode(raw);
  } catch {
    return fail('BAD_FRAME', 'frame is not UTF-8 text', CLOSE_BAD_FRAME);
  }
  const closeIfPre = pre ? CLOSE_BAD_FRAME : undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return fail('BAD_FRAME', 'frame is not valid JSON', closeIfPre);
  }
  if (!isObj(value)) return fail('BAD_FRAME', 'frame must be a JSON object', closeIfPre);
  const type = value.type;
  if (typeof type !== 'string') return fail('BAD_FRAME', 'frame.type: required string', closeIfPre);

  const rid = value.requestId;
  const requestId = typeof rid === 'string' && rid.length > 0 && rid.length <= MAX_ID_LENGTH ? rid : undefined;
  const check = Object.prototype.hasOwnProperty.call(CHECKS, type) ? CHECKS[type as BridgeFrameType] : undefined;
  // parsed at any depth (JSON.parse is iterative), but nothing recursive may walk it past this
  if (pathDeeperThan(value, MAX_FRAME_DEPTH))
    return fail('BAD_FRAME', `frame nests deeper than ${MAX_FRAME_DEPTH} levels`, closeIfPre, requestId, check ? (type as BridgeFrameType) : undefined);

  if (pre) {
    const allowed = opts.role === 'initiator' ? type === 'bridge-hello-ok' || type === 'bridge-error' : type === 'bridge-hello';
    const expected = opts.role === 'initiator' ? 'bridge-hello-ok or bridge-error' : 'bridge-hello';
    if (!allowed || !check) return fail('BAD_HELLO', `expected ${expected} before the handshake, got ${quote(type)}`, CLOSE_BAD_FRAME);
    try {
      return { ok: true, frame: check(value) };
    } catch (e) {
      return fail('BAD_HELLO', messageOf(e), CLOSE_BAD_FRAME);
    }
  }
  if (!check) return fail('UNKNOWN_TYPE', `unknown frame type ${quote(type)}`, undefined, requestId);
  try {
    return { ok: true, frame: check(value) };
  } catch (e) {
    return fail('BAD_FRAME', messageOf(e), undefined, requestId, type as BridgeFrameType);
  }
}

/**
 * The WebSocket layer's own message limit: above the protocol limit, so that an oversized frame reaches the
 * codec and gets PAYLOAD_TOO_LARGE + 4413; only a frame over twice the limit is cut by ws itself (1009).
 */
export function wsPayloadLimit(maxFrameBytes: number): number {
  return maxFrameBytes * 2;
}

/** One frame → one text message. Fields set to `undefined` are left out (JSON.stringify). */
export function encodeFrame(frame: BridgeFrame): string {
  return JSON.stringify(frame);
}

/**
 * The highest `major.minor` both sides speak, or null (→ VERSION_UNSUPPORTED). The peer's range is
 * [minVersion ?? version, maxVersion ?? version]. Ours is either a list of discrete versions (the highest one
 * inside the peer's range wins) or a range (the top of the overlap wins). A malformed version anywhere, or a
 * range whose min is above its max, gives null.
 */
export function negotiateVersion(
  hello: { version: string; minVersion?: string | undefined; maxVersion?: string | undefined },
  supported: readonly string[] | VersionRange = SUPPORTED_VERSIONS,
): string | null {
  const theirMin = parseVersion(hello.minVersion ?? hello.version);
  const theirMax = parseVersion(hello.maxVersion ?? hello.version);
  if (!theirMin || !theirMax || cmp(theirMin, theirMax) > 0) return null;
  if (isVersionList(supported)) {
    let best: [number, number] | null = null;
    for (const s of supported) {
      const v = parseVersion(s);
      if (!v) return null;
      if (cmp(v, theirMin) >= 0 && cmp(v, theirMax) <= 0 && (!best || cmp(v, best) > 0)) best = v;
    }
    return best ? `${best[0]}.${best[1]}` : null;
  }
  const ourMin = parseVersion(supported.min);
  const ourMax = parseVersion(supported.max);
  if (!ourMin || !ourMax) return null;
  const lo = cmp(theirMin, ourMin) >= 0 ? theirMin : ourMin;
  const hi = cmp(theirMax, ourMax) <= 0 ? theirMax : ourMax;
  return cmp(lo, hi) <= 0 ? `${hi[0]}.${hi[1]}` : null;
}

const isVersionList = (v: readonly string[] | VersionRange): v is readonly string[] => Array.isArray(v);

/** True when forwarding would loop: this gateway is already in `hops`, or the path is MAX_HOPS long. */
export function hasLoop(hops: readonly string[] | undefined, selfId: string): boolean {
  if (!hops) return false;
  return hops.length >= MAX_HOPS || hops.includes(selfId);
}

/** `hops` for the next leg: the received list plus this gateway. */
export function withHop(hops: readonly string[] | undefined, selfId: string): string[] {
  return hops ? [...hops, selfId] : [selfId];
}

// ------------------------------------------------------------------------------------------------- internals

function fail(code: BridgeErrorCode, message: string, closeCode?: number, requestId?: string, type?: BridgeFrameType): ParseResult {
  const error: FrameError = { code, message };
  if (closeCode !== undefined) error.closeCode = closeCode;
  if (requestId !== undefined) error.requestId = requestId;
  if (type !== undefined) error.type = type;
  return { ok: false, error };
}

function messageOf(e: unknown): string {
  if (e instanceof FieldError) return e.message;
  throw e;
}

function quote(s: string): string {
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s);
}

function parseVersion(v: string | undefined): [number, number] | null {
  const m = typeof v === 'string' ? /^(\d{1,6})\.(\d{1,6})$/.exec(v) : null;
  return m ? [Number(m[1]), Number(m[2])] : null;
}

const cmp = (a: [number, number], b: [number, number]) => a[0] - b[0] || a[1] - b[1];

/** Tolerated, not enforced: a bad value in these optional extension fields is dropped (see bridge-frames.ts). */
const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
const ORIGIN_REQUEST_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

// Field checks. `p` is the field's path for messages, e.g. `bridge-forward.targetChannel`.

function str(v: unknown, p: string, max = MAX_ID_LENGTH): string {
  if (v === undefined) throw new FieldError(`${p}: required string`);
  if (typeof v !== 'string') throw new FieldError(`${p}: must be a string`);
  if (v.length === 0 || v.length > max) throw new FieldError(`${p}: must be 1..${max} characters`);
  return v;
}
const optStr = (v: unknown, p: string, max?: number) => (v === undefined ? undefined : str(v, p, max));
function text(v: unknown, p: string): string {
  if (typeof v !== 'string') throw new FieldError(`${p}: ${v === undefined ? 'required' : 'must be a'} string`);
  return v;
}
function matching(re: RegExp, v: unknown, p: string): string {
  if (!re.test(str(v, p, 64))) throw new FieldError(`${p}: must match ${re.source}`);
  return v as string;
}
const gwId = (v: unknown, p: string) => matching(GATEWAY_ID_PATTERN, v, p);
const channelName = (v: unknown, p: string) => matching(CHANNEL_NAME_PATTERN, v, p);
function bool(v: unknown, p: string): boolean {
  if (typeof v !== 'boolean') throw new FieldError(`${p}: ${v === undefined ? 'required' : 'must be a'} boolean`);
  return v;
}
const optBool = (v: unknown, p: string) => (v === undefined ? undefined : bool(v, p));
function num(v: unknown, p: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new FieldError(`${p}: ${v === undefined ? 'required' : 'must be a finite'} number`);
  return v;
}
function count(v: unknown, p: string): number {
  if (!Number.isSafeInteger(v) || (v as number) < 0) throw new FieldError(`${p}: ${v === undefined ? 'required' : 'must be a'} non-negative integer`);
  return v as number;
}
const optCount = (v: unknown, p: string) => (v === undefined ? undefined : count(v, p));
function obj(v: unknown, p: string): Obj {
  if (!isObj(v)) throw new FieldError(`${p}: ${v === undefined ? 'required' : 'must be an'} object`);
  return v;
}
function arr(v: unknown, p: string, maxItems: number): unknown[] {
  if (!Array.isArray(v)) throw new FieldError(`${p}: ${v === undefined ? 'required' : 'must be an'} array`);
  if (v.length > maxItems) throw new FieldError(`${p}: at most ${maxItems} items`);
  return v;
}
/** Update-log entries: `{ seq, event }`, seq a positive integer increasing from one entry to the next. */
function sessionEvents(v: unknown, p: string): BridgeSessionEvent[] {
  let last = 0;
  return arr(v, p, MAX_TRANSFER_EVENTS).map((e, i) => {
    const q = `${p}[${i}]`;
    const o = obj(e, q);
    const seq = count(o.seq, `${q}.seq`);
    if (seq <= last) throw new FieldError(`${q}.seq: must be greater than the entry before it`);
    last = seq;
    return { seq, event: obj(o.event, `${q}.event`) };
  });
}

function hops(v: unknown, p: string): string[] | undefined {
  return v === undefined ? undefined : arr(v, p, 32).map((h, i) => gwId(h, `${p}[${i}]`));
}
function channels(v: unknown, p: string): SharedChannel[] {
  return arr(v, p, 4096).map((c, i) => {
    const q = `${p}[${i}]`;
    const o = obj(c, q);
    const models = arr(o.models, `${q}.models`, 4096).map((m, j) => str(m, `${q}.models[${j}]`, 256));
    const out: SharedChannel = { name: channelName(o.name, `${q}.name`), provider: str(o.provider, `${q}.provider`, 64), models };
    if (o.capabilities !== undefined) out.capabilities = channelCaps(o.capabilities, `${q}.capabilities`);
    if (o.pricing !== undefined) out.pricing = pricing(o.pricing, `${q}.pricing`);
    return out;
  });
}
/** Known flags only; an absent flag is false, unknown ones (a newer peer's) are dropped. */
function channelCaps(v: unknown, p: string): ChannelCapabilities {
  const o = obj(v, p);
  const flag = (k: Exclude<keyof ChannelCapabilities, 'refuses'>) => optBool(o[k], `${p}.${k}`) === true;
  const out: ChannelCapabilities = {
    embeddings: flag('embeddings'),
    tools: flag('tools'),
    vision: flag('vision'),
    nativeResponses: flag('nativeResponses'),
    synthetic: flag('synthetic'),
  };
  if (o.refuses !== undefined) {
    const refuses = arr(o.refuses, `${p}.refuses`, 64)
      .map((f, i) => str(f, `${p}.refuses[${i}]`, 64))
      .filter(isContractField);
    if (refuses.length > 0) out.refuses = refuses;
  }
  return out;
}
function pricing(v: unknown, p: string): ChannelPricing {
  const o = obj(v, p);
  const price = (k: keyof ChannelPricing) => {
    const n = num(o[k], `${p}.${k}`);
    if (n < 0) throw new FieldError(`${p}.${k}: must be ≥ 0`);
    return n;
  };
  const out: ChannelPricing = { input: price('input'), output: price('output') };
  if (o.cachedInput !== undefined) out.cachedInput = price('cachedInput');
  return out;
}
function agents(v: unknown, p: string): SharedAgent[] | undefined {
  if (v === undefined) return undefined;
  return arr(v, p, 4096).map((a, i) => {
    const q = `${p}[${i}]`;
    const o = obj(a, q);
    if (o.kind !== 'agent' && o.kind !== 'gateway') throw new FieldError(`${q}.kind: must be "agent" or "gateway"`);
    return { id: str(o.id, `${q}.id`), label: str(o.label, `${q}.label`, 256), kind: o.kind };
  });
}
function caps(v: unknown, p: string) {
  const o = obj(v, p);
  const flag = (k: string) => bool(o[k], `${p}.${k}`);
  return { shareChannels: flag('shareChannels'), acceptSessions: flag('acceptSessions'), loadBalance: flag('loadBalance') };
}

/** Deletes `src`'s undefined-valued keys in place, so typed results hold no explicit-undefined keys. */
function clean<T extends object>(src: T): T {
  for (const k of Object.keys(src) as (keyof T)[]) if (src[k] === undefined) delete src[k];
  return src;
}

type Check = (o: Obj) => BridgeFrame;

/**
 * An opaque body (payload, chunk, usage) typed as what the protocol says it carries. Its inner shape is not
 * checked here: the provider layer checks what it reads, and the hot path stays one JSON.parse.
 */
function opaque<T>(v: Obj): T {
  return v as unknown as T;
}

const CHECKS: Readonly<Record<BridgeFrameType, Check>> = {
  'bridge-hello': (o) => {
    const t = 'bridge-hello';
    return clean({
      type: t,
      gatewayId: gwId(o.gatewayId, `${t}.gatewayId`),
      gatewayName: str(o.gatewayName, `${t}.gatewayName`),
      version: str(o.version, `${t}.version`, 32),
      token: str(o.token, `${t}.token`, 4096),
      capabilities: caps(o.capabilities, `${t}.capabilities`),
      sharedChannels: o.sharedChannels === undefined ? undefined : channels(o.sharedChannels, `${t}.sharedChannels`),
      sharedAgents: agents(o.sharedAgents, `${t}.sharedAgents`),
      minVersion: optStr(o.minVersion, `${t}.minVersion`, 32),
      maxVersion: optStr(o.maxVersion, `${t}.maxVersion`, 32),
      nonce: optStr(o.nonce, `${t}.nonce`, 256),
      maxFrameBytes: optCount(o.maxFrameBytes, `${t}.maxFrameBytes`),
    });
  },
  'bridge-hello-ok': (o) => {
    const t = 'bridge-hello-ok';
    const policy = obj(o.policy, `${t}.policy`);
    return clean({
      type: t,
      gatewayId: gwId(o.gatewayId, `${t}.gatewayId`),
      gatewayName: str(o.gatewayName, `${t}.gatewayName`),
      sharedChannels: channels(o.sharedChannels, `${t}.sharedChannels`),
      version: str(o.version, `${t}.version`, 32),
      capabilities: caps(o.capabilities, `${t}.capabilities`),
      policy: {
        maxFrameBytes: count(policy.maxFrameBytes, `${t}.policy.maxFrameBytes`),
        heartbeatIntervalMs: count(policy.heartbeatIntervalMs, `${t}.policy.heartbeatIntervalMs`),
      },
      sharedAgents: agents(o.sharedAgents, `${t}.sharedAgents`),
      dialNonces:
        o.dialNonces === undefined ? undefined : arr(o.dialNonces, `${t}.dialNonces`, MAX_DIAL_NONCES).map((n, i) => str(n, `${t}.dialNonces[${i}]`, 256)),
    });
  },
  'bridge-error': (o) => {
    const t = 'bridge-error';
    const code = str(o.code, `${t}.code`, 64);
    return clean({
      type: t,
      requestId: optStr(o.requestId, `${t}.requestId`),
      // a code from a newer peer still ends the request: as INTERNAL, keeping its message
      code: isBridgeErrorCode(code) ? code : 'INTERNAL',
      message: text(o.message, `${t}.message`),
      retryable: bool(o.retryable, `${t}.retryable`),
      started: optBool(o.started, `${t}.started`),
      retryAfterMs: optCount(o.retryAfterMs, `${t}.retryAfterMs`),
      gatewayCode: isErrorCode(o.gatewayCode) ? o.gatewayCode : undefined,
      // a field name a client is shown: kept when it is a short string, else left out (the error still stands)
      param: typeof o.param === 'string' && o.param.length > 0 && o.param.length <= 256 ? o.param : undefined,
    });
  },
  'bridge-forward': (o) => {
    const t = 'bridge-forward';
    if (o.kind !== undefined && o.kind !== 'chat' && o.kind !== 'embeddings') throw new FieldError(`${t}.kind: must be "chat" or "embeddings"`);
    const payload = obj(o.payload, `${t}.payload`);
    const requestId = str(o.requestId, `${t}.requestId`);
    const targetChannel = str(o.targetChannel, `${t}.targetChannel`);
    const stream = optBool(o.stream, `${t}.stream`);
    const deadlineMs = optCount(o.deadlineMs, `${t}.deadlineMs`);
    const hopList = hops(o.hops, `${t}.hops`);
    const sessionId = optStr(o.sessionId, `${t}.sessionId`);
    // Every forward served reads this frame: its optional fields are set only when present, never set and then
    // deleted (`clean`), which would leave it a dictionary-mode object.
    const f: Obj = { type: t, requestId, targetChannel, payload };
    if (o.kind !== undefined) f.kind = o.kind;
    if (stream !== undefined) f.stream = stream;
    if (deadlineMs !== undefined) f.deadlineMs = deadlineMs;
    if (hopList !== undefined) f.hops = hopList;
    if (sessionId !== undefined) f.sessionId = sessionId;
    if (typeof o.traceparent === 'string' && TRACEPARENT.test(o.traceparent)) f.traceparent = o.traceparent;
    if (typeof o.originRequestId === 'string' && ORIGIN_REQUEST_ID.test(o.originRequestId)) f.originRequestId = o.originRequestId;
    return opaque<BridgeForwardFrame>(f);
  },
  'bridge-response': (o) => ({
    type: 'bridge-response',
    requestId: str(o.requestId, 'bridge-response.requestId'),
    payload: opaque<ChatCompletion | EmbeddingsResponse>(obj(o.payload, 'bridge-response.payload')),
  }),
  'bridge-stream': (o) => ({
    type: 'bridge-stream',
    requestId: str(o.requestId, 'bridge-stream.requestId'),
    chunk: opaque<ChatCompletionChunk>(obj(o.chunk, 'bridge-stream.chunk')),
  }),
  'bridge-stream-end': (o) =>
    clean({
      type: 'bridge-stream-end',
      requestId: str(o.requestId, 'bridge-stream-end.requestId'),
      usage: o.usage === undefined || o.usage === null ? undefined : opaque<Usage>(obj(o.usage, 'bridge-stream-end.usage')),
    }),
  'bridge-cancel': (o) => ({ type: 'bridge-cancel', requestId: str(o.requestId, 'bridge-cancel.requestId') }),
  'bridge-stream-pause': (o) => ({ type: 'bridge-stream-pause', requestId: str(o.requestId, 'bridge-stream-pause.requestId') }),
  'bridge-stream-resume': (o) => ({ type: 'bridge-stream-resume', requestId: str(o.requestId, 'bridge-stream-resume.requestId') }),
  'bridge-ping': (o) => clean({ type: 'bridge-ping', ts: num(o.ts, 'bridge-ping.ts'), nonce: optStr(o.nonce, 'bridge-ping.nonce', MAX_PING_NONCE_LENGTH) }),
  'bridge-pong': (o) => clean({ type: 'bridge-pong', ts: num(o.ts, 'bridge-pong.ts'), nonce: optStr(o.nonce, 'bridge-pong.nonce', MAX_PING_NONCE_LENGTH) }),
  'bridge-load': (o) => {
    const t = 'bridge-load';
    const src = obj(o.channels, `${t}.channels`);
    const out: Record<string, ChannelLoad> = {};
    for (const name of Object.keys(src)) {
      // the name rule also keeps keys like `__proto__` out of `out`
      const q = `${t}.channels.${channelName(name, `${t}.channels key`)}`;
      const c = obj(src[name], q);
      out[name] = {
        inflight: count(c.inflight, `${q}.inflight`),
        queued: count(c.queued, `${q}.queued`),
        maxConcurrent: count(c.maxConcurrent, `${q}.maxConcurrent`),
        latencyMsEwma: num(c.latencyMsEwma, `${q}.latencyMsEwma`),
        healthy: bool(c.healthy, `${q}.healthy`),
      };
    }
    return { type: t, channels: out, inflight: count(o.inflight, `${t}.inflight`) };
  },
  'bridge-channels': (o) =>
    clean({
      type: 'bridge-channels',
      sharedChannels: channels(o.sharedChannels, 'bridge-channels.sharedChannels'),
      sharedAgents: agents(o.sharedAgents, 'bridge-channels.sharedAgents'),
    }),
  'bridge-session-transfer': (o) => {
    const t = 'bridge-session-transfer';
    const session = obj(o.session, `${t}.session`);
    const id = str(session.id, `${t}.session.id`);
    const owner = gwId(session.owner, `${t}.session.owner`);
    const frame: BridgeSessionTransferFrame = { type: t, transferId: str(o.transferId, `${t}.transferId`), session: { ...session, id, owner } };
    if (o.events !== undefined) frame.events = sessionEvents(o.events, `${t}.events`);
    const dropped = optCount(o.droppedThroughSeq, `${t}.droppedThroughSeq`);
    if (dropped !== undefined) frame.droppedThroughSeq = dropped;
    return frame;
  },
  'bridge-session-transfer-ok': (o) => ({
    type: 'bridge-session-transfer-ok',
    transferId: str(o.transferId, 'bridge-session-transfer-ok.transferId'),
    sessionId: str(o.sessionId, 'bridge-session-transfer-ok.sessionId'),
  }),
  'bridge-rpc': (o) =>
    clean({
      type: 'bridge-rpc',
      requestId: str(o.requestId, 'bridge-rpc.requestId'),
      method: str(o.method, 'bridge-rpc.method'),
      params: obj(o.params, 'bridge-rpc.params'),
      hops: hops(o.hops, 'bridge-rpc.hops'),
    }),
  'bridge-rpc-event': (o) => ({
    type: 'bridge-rpc-event',
    requestId: str(o.requestId, 'bridge-rpc-event.requestId'),
    method: str(o.method, 'bridge-rpc-event.method'),
    params: obj(o.params, 'bridge-rpc-event.params'),
  }),
  'bridge-rpc-result': (o) => {
    const t = 'bridge-rpc-result';
    const requestId = str(o.requestId, `${t}.requestId`);
    const hasResult = Object.prototype.hasOwnProperty.call(o, 'result');
    if (hasResult === (o.error !== undefined)) throw new FieldError(`${t}: exactly one of result, error`);
    if (hasResult) return { type: t, requestId, result: o.result };
    const e = obj(o.error, `${t}.error`);
    if (!Number.isSafeInteger(e.code)) throw new FieldError(`${t}.error.code: required integer`);
    const error = clean({ code: e.code as number, message: text(e.message, `${t}.error.message`), data: e.data });
    return { type: t, requestId, error };
  },
};
