/**
 * Initiator side: dials one configured (or runtime-added) bridge, performs the handshake, and keeps the
 * link up: on loss it retries after `reconnectInterval`, doubling up to `maxReconnectInterval`, with jitter.
 * It stops retrying on 4401 / 4403 / 4505 (a wrong token, a forbidden or version mismatch will not fix
 * itself) and keeps the reason for `bridge list`.
 */
import WebSocket from 'ws';
import { encodeFrame, parseFrame, wsPayloadLimit } from './codec.js';
import { CLOSE, PROTOCOL_VERSION, RETRY_FORBIDDEN_CLOSE_CODES, SUPPORTED_VERSIONS } from '../wire/bridge-frames.js';
import { newId } from '../util/ids.js';
import type { BridgeMesh } from './mesh.js';
import { BridgeLink } from './link.js';

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

export type DialState = 'connecting' | 'open' | 'backoff' | 'failed' | 'stopped';

export class Dialer {
  state: DialState = 'connecting';
  lastError: string | undefined;
  since = new Date();
  link: BridgeLink | undefined;
  attempts = 0;
  private ws: WebSocket | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly target: DialTarget,
    private readonly mesh: BridgeMesh,
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
    this.setState('connecting');
    this.attempts++;
    const limits = this.mesh.limits;
    const ws = new WebSocket(this.target.url, {
      maxPayload: wsPayloadLimit(limits.maxFrameBytes),
      handshakeTimeout: limits.handshakeTimeoutMs,
      ...(this.target.ca ? { ca: this.target.ca } : {}),
    });
    this.ws = ws;
    let opened = false;
    const hsTimer = setTimeout(() => ws.terminate(), limits.handshakeTimeoutMs);
    hsTimer.unref();
    ws.on('error', (err) => {
      this.lastError = describeDialError(err);
    });
    ws.on('open', () => {
      const share = this.mesh.outboundShare(this.target.shareChannels);
      const agents = this.mesh.outboundAgents(this.target.shareAgents ?? false);
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
          minVersion: SUPPORTED_VERSIONS[0],
          maxVersion: SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.length - 1],
          nonce: newId('n', 12),
        } as never),
      );
      ws.once('message', (data: Buffer, isBinary: boolean) => {
        clearTimeout(hsTimer);
        const parsed = parseFrame(data, { maxBytes: limits.maxFrameBytes, authenticated: false, role: 'initiator', isBinary });
        if (!parsed.ok) {
          this.lastError = `bad handshake reply: ${parsed.error.message}`;
          ws.close(CLOSE.BAD_FRAME, 'bad handshake reply');
          return;
        }
        const f = parsed.frame as unknown as Record<string, any>;
        if (f.type === 'bridge-error') {
          this.lastError = `${f.code}: ${f.message}`;
          return; // the responder closes with the matching code
        }
        if (f.type !== 'bridge-hello-ok') {
          this.lastError = `unexpected ${f.type} during handshake`;
          ws.close(CLOSE.BAD_FRAME, 'expected bridge-hello-ok');
          return;
        }
        if (f.gatewayId === this.mesh.gatewayId) {
          this.lastError = 'SELF_CONNECTION: the URL points at this gateway itself';
          ws.close(CLOSE.NOT_ALLOWED, 'self connection');
          return;
        }
        if (this.mesh.admission(f.gatewayId, 'initiator') === 'duplicate') {
          this.lastError = `DUPLICATE_PEER: already linked to ${f.gatewayId} through its own bridge to us`;
          ws.close(CLOSE.DUPLICATE_PEER, 'duplicate peer');
          return;
        }
        opened = true;
        const link = new BridgeLink({
          ws,
          role: 'initiator',
          name: this.target.name,
          selfId: this.mesh.gatewayId,
          peer: {
            id: f.gatewayId,
            name: String(f.gatewayName || f.gatewayId),
            version: typeof f.version === 'string' ? f.version : PROTOCOL_VERSION,
            capabilities: {
              shareChannels: f.capabilities?.shareChannels ?? (Array.isArray(f.sharedChannels) && f.sharedChannels.length > 0),
              acceptSessions: f.capabilities?.acceptSessions === true,
              loadBalance: f.capabilities?.loadBalance === true,
            },
            sharedChannels: Array.isArray(f.sharedChannels) ? f.sharedChannels : [],
            sharedAgents: Array.isArray(f.sharedAgents) ? f.sharedAgents : [],
          },
          ourShare: new Set(share.map((c) => c.name)),
          ourAgents: new Set(agents.map((a) => a.id)),
          rpcHandler: () => this.mesh.rpcHandler,
          peerGate: () => this.mesh.peerGate,
          transfers: () => this.mesh.transfers,
          limits: { ...limits, heartbeatIntervalMs: f.policy?.heartbeatIntervalMs ?? limits.heartbeatIntervalMs },
          router: this.mesh.router,
          logger: this.mesh.logger.child({ peer: f.gatewayId }),
          onPeerChannels: (l) => this.mesh.refreshCandidates(l),
          onClosed: (l, code, reason) => {
            this.mesh.linkClosed(l, code, reason);
            if (this.link === l) {
              this.link = undefined;
              // the socket may take a moment to finish closing (a frozen peer): never show it as open meanwhile
              if (this.state === 'open') this.setState('backoff');
            }
          },
        });
        this.link = link;
        this.lastError = undefined;
        this.attempts = 0;
        this.setState('open');
        this.mesh.register(link);
        this.mesh.logger.info('bridge peer connected', { peer: f.gatewayId, name: this.target.name, direction: 'outbound' });
      });
    });
    ws.on('close', (code, reason) => {
      clearTimeout(hsTimer);
      if (this.ws !== ws) return;
      if (!opened && !this.lastError) this.lastError = `closed during handshake (${code}${reason.length ? ` ${reason.toString()}` : ''})`;
      else if (opened && code !== CLOSE.NORMAL) this.lastError = `link closed (${code}${reason.length ? ` ${reason.toString()}` : ''})`;
      this.afterClose(code);
    });
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
    const base = Math.min(this.target.maxReconnectInterval, this.target.reconnectInterval * 2 ** Math.max(0, this.attempts - 1));
    const delay = Math.round(base / 2 + (Math.random() * base) / 2);
    this.setState('backoff');
    this.timer = setTimeout(() => this.dial(), delay);
    this.timer.unref();
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
