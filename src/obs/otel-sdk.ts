/**
 * The half of tracing.ts that needs OpenTelemetry's code: the GatewayTracer, and a tracer provider with an
 * OTLP/HTTP (JSON) exporter behind a batch processor, never registered globally. Its own module so that the API,
 * the SDK and the exporter are imported (dynamic `import()` in `tracingFromConfig`) only by a gateway that has
 * tracing enabled: they cost ~18 MB of idle RSS.
 */
import { SpanKind, SpanStatusCode, TraceFlags, trace, ROOT_CONTEXT, type Span, type Tracer, type Attributes } from '@opentelemetry/api';
import { BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { VERSION } from '../version.js';
import { settledWithin } from '../util/settled-within.js';
import { secrets } from '../util/redact.js';

/** A started span and the traceparent its children use. */
export interface SpanHandle {
  readonly span: Span;
  readonly traceparent: string;
}

/** What a child span stands for (OpenTelemetry's SpanKind, named so that callers need none of its code). */
export type SpanRole = 'client' | 'server' | 'internal';

const KIND: Record<SpanRole, SpanKind> = { client: SpanKind.CLIENT, server: SpanKind.SERVER, internal: SpanKind.INTERNAL };

/** The part of tracing.ts's TracingConfig the SDK needs (restated here: tracing.ts imports this module's values only dynamically). */
export interface TracerProviderConfig {
  endpoint?: string | undefined;
  headers: Record<string, string>;
  serviceName: string;
  sampleRatio: number;
  exportIntervalMs: number;
}

export function createTracerProvider(cfg: TracerProviderConfig, gateway: { id: string; name: string }): BasicTracerProvider {
  const exporter = new OTLPTraceExporter({ url: cfg.endpoint, headers: cfg.headers });
  return new BasicTracerProvider({
    resource: resourceFromAttributes({
      'service.name': cfg.serviceName,
      'service.version': VERSION,
      'service.instance.id': gateway.id,
      'switchyard.gateway.name': gateway.name,
    }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(cfg.sampleRatio) }),
    spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: cfg.exportIntervalMs })],
  });
}

/** how long a tracer's close waits at least for its pending spans to be exported */
export const TRACER_CLOSE_WAIT_MS = 1_000;

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

export function traceparentOf(span: Span): string {
  const c = span.spanContext();
  return `00-${c.traceId}-${c.spanId}-${(c.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

/** The parent context for a W3C traceparent; undefined when absent or malformed (then the span is a root). */
function parentFrom(traceparent: string | undefined) {
  if (!traceparent) return ROOT_CONTEXT;
  const m = TRACEPARENT.exec(traceparent);
  if (!m || /^0+$/.test(m[1]!) || /^0+$/.test(m[2]!)) return ROOT_CONTEXT;
  return trace.setSpanContext(ROOT_CONTEXT, { traceId: m[1]!, spanId: m[2]!, traceFlags: parseInt(m[3]!, 16) & TraceFlags.SAMPLED, isRemote: true });
}

export class GatewayTracer {
  private readonly tracer: Tracer;

  /** Built by `tracingFromConfig`, which loads the SDK that made `provider`. */
  constructor(private readonly provider: BasicTracerProvider) {
    this.tracer = provider.getTracer('switchyard', VERSION);
  }

  /** A server span for an inbound request; `parent` is the caller's traceparent header, if any. */
  server(name: string, parent: string | undefined, attributes: Attributes): SpanHandle {
    const span = this.tracer.startSpan(name, { kind: SpanKind.SERVER, attributes }, parentFrom(parent));
    return { span, traceparent: traceparentOf(span) };
  }

  /** A client/internal span under `parent` (a traceparent from this or another gateway). */
  child(name: string, parent: string | undefined, attributes: Attributes, role: SpanRole = 'client'): SpanHandle {
    const span = this.tracer.startSpan(name, { kind: KIND[role], attributes }, parentFrom(parent));
    return { span, traceparent: traceparentOf(span) };
  }

  /** Ends a span with an error status when `error` is given (message only; never request content). */
  end(span: Span, error?: { code: string; message: string }): void {
    if (error) {
      span.setAttribute('error.type', error.code);
      // scrubbed as a log line is: a message may quote what a client sent (a model name that is a key) or a peer said,
      // and a collector is one more place it would be kept
      span.setStatus({ code: SpanStatusCode.ERROR, message: secrets.scrubError(error.message).slice(0, 200) });
    }
    span.end();
  }

  async flush(): Promise<void> {
    await this.provider.forceFlush();
  }

  /**
   * Shuts the provider down, its pending spans exported first: waited for until `deadline` (a stop's, epoch ms),
   * at least TRACER_CLOSE_WAIT_MS. A collector that takes the connection and never answers would otherwise hold
   * a stop for the exporter's own timeout (10 s) past the grace period. False when the export had not ended by
   * then (the spans are lost when the process exits).
   */
  async close(deadline = 0): Promise<boolean> {
    return settledWithin(this.provider.shutdown(), Math.max(TRACER_CLOSE_WAIT_MS, deadline - Date.now()));
  }
}
