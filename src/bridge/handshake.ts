/**
 * The bridge handshake as pure decisions: a parsed first frame in, a decision out — no sockets, no clocks —
 * so every rule is testable from values (test/bridge/handshake.test.ts). listener.ts and dialer.ts only carry
 * the decision out (send the refusal and close with its code, or open the link).
 *
 * Responder (a bridge-hello arrived), checked in order: hello type, token (constant time), version overlap,
 * self-connection, the gatewayId's token binding, admission (duplicate peer, maxPeers). Initiator (the reply to our hello): a bridge-error
 * (the responder closes), hello-ok, self-connection, duplicate peer (the mesh's rule, which also settles two
 * gateways dialling each other at the same moment: mesh.ts `admission`).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { tokenMatches } from '../util/secret.js';
import { negotiateVersion } from './codec.js';
import { describeError } from '../wire/errors.js';
import { CLOSE, type BridgeErrorCode, type BridgeFrame, type BridgeHelloFrame, type BridgeHelloOkFrame } from '../wire/bridge-frames.js';
import type { PeerInfo } from './link-types.js';
import type { Admission } from './mesh-context.js';

export type { Admission };

export interface ResponderContext {
  selfId: string;
  allowedTokens: readonly string[];
  supportedVersions: readonly string[];
  maxPeers: number;
  /** the mesh's rule for a newly authenticated peer (one link per peer, maxPeers) */
  admission: (peerId: string) => Admission;
  /** SHA-256 of the token this gatewayId is bound to, if any (see `decideHello`) */
  boundToken: (peerId: string) => Buffer | undefined;
}

/** A refusal: send bridge-error `code` with `message`, then close with `close`. */
export interface HelloRefusal {
  ok: false;
  code: BridgeErrorCode;
  message: string;
  close: number;
}
/** `tokenDigest`: SHA-256 of the accepted token, to bind the gatewayId to (never the token itself). */
export type HelloDecision = { ok: true; hello: BridgeHelloFrame; version: string; peer: PeerInfo; tokenDigest: Buffer } | HelloRefusal;

function refuse(code: BridgeErrorCode, message: string): HelloRefusal {
  return { ok: false, code, message, close: describeError(code).close ?? CLOSE.BAD_FRAME };
}

export function decideHello(frame: BridgeFrame, ctx: ResponderContext): HelloDecision {
  if (frame.type !== 'bridge-hello') return refuse('BAD_HELLO', 'the first frame must be bridge-hello');
  const hello = frame;
  if (!tokenMatches(hello.token, ctx.allowedTokens)) return refuse('AUTH_FAILED', 'bridge token rejected');
  const version = negotiateVersion(hello, ctx.supportedVersions);
  if (!version) {
    return refuse(
      'VERSION_UNSUPPORTED',
      `no common protocol version (we speak ${ctx.supportedVersions.join(', ')}; peer offered ${hello.minVersion ?? hello.version}–${hello.maxVersion ?? hello.version})`,
    );
  }
  if (hello.gatewayId === ctx.selfId) return refuse('SELF_CONNECTION', 'this gateway cannot bridge to itself');
  // A gatewayId belongs to the token it first authenticated with: another token holder can neither replace
  // that peer's link nor take its id over while it is away.
  const tokenDigest = createHash('sha256').update(hello.token).digest();
  const bound = ctx.boundToken(hello.gatewayId);
  if (bound && !timingSafeEqual(bound, tokenDigest)) {
    return refuse('GATEWAY_ID_BOUND', `gateway id ${hello.gatewayId} is bound to another bridge token on this gateway`);
  }
  const admission = ctx.admission(hello.gatewayId);
  if (admission === 'duplicate') return refuse('DUPLICATE_PEER', `gateway ${hello.gatewayId} is already connected (kept the existing link)`);
  if (admission === 'full') return refuse('MAX_PEERS', `this gateway accepts at most ${ctx.maxPeers} peers`);
  return { ok: true, hello, version, peer: peerInfo(hello, version), tokenDigest };
}

export interface InitiatorContext {
  selfId: string;
  /** the versions this gateway offered in its hello (the reply must name one of them) */
  supportedVersions: readonly string[];
  /** `dialNonces`: the hello-ok's, the responder's own hellos waiting for their reply (BridgeHelloOkFrame) */
  admission: (peerId: string, dialNonces: readonly string[] | undefined) => Admission;
}

/**
 * `lastError` is what `bridge list` shows; `close` is absent when the responder closes (it sent bridge-error).
 * `hold`: open the link only if the responder does not close it first (two gateways dialling each other, mesh.ts).
 */
export type HelloOkDecision =
  { ok: true; helloOk: BridgeHelloOkFrame; peer: PeerInfo; hold: boolean } | { ok: false; lastError: string; close?: { code: number; reason: string } };

export function decideHelloOk(frame: BridgeFrame, ctx: InitiatorContext): HelloOkDecision {
  if (frame.type === 'bridge-error') return { ok: false, lastError: `${frame.code}: ${frame.message}` };
  if (frame.type !== 'bridge-hello-ok')
    return { ok: false, lastError: `unexpected ${frame.type} during handshake`, close: { code: CLOSE.BAD_FRAME, reason: 'expected bridge-hello-ok' } };
  if (frame.gatewayId === ctx.selfId) {
    return { ok: false, lastError: 'SELF_CONNECTION: the URL points at this gateway itself', close: { code: CLOSE.NOT_ALLOWED, reason: 'self connection' } };
  }
  // the version is the responder's pick from the range we offered: any other is one this build does not speak
  if (!ctx.supportedVersions.includes(frame.version)) {
    return {
      ok: false,
      lastError: `VERSION_UNSUPPORTED: the peer answered protocol version ${frame.version}, which this gateway did not offer (it speaks ${ctx.supportedVersions.join(', ')})`,
      close: { code: CLOSE.VERSION_UNSUPPORTED, reason: 'version not offered' },
    };
  }
  const admission = ctx.admission(frame.gatewayId, frame.dialNonces);
  if (admission === 'duplicate') {
    return {
      ok: false,
      lastError: `DUPLICATE_PEER: already linked to ${frame.gatewayId} through its own bridge to us`,
      close: { code: CLOSE.DUPLICATE_PEER, reason: 'duplicate peer' },
    };
  }
  return { ok: true, helloOk: frame, peer: peerInfo(frame, frame.version), hold: admission === 'hold' };
}

/** The peer as a hello or hello-ok announces it (the same rule in both directions). */
export function peerInfo(f: BridgeHelloFrame | BridgeHelloOkFrame, version: string): PeerInfo {
  return {
    id: f.gatewayId,
    name: f.gatewayName || f.gatewayId,
    version,
    capabilities: { shareChannels: f.capabilities.shareChannels, acceptSessions: f.capabilities.acceptSessions, loadBalance: f.capabilities.loadBalance },
    sharedChannels: f.sharedChannels ?? [],
    sharedAgents: f.sharedAgents ?? [],
    ...(f.type === 'bridge-hello' && f.nonce !== undefined ? { helloNonce: f.nonce } : {}),
  };
}
