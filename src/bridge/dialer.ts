/**
 * Initiator side: dials one configured (or runtime-added) bridge, performs the handshake, and keeps the
 * link up: on loss it retries after `reconnectInterval`, doubling up to `maxReconnectInterval`, with jitter
 * (the one schedule, src/util/backoff.ts).
 * It stops retrying on 4401 / 4403 / 4505 (a wrong token, a forbidden or version mismatch will not fix
 * itself) and keeps the reason for `bridge list`.
 */
import type WebSocket from 'ws';
import { withWs, type WsModule } from '../util/lazy-ws.js';
import { dialUrl } from '../util/dial-url.js';
import { encodeFrame, parseFrame, wsPayloadLimit } from './codec.js';
import { CLOSE, PROTOCOL_VERSION, RETRY_FORBIDDEN_CLOSE_CODES, type BridgePolicy, type SharedAgent, type SharedChannel } from '../wire/bridge-frames.js';
import { newId } from '../util/ids.js';
import type { MeshContext } from './mesh-context.js';
import { HEARTBEAT_BOUNDS_MS } from '../config/schema.js';
import type { BridgeLink } from './link.js';
import type { PeerInfo } from './link-types.js';
import { decideHelloOk } from './handshake.js';
import { openLink } from './open-link.js';
import { backoffDelay, DEFAULT_BACKOFF } from '../util/backoff.js';

export interface DialTarget {
  name: string;
  url: string;
  token: string;
  shareChannels: boolean | string[];
  shareAgents?: boolean | string[] | undefined;
  autoReconnect: boolean;
  reconnectInterval: number;
  maxReconnectInterval: number;
  ca?: string | undefined;
}

/** frames a held dial keeps before it opens anyway (`hold` in dialWith) */
const HOLD_MAX_FRAMES = 16;

export type DialState = 'connecting' | 'open' | 'backoff' | 'failed' | 'stopped';

export class Dialer {
  state: DialState = 'connecting';
  lastError: string | undefined;
  since = new Date();
  link: BridgeLink | undefined;
  attempts = 0;
  /**
   * the nonce of this dialler's bridge-hello from the moment it dials until the hello's reply (MeshContext.dialNonces):
   * also while it connects, so that a peer whose own hello arrives first is told this one is coming
   */
  pendingNonce: string | undefined;
  /** the gateway id this bridge last reached (its hello-ok's): what a redial checks another bridge of ours for */
  peerId: string | undefined;
  private ws: WebSocket | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly target: DialTarget,
    private readonly mesh: MeshContext,
  ) {}

  start(): void {
    this.dial();
  }

  private setState(s: DialState): void {
    this.state = s;
    this.since = new Date();
  }

  private dial(): void {
    if (this.state === 'stopped') return;
    // ws is loaded at the first dial (src/util/lazy-ws.ts); synchronous from then on
    withWs(
      (m) => this.dialWith(m.WebSocket),
      (err) => {
        this.lastError = `cannot load ws: ${String(err)}`;
        this.setState('failed');
      },
    );
  }

  private dialWith(WebSocket: WsModule['WebSocket']): void {
    if (this.state === 'stopped') return;
    // Another bridge of ours is linked to the gateway this one reached last (two bridges to one gateway, or two
    // gateways announcing one id): a hello would make the peer replace that link by this one (same direction), and
    // that bridge would then redial and replace this one, for ever, failing the requests on each. Wait instead.
    const other = this.peerId === undefined ? undefined : this.mesh.bridgeLinkedTo(this.peerId);
    if (other !== undefined && other !== this.target.name) {
      this.lastError = `DUPLICATE_PEER: already linked to ${this.peerId} through bridge ${other}; this bridge dials again once that link closes`;
      this.setState('backoff');
      this.timer = setTimeout(() => this.dial(), this.target.reconnectInterval);
      this.timer.unref();
      return;
    }
    const url = dialUrl(this.target.url);
    if (!url) {
      // refused before it came here (a config's by its schema, a run-time one by `connect`): never dialled, never thrown
      this.lastError = 'the bridge URL does not parse as a URL';
      this.setState('failed');
      return;
    }
    this.setState('connecting');
    this.attempts++;
    const limits = this.mesh.limits;
    const ws = new WebSocket(url, {
      maxPayload: wsPayloadLimit(limits.maxFrameBytes),
      handshakeTimeout: limits.handshakeTimeoutMs,
      ...(this.target.ca ? { ca: this.target.ca } : {}),
    });
    this.ws = ws;
    let opened = false;
    const nonce = newId('n', 12);
    this.pendingNonce = nonce;
    /** what `bridge list` shows if the peer closes a held link (its own dialled link won) */
    let held: string | undefined;
    const hsTimer = setTimeout(() => ws.terminate(), limits.handshakeTimeoutMs);
    hsTimer.unref();
    ws.on('error', (err) => {
      this.lastError = describeDialError(err);
    });
    ws.on('open', () => {
      const share = this.mesh.outboundShare(this.target.shareChannels);
      const agents = this.mesh.outboundAgents(this.target.shareAgents ?? false);
      const versions = this.mesh.protocolVersions();
      ws.send(
        encodeFrame({
          type: 'bridge-hello',
          gatewayId: this.mesh.gatewayId,
          gatewayName: this.mesh.gatewayName,
          version: PROTOCOL_VERSION,
          token: this.target.token,
          capabilities: this.mesh.capabilities(share.length > 0 || agents.length > 0),
          sharedChannels: share,
          sharedAgents: agents,
          minVersion: versions[0],
          maxVersion: versions[versions.length - 1],
          nonce,
          maxFrameBytes: limits.maxFrameBytes,
        }),
      );
      ws.once('message', (data: Buffer, isBinary: boolean) => {
        clearTimeout(hsTimer);
        if (this.pendingNonce === nonce) this.pendingNonce = undefined;
        const parsed = parseFrame(data, { maxBytes: limits.maxFrameBytes, authenticated: false, role: 'initiator', isBinary });
        if (!parsed.ok) {
          this.lastError = `bad handshake reply: ${parsed.error.message}`;
          ws.close(CLOSE.BAD_FRAME, 'bad handshake reply');
          return;
        }
        const d = decideHelloOk(parsed.frame, {
          selfId: this.mesh.gatewayId,
          supportedVersions: versions,
          admission: (peerId, dialNonces) => this.mesh.admission(peerId, 'initiator', dialNonces),
        });
        if (!d.ok) {
          this.lastError = d.lastError;
          if (d.close) ws.close(d.close.code, d.close.reason);
          return; // without `close`: the responder closes with the matching code
        }
        const open = () => {
          opened = true;
          this.openOutbound(ws, d.peer, d.helloOk.policy, share, agents);
        };
        if (!d.hold) return open();
        // Both gateways are dialling each other and the peer's dialled link is the one to keep (mesh.ts
        // `admission`): the peer closes this one once its own hello-ok arrives, about one round trip from now.
        // Until then the link stays unopened, keeping what the peer sends; if the peer does not close it within
        // the handshake timeout, it opens and replaces the inbound link as any dialled link does.
        held = `DUPLICATE_PEER: already linked to ${d.peer.id} through its own bridge to us (both dialled at once; kept the link ${d.peer.id} dialled)`;
        const early: Array<[Buffer, boolean]> = [];
        const end = () => {
          clearTimeout(hold);
          ws.off('message', keep);
          if (this.ws !== ws || this.state === 'stopped' || ws.readyState !== ws.OPEN) return;
          held = undefined;
          open();
          for (const [b, bin] of early) ws.emit('message', b, bin);
        };
        // a peer that goes on sending (more than a heartbeat and a load report) is using the link: stop holding it
        const keep = (b: Buffer, bin: boolean) => (early.push([b, bin]) > HOLD_MAX_FRAMES ? end() : undefined);
        ws.on('message', keep);
        const hold = setTimeout(end, limits.handshakeTimeoutMs);
        hold.unref();
        ws.once('close', () => clearTimeout(hold));
      });
    });
    ws.on('close', (code, reason) => {
      clearTimeout(hsTimer);
      if (this.pendingNonce === nonce) this.pendingNonce = undefined;
      if (this.ws !== ws) return;
      if (held !== undefined && code === CLOSE.DUPLICATE_PEER) this.lastError = held;
      else if (!opened && !this.lastError) this.lastError = `closed during handshake (${code}${reason.length ? ` ${reason.toString()}` : ''})`;
      else if (opened && code !== CLOSE.NORMAL) this.lastError = `link closed (${code}${reason.length ? ` ${reason.toString()}` : ''})`;
      this.afterClose(code);
    });
  }

  /** The link of a dial whose hello-ok was accepted: into the mesh (its channels become routing candidates). */
  private openOutbound(ws: WebSocket, peer: PeerInfo, policy: BridgePolicy, share: SharedChannel[], agents: SharedAgent[]): void {
    const limits = this.mesh.limits;
    const link = openLink(this.mesh, {
      ws,
      role: 'initiator',
      name: this.target.name,
      url: this.target.url,
      peer,
      share,
      agents,
      // the responder's policy sets the link's heartbeat, within bounds: 0 would ping in a busy loop, a huge value
      // overflows the timer (Node then fires it every millisecond) or turns dead-peer detection off
      limits: { ...limits, heartbeatIntervalMs: clampHeartbeat(policy.heartbeatIntervalMs) },
      peerMaxFrameBytes: policy.maxFrameBytes,
      onClosed: (l) => {
        if (this.link !== l) return;
        this.link = undefined;
        // the socket may take a moment to finish closing (a frozen peer): never show it as open meanwhile
        if (this.state === 'open') this.setState('backoff');
      },
    });
    this.link = link;
    this.peerId = peer.id;
    this.lastError = undefined;
    this.attempts = 0;
    this.setState('open');
    this.mesh.register(link);
    this.mesh.logger.info('bridge peer connected', { peer: peer.id, name: this.target.name, direction: 'outbound' });
  }

  private afterClose(code: number): void {
    if (this.state === 'stopped') return;
    if (RETRY_FORBIDDEN_CLOSE_CODES.includes(code)) {
      this.setState('failed');
      this.mesh.logger.warn('bridge not retrying', { name: this.target.name, code, reason: this.lastError });
      return;
    }
    if (!this.target.autoReconnect) {
      this.setState('failed');
      return;
    }
    const delay = backoffDelay(this.attempts, {
      initialMs: this.target.reconnectInterval,
      maxMs: this.target.maxReconnectInterval,
      jitter: DEFAULT_BACKOFF.jitter,
    });
    this.setState('backoff');
    this.timer = setTimeout(() => this.dial(), delay);
    this.timer.unref();
  }

  /**
   * Stops dialling and hands over its open link, if any, without closing it (a config reload that re-dials or
   * removes the bridge lets what runs on the link finish: mesh.ts `release`); a dial still under way is cut.
   */
  release(): BridgeLink | undefined {
    const link = this.link;
    this.link = undefined;
    this.setState('stopped');
    clearTimeout(this.timer);
    if (!link) this.ws?.terminate();
    return link;
  }

  stop(): void {
    this.setState('stopped');
    clearTimeout(this.timer);
    this.link?.close(CLOSE.NORMAL, 'disconnected');
    this.ws?.terminate();
  }
}

function describeDialError(err: Error & { code?: string }): string {
  const code = err.code ?? '';
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code) || /certificate/i.test(err.message)) {
    return `TLS: the peer's certificate is not trusted (${code || err.message}); set "ca" on this bridge to trust it`;
  }
  if (code === 'ECONNREFUSED') return 'connection refused (is the peer gateway running?)';
  if (code === 'ENOTFOUND') return 'peer host not found';
  return err.message.replace(/token=[^&\s]+/g, 'token=***');
}

function clampHeartbeat(ms: number): number {
  return Math.min(HEARTBEAT_BOUNDS_MS.max, Math.max(HEARTBEAT_BOUNDS_MS.min, ms));
}
