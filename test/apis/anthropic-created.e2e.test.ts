/**
 * An `anthropic` channel's answer on /v1/chat/completions is built by the gateway (toChatCompletion, and the
 * stream translator for chunks), so the fields OpenAI's schema requires are the gateway's to set: `created` is
 * a number of seconds on the answer and on every chunk, streamed and not, served locally and through a bridge
 * peer. toChatCompletion took `created` positionally and its callers passed `undefined` for it (the default then
 * applied); it now sets `created` itself. Real gateways, the official openai SDK, a fake Anthropic upstream.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { channelOf, cleanupDirs, sdk, startBridgedPair, startGw } from '../helpers/env.js';
import { startAnthropicUpstream } from '../fakes/anthropic-upstream.js';
import type { FakeUpstream } from '../providers/conformance.js';

let up: FakeUpstream;
let local: Gateway;
let pair: { a: Gateway; b: Gateway };

beforeAll(async () => {
  up = await startAnthropicUpstream({ reply: 'The quick brown fox', toolCall: { id: 'toolu_01', name: 'find', arguments: '{"q":"fox"}' } });
  local = await startGw({ channels: [channelOf(up, 'ant', ['claude-x'])] });
  pair = await startBridgedPair('created', channelOf(up, 'up', ['claude-x']), { token: 'bridge-token-created-0123456789', admin: 'admin-created' });
});
afterAll(async () => {
  await local?.close();
  await pair?.a.close();
  await pair?.b.close();
  await up?.close();
  cleanupDirs();
});

const ask = { model: 'claude-x', messages: [{ role: 'user' as const, content: 'find the fox' }] };

/** `created` as OpenAI defines it: whole seconds since the epoch, within the call's time */
function expectCreated(created: unknown, from: number, to: number): void {
  expect(typeof created).toBe('number');
  expect(Number.isInteger(created)).toBe(true);
  expect(created as number).toBeGreaterThanOrEqual(Math.floor(from / 1000));
  expect(created as number).toBeLessThanOrEqual(Math.ceil(to / 1000));
}

describe.each([
  ['served locally', () => sdk(local)],
  ['served by a bridge peer', () => sdk(pair.a)],
])('/v1/chat/completions over an anthropic channel, %s', (_, client: () => OpenAI) => {
  it('a non-streamed answer has its created', async () => {
    const from = Date.now();
    // the SDK hands over the answer's JSON as parsed: a field left out is absent here, not filled in
    const data = await client().chat.completions.create(ask);
    expect(Object.hasOwn(data, 'created')).toBe(true);
    expectCreated(data.created, from, Date.now());
    expect(data.choices[0]?.message.tool_calls?.[0]).toMatchObject({ type: 'function', function: { name: 'find' } });
  });

  it('every chunk of a stream has its created', async () => {
    const from = Date.now();
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const c of await client().chat.completions.create({ ...ask, stream: true, stream_options: { include_usage: true } })) chunks.push(c);
    const to = Date.now();
    expect(chunks.length).toBeGreaterThan(3);
    expect(chunks.at(-1)?.usage).toBeTruthy();
    for (const c of chunks) expectCreated(c.created, from, to);
  });
});
