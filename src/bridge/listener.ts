/**
 * Responder side of the handshake on /bridge: parse the first frame with the pre-auth limit, let
 * handshake.ts decide, then either one bridge-error with its code and the matching 4xxx close, or
 * bridge-hello-ok and an open link. The token is never logged or echoed.
 */
import type WebSocket from 'ws';
import { encodeFrame, parseFrame, wsPayloadLimit } from './codec.js';
import { raiseMaxPayload } from '../util/ws-internals.js';
import { CLOSE, bridgeErrorFrame, type BridgeErrorCode } from '../wire/bridge-frames.js';
import { MAX_IDS_PER_TOKEN, type MeshContext } from './mesh-context.js';
import { decideHello } from './handshake.js';
import { openLink } from './open-link.js';

/** `authenticated` is called once the peer passed the handshake (its pre-auth slot is given back). */
export function acceptInbound(ws: WebSocket, mesh: MeshContext, remote: string, authenticated: () => void): void {
  const { limits, allowedTokens, maxPeers, versions } = mesh.responderSettings();
  const log = mesh.logger.child({ remote });
  let done = false;
  const refuse = (code: BridgeErrorCode, message: string, close: number) => {
    done = true;
    clearTimeout(timer);
    log.warn('bridge handshake refused', { code });
    if (ws.readyState === 1) ws.send(encodeFrame(bridgeErrorFrame(code, message)));
    ws.close(close, code);
    setTimeout(() => ws.terminate(), 1000).unref();
  };
  const timer = setTimeout(
    () => refuse('HANDSHAKE_TIMEOUT', `no bridge-hello within ${limits.handshakeTimeoutMs} ms`, CLOSE.HANDSHAKE_TIMEOUT),
    limits.handshakeTimeoutMs,
  );
  timer.unref();
  ws.on('error', () => undefined);

  ws.once('message', (data: Buffer, isBinary: boolean) => {
    if (done) return;
    const parsed = parseFrame(data, { maxBytes: limits.preAuthFrameBytes, authenticated: false, isBinary });
    if (!parsed.ok) return refuse(parsed.error.code, parsed.error.message, parsed.error.closeCode ?? CLOSE.BAD_FRAME);
    const d = decideHello(parsed.frame, {
      selfId: mesh.gatewayId,
      allowedTokens,
      supportedVersions: versions,
      maxPeers,
      admission: (peerId) => mesh.admission(peerId, 'responder'),
      boundToken: (peerId) => mesh.boundToken(peerId),
    });
    if (!d.ok) return refuse(d.code, d.message, d.close);
    if (!mesh.bindToken(d.peer.id, d.tokenDigest))
      return refuse('GATEWAY_ID_BOUND', `this bridge token has bound ${MAX_IDS_PER_TOKEN} gateway ids already; no new one is taken`, CLOSE.NOT_ALLOWED);

    done = true;
    clearTimeout(timer);
    authenticated();
    if (!raiseMaxPayload(ws, wsPayloadLimit(limits.maxFrameBytes))) {
      // this ws version has no receiver limit to raise: frames over the pre-auth limit would be cut (1009)
      log.error('cannot raise the WebSocket message limit after the handshake (ws internals changed)', { peer: d.peer.id });
    }
    const share = mesh.inboundShare();
    const agents = mesh.inboundAgents();
    const link = openLink(mesh, {
      ws,
      role: 'responder',
      name: d.peer.name,
      peer: d.peer,
      share,
      agents,
      limits,
      peerMaxFrameBytes: d.hello.maxFrameBytes ?? limits.maxFrameBytes,
    });
    ws.send(
      encodeFrame({
        type: 'bridge-hello-ok',
        gatewayId: mesh.gatewayId,
        gatewayName: mesh.gatewayName,
        sharedChannels: share,
        sharedAgents: agents,
        version: d.version,
        capabilities: mesh.capabilities(share.length > 0 || agents.length > 0),
        policy: { maxFrameBytes: limits.maxFrameBytes, heartbeatIntervalMs: limits.heartbeatIntervalMs },
        ...dialling(mesh.dialNonces()),
      }),
    );
    mesh.register(link);
    log.info('bridge peer connected', { peer: d.peer.id, name: link.name, direction: 'inbound' });
  });
}

/** a hello-ok names our dials still connecting or waiting only when there are some (older peers ignore the key) */
const dialling = (nonces: string[]): { dialNonces?: string[] } => (nonces.length > 0 ? { dialNonces: nonces } : {});
