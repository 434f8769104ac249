/**
 * Bridge protocol v1: every frame two gateways exchange over `/bridge`, the bridge error codes, the close codes
 * and the protocol constants. Normative source: shared/spec/bridge-protocol.md (the seed's `bridge-hello`,
 * `bridge-hello-ok`, `bridge-forward`, `bridge-response` keep their names and fields exactly); the user-facing
 * description of every field is docs/bridge-protocol.md. Types only + constants: parsing lives in
 * src/bridge/codec.ts. Depends on nothing but other src/wire files.
 *
 * Bridge error codes are their own string set (they travel in `bridge-error.code`, src/wire/bridge-codes.ts);
 * each is a row of the one error catalogue (src/wire/errors.ts), which also says how it shows on other surfaces.
 */
import { bridgeErrorSpec, type ErrorCode } from './errors.js';
import { CLOSE_CODES, type BridgeErrorCode } from './bridge-codes.js';
import { MAX_VALUE_DEPTH } from './json-depth.js';
import type { ContractField } from './chat-contract.js';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest, EmbeddingsRequest, EmbeddingsResponse, Usage } from './openai.js';

// ---------------------------------------------------------------------------------------------------- constants

/**
 * The version this build prefers and the versions it speaks (`major.minor` strings).
 * 1.1 adds per-stream flow control (bridge-stream-pause / bridge-stream-resume); a link negotiated at 1.0 is
 * never sent them (`speaksStreamPause`). 1.2 adds the ping's `nonce`, which the pong must echo (`echoesPingNonce`).
 */
export const PROTOCOL_VERSION = '1.2';
export const SUPPORTED_VERSIONS: readonly string[] = ['1.0', '1.1', '1.2'];

/** The versions this build speaks from `min` up (`gateway.bridge.minProtocolVersion`; one of SUPPORTED_VERSIONS). */
export function versionsFrom(min: string): readonly string[] {
  const i = SUPPORTED_VERSIONS.indexOf(min);
  return i <= 0 ? SUPPORTED_VERSIONS : SUPPORTED_VERSIONS.slice(i);
}

/** Whether `version` is `major.minor` or later. */
function atLeast(version: string, major: number, minor: number): boolean {
  const [ma, mi] = version.split('.').map(Number) as [number, number];
  return ma > major || (ma === major && mi >= minor);
}

/** Whether a link negotiated at `version` carries bridge-stream-pause / bridge-stream-resume (1.1 and later). */
export function speaksStreamPause(version: string): boolean {
  return atLeast(version, 1, 1);
}

/**
 * Whether the peer of a link negotiated at `version` echoes a bridge-ping's `nonce` in its bridge-pong (1.2 and
 * later): on such a link our pings carry one, and a pong without it answers nothing.
 */
export function echoesPingNonce(version: string): boolean {
  return atLeast(version, 1, 2);
}

/** A bridge-ping's `nonce`: 1 to this many characters (Switchyard sends 22, 128 random bits). */
export const MAX_PING_NONCE_LENGTH = 64;
export interface VersionRange {
  min: string;
  max: string;
}

/** WebSocket path of the responder, on the gateway's own port. */
export const BRIDGE_PATH = '/bridge';

/** Defaults of `gateway.bridge.limits.*` (the config schema repeats them; keep both in step). */
export const BRIDGE_DEFAULT_LIMITS = {
  handshakeTimeoutMs: 10_000,
  maxFrameBytes: 16 * 1024 * 1024,
  preAuthFrameBytes: 64 * 1024,
  maxInflightPerPeer: 256,
  heartbeatIntervalMs: 5_000,
  /** a peer silent for deadPeerMisses × heartbeatIntervalMs, or that leaves a ping unanswered that long, is offline */
  deadPeerMisses: 3,
} as const;

/** `bridge-load` is sent on change, and after each `bridge-pong` we send, at most this often. */
export const LOAD_REPORT_MIN_INTERVAL_MS = 250;
/** requestId, transferId, sessionId: 1..128 characters. */
export const MAX_ID_LENGTH = 128;
/** A forward/rpc whose `hops` already holds this many gateways is treated as a loop. */
export const MAX_HOPS = 8;
/** Same rule as `gateway.id` in the config schema. */
export const GATEWAY_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
/** Same rule as `channels[].name`; applies to shared channel names and bridge-load keys. */
export const CHANNEL_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

// ------------------------------------------------------------------------------------------ close and error codes

export { CLOSE_CODES, BRIDGE_ERROR_CODES, isBridgeErrorCode, type BridgeCloseCode, type BridgeErrorCode } from './bridge-codes.js';
/** Short alias of CLOSE_CODES. */
export const CLOSE = CLOSE_CODES;

/** An initiator with autoReconnect stops retrying after these: a wrong token or version will not fix itself. */
export const RETRY_FORBIDDEN_CLOSE_CODES: readonly number[] = [CLOSE_CODES.AUTH_FAILED, CLOSE_CODES.NOT_ALLOWED, CLOSE_CODES.VERSION_UNSUPPORTED];

export function isRetryForbiddenClose(code: number): boolean {
  return RETRY_FORBIDDEN_CLOSE_CODES.includes(code);
}

// ------------------------------------------------------------------------------------------------ shared shapes

/**
 * What a channel can do, as its provider declares it (src/providers/provider.ts). A flag that is absent on
 * the wire is false.
 */
export interface ChannelCapabilities {
  /** has an embeddings API */
  embeddings: boolean;
  /** takes `tools` and returns tool calls */
  tools: boolean;
  /** takes image content parts */
  vision: boolean;
  /** speaks the OpenAI Responses API natively */
  nativeResponses: boolean;
  /** answers are made by the gateway itself, not by a model (the built-in mock): listed as such */
  synthetic: boolean;
  /**
   * The contract-changing chat fields the channel cannot honour (src/wire/chat-contract.ts): a request asking
   * for one is not routed to it. Absent or empty: it honours them all (an OpenAI-compatible upstream judges
   * them itself; a peer that announces none is taken at its word, and its own check answers UNSUPPORTED).
   * Names this build does not know (a newer peer's) are dropped when read.
   */
  refuses?: readonly ContractField[];
}

/**
 * One channel a gateway lets its peer use (seed: hello-ok.sharedChannels[]). `capabilities` is announced by
 * this build; a peer that sends none (seed and older builds) gets the documented fallback
 * (src/bridge/peer-candidate.ts `legacyCapabilities`).
 */
export interface SharedChannel {
  name: string;
  provider: string;
  models: string[];
  capabilities?: ChannelCapabilities;
  /** the channel's `channels[].pricing`, so the requesting gateway can price (and budget) what it sends here */
  pricing?: ChannelPricing;
}

/** Prices per million tokens, in the operators' one currency (docs/keys.md). */
export interface ChannelPricing {
  input: number;
  output: number;
  /** per million cached input tokens; default: the input price */
  cachedInput?: number;
}

/** One ACP runtime a gateway lets its peer run (`gateway.bridge.shareAgents`). */
export interface SharedAgent {
  id: string;
  label: string;
  kind: 'agent' | 'gateway';
}

/** Announced in hello / hello-ok; taken from `gateway.bridge` whichever side dialled. */
export interface BridgeCapabilities {
  /** this side shares at least one channel with the peer */
  shareChannels: boolean;
  /** this side takes bridge-session-transfer offers */
  acceptSessions: boolean;
  /** this side takes load for models the peer also serves */
  loadBalance: boolean;
}

/** The responder's limits for this link, announced in hello-ok; both sides honour them. */
export interface BridgePolicy {
  maxFrameBytes: number;
  heartbeatIntervalMs: number;
}

export interface ChannelLoad {
  inflight: number;
  queued: number;
  maxConcurrent: number;
  latencyMsEwma: number;
  healthy: boolean;
}

/** JSON-RPC 2.0 error object, as /acp/rpc would return it. */
export interface RpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

/**
 * A session offered in bridge-session-transfer. Only `id` and `owner` are read by the codec; the rest (record,
 * history, affinity, …) is defined by src/sessions and carried untouched.
 */
export interface BridgeSessionSnapshot {
  id: string;
  /** gatewayId of the current (sending) owner */
  owner: string;
  [k: string]: unknown;
}

// ------------------------------------------------------------------------------------------------------- frames

/** Initiator → responder, first frame on the socket. `token` is a secret: never log or echo it. */
export interface BridgeHelloFrame {
  type: 'bridge-hello';
  gatewayId: string;
  gatewayName: string;
  /** the initiator's preferred version */
  version: string;
  token: string;
  capabilities: BridgeCapabilities;
  /** what the initiator shares with the responder; absent = nothing (seed hellos omit it) */
  sharedChannels?: SharedChannel[];
  sharedAgents?: SharedAgent[];
  minVersion?: string;
  maxVersion?: string;
  /** random per connection attempt; lets logs tell attempts apart */
  nonce?: string;
  /**
   * the largest frame the initiator takes after the handshake (its `maxFrameBytes`), as the responder's
   * `policy.maxFrameBytes` tells it the other way; absent (an older peer): the responder assumes its own
   */
  maxFrameBytes?: number;
}

/** Responder → initiator: handshake accepted; `version` is the negotiated one. */
export interface BridgeHelloOkFrame {
  type: 'bridge-hello-ok';
  gatewayId: string;
  gatewayName: string;
  sharedChannels: SharedChannel[];
  version: string;
  capabilities: BridgeCapabilities;
  policy: BridgePolicy;
  sharedAgents?: SharedAgent[];
  /**
   * the `nonce`s of the responder's own dials still connecting or waiting for their hello's reply (at most
   * MAX_DIAL_NONCES): if one is the hello of a link the initiator accepted meanwhile, the two gateways are
   * dialling each other at this moment, and both keep the link the gateway with the smaller id dialled
   * (docs/bridge-protocol.md "Peer identity"); absent (an older peer, or no dial pending): nothing to prove
   */
  dialNonces?: string[];
}

/** the most `dialNonces` a bridge-hello-ok carries (one per bridge the responder is dialling) */
export const MAX_DIAL_NONCES = 64;

export interface BridgeErrorFrame {
  type: 'bridge-error';
  /** absent for link-level errors (handshake, unreadable frame) */
  requestId?: string;
  code: BridgeErrorCode;
  /** human-readable; never contains a token or other secret */
  message: string;
  retryable: boolean;
  /** streaming only: whether any bridge-stream chunk was already sent for this request */
  started?: boolean;
  retryAfterMs?: number;
  /** Switchyard extension: the serving side's own gateway error code, so the requester can rebuild it */
  gatewayCode?: ErrorCode;
  /** Switchyard extension: the request field at fault (the error's OpenAI `param`), passed on to the client */
  param?: string;
}

interface ForwardCommon {
  type: 'bridge-forward';
  /** unique among the sender's open requests on this link */
  requestId: string;
  targetChannel: string;
  stream?: boolean;
  /** remaining time budget in ms, relative to receipt (not a wall-clock time: hosts' clocks differ) */
  deadlineMs?: number;
  /** gatewayIds the request already passed, oldest first */
  hops?: string[];
  /** session affinity */
  sessionId?: string;
  /**
   * Switchyard extension: W3C trace context of the sender's hop span (`00-<trace>-<span>-<flags>`), so the
   * serving gateway's spans join the sender's trace. Sent only when the sender traces; a malformed value is
   * ignored (the serving side then starts its own trace), never an error.
   */
  traceparent?: string;
  /**
   * Switchyard extension: the request id the request got where it entered the mesh, so every gateway it
   * crosses logs the same id. Letters, digits, `_ . : -`, at most 128; anything else is ignored.
   */
  originRequestId?: string;
}
export type BridgeForwardFrame =
  (ForwardCommon & { kind?: 'chat'; payload: ChatRequest }) | (ForwardCommon & { kind: 'embeddings'; payload: EmbeddingsRequest });

export interface BridgeResponseFrame {
  type: 'bridge-response';
  requestId: string;
  payload: ChatCompletion | EmbeddingsResponse;
}

export interface BridgeStreamFrame {
  type: 'bridge-stream';
  requestId: string;
  chunk: ChatCompletionChunk;
}

export interface BridgeStreamEndFrame {
  type: 'bridge-stream-end';
  requestId: string;
  usage?: Usage;
}

/** Either direction: the requester gave up on `requestId` (forward or rpc). */
export interface BridgeCancelFrame {
  type: 'bridge-cancel';
  requestId: string;
}

/**
 * Protocol 1.1, either direction: the requester of stream `requestId` holds more of it than its client has
 * read; the serving side sends no further chunk of it until bridge-stream-resume (or the request's deadline).
 */
export interface BridgeStreamPauseFrame {
  type: 'bridge-stream-pause';
  requestId: string;
}

/** Protocol 1.1: the client caught up; the serving side goes on with stream `requestId`. */
export interface BridgeStreamResumeFrame {
  type: 'bridge-stream-resume';
  requestId: string;
}

export interface BridgePingFrame {
  type: 'bridge-ping';
  /** sender's clock, ms since epoch; echoed in the pong */
  ts: number;
  /** protocol 1.2: random for each ping (unguessable), echoed in the pong; absent on older links */
  nonce?: string;
}

export interface BridgePongFrame {
  type: 'bridge-pong';
  ts: number;
  /** the ping's `nonce`, echoed (1.2); absent when the ping had none */
  nonce?: string;
}

export interface BridgeLoadFrame {
  type: 'bridge-load';
  /** keyed by shared channel name */
  channels: Record<string, ChannelLoad>;
  /** all requests this gateway is serving, local and bridged */
  inflight: number;
}

/** Replaces the sender's shared lists wholesale. `sharedAgents` absent = unchanged. */
export interface BridgeChannelsFrame {
  type: 'bridge-channels';
  sharedChannels: SharedChannel[];
  sharedAgents?: SharedAgent[];
}

/** One entry of a session's update log: a `session.update`'s params, by `seq` (sessions/store.ts SessionEvent). */
export interface BridgeSessionEvent {
  seq: number;
  event: Record<string, unknown>;
}

/** At most this many update-log entries travel with a session (the log keeps 1,000 per session). */
export const MAX_TRANSFER_EVENTS = 1000;

/**
 * The update-log entries an offer carries at most, in bytes of JSON (each `{seq, event}` and a comma): well under
 * any peer's frame limit. The sender reads no more of its log than this (sessions/transfer.ts).
 */
export const MAX_TRANSFER_EVENT_BYTES = 1024 * 1024;

export interface BridgeSessionTransferFrame {
  type: 'bridge-session-transfer';
  transferId: string;
  session: BridgeSessionSnapshot;
  /** the newest entries of the session's update log, oldest first (absent: none, or an older sender) */
  events?: BridgeSessionEvent[];
  /**
   * the highest seq of the session's log that is not carried: dropped by the sender's log bounds, or left out of
   * `events` to fit the frame. The receiver's log reports it (UPDATE_LOG_TRUNCATED). Absent: 0 (an older sender).
   */
  droppedThroughSeq?: number;
}

export interface BridgeSessionTransferOkFrame {
  type: 'bridge-session-transfer-ok';
  transferId: string;
  sessionId: string;
}

/** An /acp/rpc call (session.start | session.message | session.cancel | session.close) run on the peer. */
export interface BridgeRpcFrame {
  type: 'bridge-rpc';
  requestId: string;
  method: string;
  params: Record<string, unknown>;
  hops?: string[];
}

/** A notification (`session.update`) of the call `requestId`, relayed in order. */
export interface BridgeRpcEventFrame {
  type: 'bridge-rpc-event';
  requestId: string;
  method: string;
  params: Record<string, unknown>;
}

/** The call's outcome: exactly one of `result` / `error`. */
export interface BridgeRpcResultFrame {
  type: 'bridge-rpc-result';
  requestId: string;
  result?: unknown;
  error?: RpcErrorObject;
}

export type BridgeFrame =
  | BridgeHelloFrame
  | BridgeHelloOkFrame
  | BridgeErrorFrame
  | BridgeForwardFrame
  | BridgeResponseFrame
  | BridgeStreamFrame
  | BridgeStreamEndFrame
  | BridgeCancelFrame
  | BridgeStreamPauseFrame
  | BridgeStreamResumeFrame
  | BridgePingFrame
  | BridgePongFrame
  | BridgeLoadFrame
  | BridgeChannelsFrame
  | BridgeSessionTransferFrame
  | BridgeSessionTransferOkFrame
  | BridgeRpcFrame
  | BridgeRpcEventFrame
  | BridgeRpcResultFrame;

export type BridgeFrameType = BridgeFrame['type'];
export type FrameOf<T extends BridgeFrameType> = Extract<BridgeFrame, { type: T }>;

export const BRIDGE_FRAME_TYPES: readonly BridgeFrameType[] = [
  'bridge-hello',
  'bridge-hello-ok',
  'bridge-error',
  'bridge-ping',
  'bridge-pong',
  'bridge-load',
  'bridge-channels',
  'bridge-forward',
  'bridge-response',
  'bridge-stream',
  'bridge-stream-end',
  'bridge-cancel',
  'bridge-stream-pause',
  'bridge-stream-resume',
  'bridge-session-transfer',
  'bridge-session-transfer-ok',
  'bridge-rpc',
  'bridge-rpc-event',
  'bridge-rpc-result',
];

/** A bridge-error with the table's default `retryable` (override via `extra.retryable`). */
export function bridgeErrorFrame(
  code: BridgeErrorCode,
  message: string,
  extra: Partial<Omit<BridgeErrorFrame, 'type' | 'code' | 'message'>> = {},
): BridgeErrorFrame {
  const frame: BridgeErrorFrame = { type: 'bridge-error', code, message, retryable: extra.retryable ?? bridgeErrorSpec(code).retryable };
  if (extra.requestId !== undefined) frame.requestId = extra.requestId;
  if (extra.started !== undefined) frame.started = extra.started;
  if (extra.retryAfterMs !== undefined) frame.retryAfterMs = extra.retryAfterMs;
  if (extra.gatewayCode !== undefined) frame.gatewayCode = extra.gatewayCode;
  if (extra.param !== undefined) frame.param = extra.param;
  return frame;
}

/**
 * A frame may nest this deep, envelope included: above any body a gateway's HTTP edge takes
 * (`gateway.maxJsonDepth` is at most 1000), far below what would exhaust the stack of the code that walks or
 * serialises a frame's parts again (JSON.stringify is recursive). Deeper → BAD_FRAME.
 */
export const MAX_FRAME_DEPTH = MAX_VALUE_DEPTH;
