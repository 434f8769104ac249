/**
 * Per-request observation for the HTTP server: one small record per request, stored on the response under
 * a symbol, filled by thin hooks in the routes (`noteRouted`, `noteUsage`) and read once when the response
 * closes (metrics, the server span). A route that never calls the hooks still gets counted by route and
 * status. With tracing off there is no span and no traceparent work.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Candidate } from '../router/candidate.js';
import type { GatewayMetrics } from './metrics.js';
import type { GatewayTracer, SpanHandle } from './tracing.js';
import type { RateWindow } from './rate-window.js';

const METER = Symbol('switchyard.meter');

interface Meter {
  t0: number;
  route: string;
  model: string;
  channel: string;
  peer: string;
  routed: boolean;
  span: SpanHandle | undefined;
  metrics: GatewayMetrics;
}

type Metered = ServerResponse & { [METER]?: Meter };

/** Routes that go to an upstream (counted as waiting until their first byte). */
const MODEL_ROUTES = new Set(['/v1/chat/completions', '/v1/embeddings', '/v1/messages', '/v1/responses', '/v1beta']);

/** `path` is `base` itself or under it (`/v1beta` and `/v1beta/...`, not `/v1betax`). */
const inFamily = (path: string, base: string): boolean => path.startsWith(base) && (path.length === base.length || path[base.length] === '/');

/** A bounded route label: known paths as they are, everything else by family (a family's bare path included). */
export function routeLabel(path: string): string {
  if (inFamily(path, '/v1')) return MODEL_ROUTES.has(path) || path === '/v1/models' ? path : '/v1/other';
  if (inFamily(path, '/v1beta')) return '/v1beta';
  if (inFamily(path, '/admin')) return '/admin';
  // every path the ACP layer answers (`/acp`, `/acp/rpc`, `/acp-server/...`: the guard's rule, src/http/guard.ts)
  if (path.startsWith('/acp')) return '/acp';
  // the task sessions' REST routes (docs/acp.md), served by the ACP layer too
  if (path.startsWith('/api/v1/sessions/')) return '/api/v1/sessions';
  if (inFamily(path, '/ui')) return '/ui';
  if (path === '/metrics' || path === '/healthz' || path === '/readyz') return path;
  return 'other';
}

export class RequestMeter {
  constructor(
    private readonly metrics: GatewayMetrics,
    private readonly rates: RateWindow,
    private readonly tracer: GatewayTracer | undefined,
    /** a parent for a request that sent no `traceparent` (an ACP agent's model request: its turn's span) */
    private readonly parentOf?: (req: IncomingMessage) => string | undefined,
  ) {}

  /** Called by the HTTP server for every request, before dispatch. */
  begin(req: IncomingMessage, res: ServerResponse, path: string): void {
    const route = routeLabel(path);
    const m: Meter = { t0: performance.now(), route, model: '', channel: '', peer: '', routed: false, span: undefined, metrics: this.metrics };
    (res as Metered)[METER] = m;
    this.metrics.inflight++;
    const waits = MODEL_ROUTES.has(route);
    if (waits) this.metrics.waiting++;
    const tracer = this.tracer;
    if (tracer && route !== '/metrics' && route !== '/healthz' && route !== '/readyz' && route !== '/ui') {
      const tp = req.headers.traceparent;
      m.span = tracer.server(`${req.method ?? 'GET'} ${route}`, typeof tp === 'string' ? tp : this.parentOf?.(req), {
        'http.request.method': req.method ?? 'GET',
        'http.route': route,
        'url.path': path,
      });
    }
    // 'close' is emitted once per response: `on` spares the wrapper `once` allocates
    res.on('close', () => {
      this.metrics.inflight--;
      if (waits && !m.routed) this.metrics.waiting--;
      const status = res.statusCode;
      this.metrics.requestEnded(m.route, m.model, m.channel, m.peer, status, (performance.now() - m.t0) / 1000);
      if (waits) this.rates.record(status >= 500 || !res.writableFinished);
      if (m.span && tracer) {
        m.span.span.setAttribute('http.response.status_code', status);
        const failed = status >= 500 || !res.writableFinished;
        tracer.end(
          m.span.span,
          failed ? { code: String(status), message: res.writableFinished ? `HTTP ${status}` : 'response cut before its end' } : undefined,
        );
      }
    });
  }
}

/** The request's traceparent for child spans (undefined when tracing is off). */
export function traceOf(res: ServerResponse): string | undefined {
  return (res as Metered)[METER]?.span?.traceparent;
}

/**
 * A model request reached its commit point on `c`: the model/channel/peer labels become known and the
 * time to first byte is observed. `model` must be a routed (configured) model name, never raw user input.
 */
export function noteRouted(res: ServerResponse, model: string, c: Candidate): void {
  const m = (res as Metered)[METER];
  if (!m) return;
  const metrics = m.metrics;
  m.model = metrics.modelLabel(model, c);
  // the candidate's labels, fixed when it was made (bounded for peers' channels: src/router/candidate.ts)
  m.channel = c.labels.channel;
  m.peer = c.labels.peer;
  if (!m.routed) {
    m.routed = true;
    metrics.waiting--;
  }
  metrics.firstByte(m.model, m.channel, m.peer, (performance.now() - m.t0) / 1000);
  if (m.span) {
    m.span.span.setAttribute('gen_ai.request.model', model);
    m.span.span.setAttribute('switchyard.channel', c.channel);
    if (c.peer) m.span.span.setAttribute('switchyard.peer', c.peer.name);
  }
}

/**
 * Upstream usage (OpenAI shape) and, for a non-streaming answer, its finish reasons (span only). `reply.completion`
 * is read only when there is a span: for a relayed upstream body (src/providers/chat-reply.ts) that read parses it.
 */
export function noteUsage(
  res: ServerResponse,
  usage: unknown,
  reply?: { readonly completion: { choices: ReadonlyArray<{ finish_reason?: string | null }> } },
): void {
  const m = (res as Metered)[METER];
  if (!m || !m.routed) return;
  const u = typeof usage === 'object' && usage !== null ? (usage as { prompt_tokens?: unknown; completion_tokens?: unknown }) : undefined;
  // counters only grow: an upstream's count that is not a finite number ≥ 0 counts as none (a 1e308 would make
  // the counter +Inf for good, a negative one would take it down)
  const tin = tokenCount(u?.prompt_tokens);
  const tout = tokenCount(u?.completion_tokens);
  m.metrics.usage(m.model, m.channel, m.peer, tin, tout);
  if (m.span) {
    if (u) {
      m.span.span.setAttribute('gen_ai.usage.input_tokens', tin);
      m.span.span.setAttribute('gen_ai.usage.output_tokens', tout);
    }
    if (reply)
      m.span.span.setAttribute(
        'gen_ai.response.finish_reasons',
        reply.completion.choices.map((c) => c.finish_reason ?? 'unknown'),
      );
  }
}

/** An upstream's token count, if it is one: a safe integer ≥ 0; else 0. */
function tokenCount(v: unknown): number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : 0;
}
