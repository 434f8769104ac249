/**
 * A span's error status carries the error's message, which may quote what a client sent (a model name that is a
 * key secret) or a peer's or upstream's text: it is scrubbed as a log line is before it reaches a collector.
 */
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { describe, expect, it } from 'vitest';
import { GatewayTracer } from '../../src/obs/otel-sdk.js';
import { newSecret } from '../../src/keys/model.js';
import { secrets } from '../../src/util/redact.js';

describe('a span ended with an error', () => {
  it('has its status message scrubbed: key secrets by their shape, registered secrets', async () => {
    const exporter = new InMemorySpanExporter();
    const tracer = new GatewayTracer(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
    const key = newSecret();
    const registered = 'upstream-api-key-4f1e9c2b7d';
    secrets.register(registered);
    try {
      const h = tracer.child('chat x', undefined, {});
      tracer.end(h.span, { code: 'MODEL_NOT_FOUND', message: `model "${key}" is not served here; upstream said: bad key ${registered}` });
      await tracer.flush();
      const [span] = exporter.getFinishedSpans();
      expect(span?.status.message).toBe('model "[REDACTED]" is not served here; upstream said: bad key [REDACTED]');
      expect(span?.attributes['error.type']).toBe('MODEL_NOT_FOUND');
    } finally {
      secrets.forget(registered);
      await tracer.close();
    }
  });
});
