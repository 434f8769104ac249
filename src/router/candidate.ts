/**
 * A candidate is anything that can serve a model: a local channel, or a channel a bridge peer shares with
 * us. The router treats both the same; only `peer` tells them apart (for display, preferLocal and
 * loadBalance).
 */
import type { CancelSignal } from '../util/abort.js';
import type { ChatRequest, EmbeddingsRequest, EmbeddingsResponse } from '../wire/openai.js';
import type { CallOptions, ChatOutcome, ProviderCapabilities as ChannelCapabilities } from '../providers/provider.js';
import type { ChannelPricing } from '../wire/bridge-frames.js';
import type { NativeApi } from '../wire/native.js';
import type { RequestCancel } from './cancel.js';

/** What a caller gives the router for one request. */
export interface RouteOptions extends Omit<CallOptions, 'signal'> {
  /**
   * How the request is cancelled (client gone, deadline): a signal the router links into each attempt (an
   * AbortSignal, or a light `Abort`: src/util/abort.ts), or a RequestCancel (cheaper: no listener of its own).
   * At least one should be given; neither means the request can only end by itself or by the router's own
   * timeouts.
   */
  signal?: CancelSignal | undefined;
  cancel?: RequestCancel | undefined;
  /** gateway ids this request already passed (bridge loop prevention); our own id is appended by the bridge */
  hops: string[];
  /** absolute deadline, ms since epoch */
  deadline: number;
  /** conversation affinity key (X-Session-Id) */
  sessionId?: string | undefined;
  /** W3C traceparent of the span this call runs under (tracing on only); a peer hop sends it in the frame */
  trace?: string | undefined;
}

/** What a candidate receives for one attempt: the route options with the attempt's own signal. */
export interface AttemptOptions extends Omit<RouteOptions, 'signal' | 'cancel'> {
  signal: CancelSignal;
}

export interface PeerRef {
  /** the peer gateway's id */
  id: string;
  /** the peer's name (config name of the bridge, or its announced gatewayName) */
  name: string;
  /** the peer announced capabilities.loadBalance */
  loadBalance: boolean;
}

/**
 * The candidate's metric labels (docs/operations.md, Metrics), fixed when it is made so a request only reads them.
 * A local channel: its own name, `peer` "". A peer's channel: bounded (src/util/label-budget.ts), since an inbound
 * peer chooses its name and the channel names it announces.
 */
export interface CandidateLabels {
  readonly channel: string;
  readonly peer: string;
  /** `local/<channel>`, `peer/<peer gateway id>/<channel>`, or `peer/(other)` for a peer channel past the bound */
  readonly candidate: string;
}

export interface CandidateLoad {
  inflight: number;
  maxConcurrent: number;
  /** EWMA of time to first byte / full answer, ms; 0 = unknown */
  latencyMsEwma: number;
  /** false when the serving side reports the channel unhealthy (peers' bridge-load) */
  healthy?: boolean;
}

export interface Candidate {
  /** unique in the table: `local/<channel>` or `peer/<gatewayId>/<channel>` */
  readonly id: string;
  /** channel name on the gateway that serves it */
  readonly channel: string;
  /** provider kind of that channel */
  readonly provider: string;
  readonly peer: PeerRef | undefined;
  readonly labels: CandidateLabels;
  /** public model names this candidate serves */
  readonly models: readonly string[];
  readonly priority: number;
  readonly weight: number;
  /** what the channel can do: its provider's declaration (local) or the peer's announcement */
  readonly capabilities: ChannelCapabilities;
  /** the client API a local channel takes natively (native pass-through never crosses the bridge) */
  readonly nativeApi?: NativeApi | undefined;
  /** prices per million tokens: `channels[].pricing` (local) or the peer's announcement; none = cost 0 */
  readonly pricing?: ChannelPricing | undefined;
  /** current load; for peers, from their bridge-load reports plus our own in-flight count */
  load(): CandidateLoad;
  /** `req.model` is the public model name; the candidate maps it */
  chat(req: ChatRequest, opts: AttemptOptions): Promise<ChatOutcome>;
  embeddings(req: EmbeddingsRequest, opts: AttemptOptions): Promise<EmbeddingsResponse>;
}
