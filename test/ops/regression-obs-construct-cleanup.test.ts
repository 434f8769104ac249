/**
 * Regression: the gateway started its tracer (the OpenTelemetry SDK, its batch processor and OTLP exporter) and
 * only then built the observability around it; a step of that construction that threw left the tracer running,
 * owned by nobody: the start's cleanup only knew of the observability once it was built. Now
 * `Observability.open` starts the tracer and builds the rest, and shuts the tracer down before the error goes on.
 *
 * The failing step is forced (the metrics' scrape-time gauges throw); the gateway is real, in this process, with
 * tracing on to a real OTLP receiver on port 0.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { GatewayMetrics } from '../../src/obs/metrics.js';
import { GatewayTracer } from '../../src/obs/otel-sdk.js';
import { startInProcess, rejectionOf } from '../helpers/env.js';
import { startOtlpReceiver, type OtlpReceiver } from '../fakes/otlp-receiver.js';

let otlp: OtlpReceiver;
beforeAll(async () => {
  otlp = await startOtlpReceiver();
});
afterAll(async () => {
  await otlp?.close();
});
afterEach(() => {
  vi.restoreAllMocks();
});

describe('a start whose observability fails to build after the tracer started', () => {
  it('shuts the tracer down before the start throws', async () => {
    vi.spyOn(GatewayMetrics.prototype as unknown as { scrapeGauges(): void }, 'scrapeGauges').mockImplementation(() => {
      throw new Error('metrics could not be built');
    });
    const close = GatewayTracer.prototype.close;
    let shutDown = false;
    const closed = vi.spyOn(GatewayTracer.prototype, 'close').mockImplementation(async function (this: GatewayTracer, deadline?: number) {
      const done = await close.call(this, deadline);
      shutDown = true;
      return done;
    });
    const err = await rejectionOf(
      startInProcess({
        gateway: { tracing: { enabled: true, endpoint: otlp.url, exportIntervalMs: 100 } },
        channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
      }),
    );
    expect((err as Error).message).toBe('metrics could not be built');
    expect(closed).toHaveBeenCalledTimes(1);
    // the provider's shutdown had ended when the start threw
    expect(shutDown).toBe(true);
  });

  it('with tracing off, the same failure throws and no tracer was made', async () => {
    vi.spyOn(GatewayMetrics.prototype as unknown as { scrapeGauges(): void }, 'scrapeGauges').mockImplementation(() => {
      throw new Error('metrics could not be built');
    });
    const closed = vi.spyOn(GatewayTracer.prototype, 'close');
    const err = await rejectionOf(startInProcess({ channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }] }));
    expect((err as Error).message).toBe('metrics could not be built');
    expect(closed).not.toHaveBeenCalled();
  });
});
