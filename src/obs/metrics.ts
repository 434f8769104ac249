/**
 * Prometheus metrics for one gateway (prom-client, one Registry per gateway so several gateways in one
 * process never share series). Every series is listed in docs/operations.md.
 *
 * Two kinds of series:
 * - counters and histograms fed by thin hooks (request meter, router observer, link and turn hooks). The four
 *   per-request series (requests, durations, time to first token, tokens) are plain cells (hot-metrics.ts):
 *   a request costs a Map lookup and a few additions, not prom-client's label validation and hash per call;
 * - gauges read at scrape time from the state the gateway already keeps (router table, health, links,
 *   store), so they cost nothing between scrapes.
 *
 * Label values are bounded: route names from a fixed list, model/channel/peer names from config or a peer's
 * announcement, bounded where a peer chooses them (the candidates' and links' labels, src/bridge/mesh.ts, which
 * the scrape-time gauges use too; the model names of peer-served requests, modelLabel), agent ids from
 * `acp.agents`, error codes from the error table. Never a request id or user text.
 */
import { createRequire } from 'node:module';
import type { Counter as PromCounter, Gauge as PromGauge, LabelValues, Registry as PromRegistry } from 'prom-client';
import type { Router } from '../router/router.js';
import type { Candidate, CandidateLabels } from '../router/candidate.js';
import { LabelBudget } from '../util/label-budget.js';
import type { BridgeMesh } from '../bridge/mesh.js';
import type { SessionStore } from '../sessions/store.js';
import type { HealthState } from '../router/health.js';
import { HotCounter, HotHistogram } from './hot-metrics.js';
import type { WarmPoolStatus } from '../acp/runtimes/agent/warm-pool.js';
import type { TaskRegistryHeld } from '../acp/task-registry.js';

/**
 * prom-client's three classes this file uses, required from their own files: its index also loads the default
 * process metrics (which load `@opentelemetry/api`, 44 modules, for exemplars), the Pushgateway (https) and the
 * cluster aggregator, none of which a gateway uses. The idle gateway holds ~1 MB less for it (docs/benchmarks.md);
 * the classes and the exposition are the same. prom-client has no `exports` map, so its files are public paths.
 */
const promFile = createRequire(import.meta.url);
const Counter = promFile('prom-client/lib/counter') as typeof PromCounter;
const Gauge = promFile('prom-client/lib/gauge') as typeof PromGauge;
const Registry = promFile('prom-client/lib/registry') as typeof PromRegistry;
type Counter<T extends string> = PromCounter<T>;
type Gauge<T extends string> = PromGauge<T>;
type Registry = PromRegistry;

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export interface MetricsSources {
  router: Router;
  mesh: BridgeMesh;
  store?: SessionStore | undefined;
  /** the process started serving (for uptime) */
  startedAt: number;
}

/** What the agent-task streams hold for their clients now, and how many were cut for a slow client. */
export interface AcpStreamStats {
  total: number;
  max: number;
  cut: { sse: number; ws: number };
}

/** The most model names requests served through peers are labelled by (a peer announces its models freely). */
export const PEER_MODEL_LABELS = 256;

export class GatewayMetrics {
  readonly registry = new Registry();
  /** the model names of requests served through a peer, as `model` labels (PEER_MODEL_LABELS) */
  private readonly peerModels = new LabelBudget(PEER_MODEL_LABELS);
  private readonly requests: HotCounter;
  private readonly duration: HotHistogram;
  private readonly ttft: HotHistogram;
  private readonly tokens: HotCounter;
  private readonly attemptFailures: Counter<'channel' | 'peer' | 'reason'>;
  private readonly failovers: Counter<'reason'>;
  private readonly ejections: Counter<'candidate'>;
  private readonly probes: Counter<'candidate' | 'outcome'>;
  private readonly turns: Counter<'runtime' | 'outcome'>;
  private readonly transfers: Counter<'direction' | 'outcome'>;
  /** requests being served now, and those of them still waiting for an upstream's first byte */
  inflight = 0;
  waiting = 0;
  /** the ACP warm agent pools, read at scrape time (set by the composition root once the ACP core exists) */
  warmPools: () => readonly WarmPoolStatus[] = () => [];
  /** the /acp/rpc SSE and /acp WebSocket streams (src/http/acp/streams.ts), read at scrape time; set likewise */
  acpStreams: () => AcpStreamStats = () => ({ total: 0, max: 0, cut: { sse: 0, ws: 0 } });
  /** the task snapshots `xworkmate.tasks.get` reads from memory (src/acp/task-registry.ts), read at scrape time; set likewise */
  acpTasks: () => TaskRegistryHeld = () => ({ finished: 0, bytes: 0, maxBytes: 0, running: 0 });

  constructor(private readonly src: MetricsSources) {
    const r = [this.registry];
    // the per-request series: plain cells on the hot path, prom-client's exposition (hot-metrics.ts)
    this.requests = new HotCounter('switchyard_requests_total', 'HTTP requests served, by route, model, channel, peer and status', [
      'route',
      'model',
      'channel',
      'peer',
      'status',
    ]).register(this.registry);
    this.duration = new HotHistogram(
      'switchyard_request_duration_seconds',
      'request latency until the response ended (streams: until the last byte)',
      ['route', 'model', 'channel', 'peer'],
      LATENCY_BUCKETS,
    ).register(this.registry);
    this.ttft = new HotHistogram(
      'switchyard_time_to_first_token_seconds',
      'time from request to the first upstream byte (stream: first chunk; otherwise the full answer)',
      ['model', 'channel', 'peer'],
      LATENCY_BUCKETS,
    ).register(this.registry);
    this.tokens = new HotCounter('switchyard_tokens_total', 'tokens from upstream usage reports, direction in (prompt) or out (completion)', [
      'model',
      'channel',
      'peer',
      'direction',
    ]).register(this.registry);
    this.attemptFailures = new Counter({
      name: 'switchyard_attempt_failures_total',
      help: 'routing attempts that failed, by candidate and error code',
      labelNames: ['channel', 'peer', 'reason'],
      registers: r,
    });
    this.failovers = new Counter({
      name: 'switchyard_failovers_total',
      help: 'requests retried on another candidate after a failure, by the error code that caused it',
      labelNames: ['reason'],
      registers: r,
    });
    this.ejections = new Counter({
      name: 'switchyard_health_ejections_total',
      help: 'candidates ejected by outlier detection',
      labelNames: ['candidate'],
      registers: r,
    });
    this.probes = new Counter({
      name: 'switchyard_health_probes_total',
      help: 'half-open probes, by outcome (ok: back in service, failed: ejected again)',
      labelNames: ['candidate', 'outcome'],
      registers: r,
    });
    this.turns = new Counter({
      name: 'switchyard_acp_turns_total',
      help: 'ACP turns finished, by runtime kind and outcome',
      labelNames: ['runtime', 'outcome'],
      registers: r,
    });
    this.transfers = new Counter({
      name: 'switchyard_session_transfers_total',
      help: 'session transfers, by direction (out/in) and outcome',
      labelNames: ['direction', 'outcome'],
      registers: r,
    });
    this.scrapeGauges(r);
  }

  // ---- hot-path hooks -------------------------------------------------------------------------------------

  /**
   * The `model` label of a request routed to `c`: a local channel's model is from our config, as it is; a peer's is
   * one of the names it announced, so within PEER_MODEL_LABELS names (first come), then `(other)`. A name keeps its
   * label for the process's life. Costs a peer-routed request one Set lookup.
   */
  modelLabel(model: string, c: Candidate): string {
    return c.peer === undefined ? model : this.peerModels.label(model);
  }

  requestEnded(route: string, model: string, channel: string, peer: string, status: number, seconds: number): void {
    const k = `${route}\u0000${model}\u0000${channel}\u0000${peer}`;
    this.requests.cell(`${k}\u0000${status}`, () => [route, model, channel, peer, String(status)]).value++;
    this.duration.observe(
      this.duration.cell(k, () => [route, model, channel, peer]),
      seconds,
    );
  }

  firstByte(model: string, channel: string, peer: string, seconds: number): void {
    this.ttft.observe(
      this.ttft.cell(`${model}\u0000${channel}\u0000${peer}`, () => [model, channel, peer]),
      seconds,
    );
  }

  usage(model: string, channel: string, peer: string, tokensIn: number, tokensOut: number): void {
    const k = `${model}\u0000${channel}\u0000${peer}`;
    if (tokensIn > 0) this.tokens.cell(`${k}\u0000in`, () => [model, channel, peer, 'in']).value += tokensIn;
    if (tokensOut > 0) this.tokens.cell(`${k}\u0000out`, () => [model, channel, peer, 'out']).value += tokensOut;
  }

  attemptFailed(channel: string, peer: string, code: string, willRetry: boolean): void {
    this.attemptFailures.inc({ channel, peer, reason: code });
    if (willRetry) this.failovers.inc({ reason: code });
  }

  healthChanged(candidate: string, from: HealthState, to: HealthState): void {
    if (to === 'ejected') this.ejections.inc({ candidate });
    if (from === 'probing') this.probes.inc({ candidate, outcome: to === 'healthy' ? 'ok' : 'failed' });
  }

  turnEnded(runtime: string, outcome: string): void {
    this.turns.inc({ runtime, outcome });
  }

  transferEnded(direction: 'out' | 'in', outcome: string): void {
    this.transfers.inc({ direction, outcome });
  }

  /** The exposition text (Prometheus text format 0.0.4). */
  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  // ---- read at scrape time --------------------------------------------------------------------------------

  private scrapeGauges(registers: Registry[]): void {
    const { router, mesh, store, startedAt } = this.src;
    const inflight = () => this.inflight;
    const waiting = () => this.waiting;
    new Gauge({
      name: 'switchyard_uptime_seconds',
      help: 'seconds since the gateway started',
      registers,
      collect() {
        this.set((Date.now() - startedAt) / 1000);
      },
    });
    new Gauge({
      name: 'switchyard_inflight_requests',
      help: 'HTTP requests being served now (streams count until they end)',
      registers,
      collect() {
        this.set(inflight());
      },
    });
    new Gauge({
      name: 'switchyard_waiting_requests',
      help: 'model requests received and not yet answered by any upstream (routing, retrying, awaiting the first byte)',
      registers,
      collect() {
        this.set(waiting());
      },
    });
    // by the candidates' labels (bounded for inbound peers' channels: BridgeMesh.candidateLabels), never their raw
    // names; the candidates past the bound share one series, which holds their sum (`max`: their largest value)
    const perCandidate = (g: Gauge<'candidate' | 'channel' | 'peer'>, value: (id: string) => number, max = false) => {
      g.reset();
      const series = new Map<string, { labels: CandidateLabels; v: number }>();
      for (const c of router.all()) {
        const v = value(c.id);
        const s = series.get(c.labels.candidate);
        if (!s) series.set(c.labels.candidate, { labels: c.labels, v });
        else s.v = max ? Math.max(s.v, v) : s.v + v;
      }
      for (const { labels, v } of series.values()) g.set({ candidate: labels.candidate, channel: labels.channel, peer: labels.peer }, v);
    };
    new Gauge({
      name: 'switchyard_candidate_inflight',
      help: 'requests in flight per routing candidate (local channel or peer channel)',
      labelNames: ['candidate', 'channel', 'peer'],
      registers,
      collect() {
        perCandidate(this, (id) => router.inflightOf(id));
      },
    });
    new Gauge({
      name: 'switchyard_candidate_ejected',
      help: '1 when the candidate is ejected by outlier detection, else 0',
      labelNames: ['candidate', 'channel', 'peer'],
      registers,
      collect() {
        perCandidate(this, (id) => (router.health.state(id) === 'ejected' ? 1 : 0));
      },
    });
    new Gauge({
      name: 'switchyard_candidate_latency_ewma_seconds',
      help: 'latency EWMA per candidate',
      labelNames: ['candidate', 'channel', 'peer'],
      registers,
      collect() {
        perCandidate(this, (id) => router.latencyOf(id) / 1000, true);
      },
    });
    new Counter({
      name: 'switchyard_health_panics_total',
      help: 'times every candidate of a model was ejected and all were used anyway',
      registers,
      collect() {
        this.reset();
        this.inc(router.panics);
      },
    });

    const linkSeries = (
      name: string,
      help: string,
      kind: 'gauge' | 'counter',
      value: (l: ReturnType<BridgeMesh['peers']>[number]) => number,
      labelNames: string[] = ['peer', 'direction'],
      max = false,
    ) => {
      // by the link's metric label (BridgeMesh.peerLabel): the inbound peers past the bound share `(other)`, whose
      // value is their sum (`max`: their largest)
      const collect = function (this: Gauge<string> | Counter<string>) {
        this.reset();
        const series = new Map<string, { labels: LabelValues<string>; v: number }>();
        for (const l of mesh.peers()) {
          const direction = l.role === 'initiator' ? 'outbound' : 'inbound';
          const peer = mesh.peerLabel(l);
          const v = value(l);
          const s = series.get(`${direction}\u0000${peer}`);
          if (!s) series.set(`${direction}\u0000${peer}`, { labels: { peer, direction }, v });
          else s.v = max ? Math.max(s.v, v) : s.v + v;
        }
        for (const { labels, v } of series.values()) {
          if (this instanceof Gauge) this.set(labels, v);
          else if (v > 0) this.inc(labels, v);
        }
      };
      if (kind === 'gauge') new Gauge({ name, help, labelNames, registers, collect });
      else new Counter({ name, help, labelNames, registers, collect });
    };
    linkSeries('switchyard_peer_rtt_seconds', 'last measured round-trip time of the bridge heartbeat', 'gauge', (l) => l.traffic.rttMs / 1000, undefined, true);
    linkSeries('switchyard_peer_inflight_out', 'our requests in flight on the link (forwards and rpc)', 'gauge', (l) => l.inflightOut);
    linkSeries('switchyard_peer_inflight_in', "the peer's requests we are serving on the link", 'gauge', (l) => l.inflightIn);
    linkSeries('switchyard_peer_shared_channels', 'channels the peer shares with us', 'gauge', (l) => l.peer.sharedChannels.length);
    linkSeries('switchyard_peer_frames_sent_total', 'bridge frames sent on the current link', 'counter', (l) => l.traffic.framesOut);
    linkSeries('switchyard_peer_frames_received_total', 'bridge frames received on the current link', 'counter', (l) => l.traffic.framesIn);
    linkSeries('switchyard_peer_bytes_sent_total', 'bridge frame bytes sent on the current link', 'counter', (l) => l.traffic.bytesOut);
    linkSeries('switchyard_peer_bytes_received_total', 'bridge frame bytes received on the current link', 'counter', (l) => l.traffic.bytesIn);
    linkSeries(
      'switchyard_peer_stream_pauses_sent_total',
      'bridge-stream-pause frames sent on the current link: a client of ours read a stream the peer serves slower than it came',
      'counter',
      (l) => l.traffic.pausesSent,
    );
    linkSeries(
      'switchyard_peer_stream_pauses_received_total',
      'bridge-stream-pause frames received on the current link: the peer held a stream we serve for its slow client',
      'counter',
      (l) => l.traffic.pausesReceived,
    );
    linkSeries(
      'switchyard_peer_unmatched_pongs_total',
      'bridge-pong frames on the current link that answered no ping of ours (unasked, repeated or made up): ignored',
      'counter',
      (l) => l.traffic.unmatchedPongs,
    );
    linkSeries('switchyard_peer_streams_paused', 'streams we serve that the peer now holds paused', 'gauge', (l) => l.pausedStreams);
    new Gauge({
      name: 'switchyard_peer_up',
      help: 'per configured or connected peer: 1 when its link is open, else 0; state names the dialer state',
      labelNames: ['peer', 'direction', 'state'],
      registers,
      collect() {
        this.reset();
        // inbound peers past the bound share `(other)`: per state, how many of their links are in it
        for (const row of mesh.upSeries()) this.inc({ peer: row.peer, direction: row.direction, state: row.state }, row.state === 'open' ? 1 : 0);
      },
    });
    new Counter({
      name: 'switchyard_peer_connects_total',
      help: 'links established per peer since start (a reconnect adds one)',
      labelNames: ['peer'],
      registers,
      collect() {
        this.reset();
        for (const [peer, n] of mesh.linkOpens) this.inc({ peer }, n);
      },
    });
    this.warmGauges(registers);
    this.acpStreamSeries(registers);
    if (store) {
      new Gauge({
        name: 'switchyard_sessions',
        help: 'durable sessions by status (read from the store at scrape time)',
        labelNames: ['status'],
        registers,
        async collect() {
          const counts = await store.countByStatus();
          this.reset();
          for (const [status, n] of Object.entries(counts)) this.set({ status }, n);
        },
      });
    }
  }

  /** The agent-task streams' backlog (`acp.maxStreamBacklogBytes` bounds each one) and the streams cut. */
  private acpStreamSeries(registers: Registry[]): void {
    const stats = () => this.acpStreams();
    new Gauge({
      name: 'switchyard_acp_stream_backlog_bytes',
      help: 'bytes written to /acp/rpc SSE and /acp WebSocket streams that their clients have not taken yet, over all streams',
      registers,
      collect() {
        this.set(stats().total);
      },
    });
    new Gauge({
      name: 'switchyard_acp_stream_backlog_max_bytes',
      help: 'the largest backlog of one /acp/rpc SSE or /acp WebSocket stream',
      registers,
      collect() {
        this.set(stats().max);
      },
    });
    const tasks = () => this.acpTasks();
    new Gauge({
      name: 'switchyard_acp_task_snapshots',
      help: 'task snapshots xworkmate.tasks.get reads from memory, by state (finished; running: queued or running)',
      labelNames: ['state'],
      registers,
      collect() {
        const t = tasks();
        this.set({ state: 'finished' }, t.finished);
        this.set({ state: 'running' }, t.running);
      },
    });
    new Gauge({
      name: 'switchyard_acp_task_snapshot_bytes',
      help: 'bytes the finished task snapshots held in memory take (their text at two bytes per character, plus a fixed amount each)',
      registers,
      collect() {
        this.set(tasks().bytes);
      },
    });
    new Gauge({
      name: 'switchyard_acp_task_snapshot_max_bytes',
      help: 'the bound of switchyard_acp_task_snapshot_bytes: eight times acp.maxStreamBacklogBytes; past it the oldest finished snapshots are dropped (read from the store)',
      registers,
      collect() {
        this.set(tasks().maxBytes);
      },
    });
    new Counter({
      name: 'switchyard_acp_streams_cut_total',
      help: 'agent-task streams ended with CLIENT_TOO_SLOW because their client read slower than the updates came, by transport',
      labelNames: ['transport'],
      registers,
      collect() {
        const { cut } = stats();
        this.reset();
        this.inc({ transport: 'sse' }, cut.sse);
        this.inc({ transport: 'ws' }, cut.ws);
      },
    });
  }

  /** The warm agent pools (`acp.agents[].warm`): one label set per configured agent id, none without pools. */
  private warmGauges(registers: Registry[]): void {
    // each series: per pool, one sample per row (extra labels, the value read from the pool's status)
    type Row = [labels: Record<string, string>, value: (w: WarmPoolStatus) => number];
    const pools = () => this.warmPools();
    const fill = (m: Gauge<string> | Counter<string>, rows: Row[]) => {
      m.reset();
      for (const w of pools())
        for (const [labels, value] of rows) {
          if (m instanceof Gauge) m.set({ agent: w.agentId, ...labels }, value(w));
          else m.inc({ agent: w.agentId, ...labels }, value(w));
        }
    };
    new Gauge({
      name: 'switchyard_acp_warm_spares',
      help: 'warm agent processes not yet taken, by agent and state (booting: not yet past initialize)',
      labelNames: ['agent', 'state'],
      registers,
      collect() {
        fill(this, [
          [{ state: 'ready' }, (w) => w.ready],
          [{ state: 'booting' }, (w) => w.booting],
        ]);
      },
    });
    new Gauge({
      name: 'switchyard_acp_warm_target',
      help: 'warm agent processes each pool keeps (acp.agents[].warm)',
      labelNames: ['agent'],
      registers,
      collect() {
        fill(this, [[{}, (w) => w.target]]);
      },
    });
    new Gauge({
      name: 'switchyard_acp_warm_backoff_seconds',
      help: 'seconds until a pool starts its next spare after failures (0: no back-off running)',
      labelNames: ['agent'],
      registers,
      collect() {
        fill(this, [[{}, (w) => (w.retryAt ? Math.max(0, Date.parse(w.retryAt) - Date.now()) / 1000 : 0)]]);
      },
    });
    new Counter({
      name: 'switchyard_acp_warm_starts_total',
      help: 'agent processes sessions of a pooled agent got: taken from the pool (warm) or started themselves (cold)',
      labelNames: ['agent', 'start'],
      registers,
      collect() {
        fill(this, [
          [{ start: 'warm' }, (w) => w.taken],
          [{ start: 'cold' }, (w) => w.cold],
        ]);
      },
    });
    new Counter({
      name: 'switchyard_acp_warm_failures_total',
      help: 'warm agent processes that failed to start or died while waiting',
      labelNames: ['agent'],
      registers,
      collect() {
        fill(this, [[{}, (w) => w.failed]]);
      },
    });
  }
}
