/**
 * Responder side of the handshake on /bridge. Checks, in order: frame size and shape (pre-auth limit),
 * token (constant time), version overlap, self-connection, duplicate peer, maxPeers. Any failure: one
 * bridge-error with its code, then the matching 4xxx close. The token is never logged or echoed.
 */
import type WebSocket from 'ws';
import { tokenMatches } from '../util/secret.js';
import { encodeFrame, negotiateVersion, parseFrame } from './codec.js';
import { BRIDGE_ERROR_TABLE, CLOSE, PROTOCOL_VERSION, SUPPORTED_VERSIONS, type BridgeErrorCode } from '../wire/bridge-frames.js';
import type { BridgeMesh } from './mesh.js';
import { BridgeLink } from './link.js';

export function acceptInbound(ws: WebSocket, mesh: BridgeMesh, remote: string): void {
  const { limits, allowedTokens } = mesh.responderSettings();
  const log = mesh.logger.child({ remote });
  let done = false;
  const refuse = (code: BridgeErrorCode, message: string, close: number) => {
    done = true;
    clearTimeout(timer);
    log.warn('bridge handshake refused', { code });
    if (ws.readyState === 1) ws.send(encodeFrame({ type: 'bridge-error', code, message, retryable: BRIDGE_ERROR_TABLE[code].retryable } as never));
    ws.close(close, code);
    setTimeout(() => ws.terminate(), 1000).unref();
  };
  const timer = setTimeout(() => refuse('HANDSHAKE_TIMEOUT', `no bridge-hello within ${limits.handshakeTimeoutMs} ms`, CLOSE.HANDSHAKE_TIMEOUT), limits.handshakeTimeoutMs);
  timer.unref();
  ws.on('error', () => undefined);

  ws.once('message', (data: Buffer, isBinary: boolean) => {
    if (done) return;
    const parsed = parseFrame(data, { maxBytes: limits.preAuthFrameBytes, authenticated: false, isBinary });
    if (!parsed.ok) return refuse(parsed.error.code, parsed.error.message, parsed.error.closeCode ?? CLOSE.BAD_FRAME);
    const hello = parsed.frame as unknown as Record<string, any>;
    if (hello.type !== 'bridge-hello') return refuse('BAD_HELLO', 'the first frame must be bridge-hello', CLOSE.BAD_FRAME);
    if (!tokenMatches(typeof hello.token === 'string' ? hello.token : undefined, allowedTokens)) {
      return refuse('AUTH_FAILED', 'bridge token rejected', CLOSE.AUTH_FAILED);
    }
    const version = negotiateVersion(hello as never, SUPPORTED_VERSIONS);
    if (!version) {
      return refuse('VERSION_UNSUPPORTED', `no common protocol version (we speak ${SUPPORTED_VERSIONS.join(', ')}; peer offered ${hello.minVersion ?? hello.version}–${hello.maxVersion ?? hello.version})`, CLOSE.VERSION_UNSUPPORTED);
    }
    if (hello.gatewayId === mesh.gatewayId) return refuse('SELF_CONNECTION', 'this gateway cannot bridge to itself', CLOSE.NOT_ALLOWED);
    const decision = mesh.admission(hello.gatewayId, 'responder');
    if (decision === 'duplicate') return refuse('DUPLICATE_PEER', `gateway ${hello.gatewayId} is already connected (kept the existing link)`, CLOSE.DUPLICATE_PEER);
    if (decision === 'full') return refuse('MAX_PEERS', `this gateway accepts at most ${mesh.responderSettings().maxPeers} peers`, CLOSE.MAX_PEERS);

    done = true;
    clearTimeout(timer);
    const share = mesh.inboundShare();
    const agents = mesh.inboundAgents();
    const link = new BridgeLink({
      ws,
      role: 'responder',
      name: String(hello.gatewayName || hello.gatewayId),
      selfId: mesh.gatewayId,
      peer: {
        id: hello.gatewayId,
        name: String(hello.gatewayName || hello.gatewayId),
        version,
        capabilities: {
          shareChannels: hello.capabilities?.shareChannels === true,
          acceptSessions: hello.capabilities?.acceptSessions === true,
          loadBalance: hello.capabilities?.loadBalance === true,
        },
        sharedChannels: Array.isArray(hello.sharedChannels) ? hello.sharedChannels : [],
        sharedAgents: Array.isArray(hello.sharedAgents) ? hello.sharedAgents : [],
      },
      ourShare: new Set(share.map((c) => c.name)),
      ourAgents: new Set(agents.map((a) => a.id)),
      rpcHandler: () => mesh.rpcHandler,
      peerGate: () => mesh.peerGate,
      transfers: () => mesh.transfers,
      limits,
      router: mesh.router,
      logger: mesh.logger.child({ peer: hello.gatewayId }),
      onPeerChannels: (l) => mesh.refreshCandidates(l),
      onClosed: (l, code, reason) => mesh.linkClosed(l, code, reason),
    });
    ws.send(
      encodeFrame({
        type: 'bridge-hello-ok',
        gatewayId: mesh.gatewayId,
        gatewayName: mesh.gatewayName,
        sharedChannels: share,
        sharedAgents: agents,
        version: version ?? PROTOCOL_VERSION,
        capabilities: mesh.capabilities(share.length > 0 || agents.length > 0),
        policy: { maxFrameBytes: limits.maxFrameBytes, heartbeatIntervalMs: limits.heartbeatIntervalMs },
      } as never),
    );
    mesh.register(link);
    log.info('bridge peer connected', { peer: hello.gatewayId, name: link.name, direction: 'inbound' });
  });
}
