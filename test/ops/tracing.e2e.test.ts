/**
 * OpenTelemetry across the bridge, with real processes and a local OTLP receiver: a streamed request enters
 * A and is served by B's channel over the bridge. A's server span, A's hop span and B's span share one trace
 * (B's parent is A's hop span, carried in the bridge frame), GenAI attributes are set, and the server span
 * ends when the stream ends, not at the headers. A caller's traceparent is honoured. With tracing off (the
 * default) no tracer exists.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { acpRpc, adminGet, cleanupDirs, startProcess, waitFor, wsUrl } from '../helpers/env.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../fakes/otlp-receiver.js';

const FAKE_AGENT = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const BRIDGE_TOKEN = 'trace-bridge-token-0b7e';
const ADMIN = 'trace-admin-token-5f3d';
const ACP = 'trace-acp-token-4e9a';
const INTERNAL = 1;
const SERVER = 2;
const CLIENT = 3;
let otlp: OtlpReceiver;
let a: GatewayProcess;
let b: GatewayProcess;
let c: GatewayProcess;

beforeAll(async () => {
  otlp = await startOtlpReceiver();
  const tracing = { enabled: true, endpoint: otlp.url, exportIntervalMs: 100 };
  b = await startProcess({
    gateway: {
      id: 'gw_tb',
      name: 'datacenter',
      admin: { token: ADMIN },
      tracing: { ...tracing, serviceName: 'switchyard-b' },
      bridge: { enabled: true, allowedTokens: [BRIDGE_TOKEN], shareChannels: ['gpu'] },
    },
    channels: [{ name: 'gpu', provider: 'mock', models: ['llama3'], options: { chunkDelayMs: 50, chunks: 12 } }],
  });
  a = await startProcess({
    gateway: {
      id: 'gw_ta',
      name: 'office',
      admin: { token: ADMIN },
      tracing: { ...tracing, serviceName: 'switchyard-a' },
      bridges: [{ name: 'datacenter', url: wsUrl(b.url), token: BRIDGE_TOKEN, shareChannels: false, reconnectInterval: 200 }],
    },
    channels: [{ name: 'office-mock', provider: 'mock', models: ['mock-1'] }],
    acp: {
      tokens: [ACP],
      gateways: [{ id: 'llamagw', label: 'Llama', kind: 'channels', model: 'llama3' }],
      // the fake stands in for Hermes: with `llm` it calls A's model API with its session token, on llama3 (B's)
      agents: [
        {
          id: 'hermes',
          label: 'Hermes (fake)',
          preset: 'hermes',
          command: process.execPath,
          args: [FAKE_AGENT],
          llm: { model: 'llama3' },
          permissions: 'allow',
        },
      ],
    },
  });
  // tracing off (the default): exports nothing
  c = await startProcess({ gateway: { id: 'gw_tc', name: 'quiet' }, channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }] });
  await waitFor(async () => (await adminGet(a.url, '/admin/status', ADMIN)).models.includes('llama3'), 'A sees llama3');
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop(), c?.stop()]);
  await otlp?.close();
  cleanupDirs();
});

const ofTrace = (traceId: string) => otlp.spans.filter((s) => s.traceId === traceId);

describe('traces across the bridge', () => {
  it("B's spans join A's trace; GenAI attributes; the server span ends with the stream", async () => {
    const client = new OpenAI({ apiKey: 'unused', baseURL: `${a.url}/v1`, maxRetries: 0 });
    const t0 = process.hrtime.bigint();
    const stream = await client.chat.completions.create({
      model: 'llama3',
      messages: [{ role: 'user', content: 'trace me across' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let firstAt = 0n;
    let usage: { prompt_tokens: number; completion_tokens: number } | undefined;
    for await (const ch of stream) {
      if (!firstAt) firstAt = process.hrtime.bigint();
      if (ch.usage) usage = ch.usage;
    }
    const lastAt = process.hrtime.bigint();
    expect(usage).toBeDefined();

    const server = await waitFor(
      () =>
        otlp.spans.find(
          (s) =>
            s.kind === SERVER &&
            s.resource['service.name'] === 'switchyard-a' &&
            s.name === 'POST /v1/chat/completions' &&
            s.attributes['gen_ai.request.model'] === 'llama3',
        ),
      "A's server span",
    );
    const hop = await waitFor(() => ofTrace(server.traceId).find((s) => s.resource['service.name'] === 'switchyard-a' && s.kind === CLIENT), "A's hop span");
    const onB = await waitFor(() => ofTrace(server.traceId).find((s) => s.resource['service.name'] === 'switchyard-b'), "B's span in A's trace");

    expect(hop.parentSpanId).toBe(server.spanId);
    expect(hop.name).toBe('chat llama3');
    expect(hop.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.request.model': 'llama3',
      'switchyard.channel': 'gpu',
      'switchyard.peer': 'datacenter',
    });
    expect(onB.parentSpanId).toBe(hop.spanId);
    expect(onB.kind).toBe(SERVER);
    expect(onB.resource['service.instance.id']).toBe('gw_tb');
    expect(onB.attributes).toMatchObject({ 'gen_ai.request.model': 'llama3', 'switchyard.channel': 'gpu', 'switchyard.served_for': 'gw_ta' });
    expect(server.attributes).toMatchObject({
      'gen_ai.usage.input_tokens': usage!.prompt_tokens,
      'gen_ai.usage.output_tokens': usage!.completion_tokens,
      'http.response.status_code': 200,
      'switchyard.peer': 'datacenter',
    });
    // the server span covers the whole stream: it lasts at least from before the first chunk to the last
    const spanMs = Number(server.endNs - server.startNs) / 1e6;
    const streamMs = Number(lastAt - firstAt) / 1e6;
    expect(streamMs).toBeGreaterThan(300);
    expect(spanMs).toBeGreaterThanOrEqual(streamMs - 5);
    expect(spanMs).toBeLessThanOrEqual(Number(process.hrtime.bigint() - t0) / 1e6);
    // B's span ends with its stream too, inside A's hop span
    expect(onB.endNs - onB.startNs).toBeGreaterThan(300_000_000n);
    // no prompt text is exported
    expect(otlp.bodies.join('\n')).not.toContain('trace me across');
  });

  it("a caller's traceparent is the parent of the server span; non-streaming answers carry finish reasons", async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parent = '00f067aa0ba902b7';
    const res = await fetch(`${a.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-${parent}-01` },
      body: JSON.stringify({ model: 'mock-1', messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(res.status).toBe(200);
    const server = await waitFor(() => ofTrace(traceId).find((s) => s.kind === SERVER), "the server span in the caller's trace");
    expect(server.parentSpanId).toBe(parent);
    expect(server.attributes['gen_ai.response.finish_reasons']).toEqual(['stop']);
    const attempt = await waitFor(() => ofTrace(traceId).find((s: ReceivedSpan) => s.kind === CLIENT), 'the attempt span');
    expect(attempt.attributes['switchyard.channel']).toBe('office-mock');
    expect(attempt.attributes['switchyard.peer']).toBeUndefined();
  });

  it('the other chat edges share the exchange: an Anthropic answer carries finish reasons too; embeddings carry their input tokens', async () => {
    const post = async (path: string, traceId: string, body: unknown) => {
      const res = await fetch(`${a.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
        body: JSON.stringify(body),
      });
      expect(res.status).toBe(200);
      return (await res.json()) as Record<string, unknown>;
    };
    const msgTrace = '5bf92f3577b34da6a3ce929d0e0e4737';
    await post('/v1/messages', msgTrace, { model: 'mock-1', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] });
    const msg = await waitFor(() => ofTrace(msgTrace).find((s) => s.kind === SERVER), 'the Anthropic edge’s server span');
    expect(msg.attributes['gen_ai.response.finish_reasons']).toEqual(['stop']);

    const embTrace = '6bf92f3577b34da6a3ce929d0e0e4738';
    const emb = (await post('/v1/embeddings', embTrace, { model: 'mock-1', input: 'embed me' })) as { usage: { prompt_tokens: number } };
    const span = await waitFor(() => ofTrace(embTrace).find((s) => s.kind === SERVER), 'the embeddings server span');
    expect(emb.usage.prompt_tokens).toBeGreaterThan(0);
    expect(span.attributes).toMatchObject({
      'gen_ai.request.model': 'mock-1',
      'gen_ai.usage.input_tokens': emb.usage.prompt_tokens,
      'gen_ai.usage.output_tokens': 0,
    });
  });

  it('an ACP turn has its span under the /acp/rpc request, and its routed request (across the bridge) under it', async () => {
    const started = await acpRpc(a.url, ACP, 'session.start', {
      sessionId: 's-traced',
      taskPrompt: 'a traced turn',
      routing: { explicitExecutionTarget: 'gateway', preferredGatewayProviderId: 'llamagw' },
    });
    expect(started.result.success).toBe(true);
    const turn = await waitFor(() => otlp.spans.find((s) => s.name === 'invoke_agent gateway:llamagw'), 'the turn span');
    expect(turn.kind).toBe(INTERNAL);
    expect(turn.attributes).toMatchObject({
      'gen_ai.operation.name': 'invoke_agent',
      'switchyard.acp.session_id': 's-traced',
      'switchyard.acp.turn_status': 'completed',
    });
    const server = await waitFor(() => ofTrace(turn.traceId).find((s) => s.spanId === turn.parentSpanId), 'the /acp/rpc server span');
    expect(server).toMatchObject({ kind: SERVER, name: 'POST /acp' });
    const hop = await waitFor(() => ofTrace(turn.traceId).find((s) => s.parentSpanId === turn.spanId && s.kind === CLIENT), "the turn's routed request");
    expect(hop.attributes['switchyard.peer']).toBe('datacenter');
    const onB = await waitFor(() => ofTrace(turn.traceId).find((s) => s.parentSpanId === hop.spanId), "B's span under the turn");
    expect(onB.resource['service.name']).toBe('switchyard-b');
    expect(turn.endNs).toBeGreaterThanOrEqual(onB.endNs);
  });

  it("an agent's model requests (its session token, through the mesh) are children of its turn's span", async () => {
    const out = await acpRpc(a.url, ACP, 'session.start', {
      sessionId: 's-agent-traced',
      taskPrompt: 'llm traced hello',
      provider: 'hermes',
      requestedExecutionTarget: 'agent',
    });
    expect(out.result.success).toBe(true);
    expect(out.result.output).toMatch(/^llm 200 llama3: /); // the agent's request was served (by B's channel)
    const turn = await waitFor(() => otlp.spans.find((s) => s.name === 'invoke_agent agent:hermes'), 'the agent turn span');
    // the agent's own request into A's model API: a server span under the turn, though the agent sent no traceparent
    const request = await waitFor(
      () => ofTrace(turn.traceId).find((s) => s.parentSpanId === turn.spanId && s.kind === SERVER),
      "the agent's model request under the turn",
    );
    expect(request.name).toBe('POST /v1/chat/completions');
    expect(request.attributes).toMatchObject({ 'gen_ai.request.model': 'llama3', 'switchyard.peer': 'datacenter' });
    const hop = await waitFor(() => ofTrace(turn.traceId).find((s) => s.parentSpanId === request.spanId && s.kind === CLIENT), 'its hop to B');
    const onB = await waitFor(() => ofTrace(turn.traceId).find((s) => s.parentSpanId === hop.spanId), "B's span");
    expect(onB.resource['service.name']).toBe('switchyard-b');
    // the request ran inside the turn
    expect(turn.endNs).toBeGreaterThanOrEqual(request.endNs);
  });

  it('tracing is off by default: no tracer is built (the status snapshot says so)', async () => {
    expect((await adminGet(c.url, '/admin/overview')).gateway.tracing).toBe(false);
    expect((await adminGet(a.url, '/admin/overview', ADMIN)).gateway.tracing).toBe(true);
  });
});
