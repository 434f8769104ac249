/**
 * One authenticated bridge link, the same for both roles once the handshake is done: both peers may
 * forward to each other. The link owns the socket, the one table of requests we sent (PendingTable), the
 * requests we serve (with their abort controllers), and the peer's shared lists; it dispatches each frame
 * by type to its part: forwarding.ts, rpc.ts, transfer.ts, heartbeat.ts. The handshake is handshake.ts
 * (pure) driven by listener.ts (responder) and dialer.ts (initiator); open-link.ts builds links for both.
 */
import type { Duplex } from 'node:stream';
import type WebSocket from 'ws';
import { GatewayError, stackOf } from '../wire/errors.js';
import type { ChatRequest, EmbeddingsRequest, EmbeddingsResponse } from '../wire/openai.js';
import type { ChatOutcome } from '../providers/provider.js';
import type { Router } from '../router/router.js';
import type { Logger } from '../util/log.js';
import { PendingTable } from '../util/pending.js';
import { newId } from '../util/ids.js';
import type { BridgeLimits } from '../config/schema.js';
import type { TransferCoordinator } from '../sessions/transfer.js';
import { encodeFrame, frameText, parseFrame, splitRelayFrame, textOverBytes } from './codec.js';
import { peerText } from './errors.js';
import {
  CLOSE,
  bridgeErrorFrame,
  speaksStreamPause,
  type BridgeErrorCode,
  type BridgeErrorFrame,
  type BridgeFrame,
  type BridgeFrameType,
  type BridgeSessionEvent,
  type SharedAgent,
  type SharedChannel,
} from '../wire/bridge-frames.js';
import {
  forwardChat,
  forwardEmbeddings,
  onRelayedChunk,
  onRelayedResponse,
  onResponse,
  onStream,
  onStreamEnd,
  serveForward,
  type ForwardOptions,
} from './forwarding.js';
import { callPeer, onRpcEvent, onRpcResult, serveRpc, type CallOptions } from './rpc.js';
import { offerSession, onTransferOk, serveTransfer } from './transfer.js';
import { Heartbeat } from './heartbeat.js';
import { LinkTraffic } from './link-traffic.js';
import type { LinkContext, PeerInfo, PeerLoad, PendingRequest, Role, RpcOutcome, RpcServeHandler, ServedRequest } from './link-types.js';
import type { PeerGate } from '../keys/peer-gate.js';
import { drainOrClose } from '../util/drain.js';
import { wsSocket } from '../util/ws-internals.js';

export type { PeerInfo, PeerLoad, Role, RpcOutcome, RpcServeHandler } from './link-types.js';

export interface LinkOptions {
  ws: WebSocket;
  role: Role;
  /** config name of the outbound bridge, or the peer's announced name for inbound links */
  name: string;
  /**
   * the URL an outbound link was dialled with, as configured (userinfo and query included: shown only through
   * redactUrl, as the dialler's own); absent for an inbound link
   */
  url?: string | undefined;
  selfId: string;
  peer: PeerInfo;
  /** names of our channels this peer may use (the serving-side whitelist; replaced by `reshare`) */
  ourShare: Set<string>;
  /** ids of our ACP runtimes this peer may run */
  ourAgents: Set<string>;
  /** the ACP layer's handler for bridge-rpc; undefined = nothing served */
  rpcHandler: () => RpcServeHandler | undefined;
  /** session transfers (both directions); undefined = refused */
  transfers: () => TransferCoordinator | undefined;
  /** peerLimits + served-for usage for forwards we serve; undefined = no limits, no records */
  peerGate?: () => PeerGate | undefined;
  limits: BridgeLimits;
  /**
   * the largest frame the peer takes: its `policy.maxFrameBytes` from bridge-hello-ok when we dialed, its
   * bridge-hello's `maxFrameBytes` when it dialed (ours when an older peer sent none)
   */
  peerMaxFrameBytes: number;
  router: Router;
  logger: Logger;
  onPeerChannels: (link: BridgeLink) => void;
  onClosed: (link: BridgeLink, code: number, reason: string) => void;
}

export class BridgeLink implements LinkContext {
  readonly linkId = newId('link', 6);
  readonly role: Role;
  readonly name: string;
  /** LinkOptions.url: kept so that the link still shows where it was dialled once a reload re-dialled its bridge */
  readonly url: string | null;
  readonly since = new Date();
  peer: PeerInfo;
  load: PeerLoad = { channels: {}, inflight: 0 };
  lastError: string | undefined;
  /** frames, bytes and round-trip time (metrics, status page) */
  readonly traffic = new LinkTraffic();
  /** for the link's parts (LinkContext), not for callers */
  readonly pending = new PendingTable<PendingRequest>();
  readonly serving = new Map<string, ServedRequest>();
  /** streams we serve that now wait for the peer's bridge-stream-resume */
  pausedStreams = 0;
  unconfirmedHeld = 0;
  private readonly ws: WebSocket;
  private readonly heartbeat: Heartbeat;
  private closed = false;
  /** the one wait for the socket to drain, shared by every stream held back (backpressure) */
  private drained: Promise<void> | undefined;

  constructor(private readonly o: LinkOptions) {
    this.ws = o.ws;
    this.role = o.role;
    this.name = o.name;
    this.url = o.url ?? null;
    this.peer = o.peer;
    this.ws.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(data, isBinary));
    this.ws.on('close', (code, reason) => this.teardown(code, reason.toString() || 'closed'));
    this.ws.on('error', (err) => {
      this.lastError = err.message;
    });
    this.heartbeat = new Heartbeat(this, (code, reason) => this.close(code, reason));
  }

  // ---- LinkContext -----------------------------------------------------------------------------------------

  get open(): boolean {
    return !this.closed;
  }
  get streamPause(): boolean {
    return speaksStreamPause(this.peer.version);
  }
  get selfId(): string {
    return this.o.selfId;
  }
  get limits(): BridgeLimits {
    return this.o.limits;
  }
  get peerMaxFrameBytes(): number {
    return this.o.peerMaxFrameBytes;
  }
  get router(): Router {
    return this.o.router;
  }
  get logger(): Logger {
    return this.o.logger;
  }
  get ourShare(): ReadonlySet<string> {
    return this.o.ourShare;
  }
  get ourAgents(): ReadonlySet<string> {
    return this.o.ourAgents;
  }
  rpcHandler(): RpcServeHandler | undefined {
    return this.o.rpcHandler();
  }
  transfers(): TransferCoordinator | undefined {
    return this.o.transfers();
  }
  peerGate(): PeerGate | undefined {
    return this.o.peerGate?.();
  }

  send(frame: BridgeFrame | string): boolean {
    if (this.closed || this.ws.readyState !== 1) return true;
    // a peer that does not read what it is sent would hold it all in our memory: past the backlog cap the link
    // ends (its requests fail, and it may reconnect)
    if (this.ws.bufferedAmount > this.maxBacklog) {
      this.o.logger.warn('bridge peer is not reading: closing the link', { backlogBytes: this.ws.bufferedAmount });
      this.close(CLOSE.BACKLOG_FULL, 'the peer did not read what it was sent');
      return true;
    }
    const text = typeof frame === 'string' ? frame : encodeFrame(frame);
    // the peer would close the link on it (PAYLOAD_TOO_LARGE, 4413), failing every request on it: the caller
    // fails only the request the frame belongs to
    if (textOverBytes(text, this.o.peerMaxFrameBytes)) {
      this.o.logger.warn('frame larger than the peer takes: not sent', { chars: text.length, maxFrameBytes: this.o.peerMaxFrameBytes });
      return false;
    }
    this.traffic.sent(text.length);
    this.corkTurn();
    this.ws.send(text);
    return true;
  }

  afterPeerRead(fn: () => void): void {
    this.heartbeat.afterPeerRead(fn);
  }

  /** Sends a bridge-ping now: a peer that answers it is alive (`unresponsive`). */
  probe(): void {
    if (!this.closed) this.heartbeat.ping();
  }

  /**
   * Whether a ping of ours has waited longer than `ms` for its pong (our own stalls not counted): the peer is hung,
   * or the link is as slow as a hung one. Off the request path: only a retired or handed-over link is asked (retiring.ts).
   */
  unresponsive(ms: number): boolean {
    return !this.closed && this.heartbeat.overdue(ms);
  }

  /** bytes sent that the peer has not taken yet (ws's queue and the socket's) */
  get backlog(): number {
    return this.closed ? 0 : this.ws.bufferedAmount;
  }

  backpressure(): Promise<void> | undefined {
    if (this.ws.bufferedAmount <= BACKLOG_HIGH_WATER || this.closed) return undefined;
    const s = this.socket;
    if (!s) return undefined;
    // every stream held back for this peer waits on the same drain: one listener pair on the socket, however
    // many streams (one pair per stream passed Node's listener limit with a dozen, and cost as many wake-ups)
    return (this.drained ??= drainOrClose(s).then(() => {
      this.drained = undefined;
    }));
  }

  /** `ws`'s socket (src/util/ws-internals.ts): corking and flow control reach for it. */
  private get socket(): Duplex | undefined {
    return wsSocket(this.ws);
  }

  /**
   * What may wait unwritten for the peer before the link is ended: a few of the largest frames both sides take.
   * The peer's announced limit is its word only: it may lower this, never raise it past what our own
   * `maxFrameBytes` allows (a peer announcing 2^53 would otherwise switch the cap off).
   */
  private get maxBacklog(): number {
    return Math.max(MAX_BACKLOG_BYTES, 4 * Math.min(this.o.peerMaxFrameBytes, this.o.limits.maxFrameBytes));
  }

  /**
   * Every frame sent in one turn of the event loop leaves in one socket write at its end (`setImmediate`, after
   * the turn's I/O callbacks): a served stream's chunks of one upstream read, the updates of a peer's agent
   * read at once, and the forwards and answers of requests that arrived in the same turn. Node's HTTP/2 batches
   * its frames the same way. On loopback a write costs the sender the receiver's TCP work too, so one write per
   * turn instead of one per frame halved the writes per bridged request on both gateways and cut ~12 µs of CPU
   * on each (docs/benchmarks.md, "Ninth pass"). A frame waits at most for the rest of its turn. `ws` writes each
   * frame corked itself; corking is counted, so this outer cork holds them all. It reaches for `ws`'s socket
   * (`_socket`, an internal field of the pinned `ws` 8): absent, frames go out one by one.
   */
  private corkTurn(): void {
    const s = this.socket;
    if (!s || s.writableCorked > 0 || this.closed) return;
    s.cork();
    setImmediate(uncorkSocket, s);
  }

  sendError(code: BridgeErrorCode, message: string, extra: Partial<Omit<BridgeErrorFrame, 'type' | 'code' | 'message'>> = {}): void {
    this.send(bridgeErrorFrame(code, message, extra));
  }

  loadChanged(): void {
    this.heartbeat.sendLoad(false);
  }

  // ---- state -------------------------------------------------------------------------------------------------

  /** requests we sent and still wait for (forwards and agent-task calls) */
  get inflightOut(): number {
    let n = 0;
    for (const p of this.pending.values()) if (p.kind !== 'transfer') n++;
    return n;
  }

  get inflightIn(): number {
    return this.serving.size;
  }

  /** Closes the link; pending requests fail at once (their candidates leave the table via onClosed). */
  close(code: number, reason: string): void {
    if (this.closed) return;
    try {
      this.ws.close(code, reason);
    } catch {
      /* already closing */
    }
    // A frozen peer never completes the closing handshake: do not wait for it.
    const hard = setTimeout(() => this.ws.terminate(), 1000);
    hard.unref();
    this.teardown(code, reason);
  }

  /** Resolves when the socket is closed (the closing handshake done, or the hard terminate after 1 s). */
  socketClosed(): Promise<void> {
    if (this.ws.readyState === 3) return Promise.resolve();
    return new Promise((resolve) => this.ws.once('close', () => resolve()));
  }

  private teardown(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.heartbeat.stop();
    this.pending.close(new GatewayError('PEER_UNAVAILABLE', `bridge peer ${this.name} went away (${reason})`, { retryable: true }));
    for (const r of this.serving.values()) (r.linkLost ?? r.abort).call(r);
    this.serving.clear();
    this.o.onClosed(this, code, reason);
  }

  // ---- receiving ---------------------------------------------------------------------------------------------

  private onMessage(data: Buffer, isBinary: boolean): void {
    // A link we closed still receives what the peer sent before our close reached it (the socket finishes closing
    // meanwhile, up to 1 s): its requests already failed on both sides, so nothing of it is served or settled.
    if (this.closed) return;
    this.heartbeat.seen();
    this.traffic.received(data.length);
    const maxBytes = this.o.limits.maxFrameBytes;
    // a relayed chat answer or stream chunk (the common frames of a forward) is taken as text, without a parse
    const text = frameText(data, { maxBytes, isBinary });
    let split: ReturnType<typeof splitRelayFrame>;
    try {
      split = text === undefined ? undefined : splitRelayFrame(text);
      if (split && (split.type === 'bridge-stream' ? onRelayedChunk(this, split.requestId, split.body) : onRelayedResponse(this, split.requestId, split.body)))
        return;
    } catch (err) {
      return this.handlerFailed(split?.type ?? 'bridge-stream', split?.requestId, err);
    }
    const parsed = parseFrame(text ?? data, { maxBytes, authenticated: true, isBinary });
    if (!parsed.ok) {
      const e = parsed.error;
      this.sendError(e.code, e.message, e.requestId ? { requestId: e.requestId } : {});
      if (e.closeCode) this.close(e.closeCode, e.code);
      else if (e.type !== undefined && e.requestId !== undefined && ANSWER_TYPES.has(e.type)) this.failAnswered(e.requestId, e.type, e.message);
      return;
    }
    const f = parsed.frame;
    try {
      this.dispatch(f);
    } catch (err) {
      this.handlerFailed(f.type, 'requestId' in f ? f.requestId : undefined, err);
    }
  }

  /**
   * A frame's handler threw (a bug of ours, or a peer's frame that no check foresaw): the link and the
   * process go on. Only the request the frame belongs to fails: an answer of the peer's fails our request, a
   * request of the peer's is answered INTERNAL. The stack is logged as for an HTTP request's internal error.
   */
  private handlerFailed(type: BridgeFrameType, requestId: string | undefined, err: unknown): void {
    this.o.logger.error('unhandled error', { frame: type, requestId, err: stackOf(err) });
    if (requestId === undefined) return;
    if (ANSWER_TYPES.has(type)) return this.failAnswered(requestId, type, 'the gateway could not handle it');
    this.serving.get(requestId)?.abort();
    this.sendError('INTERNAL', 'internal error', { requestId });
  }

  private dispatch(f: BridgeFrame): void {
    switch (f.type) {
      case 'bridge-forward':
        serveForward(this, f).catch((err: unknown) => this.handlerFailed(f.type, f.requestId, err));
        return;
      case 'bridge-response':
        return onResponse(this, f);
      case 'bridge-stream':
        return onStream(this, f);
      case 'bridge-stream-end':
        return onStreamEnd(this, f);
      case 'bridge-error':
        return this.onError(f);
      case 'bridge-session-transfer':
        serveTransfer(this, f).catch((err: unknown) => this.handlerFailed(f.type, f.transferId, err));
        return;
      case 'bridge-session-transfer-ok':
        return onTransferOk(this, f);
      case 'bridge-rpc':
        serveRpc(this, f).catch((err: unknown) => this.handlerFailed(f.type, f.requestId, err));
        return;
      case 'bridge-rpc-event':
        return onRpcEvent(this, f);
      case 'bridge-rpc-result':
        return onRpcResult(this, f);
      case 'bridge-cancel':
        this.serving.get(f.requestId)?.abort();
        return;
      case 'bridge-stream-pause':
        // an id we no longer serve (the stream ended as the pause crossed it) or a request that is not a
        // stream: nothing to hold
        this.traffic.pausesReceived++;
        this.serving.get(f.requestId)?.pause?.();
        return;
      case 'bridge-stream-resume':
        this.serving.get(f.requestId)?.resume?.();
        return;
      case 'bridge-ping':
        // every ping is answered; the load report that follows is held to the usual interval, so a peer pinging in
        // a tight loop gets a pong per ping (bounded by the backlog cap, as any frame) and at most one report per
        // LOAD_REPORT_MIN_INTERVAL_MS (one timer), not a report per ping
        // the ping's nonce (protocol 1.2) goes back with its ts: only a peer that read the ping can send this pong
        this.send(f.nonce === undefined ? { type: 'bridge-pong', ts: f.ts } : { type: 'bridge-pong', ts: f.ts, nonce: f.nonce });
        this.heartbeat.sendLoad(false);
        return;
      case 'bridge-pong': {
        const rtt = this.heartbeat.pong(f.ts, f.nonce);
        if (rtt !== undefined) this.traffic.rttMs = rtt;
        return;
      }
      case 'bridge-load':
        this.load = { channels: f.channels, inflight: f.inflight };
        return;
      case 'bridge-channels':
        this.peer = { ...this.peer, sharedChannels: f.sharedChannels, ...(f.sharedAgents ? { sharedAgents: f.sharedAgents } : {}) };
        this.o.onPeerChannels(this);
        return;
      case 'bridge-hello':
      case 'bridge-hello-ok':
        // handshake frames on an open link: the handshake is over
        this.sendError('UNKNOWN_TYPE', `frame type ${f.type} is not supported by this gateway`);
        return;
      default: {
        // every frame type is handled above: a new one in BridgeFrame fails to compile here
        const unhandled: never = f;
        this.o.logger.warn('unhandled bridge frame', { frame: String(unhandled) });
      }
    }
  }

  /**
   * A malformed answer to a request of ours (a bad chunk, response, result…): the request fails now, as a bad
   * upstream answer, rather than waiting for its timeout, and the peer is told to stop serving it.
   */
  private failAnswered(requestId: string, type: BridgeFrameType, problem: string): void {
    this.abandon(requestId, new GatewayError('UPSTREAM_BAD_RESPONSE', `bridge peer ${this.name} sent a malformed ${type} frame (${problem})`));
  }

  abandon(requestId: string, err: Error): void {
    const p = this.pending.take(requestId);
    if (!p) return;
    this.send({ type: 'bridge-cancel', requestId });
    p.fail(err);
  }

  private onError(f: BridgeErrorFrame): void {
    if (f.requestId === undefined) {
      const message = peerText(f.message);
      this.lastError = `${f.code}: ${message}`;
      this.o.logger.warn('peer reported an error', { code: f.code, message });
      return;
    }
    this.pending.take(f.requestId)?.refused(f);
  }

  // ---- requests to the peer ----------------------------------------------------------------------------------

  /** A chat forward (see forwarding.ts for the stream contract). */
  forwardChat(targetChannel: string, req: ChatRequest, o: ForwardOptions): Promise<ChatOutcome> {
    return forwardChat(this, targetChannel, req, o);
  }

  forwardEmbeddings(targetChannel: string, req: EmbeddingsRequest, o: ForwardOptions): Promise<EmbeddingsResponse> {
    return forwardEmbeddings(this, targetChannel, req, o);
  }

  /** Runs an /acp/rpc method on the peer (see rpc.ts). */
  rpc(method: string, params: Record<string, unknown>, o: CallOptions): Promise<RpcOutcome> {
    return callPeer(this, method, params, o);
  }

  /** Offers a session; resolves on bridge-session-transfer-ok, rejects on a refusal, link loss or timeout. */
  offerSession(
    transferId: string,
    session: Record<string, unknown>,
    events: readonly BridgeSessionEvent[],
    timeoutMs: number,
    droppedThrough = 0,
  ): Promise<void> {
    return offerSession(this, transferId, session, events, timeoutMs, droppedThrough);
  }

  /** Our shared list changed (config reload, health): tell the peer. */
  announceChannels(sharedChannels: SharedChannel[]): void {
    this.send({ type: 'bridge-channels', sharedChannels });
  }

  /**
   * Config reload and graceful stop: what this peer may use. With `enforce` the serving-side whitelist is
   * replaced at once; without it (draining) only the peer is told, so requests racing the news are served.
   */
  reshare(channels: SharedChannel[], agents: SharedAgent[], enforce = true): void {
    if (enforce) {
      this.o.ourShare.clear();
      for (const c of channels) this.o.ourShare.add(c.name);
      this.o.ourAgents.clear();
      for (const a of agents) this.o.ourAgents.add(a.id);
    }
    this.send({ type: 'bridge-channels', sharedChannels: channels, sharedAgents: agents });
  }
}

/** The frames that answer a request we sent: a bad one fails that request (`failAnswered`). */
const ANSWER_TYPES: ReadonlySet<BridgeFrameType> = new Set<BridgeFrameType>([
  'bridge-response',
  'bridge-stream',
  'bridge-stream-end',
  'bridge-error',
  'bridge-session-transfer-ok',
  'bridge-rpc-event',
  'bridge-rpc-result',
]);

/** A stream we serve waits for the socket to drain past this much unwritten (link.backpressure). */
const BACKLOG_HIGH_WATER = 1024 * 1024;
/** Past this much unwritten (or 4 of the peer's largest frames), the peer is not reading: the link ends. */
const MAX_BACKLOG_BYTES = 64 * 1024 * 1024;

function uncorkSocket(s: Duplex): void {
  if (!s.destroyed) s.uncork();
}
