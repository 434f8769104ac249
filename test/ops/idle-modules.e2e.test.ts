/**
 * What a gateway without tracing loads (issue 15, item 5: load what is configured only). prom-client's index also
 * loads its default process metrics, whose CPU counter requires `@opentelemetry/api` (44 modules, for exemplars),
 * its Pushgateway and its cluster aggregator; the gateway uses none of them, and takes its three classes from their
 * own files (src/obs/metrics.ts). OpenTelemetry's code (the API as much as the SDK) is loaded only with
 * `gateway.tracing.enabled` (src/obs/otel-sdk.ts). Together ~1 MB of idle RSS (docs/benchmarks.md).
 *
 * Real gateway processes whose CommonJS loads are logged by a preload (fixtures/require-log.mjs); /metrics and a
 * traced request to a real OTLP receiver show both still work.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupDirs, startProcess, tmpDir, waitFor, type GatewayProcess } from '../helpers/env.js';
import { loadedUnder } from '../helpers/module-log.js';
import { startOtlpReceiver, type OtlpReceiver } from '../fakes/otlp-receiver.js';

const PRELOAD = join(fileURLToPath(new URL('.', import.meta.url)), '..', 'gateway', 'fixtures', 'require-log.mjs');
const TOKEN = 'sy-idle-modules-token-3c9a';
const procs: GatewayProcess[] = [];
let otlp: OtlpReceiver | undefined;
afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  await otlp?.close();
  cleanupDirs();
});

/** the CommonJS modules of node_modules the process has loaded, as `<package>/<file>` */
const loaded = (file: string) => loadedUnder(file, '/node_modules/');

async function gateway(extra: Record<string, unknown>) {
  const dir = tmpDir();
  const log = join(dir, 'modules.log');
  const gw = await startProcess(
    { gateway: { auth: { tokens: [TOKEN] }, ...extra }, channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }] },
    { NODE_OPTIONS: `--import ${PRELOAD}`, MODULE_LOG_FILE: log },
    dir,
  );
  procs.push(gw);
  const openai = new OpenAI({ apiKey: TOKEN, baseURL: `${gw.url}/v1`, maxRetries: 0 });
  const answer = await openai.chat.completions.create({ model: 'mock-1', messages: [{ role: 'user', content: 'hi' }] });
  expect(answer.choices[0]?.message.content).toEqual(expect.any(String));
  return { gw, log };
}

const otelModules = (mods: string[]) => mods.filter((m) => m.startsWith('@opentelemetry/'));
const unusedPromClient = (mods: string[]) => mods.filter((m) => /^prom-client\/lib\/(metrics\/|defaultMetrics|pushgateway|cluster)/.test(m));

describe('the modules an idle gateway loads', () => {
  it('without tracing: no OpenTelemetry module and none of prom-client it does not use; /metrics serves as before', async () => {
    const { gw, log } = await gateway({});
    const metrics = await fetch(`${gw.url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/^switchyard_requests_total\{route="\/v1\/chat\/completions",model="mock-1",channel="m",peer="",status="200"\} 1$/m);
    const mods = loaded(log);
    // the log works: prom-client's classes are there, from their own files
    expect(mods).toEqual(expect.arrayContaining(['prom-client/lib/registry.js', 'prom-client/lib/counter.js', 'prom-client/lib/gauge.js']));
    expect(otelModules(mods)).toEqual([]);
    expect(unusedPromClient(mods)).toEqual([]);
  });

  it('with tracing: OpenTelemetry is loaded, and the request is traced', async () => {
    otlp = await startOtlpReceiver();
    const { log } = await gateway({ tracing: { enabled: true, endpoint: otlp.url, exportIntervalMs: 50 } });
    await waitFor(() => otlp!.spans.some((s) => s.name === 'POST /v1/chat/completions') || undefined, 'the server span exported', 5000);
    const mods = otelModules(loaded(log));
    expect(mods).toEqual(expect.arrayContaining([expect.stringMatching(/^@opentelemetry\/api\//), expect.stringMatching(/^@opentelemetry\/sdk-trace-base\//)]));
  });
});
