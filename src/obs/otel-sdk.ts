/**
 * The OpenTelemetry SDK half of tracing.ts: a tracer provider with an OTLP/HTTP (JSON) exporter behind a
 * batch processor, never registered globally. Its own module so the SDK and exporter are imported (dynamic
 * `import()` in `tracingFromConfig`) only by a gateway that has tracing enabled: they cost ~18 MB of idle RSS.
 */
import { BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { VERSION } from '../version.js';

/** The part of tracing.ts's TracingConfig the SDK needs (restated here: tracing.ts imports this module). */
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
