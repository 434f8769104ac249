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
 * Everything that needs OpenTelemetry's code (the API's values, the SDK, the OTLP exporter: ~18 MB of RSS) is in
 * otel-sdk.ts, imported only when tracing is enabled (`tracingFromConfig`); this file holds the types and imports
 * no OpenTelemetry code, so a gateway without tracing never loads any (`@opentelemetry/api` is 44 modules).
 */
import type { GatewayTracer, SpanHandle, SpanRole } from './otel-sdk.js';

export type { GatewayTracer, SpanHandle, SpanRole };

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

/** The gateway's tracer, or undefined when tracing is off; OpenTelemetry's code is loaded only in the first case. */
export async function tracingFromConfig(cfg: TracingConfig, gateway: { id: string; name: string }): Promise<GatewayTracer | undefined> {
  if (!cfg.enabled || !cfg.endpoint) return undefined;
  const { GatewayTracer, createTracerProvider } = await import('./otel-sdk.js');
  return new GatewayTracer(createTracerProvider(cfg, gateway));
}
