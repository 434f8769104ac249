/**
 * Regression: a chat upstream's tool-call arguments that open as a JSON object and then break
 * (`{"mode": "r", "path": "a\.b", "recursive": true}`: `\.` is no JSON escape) reached `/v1/messages` clients as
 * the object up to its last whole member, `{"mode": "r"}`, with `stop_reason: "tool_use"`: the client ran the tool
 * without `path` and `recursive`, arguments the model gave, and nothing said so. Streamed, the pieces stopped at
 * the break and the SDK read the same object. Now both paths fail the answer visibly with the same error
 * (`upstream_bad_response`, Anthropic `api_error`): a 502 when not streamed, an `error` event (no message_delta,
 * no message_stop) when streamed. Arguments cut at their end by the token limit are still the object as far as
 * it is JSON, with `stop_reason: "max_tokens"` (test/apis/length-finish-edges.e2e.test.ts).
 *
 * A real gateway in this process over the project's fake OpenAI upstream; the official Anthropic SDK, and raw
 * SSE for the exact events.
 */
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import { call, channelOf, cleanupDirs, sseData, startGw } from '../helpers/env.js';

const BROKEN = '{"mode": "r", "path": "a\\.b", "recursive": true}';
let gw: Gateway;
let broken: OpenAiFake;
let whole: OpenAiFake;
let brokenThenCut: OpenAiFake;
let anthropic: Anthropic;

beforeAll(async () => {
  broken = await startOpenAiUpstream({ toolCall: { id: 'call_b1', name: 'read_file', arguments: BROKEN } });
  whole = await startOpenAiUpstream({ toolCall: { id: 'call_w1', name: 'read_file', arguments: '{"mode": "r", "path": "a\\\\.b", "recursive": true}' } });
  // the arguments go out in four pieces after the call's opening delta; the second breaks them (offset 25), and the
  // upstream dies after the third
  brokenThenCut = await startOpenAiUpstream({ toolCall: { id: 'call_c1', name: 'read_file', arguments: BROKEN }, cutAfterChunks: 4 });
  gw = await startGw({
    gateway: { routing: { retries: 0 } },
    channels: [
      channelOf(broken, 'oai-broken', ['broken-args']),
      channelOf(whole, 'oai-whole', ['whole-args']),
      channelOf(brokenThenCut, 'oai-broken-cut', ['broken-then-cut']),
    ],
  });
  anthropic = new Anthropic({ apiKey: 'x', baseURL: gw.url, maxRetries: 0, timeout: 15_000 });
});
afterAll(async () => {
  await gw?.close();
  await broken?.close();
  await whole?.close();
  await brokenThenCut?.close();
  cleanupDirs();
});

const body = (model: string) => ({
  model,
  max_tokens: 100,
  messages: [{ role: 'user' as const, content: 'read it' }],
  tools: [
    {
      name: 'read_file',
      input_schema: { type: 'object' as const, properties: { mode: { type: 'string' }, path: { type: 'string' }, recursive: { type: 'boolean' } } },
    },
  ],
});
const MESSAGE = 'upstream answered a call of tool "read_file" whose arguments open as a JSON object and stop being JSON at offset 25';

describe('/v1/messages: tool arguments that open as a JSON object and break', () => {
  it('non-streamed: a 502 api_error naming the tool and where the arguments break, never a tool_use without the rest', async () => {
    const err = await anthropic.messages.create(body('broken-args')).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Anthropic.APIError);
    const e = err as InstanceType<typeof Anthropic.APIError>;
    expect(e.status).toBe(502);
    expect(e.error).toMatchObject({ type: 'error', error: { type: 'api_error', code: 'upstream_bad_response' } });
    expect((e.error as { error: { message: string } }).error.message).toContain(MESSAGE);
  });

  it('streamed: the same error as an `error` event, with no message_delta or message_stop; the SDK stream rejects', async () => {
    const before = gw.router.healthOf('local/oai-broken');
    const raw = await call(gw, '/v1/messages', { body: { ...body('broken-args'), stream: true } });
    expect(raw.status).toBe(200);
    const names = [...raw.text.matchAll(/^event: (.+)$/gm)].map((m) => m[1]);
    expect(names.slice(0, 3)).toEqual(['message_start', 'content_block_start', 'ping']);
    // the pieces that went out are the arguments before the break (offset 25, the `.` after the backslash), none of it
    const sent = sseData(raw.text)
      .map((d) => JSON.parse(d) as { delta?: { type: string; partial_json?: string } })
      .filter((e) => e.delta?.type === 'input_json_delta')
      .map((e) => e.delta!.partial_json)
      .join('');
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.length).toBeLessThanOrEqual(25);
    expect(BROKEN.startsWith(sent)).toBe(true);
    expect(names.at(-1)).toBe('error');
    expect(names).not.toContain('message_delta');
    expect(names).not.toContain('message_stop');
    const last = JSON.parse(sseData(raw.text).at(-1)!) as { type: string; error: { type: string; message: string; code: string } };
    expect(last).toMatchObject({ type: 'error', error: { type: 'api_error', code: 'upstream_bad_response' } });
    expect(last.error.message).toContain(MESSAGE);
    // the upstream served a whole answer: the attempt is not a failure of the channel
    const after = gw.router.healthOf('local/oai-broken');
    expect(after.consecutiveFailures).toBe(before.consecutiveFailures);
    expect(after.lastError).toBe(before.lastError);

    const err = await anthropic.messages
      .stream(body('broken-args'))
      .finalMessage()
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(Anthropic.APIError);
    const e = (err as InstanceType<typeof Anthropic.APIError>).error as { type: string; error: { type: string; message: string; code: string } };
    expect(e).toMatchObject({ type: 'error', error: { type: 'api_error', code: 'upstream_bad_response' } });
    expect(e.error.message).toContain(MESSAGE);
  });

  it('streamed, when the upstream then fails too: the stream still ends with one error event, the broken arguments’ own', async () => {
    const raw = await call(gw, '/v1/messages', { body: { ...body('broken-then-cut'), stream: true } });
    expect(raw.status).toBe(200);
    const names = [...raw.text.matchAll(/^event: (.+)$/gm)].map((m) => m[1]);
    expect(names.filter((n) => n === 'error')).toHaveLength(1);
    expect(names.at(-1)).toBe('error');
    expect(JSON.parse(sseData(raw.text).at(-1)!).error.message).toContain(MESSAGE);
  });

  it('the same arguments written as JSON (`\\\\.`) are the whole object, streamed and not', async () => {
    const want = { mode: 'r', path: 'a\\.b', recursive: true };
    const m = await anthropic.messages.create(body('whole-args'));
    expect(m.content).toEqual([expect.objectContaining({ type: 'tool_use', name: 'read_file', input: want })]);
    expect(m.stop_reason).toBe('tool_use');
    const f = await anthropic.messages.stream(body('whole-args')).finalMessage();
    expect(f.content).toEqual([expect.objectContaining({ type: 'tool_use', name: 'read_file', input: want })]);
  });
});
