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
 * Then: after the break (its error event sent) the gateway kept reading the upstream to its end, writing nothing,
 * so the upstream went on generating for as long as the model wrote. Now the upstream request is cancelled at the
 * break (the fake sees its connection closed while it still had pieces to send), with no verdict on the channel
 * (the old code recorded a success once the upstream ended), and the key is charged what the upstream generated up
 * to the break (an estimate from the chunks it delivered: its count never came).
 *
 * A real gateway in this process over the project's fake OpenAI upstream; the official Anthropic SDK, and raw
 * SSE for the exact events.
 */
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import { call, channelOf, cleanupDirs, sseData, startGw, waitFor } from '../helpers/env.js';
import { admin, createKey } from '../keys/helpers.js';
import { BROKEN, readFileBody as body } from './read-file-tool.js';

/** a long tail after the piece that breaks the arguments: 200 more pieces, 25 ms apart (5 s) */
const TAIL = Array.from({ length: 200 }, (_, i) => `, "k${i}": ${i}`);
let gw: Gateway;
let broken: OpenAiFake;
let whole: OpenAiFake;
let brokenThenCut: OpenAiFake;
let tail: OpenAiFake;
let anthropic: Anthropic;

beforeAll(async () => {
  broken = await startOpenAiUpstream({ toolCall: { id: 'call_b1', name: 'read_file', arguments: BROKEN } });
  whole = await startOpenAiUpstream({ toolCall: { id: 'call_w1', name: 'read_file', arguments: '{"mode": "r", "path": "a\\\\.b", "recursive": true}' } });
  // the arguments go out in four pieces after the call's opening delta; the second breaks them (offset 25), and the
  // upstream dies after the third
  brokenThenCut = await startOpenAiUpstream({ toolCall: { id: 'call_c1', name: 'read_file', arguments: BROKEN }, cutAfterChunks: 4 });
  // the model goes on writing after the piece that breaks the arguments
  tail = await startOpenAiUpstream({
    toolCall: { id: 'call_t1', name: 'read_file', arguments: BROKEN },
    argumentPieces: ['{"mode": "r", ', '"path": "a\\.b"', ...TAIL, '}'],
    chunkDelayMs: 25,
    usage: { input: 50, output: 900 },
  });
  gw = await startGw({
    gateway: { routing: { retries: 0 } },
    channels: [
      channelOf(broken, 'oai-broken', ['broken-args']),
      channelOf(whole, 'oai-whole', ['whole-args']),
      channelOf(brokenThenCut, 'oai-broken-cut', ['broken-then-cut']),
      channelOf(tail, 'oai-tail', ['broken-tail']),
    ],
  });
  anthropic = new Anthropic({ apiKey: 'x', baseURL: gw.url, maxRetries: 0, timeout: 15_000 });
});
afterAll(async () => {
  await gw?.close();
  await broken?.close();
  await whole?.close();
  await brokenThenCut?.close();
  await tail?.close();
  cleanupDirs();
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
    // the upstream did nothing wrong by its protocol: the attempt is not a failure of the channel
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

  it('the upstream request is cancelled at the break: its connection closes while it still has pieces to send; health untouched, the key charged what was generated', async () => {
    const k = await createKey(gw.url, { name: 'broken-tail' });
    const before = gw.router.healthOf('local/oai-tail');
    const raw = await call(gw, '/v1/messages', {
      body: { ...body('broken-tail'), stream: true },
      headers: { 'x-api-key': k.secret, 'anthropic-version': '2023-06-01' },
    });
    expect(raw.status).toBe(200);
    const names = [...raw.text.matchAll(/^event: (.+)$/gm)].map((m) => m[1]);
    expect(names.at(-1)).toBe('error');
    expect(names.filter((n) => n === 'error')).toHaveLength(1);
    expect(JSON.parse(sseData(raw.text).at(-1)!).error.message).toContain(MESSAGE);
    // the fake writes 200 more pieces, 25 ms apart, after the break: it sees its client go well before it ends
    await waitFor(() => tail.abortCount() === 1, 'the upstream connection closed by the gateway', 2_000);
    // no verdict on the channel: not a failure, and not the success the old code recorded when the upstream ended
    expect(gw.router.healthOf('local/oai-tail')).toEqual(before);
    // charged what the upstream generated up to the break: the chunks it delivered (its count of 900 never came)
    const u = (await admin(gw.url, 'GET', `/admin/usage?key=${k.id}&by=model`, undefined)).json.total;
    expect(u.requests).toBe(1);
    expect(u.inputTokens).toBeGreaterThan(0);
    expect(u.outputTokens).toBeGreaterThan(0);
    expect(u.outputTokens).toBeLessThan(TAIL.length);
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
