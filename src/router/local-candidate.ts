/** A local channel as a routing candidate: the provider plus the channel's model map and limits. */
import { GatewayError } from '../wire/errors.js';
import type { ChannelConfig } from '../config/schema.js';
import type { ChannelProvider } from '../providers/provider.js';
import type { AttemptOptions, Candidate, CandidateLoad } from './candidate.js';

export function localCandidate(ch: ChannelConfig, provider: ChannelProvider): Candidate {
  const upstreamModel = (m: string) => ch.modelMap[m] ?? m;
  // a local channel's load never changes (the router counts its in-flight requests): one object, read per request
  const load: CandidateLoad = Object.freeze({ inflight: 0, maxConcurrent: ch.maxConcurrent, latencyMsEwma: 0 });
  return {
    id: `local/${ch.name}`,
    channel: ch.name,
    provider: ch.provider,
    peer: undefined,
    labels: { channel: ch.name, peer: '', candidate: `local/${ch.name}` },
    models: ch.models,
    priority: ch.priority,
    weight: ch.weight,
    capabilities: provider.capabilities,
    nativeApi: provider.nativeApi,
    pricing: ch.pricing,
    load: () => load,
    chat: (req, opts: AttemptOptions) => {
      const model = upstreamModel(req.model);
      return provider.chat(model === req.model ? req : { ...req, model }, opts);
    },
    embeddings: (req, opts: AttemptOptions) => {
      if (!provider.embeddings) throw new GatewayError('UNSUPPORTED', `channel ${ch.name} (${ch.provider}) has no embeddings API`, { param: 'model' });
      const model = upstreamModel(req.model);
      return provider.embeddings(model === req.model ? req : { ...req, model }, opts);
    },
  };
}
