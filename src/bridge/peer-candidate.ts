/** A channel a bridge peer shares with us, as a routing candidate: requests cross the link. */
import type { Candidate, CandidateLabels } from '../router/candidate.js';
import type { ChannelCapabilities, SharedChannel } from '../wire/bridge-frames.js';
import type { BridgeLink } from './link.js';

const DEFAULT_PEER_CAPACITY = 64;

export function peerCandidateId(peerId: string, channel: string): string {
  return `peer/${peerId}/${channel}`;
}

/**
 * What a peer's channel can do: what the peer announced. A peer that announces nothing (the seed protocol and
 * builds before capabilities) gets the fallback documented in docs/bridge-protocol.md: everything but
 * embeddings for `anthropic` (it has no embeddings API) and native Responses, and `mock` is synthetic.
 */
export function legacyCapabilities(provider: string): ChannelCapabilities {
  return { embeddings: provider !== 'anthropic', tools: true, vision: true, nativeResponses: false, synthetic: provider === 'mock' };
}

/** `labels`: the candidate's metric labels, bounded by the mesh (BridgeMesh.candidateLabels) */
export function peerCandidate(link: BridgeLink, ch: SharedChannel, labels: CandidateLabels): Candidate {
  return {
    id: peerCandidateId(link.peer.id, ch.name),
    channel: ch.name,
    provider: ch.provider,
    peer: { id: link.peer.id, name: link.name, loadBalance: link.peer.capabilities.loadBalance },
    labels,
    models: ch.models,
    priority: 0,
    weight: 1,
    capabilities: ch.capabilities ?? legacyCapabilities(ch.provider),
    pricing: ch.pricing,
    load: () => {
      const l = link.load.channels[ch.name];
      return {
        inflight: l?.inflight ?? 0,
        maxConcurrent: l?.maxConcurrent ?? DEFAULT_PEER_CAPACITY,
        latencyMsEwma: l?.latencyMsEwma ?? 0,
        healthy: l?.healthy ?? true,
      };
    },
    chat: (req, opts) => link.forwardChat(ch.name, req, opts),
    embeddings: (req, opts) => link.forwardEmbeddings(ch.name, req, opts),
  };
}
