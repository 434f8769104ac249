/**
 * The one place a link is built after a successful handshake, for both directions: the mesh's shared
 * parts (router, ACP handler, transfers, candidate refresh) plus what the handshake settled.
 */
import type WebSocket from 'ws';
import { MIN_FRAME_BYTES, type BridgeLimits } from '../config/schema.js';
import type { SharedAgent, SharedChannel } from '../wire/bridge-frames.js';
import type { MeshContext } from './mesh-context.js';
import { BridgeLink } from './link.js';
import type { PeerInfo, Role } from './link-types.js';

export interface OpenLinkOptions {
  ws: WebSocket;
  role: Role;
  name: string;
  /** the URL an outbound link was dialled with (LinkOptions.url) */
  url?: string | undefined;
  peer: PeerInfo;
  /** what we share with this peer */
  share: readonly SharedChannel[];
  agents: readonly SharedAgent[];
  limits: BridgeLimits;
  /** the largest frame the peer takes (LinkOptions.peerMaxFrameBytes) */
  peerMaxFrameBytes: number;
  /** after the mesh has dropped the link */
  onClosed?: (link: BridgeLink) => void;
}

export function openLink(mesh: MeshContext, o: OpenLinkOptions): BridgeLink {
  return new BridgeLink({
    ws: o.ws,
    role: o.role,
    name: o.name,
    url: o.url,
    selfId: mesh.gatewayId,
    peer: o.peer,
    ourShare: new Set(o.share.map((c) => c.name)),
    ourAgents: new Set(o.agents.map((a) => a.id)),
    rpcHandler: () => mesh.rpcHandler,
    transfers: () => mesh.transfers,
    peerGate: () => mesh.peerGate,
    limits: o.limits,
    // a peer announcing less than any gateway can be configured with would have every frame refused, heartbeats too
    peerMaxFrameBytes: Math.max(MIN_FRAME_BYTES, o.peerMaxFrameBytes),
    router: mesh.router,
    logger: mesh.logger.child({ peer: o.peer.id }),
    onPeerChannels: (l) => mesh.refreshCandidates(l),
    onClosed: (l, code, reason) => {
      mesh.linkClosed(l, code, reason);
      o.onClosed?.(l);
    },
  });
}
