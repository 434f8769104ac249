/**
 * Initiator side: dials one configured (or runtime-added) bridge, performs the handshake, and keeps the
 * link up: on loss it retries after `reconnectInterval`, doubling up to `maxReconnectInterval`, with jitter
 * (the one schedule, src/util/backoff.ts).
 * It stops retrying on 4401 / 4403 / 4505 (a wrong token, a forbidden or version mismatch will not fix
 * itself) and keeps the reason for `bridge list`.
 */
import type WebSocket from 'ws';
import { withWs, type WsModule } from '../util/lazy-ws.js';
import { encodeFrame, parseFrame, wsPayloadLimit } from './codec.js';
import { CLOSE, PROTOCOL_VERSION, RETRY_FORBIDDEN_CLOSE_CODES, SUPPORTED_VERSIONS } from '../wire/bridge-frames.js';
import { newId } from '../util/ids.js';
import type { MeshContext } from './mesh-context.js';
import { HEARTBEAT_BOUNDS_MS } from '../config/schema.js';
import type { BridgeLink } from './link.js';
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
          maxFrameBytes: limits.maxFrameBytes,
        }),
      );
      ws.once('message', (data: Buffer, isBinary: boolean) => {
        clearTimeout(hsTimer);
        const parsed = parseFrame(data, { maxBytes: limits.maxFrameBytes, authenticated: false, role: 'initiator', isBinary });
        if (!parsed.ok) {
          this.lastError = `bad handshake reply: ${parsed.error.message}`;
          ws.close(CLOSE.BAD_FRAME, 'bad handshake reply');
          return;
        }
        const d = decideHelloOk(parsed.frame, { selfId: this.mesh.gatewayId, admission: (peerId) => this.mesh.admission(peerId, 'initiator') });
        if (!d.ok) {
          this.lastError = d.lastError;
          if (d.close) ws.close(d.close.code, d.close.reason);
          return; // without `close`: the responder closes with the matching code
        }
        opened = true;
        const link = openLink(this.mesh, {
          ws,
          role: 'initiator',
          name: this.target.name,
          peer: d.peer,
          share,
          agents,
          // the responder's policy sets the link's heartbeat, within bounds: 0 would ping in a busy loop, a huge value
          // overflows the timer (Node then fires it every millisecond) or turns dead-peer detection off
          limits: { ...limits, heartbeatIntervalMs: clampHeartbeat(d.helloOk.policy.heartbeatIntervalMs) },
          peerMaxFrameBytes: d.helloOk.policy.maxFrameBytes,
          onClosed: (l) => {
            if (this.link !== l) return;
            this.link = undefined;
            // the socket may take a moment to finish closing (a frozen peer): never show it as open meanwhile
            if (this.state === 'open') this.setState('backoff');
          },
        });
        this.link = link;
        this.lastError = undefined;
        this.attempts = 0;
        this.setState('open');
        this.mesh.register(link);
        this.mesh.logger.info('bridge peer connected', { peer: d.peer.id, name: this.target.name, direction: 'outbound' });
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
    const delay = backoffDelay(this.attempts, {
      initialMs: this.target.reconnectInterval,
      maxMs: this.target.maxReconnectInterval,
      jitter: DEFAULT_BACKOFF.jitter,
    });
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

function clampHeartbeat(ms: number): number {
  return Math.min(HEARTBEAT_BOUNDS_MS.max, Math.max(HEARTBEAT_BOUNDS_MS.min, ms));
}
