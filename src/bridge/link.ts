/**
 * One authenticated bridge link, the same for both roles once the handshake is done: both peers may
 * forward to each other. Owns: requests we sent (pending, by requestId), requests we serve (with their
 * abort controllers), heartbeats and the dead-peer timer, load reports, and the peer's shared channels.
 * The handshake itself lives in listener.ts (responder) and dialer.ts (initiator).
 */
import type WebSocket from 'ws';
import { GatewayError, toGatewayError, type ErrorCode } from '../wire/errors.js';
import type { ChatCompletion, ChatRequest, EmbeddingsRequest, EmbeddingsResponse, Usage } from '../wire/openai.js';
import type { ChatOutcome, StreamChunk } from '../providers/provider.js';
import type { Router } from '../router/router.js';
import type { Logger } from '../util/log.js';
import { AsyncQueue } from '../util/async-queue.js';
import { newId, seqId } from '../util/ids.js';
import type { BridgeLimits } from '../config/schema.js';
import { encodeFrame, hasLoop, parseFrame } from './codec.js';
import { CLOSE, type BridgeErrorCode, type RpcErrorObject, type SharedAgent, type SharedChannel } from '../wire/bridge-frames.js';
import { toBridgeCode, fromBridgeError } from './errors.js';
import type { TransferCoordinator } from '../sessions/transfer.js';

export type Role = 'initiator' | 'responder';

export interface PeerInfo {
  id: string;
  name: string;
  version: string;
  capabilities: { shareChannels: boolean; acceptSessions: boolean; loadBalance: boolean };
  sharedChannels: SharedChannel[];
  /** ACP runtimes (agents, gateway providers) the peer shares with us */
  sharedAgents: SharedAgent[];
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
  channels: Record<string, { inflight: number; queued: number; maxConcurrent: number; latencyMsEwma: number; healthy: boolean }>;
  inflight: number;
}

export interface LinkOptions {
  ws: WebSocket;
  role: Role;
  /** config name of the outbound bridge, or the peer's announced name for inbound links */
  name: string;
  selfId: string;
  peer: PeerInfo;
  /** names of our channels this peer may use (the serving-side whitelist) */
  ourShare: ReadonlySet<string>;
  /** ids of our ACP runtimes this peer may run */
  ourAgents: ReadonlySet<string>;
  /** the ACP layer's handler for bridge-rpc; undefined = nothing served */
  rpcHandler: () => RpcServeHandler | undefined;
  /** session transfers (both directions); undefined = refused */
  transfers: () => TransferCoordinator | undefined;
  limits: BridgeLimits;
  router: Router;
  logger: Logger;
  onPeerChannels: (link: BridgeLink) => void;
  onClosed: (link: BridgeLink, code: number, reason: string) => void;
}

interface PendingRpc {
  onEvent: (method: string, params: Record<string, unknown>) => void;
  resolve: (o: RpcOutcome) => void;
  reject: (e: unknown) => void;
  cleanup: () => void;
}

interface Pending {
  stream: boolean;
  kind: 'chat' | 'embeddings';
  started: boolean;
  resolve: (v: ChatCompletion | EmbeddingsResponse) => void;
  reject: (e: unknown) => void;
  queue: AsyncQueue<StreamChunk> | undefined;
  cleanup: () => void;
}

export class BridgeLink {
  readonly linkId = newId('link', 6);
  readonly role: Role;
  readonly name: string;
  readonly since = new Date();
  peer: PeerInfo;
  load: PeerLoad = { channels: {}, inflight: 0 };
  lastError: string | undefined;
  private readonly ws: WebSocket;
  private readonly pending = new Map<string, Pending>();
  private readonly pendingRpc = new Map<string, PendingRpc>();
  private readonly pendingTransfers = new Map<string, { resolve: () => void; reject: (e: unknown) => void; timer: NodeJS.Timeout }>();
  private readonly serving = new Map<string, AbortController>();
  private lastSeen = Date.now();
  private heartbeat: NodeJS.Timeout | undefined;
  private loadTimer: NodeJS.Timeout | undefined;
  private lastLoadSent = 0;
  private closed = false;

  constructor(private readonly o: LinkOptions) {
    this.ws = o.ws;
    this.role = o.role;
    this.name = o.name;
    this.peer = o.peer;
    this.ws.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary));
    this.ws.on('close', (code, reason) => this.teardown(code, reason.toString() || 'closed'));
    this.ws.on('error', (err) => {
      this.lastError = err.message;
    });
    this.heartbeat = setInterval(() => this.tick(), o.limits.heartbeatIntervalMs);
    this.heartbeat.unref();
  }

  get open(): boolean {
    return !this.closed;
  }

  get inflightOut(): number {
    return this.pending.size + this.pendingRpc.size;
  }

  get inflightIn(): number {
    return this.serving.size;
  }

  get ourShare(): ReadonlySet<string> {
    return this.o.ourShare;
  }

  get ourAgents(): ReadonlySet<string> {
    return this.o.ourAgents;
  }

  private send(frame: Record<string, unknown> | string): void {
    if (this.closed || this.ws.readyState !== 1) return;
    this.ws.send(typeof frame === 'string' ? frame : encodeFrame(frame as never));
  }

  private sendError(code: BridgeErrorCode, message: string, extra: Record<string, unknown> = {}): void {
    this.send({ type: 'bridge-error', code, message, retryable: extra.retryable ?? false, ...extra });
  }

  private tick(): void {
    const silentFor = Date.now() - this.lastSeen;
    if (silentFor > this.o.limits.heartbeatIntervalMs * this.o.limits.deadPeerMisses) {
      this.o.logger.warn('peer silent: closing link', { peer: this.peer.id, silentMs: silentFor });
      this.close(CLOSE.HEARTBEAT_TIMEOUT, 'heartbeat timeout');
      return;
    }
    this.send({ type: 'bridge-ping', ts: Date.now() });
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

  private teardown(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.loadTimer);
    const err = new GatewayError('PEER_UNAVAILABLE', `bridge peer ${this.name} went away (${reason})`, { retryable: true });
    for (const p of this.pending.values()) this.failPending(p, err);
    this.pending.clear();
    for (const p of this.pendingRpc.values()) {
      p.cleanup();
      p.reject(err);
    }
    this.pendingRpc.clear();
    for (const t of this.pendingTransfers.values()) {
      clearTimeout(t.timer);
      t.reject(err);
    }
    this.pendingTransfers.clear();
    for (const ac of this.serving.values()) ac.abort();
    this.serving.clear();
    this.o.onClosed(this, code, reason);
  }

  private failPending(p: Pending, err: GatewayError): void {
    p.cleanup();
    if (p.queue) p.queue.fail(err);
    else p.reject(err);
  }

  // ---- receiving ---------------------------------------------------------------------------------------

  private onMessage(data: Buffer, isBinary: boolean): void {
    this.lastSeen = Date.now();
    const parsed = parseFrame(data, { maxBytes: this.o.limits.maxFrameBytes, authenticated: true, isBinary });
    if (!parsed.ok) {
      const e = parsed.error;
      this.sendError(e.code, e.message, e.requestId ? { requestId: e.requestId } : {});
      if (e.closeCode) this.close(e.closeCode, e.code);
      return;
    }
    const f = parsed.frame as Record<string, any>;
    switch (f.type) {
      case 'bridge-forward':
        void this.serve(f);
        return;
      case 'bridge-response': {
        const p = this.takePending(f.requestId);
        if (p && !p.stream) p.resolve(f.payload);
        return;
      }
      case 'bridge-stream': {
        const p = this.pending.get(f.requestId);
        if (!p?.queue) return;
        p.started = true;
        const chunk = f.chunk as { usage?: Usage; choices?: unknown[] };
        const data = JSON.stringify(chunk);
        p.queue.push(chunk.usage && Array.isArray(chunk.choices) && chunk.choices.length === 0 ? { data, usage: chunk.usage } : { data });
        return;
      }
      case 'bridge-stream-end': {
        const p = this.takePending(f.requestId);
        p?.queue?.end();
        return;
      }
      case 'bridge-error': {
        if (typeof f.requestId !== 'string') {
          this.lastError = `${f.code}: ${f.message}`;
          this.o.logger.warn('peer reported an error', { peer: this.peer.id, code: f.code, message: f.message });
          return;
        }
        const p = this.takePending(f.requestId);
        if (p) this.failPending(p, fromBridgeError(f, this.name));
        const r = this.pendingRpc.get(f.requestId);
        if (r) {
          this.pendingRpc.delete(f.requestId);
          r.cleanup();
          r.reject(fromBridgeError(f, this.name));
        }
        const t = this.pendingTransfers.get(f.requestId);
        if (t) {
          this.pendingTransfers.delete(f.requestId);
          clearTimeout(t.timer);
          t.reject(new GatewayError('FORBIDDEN', `peer ${this.name} refused the session (${f.code}): ${String(f.message).slice(0, 300)}`, { details: { reason: f.code } }));
        }
        return;
      }
      case 'bridge-session-transfer':
        void this.serveTransfer(f);
        return;
      case 'bridge-session-transfer-ok': {
        const t = this.pendingTransfers.get(f.transferId);
        if (!t) return;
        this.pendingTransfers.delete(f.transferId);
        clearTimeout(t.timer);
        t.resolve();
        return;
      }
      case 'bridge-rpc':
        void this.serveRpc(f);
        return;
      case 'bridge-rpc-event':
        this.pendingRpc.get(f.requestId)?.onEvent(f.method, f.params);
        return;
      case 'bridge-rpc-result': {
        const r = this.pendingRpc.get(f.requestId);
        if (!r) return;
        this.pendingRpc.delete(f.requestId);
        r.cleanup();
        r.resolve(f.error ? { error: f.error } : { result: f.result });
        return;
      }
      case 'bridge-cancel':
        this.serving.get(f.requestId)?.abort();
        return;
      case 'bridge-ping':
        this.send({ type: 'bridge-pong', ts: f.ts });
        this.sendLoad(true);
        return;
      case 'bridge-pong':
        return;
      case 'bridge-load':
        this.load = { channels: f.channels ?? {}, inflight: f.inflight ?? 0 };
        return;
      case 'bridge-channels':
        this.peer = { ...this.peer, sharedChannels: f.sharedChannels, ...(Array.isArray(f.sharedAgents) ? { sharedAgents: f.sharedAgents } : {}) };
        this.o.onPeerChannels(this);
        return;
      default:
        this.sendError('UNKNOWN_TYPE', `frame type ${f.type} is not supported by this gateway`, f.requestId ? { requestId: f.requestId } : {});
    }
  }

  private takePending(id: string): Pending | undefined {
    const p = this.pending.get(id);
    if (p) {
      this.pending.delete(id);
      p.cleanup();
    }
    return p;
  }

  // ---- serving a peer's forward --------------------------------------------------------------------------

  private async serve(f: Record<string, any>): Promise<void> {
    const requestId: string = f.requestId;
    const fail = (code: BridgeErrorCode, message: string, retryable: boolean, started = false, gatewayCode?: ErrorCode) =>
      this.sendError(code, message, { requestId, retryable, started, ...(gatewayCode ? { gatewayCode } : {}) });
    if (this.serving.has(requestId)) return fail('BAD_FRAME', `requestId ${requestId} is already in flight on this link`, false);
    if (this.serving.size >= this.o.limits.maxInflightPerPeer) {
      return fail('OVERLOADED', `too many requests in flight from this peer (limit ${this.o.limits.maxInflightPerPeer})`, true);
    }
    if (!this.o.ourShare.has(f.targetChannel)) {
      return fail('CHANNEL_NOT_SHARED', `channel "${f.targetChannel}" is not shared with this gateway`, false);
    }
    const hops: string[] = Array.isArray(f.hops) ? f.hops : [];
    if (hasLoop(hops, this.o.selfId)) return fail('LOOP_DETECTED', `request already passed this gateway (${this.o.selfId}) or too many hops`, false);

    const ac = new AbortController();
    this.serving.set(requestId, ac);
    this.sendLoad(false);
    let started = false;
    const opts = {
      signal: ac.signal,
      requestId: `${this.peer.id}:${requestId}`,
      hops: [...hops, this.o.selfId],
      deadline: Date.now() + (typeof f.deadlineMs === 'number' && f.deadlineMs > 0 ? f.deadlineMs : 600_000),
      sessionId: typeof f.sessionId === 'string' ? f.sessionId : undefined,
    };
    try {
      if (f.kind === 'embeddings') {
        const payload = await this.o.router.serveChannelEmbeddings(f.targetChannel, f.payload as EmbeddingsRequest, opts);
        this.send({ type: 'bridge-response', requestId, payload });
        return;
      }
      const req = { ...(f.payload as ChatRequest), stream: f.stream === true };
      const routed = await this.o.router.serveChannel(f.targetChannel, req, opts);
      if (!routed.stream) {
        this.send({ type: 'bridge-response', requestId, payload: routed.completion });
        return;
      }
      const idJson = JSON.stringify(requestId);
      let usage: Usage | undefined;
      let chunk = routed.first;
      while (chunk !== undefined) {
        started = true;
        if (chunk.usage) usage = chunk.usage;
        // The chunk is already JSON: splice it into the frame instead of parsing and re-serialising it.
        this.send(`{"type":"bridge-stream","requestId":${idJson},"chunk":${chunk.data}}`);
        if (ac.signal.aborted) {
          await routed.rest.return?.();
          return;
        }
        const r = await routed.rest.next();
        chunk = r.done ? undefined : r.value;
      }
      this.send({ type: 'bridge-stream-end', requestId, ...(usage ? { usage } : {}) });
    } catch (err) {
      const e = toGatewayError(err);
      if (e.code !== 'CANCELLED') this.o.logger.warn('serving a peer request failed', { peer: this.peer.id, requestId, code: e.code });
      fail(toBridgeCode(e.code), e.message, e.retryable, started, e.code);
    } finally {
      this.serving.delete(requestId);
      this.sendLoad(false);
    }
  }

  // ---- agent tasks over the bridge ------------------------------------------------------------------------

  private async serveRpc(f: Record<string, any>): Promise<void> {
    const requestId: string = f.requestId;
    const fail = (code: BridgeErrorCode, message: string, retryable: boolean) => this.sendError(code, message, { requestId, retryable });
    if (this.serving.has(requestId)) return fail('BAD_FRAME', `requestId ${requestId} is already in flight on this link`, false);
    if (this.serving.size >= this.o.limits.maxInflightPerPeer) return fail('OVERLOADED', `too many requests in flight from this peer (limit ${this.o.limits.maxInflightPerPeer})`, true);
    const hops: string[] = Array.isArray(f.hops) ? f.hops : [];
    if (hasLoop(hops, this.o.selfId)) return fail('LOOP_DETECTED', `request already passed this gateway (${this.o.selfId}) or too many hops`, false);
    if (typeof f.method === 'string' && f.method.startsWith('bridge.session.')) return this.serveSessionCall(requestId, f.method, f.params ?? {});
    const handler = this.o.rpcHandler();
    // the handler checks what is shared: a session transferred here is served whatever shareAgents says
    if (!handler) return fail('AGENT_NOT_SHARED', 'this gateway shares no agent runtimes with you', false);
    const ac = new AbortController();
    this.serving.set(requestId, ac);
    const idJson = JSON.stringify(requestId);
    try {
      const out = await handler({
        peer: this.peer,
        method: f.method,
        params: f.params ?? {},
        sharedAgents: this.o.ourAgents,
        hops: [...hops, this.o.selfId],
        signal: ac.signal,
        emit: (method, params) => this.send(`{"type":"bridge-rpc-event","requestId":${idJson},"method":${JSON.stringify(method)},"params":${JSON.stringify(params)}}`),
      });
      this.send({ type: 'bridge-rpc-result', requestId, ...out });
    } catch (err) {
      const e = toGatewayError(err);
      const code: BridgeErrorCode = e.code === 'CHANNEL_NOT_SHARED' || e.code === 'FORBIDDEN' ? 'AGENT_NOT_SHARED' : toBridgeCode(e.code);
      this.sendError(code, e.message, { requestId, retryable: e.retryable, gatewayCode: e.code });
    } finally {
      this.serving.delete(requestId);
    }
  }

  // ---- session transfer --------------------------------------------------------------------------------

  private async serveTransfer(f: Record<string, any>): Promise<void> {
    const transferId: string = f.transferId;
    const t = this.o.transfers();
    try {
      if (!t) throw new GatewayError('FORBIDDEN', 'this gateway does not accept sessions', { details: { reason: 'TRANSFER_REJECTED' } });
      const sessionId = await t.receive(this.peer.id, transferId, f.session);
      this.send({ type: 'bridge-session-transfer-ok', transferId, sessionId });
    } catch (err) {
      const e = toGatewayError(err);
      const reason = (e.details as { reason?: string } | undefined)?.reason;
      const code: BridgeErrorCode = reason === 'NOT_OWNER' ? 'NOT_OWNER' : 'TRANSFER_REJECTED';
      this.sendError(code, e.code === 'INTERNAL' ? 'could not store the session' : e.message, { requestId: transferId, retryable: false });
    }
  }

  /** Internal calls between gateways about transfers (not /acp/rpc methods). */
  private async serveSessionCall(requestId: string, method: string, params: Record<string, unknown>): Promise<void> {
    const t = this.o.transfers();
    const sessionId = typeof params.sessionId === 'string' ? params.sessionId : '';
    let out: RpcOutcome;
    if (!t) out = { error: { code: -32601, message: 'this gateway has no session store' } };
    else if (method === 'bridge.session.status') out = { result: await t.status(this.peer.id, sessionId) };
    else if (method === 'bridge.session.commit') out = { result: { confirmed: await t.confirm(this.peer.id, sessionId, String(params.transferId ?? '')) } };
    else out = { error: { code: -32601, message: `unknown method ${method}` } };
    this.send({ type: 'bridge-rpc-result', requestId, ...out });
  }

  /** Offers a session; resolves on bridge-session-transfer-ok, rejects on a refusal, link loss or timeout. */
  offerSession(transferId: string, session: Record<string, unknown>, timeoutMs: number): Promise<void> {
    if (this.closed) return Promise.reject(new GatewayError('PEER_UNAVAILABLE', `bridge peer ${this.name} is not connected`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pendingTransfers.delete(transferId);
        reject(new GatewayError('UPSTREAM_TIMEOUT', `peer ${this.name} did not acknowledge the session within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pendingTransfers.set(transferId, { resolve, reject, timer });
      this.send({ type: 'bridge-session-transfer', transferId, session });
    });
  }

  /**
   * Runs an /acp/rpc method on the peer. Notifications arrive through `onEvent` in order; the promise
   * resolves with the peer's result or JSON-RPC error (passed through unchanged), and rejects only for link
   * or policy failures (GatewayError). Aborting `signal` sends bridge-cancel.
   */
  rpc(method: string, params: Record<string, unknown>, o: { hops: string[]; signal?: AbortSignal | undefined; onEvent: (method: string, params: Record<string, unknown>) => void }): Promise<RpcOutcome> {
    if (this.closed) return Promise.reject(new GatewayError('PEER_UNAVAILABLE', `bridge peer ${this.name} is not connected`));
    const requestId = seqId('rpc');
    return new Promise<RpcOutcome>((resolve, reject) => {
      const onAbort = () => {
        if (!this.pendingRpc.delete(requestId)) return;
        this.send({ type: 'bridge-cancel', requestId });
        reject(new GatewayError('CANCELLED', 'request cancelled'));
      };
      o.signal?.addEventListener('abort', onAbort, { once: true });
      const cleanup = () => o.signal?.removeEventListener('abort', onAbort);
      this.pendingRpc.set(requestId, { onEvent: o.onEvent, resolve, reject, cleanup });
      this.send({ type: 'bridge-rpc', requestId, method, params, hops: [...o.hops, this.o.selfId] });
    });
  }

  // ---- load reports ------------------------------------------------------------------------------------

  /** Reports our shared channels' load: on change at most every 250 ms, and with each pong (`force`). */
  private sendLoad(force: boolean): void {
    if (this.closed) return;
    const now = Date.now();
    const due = this.lastLoadSent + 250 - now;
    if (!force && due > 0) {
      this.loadTimer ??= setTimeout(() => {
        this.loadTimer = undefined;
        this.sendLoad(true);
      }, due);
      return;
    }
    this.lastLoadSent = now;
    const channels: PeerLoad['channels'] = {};
    let inflight = 0;
    for (const name of this.o.ourShare) {
      const c = this.o.router.get(`local/${name}`);
      if (!c) continue;
      const n = this.o.router.inflightOf(c.id);
      inflight += n;
      channels[name] = { inflight: n, queued: 0, maxConcurrent: c.load().maxConcurrent, latencyMsEwma: Math.round(this.o.router.latencyOf(c.id)), healthy: this.o.router.health.eligible(c.id) };
    }
    this.send({ type: 'bridge-load', channels, inflight });
  }

  // ---- forwarding to the peer ------------------------------------------------------------------------

  /**
   * Sends a forward and returns its outcome. For streams the outcome resolves at once with an iterable fed
   * by bridge-stream frames; a bridge-error before the first chunk makes the first `next()` throw (so the
   * router can still fail over), after it the stream throws (never a fake end).
   */
  forward(targetChannel: string, payload: ChatRequest | EmbeddingsRequest, kind: 'chat' | 'embeddings', o: { signal: AbortSignal; hops: string[]; deadline: number; sessionId?: string | undefined }): Promise<ChatOutcome | EmbeddingsResponse> {
    if (this.closed) return Promise.reject(new GatewayError('PEER_UNAVAILABLE', `bridge peer ${this.name} is not connected`));
    if (o.signal.aborted) return Promise.reject(new GatewayError('CANCELLED', 'request cancelled'));
    const requestId = seqId('fwd');
    const stream = kind === 'chat' && (payload as ChatRequest).stream === true;
    const onAbort = () => {
      const p = this.pending.get(requestId);
      if (!p) return;
      this.pending.delete(requestId);
      this.send({ type: 'bridge-cancel', requestId });
      this.failPending(p, new GatewayError('CANCELLED', 'request cancelled'));
    };
    const cleanup = () => o.signal.removeEventListener('abort', onAbort);
    o.signal.addEventListener('abort', onAbort, { once: true });
    const frame = {
      type: 'bridge-forward',
      requestId,
      targetChannel,
      payload,
      stream,
      kind,
      hops: [...o.hops, this.o.selfId],
      deadlineMs: Math.max(1, o.deadline - Date.now()),
      ...(o.sessionId ? { sessionId: o.sessionId } : {}),
    };
    if (stream) {
      const queue = new AsyncQueue<StreamChunk>();
      queue.onReturn = onAbort;
      this.pending.set(requestId, { stream, kind, started: false, resolve: () => undefined, reject: () => undefined, queue, cleanup });
      this.send(frame);
      return Promise.resolve({ stream: true, chunks: queue });
    }
    return new Promise((resolve, reject) => {
      this.pending.set(requestId, {
        stream,
        kind,
        started: false,
        resolve: (v) => resolve(kind === 'chat' ? { stream: false, completion: v as ChatCompletion } : (v as EmbeddingsResponse)),
        reject,
        queue: undefined,
        cleanup,
      });
      this.send(frame);
    });
  }

  /** Our shared list changed (config reload, health): tell the peer. */
  announceChannels(sharedChannels: SharedChannel[]): void {
    this.send({ type: 'bridge-channels', sharedChannels });
  }
}
