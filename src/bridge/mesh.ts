/**
 * The mesh: every bridge link of this gateway (inbound and outbound), their dialers, admission rules
 * (maxPeers, one link per peer), and the bridge between links and the routing table: a peer's shared
 * channels become candidates when its link opens and leave the table the moment it closes.
 *
 * Over 400 lines: it is the one owner of the set of links, and admission, resharing on reload, drain and close
 * all change that set; the per-link parts live in their own files (link.ts and its parts), and so does the retirement
 * of the links it lets go (retiring.ts).
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocketServer } from 'ws';
import { withWs } from '../util/lazy-ws.js';
import type { Config, BridgeLimits, OutboundBridgeConfig } from '../config/schema.js';
import type { Router } from '../router/router.js';
import type { Logger } from '../util/log.js';
import { CLOSE, MAX_DIAL_NONCES, versionsFrom, type SharedAgent, type SharedChannel } from '../wire/bridge-frames.js';
import { GatewayError } from '../wire/errors.js';
import { acceptInbound } from './listener.js';
import { preAuthPayloadLimit } from './ws-limits.js';
import { PreAuthSlots } from './pre-auth.js';
import { LinkRetirement } from './retiring.js';
import { Dialer, type DialTarget } from './dialer.js';
import type { BridgeLink, Role, RpcOutcome, RpcServeHandler } from './link.js';
import { MAX_IDS_PER_TOKEN, type Admission, type MeshCapabilities, type MeshContext } from './mesh-context.js';
import { legacyCapabilities, peerCandidate, peerCandidateId } from './peer-candidate.js';
import type { SessionStore } from '../sessions/store.js';
import type { PeerGate } from '../keys/peer-gate.js';
import { TransferCoordinator, type TransferTransport } from '../sessions/transfer.js';
import { LabelBudget, OTHER_LABEL } from '../util/label-budget.js';
import { refuseUpgrade } from '../util/refuse-upgrade.js';
import type { CandidateLabels } from '../router/candidate.js';

/**
 * Metric labels of what inbound peers choose (docs/operations.md, Metrics): their names (a hello's gatewayName) and
 * the channels they announce are labels of their own up to these many distinct values since start; later ones are
 * counted under `(other)`. A bridge this gateway dials is named by us (config, `bridge connect`): its name and channels
 * are labels as they are.
 */
export const PEER_NAME_LABELS = 64;
export const PEER_CHANNEL_LABELS = 256;

export interface MeshOptions {
  config: Config;
  /** sessions: transfers are served when a store is given */
  store?: SessionStore | undefined;
  gatewayId: string;
  router: Router;
  logger: Logger;
}

/** the links no longer their peer's current one, counted (BridgeMesh.retiringSummary) */
export interface RetiringSummary {
  retiring: number;
  handingOver: number;
  /** requests in flight on those links: `out` ours waiting on the peer, `in` the peer's we serve */
  inflight: { out: number; in: number };
}

export interface PeerRow {
  name: string;
  id: string | null;
  direction: 'inbound' | 'outbound';
  state: string;
  since: string;
  url: string | null;
  sharedWithUs: string[];
  sharedByUs: string[];
  inflight: { out: number; in: number };
  /** bytes sent to the peer that it has not read yet (its link's send backlog; see flow control) */
  backlogBytes: number;
  /** streams we serve that the peer now holds paused (bridge-stream-pause: its client reads slower) */
  pausedStreams: number;
  /** bridge-pong frames on the current link that answered no ping of ours (ignored; 0 while not connected) */
  unmatchedPongs: number;
  /** the bridge protocol version the link negotiated (null while not connected) */
  protocol: string | null;
  lastError: string | null;
  capabilities: { shareChannels: boolean; acceptSessions: boolean; loadBalance: boolean } | null;
  /** health of each channel the peer shares with us, as this gateway sees it */
  health: Record<string, string>;
  /**
   * Only on a link that is no longer its peer's current one (`list({ retiring: true })`; state `retiring` or
   * `handing-over`): the reason it will close with, and since when it is so. `since` above stays the link's own
   * (when it opened), as its row showed before.
   */
  retiring?: { reason: string; since: string };
}

export class BridgeMesh implements MeshContext {
  readonly gatewayId: string;
  readonly gatewayName: string;
  readonly router: Router;
  readonly logger: Logger;
  readonly limits: BridgeLimits;
  private readonly links = new Map<string, BridgeLink>();
  /** the links no longer their peer's that finish what runs on them, and those handed over to a re-dialled bridge */
  private readonly retirement: LinkRetirement;
  private readonly dialers = new Map<string, Dialer>();
  /** created at the first upgrade on /bridge (ws is loaded then: src/util/lazy-ws.ts) */
  private wss: WebSocketServer | undefined;
  private accepting = true;
  /** links established per peer since start, by its metric label (`peerLabel`; metrics: reconnects) */
  readonly linkOpens = new Map<string, number>();
  /** inbound peers' names as metric labels (PEER_NAME_LABELS) */
  private readonly peerNames = new LabelBudget(PEER_NAME_LABELS);
  /** inbound peers' channels (by candidate id) as metric labels (PEER_CHANNEL_LABELS) */
  private readonly peerChannels = new LabelBudget(PEER_CHANNEL_LABELS);
  /** each open link's metric label, decided when it registers */
  private readonly peerLabels = new WeakMap<BridgeLink, string>();
  /** sockets on /bridge that have not authenticated yet */
  private readonly preAuth = new PreAuthSlots(() => this.o.config.gateway.bridge);
  /** inbound gatewayId → SHA-256 of the token it first authenticated with */
  private readonly idTokens = new Map<string, Buffer>();
  /** token digest (hex) → how many ids it has bound */
  private readonly idsPerToken = new Map<string, number>();
  /** set by the ACP layer: serves peers' bridge-rpc calls for the runtimes we share */
  rpcHandler: RpcServeHandler | undefined;
  /** set by the gateway: gateway.bridge.peerLimits on peers' forwards, and their usage (src/keys/peer-gate.ts) */
  peerGate: PeerGate | undefined;
  /** session transfers in both directions (present when the gateway has a store) */
  readonly transfers: TransferCoordinator | undefined;

  constructor(private readonly o: MeshOptions) {
    this.gatewayId = o.gatewayId;
    this.gatewayName = o.config.gateway.name;
    this.router = o.router;
    this.logger = o.logger;
    this.limits = o.config.gateway.bridge.limits;
    this.retirement = new LinkRetirement({
      logger: this.logger,
      limits: this.limits,
      graceMs: () => this.o.config.gateway.shutdownGraceMs,
      unlink: (link) => {
        if (this.links.get(link.peer.id) !== link) return;
        this.links.delete(link.peer.id);
        this.router.removeWhere((c) => c.peer?.id === link.peer.id);
      },
      dialGaveUp: (name) => {
        const d = this.dialers.get(name);
        return d === undefined || d.state === 'failed' || d.state === 'stopped';
      },
    });
    const transport: TransferTransport = {
      peerAcceptsSessions: (peerId) => this.links.get(peerId)?.peer.capabilities.acceptSessions,
      offer: (peerId, transferId, snapshot, events, droppedThrough, timeoutMs) => {
        const link = this.links.get(peerId);
        if (!link) return Promise.reject(new GatewayError('PEER_UNAVAILABLE', `peer ${peerId} is not connected`));
        return link.offerSession(transferId, snapshot, events, timeoutMs, droppedThrough);
      },
      call: async (peerId, method, params) => {
        const out = await this.internalCall(peerId, method, params);
        if ('error' in out) throw new GatewayError('PEER_UNAVAILABLE', `peer ${peerId}: ${out.error.message}`);
        // every bridge.* call answers an object, whose fields the caller reads: anything else (null, a string) is
        // a bad answer, and fails the call as an error answer does
        const r = out.result;
        if (typeof r !== 'object' || r === null || Array.isArray(r))
          throw new GatewayError('PEER_UNAVAILABLE', `peer ${peerId} answered ${method} with no object`);
        return r;
      },
    };
    this.transfers = o.store
      ? new TransferCoordinator(o.store, o.gatewayId, o.config.gateway.bridge.acceptSessions, transport, o.logger.child({ part: 'transfer' }))
      : undefined;
  }

  /** `ca`: each configured bridge's `ca` PEM text by bridge name, as the config check read it (gateway-prepare.ts) */
  start(ca: ReadonlyMap<string, string>): void {
    for (const b of this.o.config.gateway.bridges) this.dial(b, ca.get(b.name));
  }

  /**
   * Dials one configured outbound bridge (startup and config reload), with its `ca` file's text (`b.ca` is its
   * path), read by the config check: dialling reads no file, so it cannot fail half-way through a reload.
   */
  dial(b: OutboundBridgeConfig, ca: string | undefined): void {
    this.addDialer({ ...b, ca });
  }

  /**
   * Config reload: recomputes what every connected peer may use from the live config, replaces the link's
   * serving-side whitelist at once and announces it (bridge-channels). Returns the number of links.
   */
  reshare(): number {
    let n = 0;
    for (const l of this.links.values()) {
      const d = l.role === 'initiator' ? this.dialerOf(l) : undefined;
      const channels = l.role === 'initiator' ? (d ? this.outboundShare(d.target.shareChannels) : []) : this.inboundShare();
      const agents = l.role === 'initiator' ? (d ? this.outboundAgents(d.target.shareAgents ?? false) : []) : this.inboundAgents();
      l.reshare(channels, agents);
      n++;
    }
    return n;
  }

  /** the dialler whose link `l` is, or, for a link handed over to a re-dialled bridge, that bridge's new dialler */
  private dialerOf(l: BridgeLink): Dialer | undefined {
    for (const d of this.dialers.values()) if (d.link === l) return d;
    return this.retirement.handedOverTo(l.name) === l ? this.dialers.get(l.name) : undefined;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (!this.o.config.gateway.bridge.enabled || !this.accepting) {
      refuseUpgrade(socket, this.accepting ? '404 Not Found' : '503 Service Unavailable');
      return;
    }
    const ip = req.socket.remoteAddress ?? 'unknown';
    const slot = this.preAuth.take(ip);
    if ('status' in slot) {
      const text = slot.status === 429 ? '429 Too Many Requests' : '503 Service Unavailable';
      this.logger.warn('bridge upgrade refused: too many unauthenticated sockets', { remote: ip, status: slot.status });
      refuseUpgrade(socket, text);
      return;
    }
    socket.once('close', slot.release);
    withWs(
      ({ WebSocketServer }) => {
        if (!this.accepting) return refuseUpgrade(socket, '503 Service Unavailable');
        // Every socket starts with the pre-auth limit; listener.ts raises it once the peer authenticated.
        this.wss ??= new WebSocketServer({ noServer: true, maxPayload: preAuthPayloadLimit(this.limits.preAuthFrameBytes), perMessageDeflate: false });
        this.wss.handleUpgrade(req, socket, head, (ws) => acceptInbound(ws, this, ip, slot.release));
      },
      (err) => {
        this.logger.error('bridge upgrade failed: cannot load ws', { error: String(err) });
        socket.destroy();
      },
    );
  }

  /**
   * The gatewayId ↔ token rule (docs/bridge-protocol.md "Peer identity"): an inbound gatewayId is bound to
   * the token (its SHA-256) of the first hello that was accepted with it, for as long as this gateway runs.
   */
  boundToken(peerId: string): Buffer | undefined {
    return this.idTokens.get(peerId);
  }

  /**
   * Binds `peerId` to the token at its first accepted hello. One token may bind at most MAX_IDS_PER_TOKEN
   * ids (the table is bounded by the configured tokens, not by what their holders announce): past that, false,
   * and the hello is refused like a bound id's.
   */
  bindToken(peerId: string, digest: Buffer): boolean {
    if (this.idTokens.has(peerId)) return true;
    const token = digest.toString('hex');
    const n = this.idsPerToken.get(token) ?? 0;
    if (n >= MAX_IDS_PER_TOKEN) return false;
    this.idsPerToken.set(token, n + 1);
    this.idTokens.set(peerId, digest);
    return true;
  }

  /**
   * Config reload: `gateway.bridge.allowedTokens` is now `allowed`. Every inbound link opened with a token no longer
   * in it is closed (4401, AUTH_FAILED: its dialler does not retry; what is in flight on it fails as on any close),
   * and the ids bound to such a token are unbound (no hello can present it any more, so the binding protects nothing,
   * and its peers may come back with a token that is accepted). `reason`: the close's (inbound bridges disabled: no
   * token is accepted). Returns the names of the links closed.
   */
  revokeTokens(allowed: readonly string[], reason = 'bridge token no longer accepted'): string[] {
    const kept = new Set(allowed.map((t) => createHash('sha256').update(t).digest('hex')));
    const closed: string[] = [];
    for (const [peerId, digest] of [...this.idTokens]) {
      const hex = digest.toString('hex');
      if (kept.has(hex)) continue;
      this.idTokens.delete(peerId);
      const n = (this.idsPerToken.get(hex) ?? 1) - 1;
      if (n > 0) this.idsPerToken.set(hex, n);
      else this.idsPerToken.delete(hex);
      const link = this.links.get(peerId);
      if (link && link.role === 'responder') {
        link.close(CLOSE.AUTH_FAILED, reason);
        closed.push(link.name);
      }
    }
    return closed;
  }

  responderSettings(): { limits: BridgeLimits; allowedTokens: string[]; maxPeers: number; versions: readonly string[] } {
    const b = this.o.config.gateway.bridge;
    return { limits: this.limits, allowedTokens: b.allowedTokens, maxPeers: b.maxPeers, versions: this.protocolVersions() };
  }

  protocolVersions(): readonly string[] {
    return versionsFrom(this.o.config.gateway.bridge.minProtocolVersion);
  }

  capabilities(sharing: boolean): MeshCapabilities {
    const b = this.o.config.gateway.bridge;
    return { shareChannels: sharing, acceptSessions: b.acceptSessions, loadBalance: b.loadBalance };
  }

  private describe(names: readonly string[]): SharedChannel[] {
    const out: SharedChannel[] = [];
    for (const n of names) {
      const ch = this.o.config.channels.find((c) => c.name === n);
      if (!ch) continue;
      // the capabilities our provider declares (the local candidate carries them)
      const capabilities = this.router.get(`local/${n}`)?.capabilities ?? legacyCapabilities(ch.provider);
      out.push({
        name: ch.name,
        provider: ch.provider,
        models: [...ch.models],
        capabilities: { ...capabilities },
        ...(ch.pricing ? { pricing: { ...ch.pricing } } : {}),
      });
    }
    return out;
  }

  private describeAgents(ids: readonly string[]): SharedAgent[] {
    const out: SharedAgent[] = [];
    for (const id of ids) {
      const a = this.o.config.acp.agents.find((x) => x.id === id);
      if (a) out.push({ id: a.id, label: a.label, kind: 'agent' });
      const g = this.o.config.acp.gateways.find((x) => x.id === id);
      if (g) out.push({ id: g.id, label: g.label, kind: 'gateway' });
    }
    return out;
  }

  /** ACP runtimes inbound peers may run here: gateway.bridge.shareAgents. */
  inboundAgents(): SharedAgent[] {
    return this.o.config.acp.enabled ? this.describeAgents(this.o.config.gateway.bridge.shareAgents) : [];
  }

  /** Same rule as outboundShare, for ACP runtimes. */
  outboundAgents(setting: boolean | string[]): SharedAgent[] {
    const whitelist = this.o.config.gateway.bridge.shareAgents;
    if (setting === false || !this.o.config.acp.enabled) return [];
    if (setting === true) return this.describeAgents(whitelist);
    return this.describeAgents(setting.filter((n) => whitelist.includes(n)));
  }

  /** Runtimes that connected peers share with us. */
  peerAgents(): Array<{ peerId: string; peerName: string; agent: SharedAgent }> {
    const out: Array<{ peerId: string; peerName: string; agent: SharedAgent }> = [];
    for (const l of this.links.values()) for (const agent of l.peer.sharedAgents) out.push({ peerId: l.peer.id, peerName: l.name, agent });
    return out;
  }

  /** Runs an /acp/rpc method on a peer (see BridgeLink.rpc). */
  rpc(
    peerId: string,
    method: string,
    params: Record<string, unknown>,
    o: { hops?: string[]; signal?: AbortSignal; onEvent: (method: string, params: Record<string, unknown>) => void },
  ): Promise<RpcOutcome> {
    const link = this.links.get(peerId);
    if (!link) return Promise.reject(new GatewayError('PEER_UNAVAILABLE', `bridge peer ${peerId} is not connected`));
    return link.rpc(method, params, { hops: o.hops ?? [], signal: o.signal, onEvent: o.onEvent });
  }

  /**
   * An internal bridge.* call (a store read or write on the peer, about a transfer): one the peer leaves unanswered
   * for the dead-peer window (deadPeerMisses × heartbeatIntervalMs) fails with PEER_UNAVAILABLE and the peer is
   * told to stop (bridge-cancel), rather than holding its caller, and its entry on the link, while the link lasts.
   */
  private async internalCall(peerId: string, method: string, params: Record<string, unknown>): Promise<RpcOutcome> {
    const limits = this.links.get(peerId)?.limits ?? this.limits;
    const waitMs = limits.heartbeatIntervalMs * limits.deadPeerMisses;
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), waitMs);
    timer.unref();
    try {
      return await this.rpc(peerId, method, params, { signal: ac.signal, onEvent: () => undefined });
    } catch (err) {
      if (ac.signal.aborted) throw new GatewayError('PEER_UNAVAILABLE', `peer ${peerId} did not answer ${method} within ${waitMs} ms`);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** What inbound peers may use: the whitelist. */
  inboundShare(): SharedChannel[] {
    return this.describe(this.o.config.gateway.bridge.shareChannels);
  }

  /** What an outbound bridge shares: true = the whitelist, [names] = those (within the whitelist), false = none. */
  outboundShare(setting: boolean | string[]): SharedChannel[] {
    const whitelist = this.o.config.gateway.bridge.shareChannels;
    if (setting === false) return [];
    if (setting === true) return this.describe(whitelist);
    return this.describe(setting.filter((n) => whitelist.includes(n)));
  }

  /**
   * Whether a newly authenticated link to `peerId` may be registered. One link per peer: a new link in the
   * same direction replaces the old one (the peer restarted). Across directions the link this gateway dialled
   * wins: its peer is authenticated by the URL dialled, an inbound hello's `gatewayId` only by a token any
   * holder of it may present. So an inbound hello never replaces a dialled link, and a dialled link replaces
   * an inbound one claiming its id; two gateways dialling each other keep the first link that opens (the
   * other dialler is refused until it closes). If both open at the same moment, each side has accepted the
   * other's hello while its own waited for its reply, and both keep the link the smaller gateway id dialled.
   * The smaller id replaces the inbound link as above, which closes the larger id's dialled link on the peer's
   * side. The larger id holds its dialled link unopened (`hold`, dialer.ts) when the hello-ok names the inbound
   * link's hello among the peer's own dials still pending (`dialNonces`), and yields if the peer closes it. Only the
   * peer can close that link (its URL authenticates it), so an inbound hello that only repeats a nonce the peer
   * sent elsewhere does not win: when the hold ends without the close, the dialled link replaces it as above.
   */
  admission(peerId: string, role: Role, dialNonces?: readonly string[]): Admission {
    const existing = this.links.get(peerId);
    if (existing && role === 'initiator' && existing.role === 'responder' && this.gatewayId > peerId) {
      const nonce = existing.peer.helloNonce;
      if (nonce !== undefined && dialNonces?.includes(nonce)) return 'hold';
    }
    if (existing) return existing.role === role || role === 'initiator' ? 'replace' : 'duplicate';
    if (role === 'responder') {
      const inbound = [...this.links.values()].filter((l) => l.role === 'responder').length;
      if (inbound >= this.o.config.gateway.bridge.maxPeers) return 'full';
    }
    return 'ok';
  }

  bridgeLinkedTo(peerId: string): string | undefined {
    const l = this.links.get(peerId);
    return l?.role === 'initiator' && l.open ? l.name : undefined;
  }

  dialNonces(): string[] {
    const out: string[] = [];
    for (const d of this.dialers.values()) {
      if (d.pendingNonce !== undefined && out.length < MAX_DIAL_NONCES) out.push(d.pendingNonce);
    }
    return out;
  }

  register(link: BridgeLink): void {
    const old = this.links.get(link.peer.id);
    this.links.set(link.peer.id, link);
    // an inbound peer chooses its name: past PEER_NAME_LABELS names, new ones are counted together
    const label = link.role === 'initiator' ? link.name : this.peerNames.label(link.name);
    this.peerLabels.set(link, label);
    this.linkOpens.set(label, (this.linkOpens.get(label) ?? 0) + 1);
    // a bridge our reload re-dialled opened its new link: the link handed over to it retires (make-before-break)
    this.retirement.opened(link);
    // In the same direction the peer dialled again (its reload re-dialled the bridge, or it restarted) or a second
    // bridge of ours reached it: what runs on the old link finishes there (retire), and the peer is told so only once
    // it has read the new link's handshake. Across directions the dialled link wins at once (admission): the other
    // side waits for that close.
    if (old && old !== link) {
      if (old.role === link.role) this.retirement.retire(old, CLOSE.DUPLICATE_PEER, 'replaced by a newer link', link);
      else old.close(CLOSE.DUPLICATE_PEER, 'replaced by a newer link');
    }
    // A new link starts with a clean slate: failures caused by the old link closing say nothing about it.
    for (const ch of link.peer.sharedChannels) this.router.health.forget(peerCandidateId(link.peer.id, ch.name));
    this.refreshCandidates(link);
    void this.transfers
      ?.reconcile(link.peer.id, link.since.getTime())
      .catch((err) => this.logger.warn('transfer reconcile failed', { peer: link.peer.id, err: String(err) }));
  }

  refreshCandidates(link: BridgeLink): void {
    if (this.links.get(link.peer.id) !== link) return;
    this.router.replaceWhere(
      (c) => c.peer?.id === link.peer.id,
      link.peer.sharedChannels.map((ch) => peerCandidate(link, ch, this.candidateLabels(link, ch.name))),
    );
  }

  /**
   * A peer channel's metric labels, decided once per candidate: a link we dialled, its bridge name and the channel's
   * name; an inbound link, its name within PEER_NAME_LABELS names and the channel (by candidate id) within
   * PEER_CHANNEL_LABELS inbound peers' channels; past either, `(other)`.
   */
  private candidateLabels(link: BridgeLink, channel: string): CandidateLabels {
    const peer = this.peerLabels.get(link) ?? OTHER_LABEL;
    const id = peerCandidateId(link.peer.id, channel);
    if (link.role === 'initiator' || (peer !== OTHER_LABEL && this.peerChannels.label(id) === id)) return { channel, peer, candidate: id };
    return { channel: OTHER_LABEL, peer, candidate: `peer/${OTHER_LABEL}` };
  }

  /** A link's `peer` metric label, decided when it opened (register): its bridge name, or an inbound one's, bounded */
  peerLabel(link: BridgeLink): string {
    return this.peerLabels.get(link) ?? (link.role === 'initiator' ? link.name : OTHER_LABEL);
  }

  /**
   * switchyard_peer_up's rows, read at scrape time: every configured bridge by its name, every inbound link by its
   * metric label (peerLabel), so a peer past PEER_NAME_LABELS adds no series of its own.
   */
  upSeries(): Array<{ peer: string; direction: 'outbound' | 'inbound'; state: string }> {
    const rows: Array<{ peer: string; direction: 'outbound' | 'inbound'; state: string }> = [];
    for (const d of this.dialers.values()) rows.push({ peer: d.target.name, direction: 'outbound', state: d.state });
    for (const l of this.links.values())
      if (l.role === 'responder') rows.push({ peer: this.peerLabel(l), direction: 'inbound', state: l.open ? 'open' : 'closed' });
    return rows;
  }

  linkClosed(link: BridgeLink, code: number, reason: string): void {
    if (this.links.get(link.peer.id) !== link) return;
    this.links.delete(link.peer.id);
    this.router.removeWhere((c) => c.peer?.id === link.peer.id);
    this.logger.info('bridge peer disconnected', { peer: link.peer.id, name: link.name, code, reason });
  }

  private addDialer(t: DialTarget): Dialer {
    const d = new Dialer(t, this);
    this.dialers.set(t.name, d);
    d.start();
    return d;
  }

  /** Runtime `bridge connect`: dial a new peer without a restart. */
  connect(t: { url: string; token: string; name?: string | undefined; share?: boolean | string[] | undefined; ca?: string | undefined }): PeerRow {
    if (!/^wss?:\/\/.+/.test(t.url)) throw new GatewayError('INVALID_REQUEST', 'url: must be a ws:// or wss:// URL', { param: 'url' });
    let host: string;
    try {
      host = new URL(t.url).host;
    } catch {
      throw new GatewayError('INVALID_REQUEST', 'url: not a valid URL', { param: 'url' });
    }
    const name = t.name ?? host.replace(/[^A-Za-z0-9._-]/g, '-');
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name))
      throw new GatewayError('INVALID_REQUEST', 'name: letters, digits, . _ - (max 64), as in config', { param: 'name' });
    if (this.dialers.has(name)) throw new GatewayError('INVALID_REQUEST', `a bridge named "${name}" already exists`, { param: 'name' });
    const share = t.share ?? true;
    if (Array.isArray(share)) {
      const wl = this.o.config.gateway.bridge.shareChannels;
      const outside = share.filter((n) => !wl.includes(n));
      if (outside.length) throw new GatewayError('INVALID_REQUEST', `share: not in gateway.bridge.shareChannels: ${outside.join(', ')}`, { param: 'share' });
    }
    const d = this.addDialer({
      name,
      url: t.url,
      token: t.token,
      shareChannels: share,
      autoReconnect: true,
      reconnectInterval: 1000,
      maxReconnectInterval: 60_000,
      ca: t.ca,
    });
    return this.rowOf(d);
  }

  /**
   * A connected peer by gateway id or bridge/peer name. A configured (or `bridge connect`ed) bridge's name is
   * its own: an inbound peer announcing the same `gatewayName` never stands in for it, connected or not. Any
   * other name must be unambiguous: a name two connected peers share is refused, so that a session is never
   * sent to a peer that merely chose another's name.
   */
  resolvePeer(nameOrId: string): BridgeLink | undefined {
    const byId = this.links.get(nameOrId);
    if (byId) return byId;
    const dialer = this.dialers.get(nameOrId);
    if (dialer) return dialer.link && this.links.get(dialer.link.peer.id) === dialer.link ? dialer.link : undefined;
    const named = [...this.links.values()].filter((l) => l.name === nameOrId || l.peer.name === nameOrId);
    if (named.length > 1)
      throw new GatewayError('INVALID_REQUEST', `${named.length} connected peers are named "${nameOrId}": name one by its gateway id`, { param: 'to' });
    return named[0];
  }

  /**
   * Config reload: the configured bridge `name` is removed or re-dialled with other settings. Its dialler stops, and
   * its open link is retired rather than closed: requests and streams in flight on it finish (up to
   * gateway.shutdownGraceMs), new ones go to the link dialled next. With `handOver` (re-dialled with the same
   * credentials, gateway-reload.ts) the link keeps taking new requests until the new link is open (retiring.ts
   * `handOver`); without it (removed, or a token, `ca` or URL scheme changed) it takes none from now on. True when
   * there was such a bridge.
   */
  release(name: string, reason: string, handOver = false): boolean {
    const d = this.dialers.get(name);
    if (!d) return false;
    this.dialers.delete(name);
    this.retirement.release(name, d.release(), reason, handOver);
    return true;
  }

  /** Runtime `bridge disconnect <name|id>`: true when something was disconnected. */
  disconnect(nameOrId: string): boolean {
    const d = this.dialers.get(nameOrId) ?? [...this.dialers.values()].find((x) => x.link?.peer.id === nameOrId);
    if (d) {
      d.stop();
      this.dialers.delete(d.target.name);
      this.retirement.handedOverTo(d.target.name)?.close(CLOSE.NORMAL, 'disconnected');
      return true;
    }
    const link = this.links.get(nameOrId) ?? [...this.links.values()].find((l) => l.name === nameOrId);
    if (link) {
      link.close(CLOSE.NORMAL, 'disconnected by operator');
      return true;
    }
    return false;
  }

  private rowOf(d: Dialer): PeerRow {
    const l = d.link;
    return {
      name: d.target.name,
      id: l?.peer.id ?? null,
      direction: 'outbound',
      state: d.state,
      since: d.since.toISOString(),
      url: d.target.url,
      sharedWithUs: l ? l.peer.sharedChannels.map((c) => c.name) : [],
      sharedByUs: l ? [...l.ourShare] : this.outboundShare(d.target.shareChannels).map((c) => c.name),
      inflight: { out: l?.inflightOut ?? 0, in: l?.inflightIn ?? 0 },
      backlogBytes: l?.backlog ?? 0,
      pausedStreams: l?.pausedStreams ?? 0,
      unmatchedPongs: l?.traffic.unmatchedPongs ?? 0,
      protocol: l?.peer.version ?? null,
      lastError: l?.lastError ?? d.lastError ?? null,
      capabilities: l?.peer.capabilities ?? null,
      health: l ? this.healthOf(l) : {},
    };
  }

  private healthOf(l: BridgeLink): Record<string, string> {
    const out: Record<string, string> = {};
    for (const ch of l.peer.sharedChannels) {
      const reported = l.load.channels[ch.name]?.healthy === false ? 'unhealthy (peer report)' : undefined;
      out[ch.name] = reported ?? this.router.health.state(peerCandidateId(l.peer.id, ch.name));
    }
    return out;
  }

  /**
   * A row per configured (or `bridge connect`ed) bridge and per inbound link. `retiring`: then also a row per link
   * that is no longer its peer's current one (retiring.ts), after the others, so that a reader looking a peer up by
   * name or id finds its current row first.
   */
  list(o: { retiring?: boolean } = {}): PeerRow[] {
    const rows = [...this.dialers.values()].map((d) => this.rowOf(d));
    for (const l of this.links.values()) if (l.role === 'responder') rows.push(this.linkRow(l, l.open ? 'open' : 'closed'));
    if (!o.retiring) return rows;
    for (const h of this.retirement.held()) {
      // a retiring link is out of the routing table: the health of its peer's channels is the current link's
      const row = this.linkRow(h.link, h.state, h.state === 'retiring' ? {} : undefined);
      rows.push({ ...row, retiring: { reason: h.reason, since: h.since.toISOString() } });
    }
    return rows;
  }

  /**
   * The links a reload or a newer link let go (retiring.ts), counted: how many drain (`retiring`), how many still route
   * until their bridge's new link opens (`handingOver`), and what is in flight on them. Shown beside the current links
   * where those alone are listed (`GET /admin/status`, `/admin/overview`, so `switchyard status` and /ui).
   */
  retiringSummary(): RetiringSummary {
    const out: RetiringSummary = { retiring: 0, handingOver: 0, inflight: { out: 0, in: 0 } };
    for (const h of this.retirement.held()) {
      if (h.state === 'retiring') out.retiring++;
      else out.handingOver++;
      out.inflight.out += h.link.inflightOut;
      out.inflight.in += h.link.inflightIn;
    }
    return out;
  }

  private linkRow(l: BridgeLink, state: string, health = this.healthOf(l)): PeerRow {
    return {
      name: l.name,
      id: l.peer.id,
      direction: l.role === 'initiator' ? 'outbound' : 'inbound',
      state,
      since: l.since.toISOString(),
      // where an outbound link was dialled (redacted where rows are shown, as the dialler's row is): a retiring one's
      // dialler may be gone or dial elsewhere now
      url: l.url,
      sharedWithUs: l.peer.sharedChannels.map((c) => c.name),
      sharedByUs: [...l.ourShare],
      inflight: { out: l.inflightOut, in: l.inflightIn },
      backlogBytes: l.backlog,
      pausedStreams: l.pausedStreams,
      unmatchedPongs: l.traffic.unmatchedPongs,
      protocol: l.peer.version,
      lastError: l.lastError ?? null,
      capabilities: l.peer.capabilities,
      health,
    };
  }

  /** What every connected peer shares with us, and what we share with it. */
  channels(): Array<{ peer: string; id: string; direction: string; theyShare: SharedChannel[]; weShare: SharedChannel[] }> {
    return [...this.links.values()].map((l) => ({
      peer: l.name,
      id: l.peer.id,
      direction: l.role === 'initiator' ? 'outbound' : 'inbound',
      theyShare: l.peer.sharedChannels,
      weShare: this.describe([...l.ourShare]),
    }));
  }

  peers(): BridgeLink[] {
    return [...this.links.values()];
  }

  async stopAccepting(): Promise<void> {
    this.accepting = false;
  }

  /**
   * Graceful stop: no new inbound links, and every peer is told we share nothing (bridge-channels with
   * empty lists), so it routes away now; forwards already sent or racing the announcement are still served.
   * Session transfers offered to us are refused from now on (a session must not move to a gateway going away).
   */
  drain(): void {
    this.accepting = false;
    this.transfers?.stopReceiving();
    for (const l of this.links.values()) l.reshare([], [], false);
  }

  /** no request in flight on any link, either way */
  idle(): boolean {
    for (const l of [...this.links.values(), ...this.retirement.retiringLinks()]) if (l.inflightIn > 0 || l.inflightOut > 0) return false;
    return true;
  }

  async close(): Promise<void> {
    const links = [...this.links.values(), ...this.retirement.retiringLinks()];
    for (const d of this.dialers.values()) d.stop();
    for (const l of links) l.close(CLOSE.NORMAL, 'gateway shutting down');
    this.wss?.close();
    // Let the close frames reach the peers (4000 + reason) before the process may exit; a frozen peer is
    // terminated by the link after 1 s.
    await Promise.race([Promise.all(links.map((l) => l.socketClosed())), new Promise((r) => setTimeout(r, 1500).unref())]);
  }
}
