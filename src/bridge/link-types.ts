/**
 * The shapes a bridge link is made of, shared by its parts: who the peer is (PeerInfo), what a call on the
 * peer returns (RpcOutcome), what the ACP layer provides to serve calls (RpcServeHandler), and LinkContext —
 * what forwarding.ts, rpc.ts, transfer.ts and heartbeat.ts may use of the link they work for.
 */
import type { BridgeLimits } from '../config/schema.js';
import type { ChatCompletion, EmbeddingsResponse } from '../wire/openai.js';
import type { StreamChunk } from '../providers/provider.js';
import type { Router } from '../router/router.js';
import type { TransferCoordinator } from '../sessions/transfer.js';
import type { AsyncQueue } from '../util/async-queue.js';
import type { Logger } from '../util/log.js';
import type { PendingTable } from '../util/pending.js';
import type {
  BridgeCapabilities,
  BridgeErrorCode,
  BridgeErrorFrame,
  BridgeFrame,
  ChannelLoad,
  RpcErrorObject,
  SharedAgent,
  SharedChannel,
} from '../wire/bridge-frames.js';
import type { PeerGate } from '../keys/peer-gate.js';
import type { LinkTraffic } from './link-traffic.js';

export type Role = 'initiator' | 'responder';

export interface PeerInfo {
  id: string;
  name: string;
  version: string;
  capabilities: BridgeCapabilities;
  sharedChannels: SharedChannel[];
  /** ACP runtimes (agents, gateway providers) the peer shares with us */
  sharedAgents: SharedAgent[];
  /** an inbound link's: the `nonce` of the peer's bridge-hello (what a simultaneous dial's proof names, handshake.ts) */
  helloNonce?: string;
}

/** The outcome of an agent-task call: exactly one of result / error (a JSON-RPC error object). */
export type RpcOutcome = { result: unknown } | { error: RpcErrorObject };

/**
 * Serves a peer's bridge-rpc on this gateway (the ACP layer provides it). It must resolve the routing in
 * `params` and refuse (GatewayError CHANNEL_NOT_SHARED) any runtime not in `sharedAgents`: the serving side
 * enforces the share list. `emit` relays session.update notifications in order.
 */
export type RpcServeHandler = (call: {
  peer: PeerInfo;
  method: string;
  params: Record<string, unknown>;
  sharedAgents: ReadonlySet<string>;
  hops: string[];
  signal: AbortSignal;
  emit: (method: string, params: Record<string, unknown>) => void;
}) => Promise<RpcOutcome>;

export interface PeerLoad {
  channels: Record<string, ChannelLoad>;
  inflight: number;
}

/**
 * A request we sent on the link and still wait for. `fail` settles it with a local error (link loss, cancel,
 * timeout); `refused` with the peer's bridge-error for it.
 */
interface PendingBase {
  fail(err: Error): void;
  refused(f: BridgeErrorFrame): void;
}
export interface PendingForward extends PendingBase {
  kind: 'forward';
  /** `peer/channel`, for the errors a bad answer raises */
  label: string;
  /** streams: fed by bridge-stream frames */
  queue: AsyncQueue<StreamChunk> | undefined;
  /** streams: we sent bridge-stream-pause and no resume since */
  paused?: boolean;
  /** streams: pauses sent so far, so a pause's late confirmation is not taken for a later one's */
  pauses?: number;
  /**
   * streams: what the stream may hold before it is abandoned, in characters; unset: STREAM_HOLD_CHARS. Not
   * looked at while `unconfirmed` is set (a pause waits for the peer to confirm it read it: the link's budget
   * bounds the stream then); set at the confirmation from what had arrived by then (pauseStream)
   */
  holdLimit?: number;
  /**
   * streams: characters taken since the current pause while the peer has not confirmed it read it, counted in
   * the link's `unconfirmedHeld`; undefined when no pause waits for its confirmation. Set, the stream has no
   * limit of its own (`holdLimit` is not looked at)
   */
  unconfirmed?: number | undefined;
  resolve(v: ChatCompletion | EmbeddingsResponse): void;
  /**
   * A non-streaming chat forward: takes the answer's payload as the peer sent it, still text, when the frame
   * could be split without parsing it (`splitRelayFrame`); false when the text is not a chat answer to
   * relay (then the frame is parsed and `resolve` gets the object)
   */
  relay?(payload: string): boolean;
}
export interface PendingRpc extends PendingBase {
  kind: 'rpc';
  onEvent(method: string, params: Record<string, unknown>): void;
  resolve(o: RpcOutcome): void;
}
export interface PendingTransfer extends PendingBase {
  kind: 'transfer';
  resolve(): void;
}
export type PendingRequest = PendingForward | PendingRpc | PendingTransfer;

export const isForward = (p: PendingRequest): p is PendingForward => p.kind === 'forward';
export const isRpc = (p: PendingRequest): p is PendingRpc => p.kind === 'rpc';
export const isTransfer = (p: PendingRequest): p is PendingTransfer => p.kind === 'transfer';

/**
 * A request of the peer's we serve: bridge-cancel (or the link's end) aborts it; on a 1.1 link the peer may
 * hold a stream's chunks (bridge-stream-pause / bridge-stream-resume; forwards only).
 */
export interface ServedRequest {
  abort(): void;
  /**
   * the link ended: what was served for it can reach nobody. Absent: `abort`. An agent task's call only stops
   * relaying (its turn goes on, as a task outlives its client's disconnect; rpc.ts)
   */
  linkLost?(): void;
  pause?(): void;
  resume?(): void;
}

/** What a link's parts use of it. */
export interface LinkContext {
  /** config name of the outbound bridge, or the peer's announced name for inbound links */
  readonly name: string;
  readonly selfId: string;
  readonly peer: PeerInfo;
  readonly limits: BridgeLimits;
  /** the largest frame the peer takes (bytes) */
  readonly peerMaxFrameBytes: number;
  readonly router: Router;
  readonly logger: Logger;
  /** names of our channels this peer may use (the serving-side whitelist) */
  readonly ourShare: ReadonlySet<string>;
  /** ids of our ACP runtimes this peer may run */
  readonly ourAgents: ReadonlySet<string>;
  readonly open: boolean;
  /** requests we sent (forwards, calls, transfer offers) */
  readonly pending: PendingTable<PendingRequest>;
  /** requests we serve, by requestId: bridge-cancel aborts them */
  readonly serving: Map<string, ServedRequest>;
  /** the peer speaks protocol 1.1 or later: a stream of ours it serves may be paused (bridge-stream-pause) */
  readonly streamPause: boolean;
  /** frames, bytes, pauses (metrics, status page) */
  readonly traffic: LinkTraffic;
  /** streams we serve that now wait for the peer's bridge-stream-resume (status page) */
  pausedStreams: number;
  /** characters our paused streams took while their pauses were unconfirmed (`PendingForward.unconfirmed`, summed) */
  unconfirmedHeld: number;
  rpcHandler(): RpcServeHandler | undefined;
  transfers(): TransferCoordinator | undefined;
  /** peerLimits + served-for usage for forwards we serve (src/keys/peer-gate.ts); undefined = no limits, no records */
  peerGate(): PeerGate | undefined;
  /**
   * A frame, or an already-serialised one (stream chunks are spliced, never re-serialised). The frames sent in
   * one tick leave in one socket write. False, and nothing sent, for a frame over `peerMaxFrameBytes`: the
   * caller fails the one request it belongs to (the peer would close the link on it). A closed link drops it.
   */
  send(frame: BridgeFrame | string): boolean;
  /**
   * Gives up on a request of ours that is still pending: it fails with `err`, and the peer is told to stop
   * serving it (bridge-cancel). Nothing when it is no longer pending.
   */
  abandon(requestId: string, err: Error): void;
  /**
   * Flow control for a stream we serve: undefined while the peer reads what it is sent, else a promise that
   * settles once the socket has written its backlog out (or the link ended). The serving loop waits on it
   * before it reads the upstream's next chunk, so a slow peer slows the upstream, not our memory.
   */
  backpressure(): Promise<void> | undefined;
  /**
   * Sends a bridge-ping and calls `fn` once its pong is in: the peer has then read every frame we sent before
   * (a peer answers pings at once and in order). Never called if the link ends first or the peer answers none.
   */
  afterPeerRead(fn: () => void): void;
  /** a bridge-error; `retryable` defaults to the catalogue's */
  sendError(code: BridgeErrorCode, message: string, extra?: Partial<Omit<BridgeErrorFrame, 'type' | 'code' | 'message'>>): void;
  /** our served load changed: report it (throttled) */
  loadChanged(): void;
}
