/**
 * Observability for one gateway: the Prometheus metrics, the tracer (when enabled), the one-minute rate
 * window, the HTTP request meter, and the router's observer that feeds them. Built once by the composition
 * root; the rest of the code sees only the thin hook interfaces (RouterObserver, RequestMeter, noteRouted).
 */
import type { IncomingMessage } from 'node:http';
import type { Config } from '../config/schema.js';
import type { Router, RouterObserver, AttemptSpan } from '../router/router.js';
import type { Candidate, RouteOptions } from '../router/candidate.js';
import type { HealthState } from '../router/health.js';
import type { BridgeMesh } from '../bridge/mesh.js';
import type { SessionStore } from '../sessions/store.js';
import type { GatewayError } from '../wire/errors.js';
import { GatewayMetrics } from './metrics.js';
import { tracingFromConfig, type GatewayTracer } from './tracing.js';
import { RateWindow } from './rate-window.js';
import { RequestMeter } from './request-meter.js';

export interface ObservabilityDeps {
  config: Config;
  gatewayId: string;
  router: Router;
  mesh: BridgeMesh;
  store?: SessionStore | undefined;
  /** from `Observability.tracerFor` (async: it loads the OpenTelemetry SDK only when tracing is enabled); owned by the caller until the constructor returns */
  tracer: GatewayTracer | undefined;
  /** the trace parent of a request with no `traceparent` header (an ACP agent's model request: its turn) */
  parentOf?: ((req: IncomingMessage) => string | undefined) | undefined;
}

export class Observability implements RouterObserver {
  readonly startedAt = Date.now();
  readonly metrics: GatewayMetrics;
  readonly tracer: GatewayTracer | undefined;
  readonly rates = new RateWindow();
  readonly meter: RequestMeter;
  private stopBegun = false;
  private readonly drainWaiters = new Set<() => void>();

  /** true once a graceful stop began (shown on the status page and in `switchyard status`) */
  get draining(): boolean {
    return this.stopBegun;
  }

  /** The graceful stop began: `draining` turns true and every `onDrain` callback runs, once. */
  drain(): void {
    if (this.stopBegun) return;
    this.stopBegun = true;
    for (const w of [...this.drainWaiters]) w();
    this.drainWaiters.clear();
  }

  /**
   * Calls `cb` when the graceful stop begins (at once if it has): an endless stream (`/ui/events`) ends then, instead
   * of at its next tick. Returns what unsubscribes it (a stream that ends first).
   */
  onDrain(cb: () => void): () => void {
    if (this.stopBegun) {
      cb();
      return () => undefined;
    }
    this.drainWaiters.add(cb);
    return () => this.drainWaiters.delete(cb);
  }

  constructor(d: ObservabilityDeps) {
    this.metrics = new GatewayMetrics({ router: d.router, mesh: d.mesh, store: d.store, startedAt: this.startedAt });
    this.tracer = d.tracer;
    this.meter = new RequestMeter(this.metrics, this.rates, this.tracer, d.parentOf);
    d.router.observer = this;
    if (d.mesh.transfers) d.mesh.transfers.onOutcome = (direction, outcome) => this.metrics.transferEnded(direction, outcome);
  }

  /**
   * Starts the tracer `gateway.tracing` asks for and builds the observability around it: the composition root's
   * one way in. If a step after the tracer's start throws, the tracer is shut down (its exporter with it) before
   * the error goes on, so a failed construction leaves nothing of its own running.
   */
  static async open(d: Omit<ObservabilityDeps, 'tracer'>): Promise<Observability> {
    const tracer = await Observability.tracerFor(d.config, d.gatewayId);
    try {
      return new Observability({ ...d, tracer });
    } catch (err) {
      await tracer?.close();
      throw err;
    }
  }

  /** The tracer `gateway.tracing` asks for; undefined (and the SDK never imported) when tracing is off. */
  static tracerFor(config: Config, gatewayId: string): Promise<GatewayTracer | undefined> {
    const t = config.gateway.tracing;
    return tracingFromConfig(
      {
        enabled: t.enabled,
        endpoint: t.endpoint,
        headers: t.headers,
        serviceName: t.serviceName ?? 'switchyard',
        sampleRatio: t.sampleRatio,
        exportIntervalMs: t.exportIntervalMs,
      },
      { id: gatewayId, name: config.gateway.name },
    );
  }

  // RouterObserver
  attemptFailed(channel: string, peer: string, code: string, willRetry: boolean): void {
    this.metrics.attemptFailed(channel, peer, code, willRetry);
  }

  healthChanged(candidate: string, from: HealthState, to: HealthState): void {
    this.metrics.healthChanged(candidate, from, to);
  }

  attemptStarted(c: Candidate, model: string, opts: RouteOptions): AttemptSpan | undefined {
    const tracer = this.tracer;
    if (!tracer || !opts.trace) return undefined;
    const served = opts.hops.length > 0;
    const h = tracer.child(
      `chat ${model}`,
      opts.trace,
      {
        'gen_ai.operation.name': 'chat',
        'gen_ai.request.model': model,
        'gen_ai.provider.name': c.provider,
        'switchyard.channel': c.channel,
        ...(c.peer ? { 'switchyard.peer': c.peer.name, 'switchyard.peer.id': c.peer.id } : {}),
        ...(served ? { 'switchyard.served_for': opts.hops[0]! } : {}),
      },
      served ? 'server' : 'client',
    );
    return {
      traceparent: h.traceparent,
      end: (ok: boolean, err?: GatewayError) =>
        tracer.end(h.span, ok ? undefined : err ? { code: err.code, message: err.message } : { code: 'UNKNOWN', message: 'attempt failed' }),
    };
  }

  /** A span per ACP turn (`invoke_agent <runtime>`), child of the request that started it. */
  turnSpan(runtime: string, sessionId: string, parent: string | undefined): { traceparent: string; end(status: string, error?: string): void } | undefined {
    const tracer = this.tracer;
    if (!tracer) return undefined;
    const h = tracer.child(
      `invoke_agent ${runtime}`,
      parent,
      { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': runtime, 'switchyard.acp.session_id': sessionId },
      'internal',
    );
    return {
      traceparent: h.traceparent,
      end: (status: string, error?: string) => {
        h.span.setAttribute('switchyard.acp.turn_status', status);
        tracer.end(h.span, status === 'completed' || status === 'cancelled' ? undefined : { code: status, message: error ?? status });
      },
    };
  }

  /** `deadline`: a stop's (epoch ms), which the export of the pending spans shares; false when it had not ended by then */
  async close(deadline?: number): Promise<boolean> {
    return (await this.tracer?.close(deadline)) ?? true;
  }
}
