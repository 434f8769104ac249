/**
 * OpenTelemetry traces, off by default (`gateway.tracing.enabled`), exported with OTLP/HTTP (JSON) to
 * `gateway.tracing.endpoint` by a batch processor. One tracer provider per gateway, never registered
 * globally, so several gateways in one process (tests, the demo) keep their own resource and exporter.
 *
 * Context travels explicitly as a W3C `traceparent` string (RouteOptions.trace, the bridge-forward frame's
 * `traceparent` field, the ACP turn): no async-hooks context manager, so a disabled tracer costs one
 * `undefined` check per hook and nothing else.
 *
 * Spans (GenAI semantic conventions where they apply):
 * - server span per HTTP request (`POST /v1/chat/completions`), ended when the response ends (a stream's
 *   last byte, not its headers), with `gen_ai.request.model`, `gen_ai.usage.input_tokens`,
 *   `gen_ai.usage.output_tokens`, `gen_ai.response.finish_reasons` (non-streaming answers);
 * - client span per routing attempt (`chat <model>`), `switchyard.channel`, `switchyard.peer` when the
 *   attempt is a peer hop; its traceparent goes into the bridge frame, so the peer's spans are its children;
 * - on the serving peer, the attempt on its local channel is a child of the requester's hop span.
 *
 * The SDK and the OTLP exporter (~18 MB of RSS) live in otel-sdk.ts and are imported only when tracing is
 * enabled (`tracingFromConfig`); this file needs only the light `@opentelemetry/api`.
 */
import { SpanKind, SpanStatusCode, TraceFlags, trace, ROOT_CONTEXT, type Span, type Tracer, type Attributes } from '@opentelemetry/api';
import type { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { VERSION } from '../version.js';
import { settledWithin } from '../util/settled-within.js';

export interface TracingConfig {
  enabled: boolean;
  /** OTLP/HTTP traces URL, e.g. http://collector:4318/v1/traces */
  endpoint?: string | undefined;
  headers: Record<string, string>;
  serviceName: string;
  sampleRatio: number;
  /** batch export delay */
  exportIntervalMs: number;
}

/** A started span and the traceparent its children use. */
export interface SpanHandle {
  readonly span: Span;
  readonly traceparent: string;
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
  child(name: string, parent: string | undefined, attributes: Attributes, kind: SpanKind = SpanKind.CLIENT): SpanHandle {
    const span = this.tracer.startSpan(name, { kind, attributes }, parentFrom(parent));
    return { span, traceparent: traceparentOf(span) };
  }

  /** Ends a span with an error status when `error` is given (message only; never request content). */
  static end(span: Span, error?: { code: string; message: string }): void {
    if (error) {
      span.setAttribute('error.type', error.code);
      span.setStatus({ code: SpanStatusCode.ERROR, message: error.message.slice(0, 200) });
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

/** The gateway's tracer, or undefined when tracing is off; the OpenTelemetry SDK is loaded only in the first case. */
export async function tracingFromConfig(cfg: TracingConfig, gateway: { id: string; name: string }): Promise<GatewayTracer | undefined> {
  if (!cfg.enabled || !cfg.endpoint) return undefined;
  const { createTracerProvider } = await import('./otel-sdk.js');
  return new GatewayTracer(createTracerProvider(cfg, gateway));
}
