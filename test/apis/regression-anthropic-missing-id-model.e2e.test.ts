/**
 * Regression: an Anthropic-compatible upstream (not the real API, which always sends both) that left `id` or
 * `model` out of its message, or out of `message_start`'s message when streaming, gave /v1/chat/completions an
 * answer and chunks without `id` and `model`, both required by OpenAI's schema (the openai SDK's types). The
 * translated answer now has the upstream's when it sent them, else an id the gateway makes (`chatcmpl-…`, one
 * for every chunk of a stream) and the model the request named for that channel (its `modelMap` name, the one
 * the upstream was asked for). A native /v1/messages pass-through is relayed as the upstream sent it, but for a
 * stream's message_start without them: the SDK's stream took an empty `id` and `model` for the message (its
 * types require both), so they are filled in as the translated /v1/messages stream has them (`msg_…`, the model
 * the client asked for); a message_start that has both is relayed byte for byte.
 * One real gateway process, a fake Anthropic upstream, the official openai and Anthropic SDKs as clients.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { beforeAll, describe, expect, it } from 'vitest';
import { call, channelOf, sseData, startProcess, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { startAnthropicUpstream } from '../fakes/anthropic-upstream.js';
import type { FakeUpstream } from '../providers/conformance.js';

/** the name the channel asks its upstream for (modelMap), which an upstream that names its model would echo */
const UPSTREAM_MODEL = 'claude-compat-7b';
const GENERATED_ID = /^chatcmpl-[0-9a-f]{24}$/;

let gw: GatewayProcess;
const started = stopAfterAll();
let openai: OpenAI;
let anthropic: Anthropic;

beforeAll(async () => {
  const fake = async (omit: ReadonlyArray<'id' | 'model'>) => {
    const f = await startAnthropicUpstream({ reply: 'The quick brown fox', omit });
    started.track(f);
    return f;
  };
  const noId = await fake(['id']);
  const noModel = await fake(['model']);
  const neither = await fake(['id', 'model']);
  const both = await fake([]);
  const ch = (up: FakeUpstream, name: string) => channelOf(up, name, [name], { modelMap: { [name]: UPSTREAM_MODEL } });
  gw = started.trackGateway(
    await startProcess({
      gateway: { routing: { retries: 0 } },
      channels: [ch(noId, 'no-id'), ch(noModel, 'no-model'), ch(neither, 'neither'), ch(both, 'both')],
    }),
  );
  openai = new OpenAI({ apiKey: 'x', baseURL: `${gw.url}/v1`, maxRetries: 0 });
  anthropic = new Anthropic({ apiKey: 'sk-ant-client', baseURL: gw.url, maxRetries: 0 });
});

const ask = (model: string) => ({ model, messages: [{ role: 'user' as const, content: 'hi' }] });

async function streamed(model: string): Promise<OpenAI.ChatCompletionChunk[]> {
  const chunks: OpenAI.ChatCompletionChunk[] = [];
  for await (const c of await openai.chat.completions.create({ ...ask(model), stream: true, stream_options: { include_usage: true } })) chunks.push(c);
  return chunks;
}

describe('/v1/chat/completions over an anthropic channel whose upstream leaves id or model out', () => {
  it.each([
    ['no-id', GENERATED_ID, UPSTREAM_MODEL],
    ['no-model', 'msg_01FakeXk3TJj8q5sZbq9vA2', UPSTREAM_MODEL],
    ['neither', GENERATED_ID, UPSTREAM_MODEL],
  ])('%s, not streamed: the answer has an id and the model the channel asked for', async (channel, id, model) => {
    // the SDK hands over the answer's JSON as parsed: a field left out is absent here, not filled in
    const out = await openai.chat.completions.create(ask(channel));
    expect(typeof out.id).toBe('string');
    expect(out.id).toMatch(id);
    expect(out.model).toBe(model);
    expect(out.choices[0]?.message.content).toBe('The quick brown fox');
  });

  it.each([
    ['no-id', GENERATED_ID, UPSTREAM_MODEL],
    ['no-model', 'msg_01FakeXk3TJj8q5sZbq9vA2', UPSTREAM_MODEL],
    ['neither', GENERATED_ID, UPSTREAM_MODEL],
  ])('%s, streamed: every chunk has the same id and the model', async (channel, id, model) => {
    const chunks = await streamed(channel);
    expect(chunks.length).toBeGreaterThan(3);
    expect(chunks.at(-1)?.usage).toBeTruthy();
    const first = chunks[0]!.id;
    expect(typeof first).toBe('string');
    expect(first).toMatch(id);
    for (const c of chunks) expect(c).toMatchObject({ id: first, model });
  });

  it('each answer that had no id gets its own', async () => {
    const a = await openai.chat.completions.create(ask('no-id'));
    const b = await openai.chat.completions.create(ask('no-id'));
    const [c, d] = [(await streamed('no-id'))[0]!.id, (await streamed('no-id'))[0]!.id];
    expect(new Set([a.id, b.id, c, d]).size).toBe(4);
  });

  it('an upstream that sends both: its own id and model, streamed and not', async () => {
    const out = await openai.chat.completions.create(ask('both'));
    expect(out).toMatchObject({ id: 'msg_01FakeXk3TJj8q5sZbq9vA2', model: UPSTREAM_MODEL });
    for (const c of await streamed('both')) expect(c).toMatchObject({ id: 'msg_01FakeXk3TJj8q5sZbq9vA2', model: UPSTREAM_MODEL });
  });
});

describe("/v1/messages to the same channels: passed through, a stream's missing id and model filled in", () => {
  it('not streamed: no id, no model filled in', async () => {
    const msg = await anthropic.messages.create({ ...ask('neither'), max_tokens: 32 });
    expect(Object.hasOwn(msg, 'id')).toBe(false);
    expect(Object.hasOwn(msg, 'model')).toBe(false);
    expect(msg.content).toEqual([{ type: 'text', text: 'The quick brown fox' }]);
  });

  it.each([
    ['no-id', /^msg_[0-9a-z]+$/, UPSTREAM_MODEL],
    ['no-model', /^msg_01FakeXk3TJj8q5sZbq9vA2$/, 'no-model'],
    ['neither', /^msg_[0-9a-z]+$/, 'neither'],
  ])('%s, streamed through the Anthropic SDK: message_start has an id and a model, and the final message too', async (channel, id, model) => {
    const stream = anthropic.messages.stream({ ...ask(channel), max_tokens: 32 });
    const starts: Array<{ id: unknown; model: unknown }> = [];
    stream.on('streamEvent', (e) => {
      if (e.type === 'message_start') starts.push({ id: e.message.id, model: e.message.model });
    });
    const msg = await stream.finalMessage();
    expect(starts).toHaveLength(1);
    expect(starts[0]!.id).toMatch(id);
    expect(starts[0]!.model).toBe(model);
    expect(msg).toMatchObject({ id: starts[0]!.id, model });
    expect(msg.content).toEqual([{ type: 'text', text: 'The quick brown fox' }]);
    expect(msg.usage.output_tokens).toBeGreaterThan(0);
  });

  it('streamed, an upstream that sends both: message_start byte for byte as sent', async () => {
    const r = await call(gw, '/v1/messages', { body: { ...ask('both'), max_tokens: 32, stream: true } });
    expect(r.status).toBe(200);
    const start = JSON.parse(sseData(r.text)[0]!) as { type: string; message: Record<string, unknown> };
    expect(start).toMatchObject({ type: 'message_start', message: { id: 'msg_01FakeXk3TJj8q5sZbq9vA2', model: UPSTREAM_MODEL } });
    expect(r.text).toContain('event: message_stop');
  });
});
