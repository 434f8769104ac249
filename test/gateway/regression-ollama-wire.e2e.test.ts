/**
 * The `ollama` channel against Ollama's native wire as its server writes it (server/routes.go: an error before any
 * line is an HTTP status with `{"error": "…"}`, one after a line is an `{"error": "…"}` line; the final line is
 * `done: true` with its `done_reason`), end to end: one real gateway process, a scripted fake Ollama
 * (test/fakes/ollama-upstream.ts `scripts`), the official openai SDK (and raw HTTP for the SSE bytes) as clients.
 *
 * Regressions (each failed before its fix):
 * - an `{"error": …}` line in a 200 stream was always `upstream_stream_error`, read by no rule: an error object a
 *   proxy in front of Ollama sends was not mapped by its kind (a client's `code: 400` was retried on another
 *   channel and held against this one; a `rate_limit_error` was a 502), and the answer's Retry-After was not read;
 * - `done_reason: "length"` on an answer with tool calls was reported `tool_calls` (a cut-short turn as complete);
 * - `done_reason: "load"`/`"unload"` (a model loaded or unloaded, nothing generated) was an empty `stop` success;
 * - an embedding holding a number JSON cannot hold (`1e999`) reached the client as `null`.
 * The rest pins down what was already right: each error status (retried and counted or not), an error line first
 * or after content, a stream without its done line, lines split across writes, malformed and over-long lines, usage
 * counts missing, null or not numbers, and embeddings without a vector list.
 */
import OpenAI from 'openai';
import { Ollama } from 'ollama';
import { beforeAll, describe, expect, it } from 'vitest';
import { call, channelHealth, channelOf, chatBody, contentOf, rejectionOf, sseData, startProcess, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { ndjson, startOllamaUpstream, type OllamaFake, type OllamaScript } from '../fakes/ollama-upstream.js';

const started = stopAfterAll();
let gw: GatewayProcess;
let scripted: OllamaFake;
let backup: OllamaFake;
let openai: OpenAI;

const at = '2026-05-01T10:00:00.123456789Z';
const line = (content: string, extra: Record<string, unknown> = {}) => ({
  model: 'm',
  created_at: at,
  message: { role: 'assistant', content, ...extra },
  done: false,
});
const done = (extra: Record<string, unknown> = {}) => ({
  model: 'm',
  created_at: at,
  message: { role: 'assistant', content: '' },
  done: true,
  done_reason: 'stop',
  prompt_eval_count: 7,
  eval_count: 3,
  ...extra,
});
/** An answer as Ollama writes it: NDJSON when the request streams, else one JSON object. */
const answer =
  (lines: object[], final: Record<string, unknown>) =>
  (body: Record<string, unknown>): OllamaScript => {
    if (body.stream !== false) return { writes: [ndjson(...lines, final)] };
    const calls = lines.flatMap((l) => (l as { message: { tool_calls?: unknown[] } }).message.tool_calls ?? []);
    const content = lines.map((l) => (l as { message: { content: string } }).message.content).join('');
    const message = { role: 'assistant', content, ...(calls.length ? { tool_calls: calls } : {}) };
    return { headers: { 'content-type': 'application/json; charset=utf-8' }, writes: [JSON.stringify({ ...final, message })] };
  };
/** An error status as Ollama answers it (`c.JSON(status, gin.H{"error": …})`). */
const status = (s: number, error: string, headers: Record<string, string> = {}): OllamaScript => ({
  status: s,
  headers: { 'content-type': 'application/json; charset=utf-8', ...headers },
  writes: [JSON.stringify({ error })],
});
const TOOL = { function: { index: 0, name: 'get_weather', arguments: { city: 'Paris' } } };
/** What Ollama answers a chat with no messages: the model loaded (or unloaded), nothing generated. */
const loadAnswer = (reason: string): OllamaScript => ({
  headers: { 'content-type': 'application/json; charset=utf-8' },
  writes: [JSON.stringify({ model: 'm', created_at: at, message: { role: 'assistant', content: '' }, done: true, done_reason: reason })],
});
const cafe = Buffer.from(ndjson(line('café'), line(' au lait'), done()));
const eAt = cafe.indexOf(Buffer.from('é')) + 1; // inside the two bytes of é

const SCRIPTS: Record<string, OllamaScript | ((body: Record<string, unknown>) => OllamaScript)> = {
  // error statuses, with a backup channel behind each (b-<model>)
  s400: status(400, '"s400" does not support tools'),
  s404: status(404, 'model "s404" not found, try pulling it first'),
  s429: status(429, 'too many requests', { 'retry-after': '7' }),
  s500: status(500, 'llama runner process has terminated: exit status 2'),
  s503: status(503, 'server busy, please try again.  maximum pending requests exceeded'),
  // the same without a backup: what the client is answered
  n404: status(404, 'model "n404" not found, try pulling it first'),
  n429: status(429, 'too many requests', { 'retry-after': '7' }),
  n503: status(503, 'server busy, please try again.  maximum pending requests exceeded'),
  // an error line as a 200 stream's first line
  'first-str': { writes: [ndjson({ error: 'an error was encountered while running the model: CUDA error' })] },
  'first-client': { writes: [ndjson({ error: { message: 'prompt is too long', code: 400 } })] },
  'first-rate': {
    headers: { 'content-type': 'application/x-ndjson', 'retry-after': '9' },
    writes: [ndjson({ error: { message: 'slow down', type: 'rate_limit_error' } })],
  },
  // an error line after content
  'mid-str': { writes: [ndjson(line('one')), ndjson({ error: 'an error was encountered while running the model: unexpected EOF' })] },
  'mid-rate': {
    headers: { 'content-type': 'application/x-ndjson', 'retry-after': '9' },
    writes: [ndjson(line('one')), ndjson({ error: { message: 'slow down', type: 'rate_limit_error' } })],
  },
  // done reasons
  'dr-length-tool': answer([line('', { tool_calls: [TOOL] })], done({ done_reason: 'length' })),
  'dr-stop-tool': answer([line('', { tool_calls: [TOOL] })], done()),
  'dr-length': answer([line('cut'), line(' short')], done({ done_reason: 'length' })),
  'dr-load': loadAnswer('load'),
  'dr-unload': loadAnswer('unload'),
  // stream shapes
  'no-done': { writes: [ndjson(line('one'), line(' two'))] },
  'not-json': { writes: [ndjson(line('one')), '<html>502 Bad Gateway</html>\n'] },
  split: { writes: [cafe.subarray(0, 9), cafe.subarray(9, eAt), cafe.subarray(eAt)] },
  'no-newline': { writes: [ndjson(line('one')), JSON.stringify(done())] },
  'long-line': { writes: [ndjson(line('one')), ndjson(line('x'.repeat(8000))), ndjson(done())] },
  'usage-missing': answer([line('hi')], done({ prompt_eval_count: undefined, eval_count: undefined })),
  'usage-null': answer([line('hi')], done({ prompt_eval_count: null, eval_count: null })),
  'usage-odd': answer([line('hi')], done({ prompt_eval_count: '7', eval_count: -3 })),
  'usage-one': answer([line('hi')], done({ prompt_eval_count: undefined })),
  // embeddings
  'emb-missing': { headers: { 'content-type': 'application/json' }, writes: [JSON.stringify({ model: 'emb-missing' })] },
  'emb-null': { headers: { 'content-type': 'application/json' }, writes: [JSON.stringify({ model: 'emb-null', embeddings: null })] },
  'emb-object': { headers: { 'content-type': 'application/json' }, writes: [JSON.stringify({ model: 'emb-object', embeddings: { 0: [0.1] } })] },
  'emb-strings': { headers: { 'content-type': 'application/json' }, writes: [JSON.stringify({ model: 'emb-strings', embeddings: [['0.1', '0.2']] })] },
  'emb-inf': { headers: { 'content-type': 'application/json' }, writes: ['{"model":"emb-inf","embeddings":[[1e999,0.5]]}'] },
  'emb-count': { headers: { 'content-type': 'application/json' }, writes: [JSON.stringify({ model: 'emb-count', embeddings: [[0.1], [0.2]] })] },
  'emb-error': { headers: { 'content-type': 'application/json' }, writes: [JSON.stringify({ error: 'this model does not support embeddings' })] },
};
const WITH_BACKUP = ['s400', 's404', 's429', 's500', 's503', 'first-str', 'first-client', 'first-rate', 'dr-load'];

beforeAll(async () => {
  scripted = started.track(await startOllamaUpstream({ scripts: SCRIPTS }));
  backup = started.track(await startOllamaUpstream({ reply: 'from the backup' }));
  const channels = Object.keys(SCRIPTS).map((m) => channelOf(scripted, m, [m], { weight: 2, ...(m === 'long-line' ? { maxResponseBytes: 4096 } : {}) }));
  gw = started.trackGateway(
    await startProcess({
      // deterministic order: the scripted channel (weight 2) first, its backup (weight 1) on the retry; no ejection
      // by count, so only a Retry-After takes a channel out
      gateway: { routing: { strategy: 'priority', retries: 1, health: { consecutiveFailures: 100, minRequests: 1000 } } },
      channels: [...channels, ...WITH_BACKUP.map((m) => channelOf(backup, `b-${m}`, [m], { weight: 1 }))],
    }),
  );
  openai = new OpenAI({ apiKey: 'x', baseURL: `${gw.url}/v1`, maxRetries: 0 });
});

const chat = (model: string) => openai.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] });
const stream = (model: string) => openai.chat.completions.create({ model, stream: true, messages: [{ role: 'user', content: 'hi' }] });
/** A streamed request's SSE events, raw. */
const sse = async (model: string) => {
  const r = await call(gw, '/v1/chat/completions', { body: chatBody(model, 'hi', { stream: true, stream_options: { include_usage: true } }) });
  return { status: r.status, headers: r.headers, json: r.json, events: r.status === 200 ? sseData(r.text) : [] };
};
const lastError = (events: string[]) => JSON.parse(events.at(-1)!) as { error: { code: string; message: string } };

describe('an error status: the code the status table gives, retried and counted as the router’s rules say', () => {
  it('400 (the request’s fault): upstream_client_error 400, neither retried nor held against the channel', async () => {
    for (const p of [chat('s400'), stream('s400')]) {
      const err = await rejectionOf(p);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect((err as InstanceType<typeof OpenAI.BadRequestError>).code).toBe('upstream_client_error');
      expect((err as Error).message).toContain('does not support tools');
    }
    expect(backup.requestsFor('s400')).toBe(0);
    expect((await channelHealth(gw.url, 's400')).consecutiveFailures).toBe(0);
  });

  it('404 model not found: a channel whose upstream lacks the model (its config’s fault): served elsewhere, not held against the channel, which is skipped for that model (docs/routing.md, A missing model)', async () => {
    expect((await chat('s404')).choices[0]!.message.content).toBe('from the backup');
    let text = '';
    for await (const c of await stream('s404')) text += c.choices[0]?.delta.content ?? '';
    expect(text).toBe('from the backup');
    // asked once: the stream went to the backup without asking it again
    expect(scripted.requestsFor('s404')).toBe(1);
    expect(await channelHealth(gw.url, 's404')).toMatchObject({ consecutiveFailures: 0, state: 'healthy' });
    const err = await rejectionOf(chat('n404'));
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect(err).toMatchObject({ status: 404, code: 'model_not_found' });
    expect((err as Error).message).toContain('not found, try pulling it first');
  });

  it('429 with Retry-After: retried elsewhere, the channel out for that long; alone, the client gets 429 and the Retry-After', async () => {
    expect((await chat('s429')).choices[0]!.message.content).toBe('from the backup');
    const h = await channelHealth(gw.url, 's429');
    expect(h).toMatchObject({ state: 'ejected', reason: 'upstream asked to retry after 7s' });
    const err = await rejectionOf(stream('n429'));
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect((err as InstanceType<typeof OpenAI.RateLimitError>).headers.get('retry-after')).toBe('7');
  });

  it('500 and 503: retried elsewhere and counted; alone, 503 is answered 503', async () => {
    for (const m of ['s500', 's503']) {
      let text = '';
      for await (const c of await stream(m)) text += c.choices[0]?.delta.content ?? '';
      expect(text).toBe('from the backup');
      expect((await channelHealth(gw.url, m)).consecutiveFailures).toBe(1);
    }
    const err = await rejectionOf(chat('n503'));
    expect(err).toMatchObject({ status: 503, code: 'upstream_error' });
  });
});

describe('an {"error": …} line in a 200 stream', () => {
  it('as the first line, Ollama’s bare string: the request’s error (upstream_stream_error), retried elsewhere and counted', async () => {
    let text = '';
    for await (const c of await stream('first-str')) text += c.choices[0]?.delta.content ?? '';
    expect(text).toBe('from the backup');
    expect(await channelHealth(gw.url, 'first-str')).toMatchObject({ consecutiveFailures: 1, lastError: expect.stringContaining('CUDA error') });
  });

  it('as the first line, an error object naming a client error (code 400): 400, neither retried nor held against the channel', async () => {
    const r = await sse('first-client');
    expect(r.status).toBe(400);
    expect(r.json.error).toMatchObject({
      code: 'upstream_client_error',
      message: 'channel first-client: upstream reported status 400 mid-stream: prompt is too long',
    });
    expect(backup.requestsFor('first-client')).toBe(0);
    expect((await channelHealth(gw.url, 'first-client')).consecutiveFailures).toBe(0);
  });

  it('as the first line, a rate_limit_error with the answer’s Retry-After: rate_limited, the channel out for that long, retried elsewhere', async () => {
    let text = '';
    for await (const c of await stream('first-rate')) text += c.choices[0]?.delta.content ?? '';
    expect(text).toBe('from the backup');
    expect(await channelHealth(gw.url, 'first-rate')).toMatchObject({ state: 'ejected', reason: 'upstream asked to retry after 9s' });
  });

  it('after content, a bare string: the stream ends with upstream_stream_error, no [DONE]', async () => {
    const { status: s, events } = await sse('mid-str');
    expect(s).toBe(200);
    expect(contentOf(events.slice(0, -1))).toBe('one');
    expect(events).not.toContain('[DONE]');
    expect(lastError(events).error).toMatchObject({ code: 'upstream_stream_error', message: expect.stringContaining('unexpected EOF') });
  });

  it('after content, a rate_limit_error with the answer’s Retry-After: the stream ends with rate_limited, no [DONE], the channel out for that long', async () => {
    const { events } = await sse('mid-rate');
    expect(contentOf(events.slice(0, -1))).toBe('one');
    expect(events).not.toContain('[DONE]');
    expect(lastError(events).error).toMatchObject({
      code: 'rate_limited',
      message: 'channel mid-rate: upstream reported rate_limit_error mid-stream: slow down',
    });
    expect(await channelHealth(gw.url, 'mid-rate')).toMatchObject({ state: 'ejected', reason: 'upstream asked to retry after 9s' });
  });
});

describe('done_reason → finish_reason', () => {
  it('"length" with tool calls stays length (a cut-short turn), streamed and not; "stop" with tool calls is tool_calls', async () => {
    const cut = await chat('dr-length-tool');
    expect(cut.choices[0]).toMatchObject({
      finish_reason: 'length',
      message: { tool_calls: [{ function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
    });
    const finishes: Array<string | null | undefined> = [];
    for await (const c of await stream('dr-length-tool')) if (c.choices[0]?.finish_reason) finishes.push(c.choices[0].finish_reason);
    expect(finishes).toEqual(['length']);
    expect((await chat('dr-stop-tool')).choices[0]!.finish_reason).toBe('tool_calls');
    expect((await chat('dr-length')).choices[0]).toMatchObject({ finish_reason: 'length', message: { content: 'cut short' } });
  });

  it('"load" (a model loaded, nothing generated) is no answer: upstream_bad_response, retried elsewhere', async () => {
    expect((await chat('dr-load')).choices[0]!.message.content).toBe('from the backup');
    let text = '';
    for await (const c of await stream('dr-load')) text += c.choices[0]?.delta.content ?? '';
    expect(text).toBe('from the backup');
    expect(await channelHealth(gw.url, 'dr-load')).toMatchObject({ consecutiveFailures: 2, lastError: expect.stringContaining('done_reason "load"') });
  });

  it('"unload" alone: 502 upstream_bad_response, streamed and not (no empty success)', async () => {
    const err = await rejectionOf(chat('dr-unload'));
    expect(err).toMatchObject({ status: 502, code: 'upstream_bad_response' });
    const r = await sse('dr-unload');
    expect(r.status).toBe(502);
    expect(r.json.error).toMatchObject({ code: 'upstream_bad_response', message: expect.stringContaining('done_reason "unload"') });
  });
});

describe('the stream’s lines', () => {
  it('a stream that ends without done: true ends with upstream_stream_error, no [DONE]', async () => {
    const { events } = await sse('no-done');
    expect(contentOf(events.slice(0, -1))).toBe('one two');
    expect(events).not.toContain('[DONE]');
    expect(lastError(events).error.code).toBe('upstream_stream_error');
  });

  it('a line that is not JSON ends the stream with upstream_bad_response, no [DONE]', async () => {
    const { events } = await sse('not-json');
    expect(contentOf(events.slice(0, -1))).toBe('one');
    expect(events).not.toContain('[DONE]');
    expect(lastError(events).error.code).toBe('upstream_bad_response');
  });

  it('lines split across writes (one inside a UTF-8 character) and a done line without its newline are read whole', async () => {
    const split = await sse('split');
    expect(contentOf(split.events)).toBe('café au lait');
    expect(split.events.at(-1)).toBe('[DONE]');
    const last = await sse('no-newline');
    expect(contentOf(last.events)).toBe('one');
    expect(last.events.at(-1)).toBe('[DONE]');
  });

  it('a line longer than the channel’s maxResponseBytes ends the stream with upstream_bad_response', async () => {
    const { events } = await sse('long-line');
    expect(contentOf(events.slice(0, -1))).toBe('one');
    expect(events).not.toContain('[DONE]');
    expect(lastError(events).error).toMatchObject({ code: 'upstream_bad_response', message: expect.stringContaining('maxResponseBytes (4096)') });
  });

  it('usage counts missing, null or not counts: left out of the usage (never 0, never a crash), the answer whole', async () => {
    // the OpenAI edge shows the counts the upstream gave; the side it did not count is charged an estimate
    // (test/keys/regression-translated-usage-without-counts.e2e.test.ts)
    for (const m of ['usage-missing', 'usage-null', 'usage-odd']) {
      const r = await chat(m);
      expect(r.choices[0]!.message.content).toBe('hi');
      expect(r.usage, m).toEqual({});
      const { events } = await sse(m);
      expect(events.at(-1)).toBe('[DONE]');
      expect(contentOf(events.slice(0, -1))).toBe('hi');
      expect((JSON.parse(events.at(-2)!) as { usage: unknown }).usage, m).toEqual({});
    }
    expect((await chat('usage-one')).usage).toEqual({ completion_tokens: 3 });
  });
});

describe('embeddings (/api/embed)', () => {
  const embed = (model: string) => rejectionOf(openai.embeddings.create({ model, input: 'hello' }));

  it('no vector list (missing, null, an object), vectors of strings, too many, or a number JSON cannot hold: 502 upstream_bad_response', async () => {
    for (const m of ['emb-missing', 'emb-null', 'emb-object', 'emb-strings', 'emb-count', 'emb-inf']) {
      expect(await embed(m), m).toMatchObject({ status: 502, code: 'upstream_bad_response' });
    }
  });

  it('an {"error": …} body with 200 is the error it reports (upstream_error)', async () => {
    expect(await embed('emb-error')).toMatchObject({ status: 502, code: 'upstream_error', message: expect.stringContaining('does not support embeddings') });
  });
});

describe('the scripts are what the official ollama client reads as Ollama', () => {
  it('a tool call cut by length, a load answer, a split line, and error lines first and after content', async () => {
    const client = new Ollama({ host: scripted.channel.baseUrl! });
    const cut = await client.chat({ model: 'dr-length-tool', messages: [{ role: 'user', content: 'x' }] });
    expect(cut).toMatchObject({ done_reason: 'length', message: { tool_calls: [{ function: { name: 'get_weather' } }] } });
    expect(await client.chat({ model: 'dr-load', messages: [] })).toMatchObject({ done: true, done_reason: 'load' });
    let text = '';
    for await (const p of await client.chat({ model: 'split', messages: [{ role: 'user', content: 'x' }], stream: true })) text += p.message.content;
    expect(text).toBe('café au lait');
    for (const m of ['first-str', 'mid-str']) {
      const it = await client.chat({ model: m, messages: [{ role: 'user', content: 'x' }], stream: true });
      await expect(
        (async () => {
          for await (const _ of it) void _;
        })(),
      ).rejects.toThrow(/an error was encountered while running the model/);
    }
  });
});
