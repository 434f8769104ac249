/**
 * Regression: tool arguments that open as a JSON object and end before it closes (`{"mode": "r", "path": "src/ma`)
 * in an answer NOT cut by the token limit (`finish_reason: "tool_calls"`) reached `/v1/messages` clients as the
 * complete members only (`{"mode": "r"}`, `stop_reason: "tool_use"`): the unfinished `path` was dropped without a
 * word, and the client ran the tool without it. Now they fail the answer as broken arguments do
 * (`upstream_bad_response`, Anthropic `api_error`), streamed and not. Cut short by the token limit (`max_tokens`,
 * test/apis/length-finish-edges.e2e.test.ts) or the content filter (`refusal`), the stop reason says the call is
 * unfinished, and its complete members are kept.
 *
 * The other translating edges, for the same arguments and for arguments that break (no source change there):
 * `/v1/responses` carries arguments as the string the model wrote, so both are passed through whole, streamed (every
 * delta, and `.done`) and not; Gemini sends a call whole, so arguments that are no JSON object go as
 * `{"input": <text>}`, nothing dropped (docs/apis.md). Regression there: arguments that are JSON but no object
 * (`["src/main.ts", …]`) went out as a non-object `args`, which Gemini's Struct cannot be; they go as `{"input": …}` too.
 *
 * A real gateway in this process over the project's fake OpenAI upstream; the official Anthropic and OpenAI SDKs,
 * raw SSE for the exact events.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import { call, channelOf, cleanupDirs, sseData, startGw } from '../helpers/env.js';
import { BROKEN, readFileBody as body } from './read-file-tool.js';

const UNFINISHED = '{"mode": "r", "path": "src/ma';
/** JSON, but no object */
const LIST = '["src/main.ts", "src/util.ts"]';

let gw: Gateway;
let unfinished: OpenAiFake;
let filtered: OpenAiFake;
let broken: OpenAiFake;
let listArgs: OpenAiFake;
let anthropic: Anthropic;
let openai: OpenAI;

beforeAll(async () => {
  unfinished = await startOpenAiUpstream({ toolCall: { id: 'call_u1', name: 'read_file', arguments: UNFINISHED } });
  filtered = await startOpenAiUpstream({ toolCall: { id: 'call_f1', name: 'read_file', arguments: UNFINISHED }, finishReason: 'content_filter' });
  broken = await startOpenAiUpstream({ toolCall: { id: 'call_b1', name: 'read_file', arguments: BROKEN } });
  listArgs = await startOpenAiUpstream({ toolCall: { id: 'call_l1', name: 'read_file', arguments: LIST } });
  gw = await startGw({
    gateway: { routing: { retries: 0 } },
    channels: [
      channelOf(unfinished, 'oai-unfinished', ['unfinished-args']),
      channelOf(filtered, 'oai-filtered', ['filtered-args']),
      channelOf(broken, 'oai-broken', ['broken-args']),
      channelOf(listArgs, 'oai-list', ['list-args']),
    ],
  });
  anthropic = new Anthropic({ apiKey: 'x', baseURL: gw.url, maxRetries: 0, timeout: 15_000 });
  openai = new OpenAI({ apiKey: 'x', baseURL: `${gw.url}/v1`, maxRetries: 0, timeout: 15_000 });
});
afterAll(async () => {
  await gw?.close();
  for (const f of [unfinished, filtered, broken, listArgs]) await f?.close();
  cleanupDirs();
});

const names = (text: string) => [...text.matchAll(/^event: (.+)$/gm)].map((m) => m[1]);
const lastError = (text: string) => JSON.parse(sseData(text).at(-1)!) as { type: string; error: { type: string; code: string; message: string } };
const UNFINISHED_MESSAGE = `upstream answered a call of tool "read_file" whose arguments open as a JSON object and end at offset ${UNFINISHED.length} before it closes`;
const rejection = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

describe('/v1/messages: tool arguments that end before their object closes, in an answer not cut short', () => {
  it('non-streamed: a 502 api_error naming the tool and where the arguments end, never a tool_use without the unfinished member', async () => {
    const err = await rejection(anthropic.messages.create(body('unfinished-args')));
    expect(err).toBeInstanceOf(Anthropic.APIError);
    const e = err as InstanceType<typeof Anthropic.APIError>;
    expect(e.status).toBe(502);
    expect(e.error).toMatchObject({ type: 'error', error: { type: 'api_error', code: 'upstream_bad_response' } });
    expect((e.error as { error: { message: string } }).error.message).toContain(UNFINISHED_MESSAGE);
  });

  it('streamed: the same error as the `error` event that ends the stream (no message_delta, no message_stop); the SDK stream rejects', async () => {
    const raw = await call(gw, '/v1/messages', {
      body: { ...body('unfinished-args'), stream: true },
    });
    expect(raw.status).toBe(200);
    const n = names(raw.text);
    expect(n.at(-1)).toBe('error');
    expect(n.filter((e) => e === 'error')).toHaveLength(1);
    expect(n).not.toContain('message_delta');
    expect(n).not.toContain('message_stop');
    expect(lastError(raw.text)).toMatchObject({ type: 'error', error: { type: 'api_error', code: 'upstream_bad_response' } });
    expect(lastError(raw.text).error.message).toContain(UNFINISHED_MESSAGE);

    const err = await rejection(anthropic.messages.stream(body('unfinished-args')).finalMessage());
    expect(err).toBeInstanceOf(Anthropic.APIError);
    const e = (err as InstanceType<typeof Anthropic.APIError>).error as { error: { code: string; message: string } };
    expect(e.error.code).toBe('upstream_bad_response');
    expect(e.error.message).toContain(UNFINISHED_MESSAGE);
  });

  it('cut by the content filter: stop_reason refusal says the call is unfinished, and its complete members are kept, streamed and not', async () => {
    const m = await anthropic.messages.create(body('filtered-args'));
    expect(m.stop_reason).toBe('refusal');
    expect(m.content).toEqual([expect.objectContaining({ type: 'tool_use', name: 'read_file', input: { mode: 'r' } })]);
    const f = await anthropic.messages.stream(body('filtered-args')).finalMessage();
    expect(f.stop_reason).toBe('refusal');
    expect(f.content).toEqual([expect.objectContaining({ type: 'tool_use', name: 'read_file', input: { mode: 'r' } })]);
  });
});

describe('/v1/responses: function_call arguments are the string the model wrote, passed through', () => {
  for (const [model, args] of [
    ['broken-args', BROKEN],
    ['unfinished-args', UNFINISHED],
  ] as const)
    it(`${model}: the arguments whole, non-streamed and streamed (every delta, .done, the item, response.completed)`, async () => {
      const r = await openai.responses.create({ model, input: 'read it' });
      expect(r.status).toBe('completed');
      expect(r.output).toEqual([expect.objectContaining({ type: 'function_call', name: 'read_file', arguments: args, status: 'completed' })]);

      let deltas = '';
      let done: string | undefined;
      let completed: OpenAI.Responses.Response | undefined;
      for await (const e of await openai.responses.create({ model, input: 'read it', stream: true })) {
        if (e.type === 'response.function_call_arguments.delta') deltas += e.delta;
        if (e.type === 'response.function_call_arguments.done') done = e.arguments;
        if (e.type === 'response.completed') completed = e.response;
        expect(e.type).not.toBe('response.failed');
      }
      expect(deltas).toBe(args);
      expect(done).toBe(args);
      expect(completed?.output).toEqual([expect.objectContaining({ type: 'function_call', arguments: args, status: 'completed' })]);
    });
});

describe('Gemini: a function call goes whole, so arguments that are no JSON object go as {"input": <text>}', () => {
  const gemini = (model: string, method: string) =>
    fetch(`${gw.url}/v1beta/models/${model}:${method}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-goog-api-key': 'x' },
      body: JSON.stringify({
        contents: [{ role: 'user', parts: [{ text: 'read it' }] }],
        tools: [{ functionDeclarations: [{ name: 'read_file', parameters: { type: 'OBJECT', properties: { path: { type: 'STRING' } } } }] }],
      }),
    });
  for (const [model, args] of [
    ['broken-args', BROKEN],
    ['unfinished-args', UNFINISHED],
    // regression: JSON that is no object went out as `args: [...]`, which Gemini's Struct cannot be
    ['list-args', LIST],
  ] as const)
    it(`${model}: the text whole, with finishReason STOP, non-streamed and streamed`, async () => {
      const g = await gemini(model, 'generateContent');
      expect(g.status).toBe(200);
      const j = (await g.json()) as { candidates: Array<{ content: { parts: unknown[] }; finishReason: string }> };
      expect(j.candidates[0]!.content.parts).toEqual([{ functionCall: expect.objectContaining({ name: 'read_file', args: { input: args } }) }]);
      expect(j.candidates[0]!.finishReason).toBe('STOP');

      const s = await gemini(model, 'streamGenerateContent?alt=sse');
      expect(s.status).toBe(200);
      const chunks = sseData(await s.text()).map((d) => JSON.parse(d) as { candidates: Array<{ content: { parts: unknown[] }; finishReason?: string }> });
      const last = chunks.at(-1)!.candidates[0]!;
      expect(last.content.parts).toEqual([{ functionCall: expect.objectContaining({ name: 'read_file', args: { input: args } }) }]);
      expect(last.finishReason).toBe('STOP');
    });
});
