/**
 * MeshContext: what the handshake sides (listener.ts, dialer.ts) and open-link.ts may use of the mesh they
 * work for. BridgeMesh implements it; these files depend on this interface only, so nothing in the bridge
 * imports mesh.ts back (mesh.ts builds dialers and accepts inbound sockets: it is the one above them).
 */
import type { BridgeLimits } from '../config/schema.js';
import type { PeerGate } from '../keys/peer-gate.js';
import type { Router } from '../router/router.js';
import type { TransferCoordinator } from '../sessions/transfer.js';
import type { Logger } from '../util/log.js';
import type { SharedAgent, SharedChannel } from '../wire/bridge-frames.js';
import type { BridgeLink } from './link.js';
import type { Role, RpcServeHandler } from './link-types.js';

/**
 * `hold` (an initiator only): the peer's hello-ok proved that both gateways are dialling each other at this moment
 * and the peer's dialled link is the one to keep; wait for the peer to close ours (mesh.ts `admission`).
 */
export type Admission = 'ok' | 'replace' | 'duplicate' | 'full' | 'hold';

export interface MeshCapabilities {
  shareChannels: boolean;
  acceptSessions: boolean;
  loadBalance: boolean;
}

export interface MeshContext {
  readonly gatewayId: string;
  readonly gatewayName: string;
  readonly router: Router;
  readonly logger: Logger;
  /** gateway.bridge.limits (the dialer's frame and handshake limits) */
  readonly limits: BridgeLimits;
  /** read on every peer call, so they are looked up through the context, not copied into the link */
  readonly rpcHandler: RpcServeHandler | undefined;
  readonly peerGate: PeerGate | undefined;
  readonly transfers: TransferCoordinator | undefined;

  /** what the responder side checks a hello against */
  responderSettings(): { limits: BridgeLimits; allowedTokens: string[]; maxPeers: number; versions: readonly string[] };
  /** the protocol versions this gateway speaks now, lowest first (gateway.bridge.minProtocolVersion up) */
  protocolVersions(): readonly string[];
  capabilities(sharing: boolean): MeshCapabilities;
  /**
   * whether a link to `peerId` in this role may open now (maxPeers, one link per peer); `dialNonces`: an
   * initiator's, from the hello-ok (two gateways dialling each other at once, mesh.ts)
   */
  admission(peerId: string, role: Role, dialNonces?: readonly string[]): Admission;
  /** the name of the bridge (our dialler) whose open link to `peerId` is registered, if any */
  bridgeLinkedTo(peerId: string): string | undefined;
  /** the nonces of our dials still connecting or waiting for their hello's reply (what a bridge-hello-ok we send names) */
  dialNonces(): string[];
  /** the gatewayId ↔ token binding (docs/bridge-protocol.md "Peer identity") */
  boundToken(peerId: string): Buffer | undefined;
  bindToken(peerId: string, digest: Buffer): boolean;
  inboundShare(): SharedChannel[];
  inboundAgents(): SharedAgent[];
  outboundShare(setting: boolean | string[]): SharedChannel[];
  outboundAgents(setting: boolean | string[]): SharedAgent[];
  /** adds an opened link to the mesh (its candidates enter the routing table) */
  register(link: BridgeLink): void;
  refreshCandidates(link: BridgeLink): void;
  linkClosed(link: BridgeLink, code: number, reason: string): void;
}

/**
 * How many gateway ids one bridge token may bind (mesh.bindToken): far above a fleet sharing a token, and a
 * bound on the table an authenticated peer could otherwise grow by announcing a new id at every hello.
 */
export const MAX_IDS_PER_TOKEN = 1024;
