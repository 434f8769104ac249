/**
 * Regression: every upstream error message the gateway relayed (an error status's body, an in-band stream
 * error, on every channel and edge) was cut at 300 characters, so a longer one (an OpenAI rate-limit message
 * with its billing hint, a vLLM validation error, an Anthropic schema error) lost its end, often the part that
 * says what to do. Now one bound (RELAYED_TEXT_MAX, 1000 characters, docs/errors.md "Upstream messages") serves
 * every path: a message under it reaches the client whole, a longer one is cut there with `…`, scrubbed first.
 * One real gateway process, fake Anthropic and OpenAI upstreams, the official SDKs as clients.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminGet, channelOf, cleanupDirs, rejectionOf, startProcess, type GatewayProcess } from '../helpers/env.js';
import { startAnthropicUpstream } from '../fakes/anthropic-upstream.js';
import { startOpenAiUpstream } from '../fakes/openai-upstream.js';
import type { FakeUpstream } from '../providers/conformance.js';

const AN_KEY = 'anthropic-key-9a4c2e7f1b6d3085';
/** a real-looking message of 700-odd characters: over the former bound, under the new one */
const LONG = [
  'tools.0.custom.input_schema: JSON schema is invalid. It must match JSON Schema draft 2020-12',
  '(https://json-schema.org/draft/2020-12). Learn more about tool use at https://docs.anthropic.com/en/docs/tool-use.',
  'Found: property "filters" has "type": "object" with "additionalProperties": {"type": "array", "items": {"$ref": "#/$defs/Filter"}}',
  'but "$defs" is not declared at the top level of the schema; declare every definition a "$ref" names under "$defs".',
  'Also: property "limit" has "minimum": "1" (a string) where a number is expected.',
  'Fix the schema of tool "search_orders" and send the request again.',
].join(' ');

let gw: GatewayProcess;
let anLong: FakeUpstream;
let anHuge: FakeUpstream;
let oaLong: FakeUpstream;
let openai: OpenAI;
let anthropic: Anthropic;

beforeAll(async () => {
  anLong = await startAnthropicUpstream({ failStatus: 400, failMessage: LONG });
  anHuge = await startAnthropicUpstream({ failStatus: 500, failMessage: `internal failure for key ${AN_KEY}: ${'y'.repeat(5000)}` });
  oaLong = await startOpenAiUpstream({
    reply: 'x',
    inbandError: true,
    inbandErrorFirst: true,
    inbandErrorBody: { message: LONG, type: 'invalid_request_error', param: null, code: null },
  });
  gw = await startProcess({
    gateway: { routing: { retries: 0, health: { consecutiveFailures: 100, minRequests: 1000 } } },
    channels: [
      channelOf(anLong, 'an-long', ['an-long']),
      channelOf(anHuge, 'an-huge', ['an-huge'], { apiKey: AN_KEY }),
      channelOf(oaLong, 'oa-long', ['oa-long']),
    ],
  });
  openai = new OpenAI({ apiKey: 'x', baseURL: `${gw.url}/v1`, maxRetries: 0 });
  anthropic = new Anthropic({ apiKey: 'x', baseURL: gw.url, maxRetries: 0 });
});
afterAll(async () => {
  await gw?.stop();
  for (const f of [anLong, anHuge, oaLong]) await f?.close();
  cleanupDirs();
});

const chat = (model: string) => ({ model, messages: [{ role: 'user' as const, content: 'hi' }] });

/** The message of the Anthropic error body the SDK raised. */
const messageOf = (err: unknown) => ((err as InstanceType<typeof Anthropic.APIError>).error as { error: { message: string } }).error.message;

describe('an upstream message under the bound reaches the client whole', () => {
  it('an Anthropic 400 on /v1/chat/completions (translated)', async () => {
    expect(LONG.length).toBeGreaterThan(600);
    const err = await rejectionOf(openai.chat.completions.create(chat('an-long')));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as Error).message).toContain(`channel an-long: upstream answered 400: ${LONG}`);
    expect((err as Error).message).not.toContain('…');
  });

  it('an Anthropic 400 on /v1/messages', async () => {
    const err = await rejectionOf(anthropic.messages.create({ ...chat('an-long'), max_tokens: 16 }));
    expect(err).toBeInstanceOf(Anthropic.BadRequestError);
    expect(messageOf(err)).toBe(`channel an-long: upstream answered 400: ${LONG}`);
  });

  it('an OpenAI in-band stream error on /v1/messages (translated)', async () => {
    const err = await rejectionOf(anthropic.messages.create({ ...chat('oa-long'), max_tokens: 16, stream: true }));
    expect(err).toBeInstanceOf(Anthropic.BadRequestError);
    expect(messageOf(err)).toBe(`channel oa-long: upstream reported invalid_request_error mid-stream: ${LONG}`);
  });
});

describe('a longer one is cut at the bound, scrubbed first', () => {
  it('the client’s error and the channel’s lastError hold the first 1000 characters and `…`, without the echoed key', async () => {
    const err = await rejectionOf(openai.chat.completions.create(chat('an-huge')));
    expect(err).toBeInstanceOf(OpenAI.APIError);
    const body = (err as InstanceType<typeof OpenAI.APIError>).error as { message: string };
    const prefix = 'channel an-huge: upstream answered 500: ';
    expect(body.message.startsWith(`${prefix}internal failure for key [REDACTED]: yyy`)).toBe(true);
    expect(body.message).toHaveLength(prefix.length + 1000 + 1);
    expect(body.message.endsWith('y…')).toBe(true);
    const { channels } = await adminGet<{ channels: Array<{ id: string; health: { lastError: string | null } }> }>(gw.url, '/admin/channels');
    expect(channels.find((c) => c.id === 'local/an-huge')!.health.lastError).toBe(`UPSTREAM_ERROR: ${body.message}`);
    expect(gw.logs()).not.toContain(AN_KEY);
  });
});
