/**
 * A fake OpenAI-compatible upstream (api.openai.com, vLLM) on 127.0.0.1:0, driven by a conformance Scenario.
 * It speaks the real chat-completions wire format (shapes from the public API reference):
 * - non-stream: a `chat.completion` object with `usage` (incl. the `*_tokens_details` objects);
 * - stream: `data: {chat.completion.chunk}` lines — a role chunk first (`content: ""`, `refusal: null`; for a
 *   tool-only answer the role rides on the first tool-call delta, as the API does), then one chunk per
 *   token-ish word piece, then a `finish_reason` chunk with an empty delta; with
 *   `stream_options.include_usage` every chunk carries `"usage": null` and a last chunk with `choices: []` and
 *   the usage follows; then `data: [DONE]`;
 * - tool calls streamed as OpenAI does: a first delta with index, id, type, function.name and empty arguments,
 *   then argument fragments (`{index, function: {arguments}}`);
 * - errors as `{error: {message, type, param, code}}` with the status (or, `errorInReply`, with a 200); in-band stream errors as
 *   `data: {"error": {...}}` followed by the end of the body (no [DONE]), after the first content chunk or
 *   (`inbandErrorFirst`) as the first data; or both at the top level, as older vLLM sends them
 *   (`vllmTopLevelErrors`: `{"object":"error","message",…,"code":400}`);
 * - `POST /v1/embeddings` (float or base64 little-endian float32, as the official SDK asks for by default; with
 *   `usage` unless `noUsage`),
 *   `GET /v1/models`.
 * It enforces the request rules the real API applies most often (model and messages required,
 * `stream_options` only with `stream`, `tool` messages only after `tool_calls`, Bearer key when one is set),
 * answering 400/401 like the API does. Unknown request fields are accepted, as vLLM does.
 * Every request is recorded (method, path, headers, parsed body).
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FakeUpstream, Scenario } from '../providers/conformance.js';

export interface OpenAiScenario extends Scenario {
  /** ms to wait before the response headers */
  delayMs?: number;
  /** stream: ms between content chunks (the role chunk goes out at once) */
  chunkDelayMs?: number;
  /** stream: after this many content chunks, go silent without ending the body (idle-timeout tests) */
  stallAfterChunks?: number;
  /** model name reported in replies; default: the model asked for */
  modelName?: string;
  /** stream: what ends each SSE line (the WHATWG rules allow all three); default `\n`, as OpenAI sends */
  lineEnd?: '\n' | '\r\n' | '\r';
  /**
   * never report usage, as some vLLM and llama.cpp servers do: a stream ignores `stream_options.include_usage`
   * (no usage chunk, no `"usage": null`), a non-streaming answer has no `usage`
   */
  noUsage?: boolean;
  /**
   * the `usage` object sent in place of the count (a non-streaming answer's, the stream's usage chunk's, an
   * embeddings answer's): one without numbers, such as `{}` or `{"prompt_tokens": null}`, as some servers send
   */
  usageObject?: Record<string, unknown>;
  /**
   * stream: the count rides on the finish chunk (its `choices` hold the finish_reason) instead of a `choices: []`
   * chunk of its own, as some llama.cpp builds send it; with `stream_options.include_usage` only
   */
  usageOnFinish?: boolean;
  /** stream: the `error` object of the `inbandError` chunk; default a `server_error` */
  inbandErrorBody?: Record<string, unknown>;
  /** stream: the `inbandError` chunk is the first data, before the role chunk */
  inbandErrorFirst?: boolean;
  /**
   * errors in the form older vLLM sends (its ErrorResponse at the top level, not under `error`): a `failStatus`
   * body `{"object":"error","message","type":"BadRequestError"…,"param":null,"code":<status>}`, and the
   * `inbandError` chunk `data: {"object":"error",…inbandErrorBody}`
   */
  vllmTopLevelErrors?: boolean;
  /**
   * non-stream chat and embeddings: answer 200 with this error as the whole body, as some OpenAI-compatible servers and proxies do:
   * `{"error": {...}}`, or with `vllmTopLevelErrors` `{"object":"error", ...}`
   */
  errorInReply?: Record<string, unknown>;
  /**
   * The models the server has: a chat or embeddings request naming another one gets the 404 the real server
   * answers: OpenAI's `code: "model_not_found"`, or with `vllmTopLevelErrors` vLLM's `NotFoundError` ("The model
   * `x` does not exist."). None: every model is served.
   */
  servedModels?: string[];
  /**
   * a chat request with this token-limit field (any value) is refused as the server it stands for refuses it:
   * `max_tokens` as OpenAI's reasoning models do (400 `unsupported_parameter`, "Use 'max_completion_tokens'
   * instead."), `max_completion_tokens` as Mistral does (422, the field is not one it knows)
   */
  refuseTokenField?: 'max_tokens' | 'max_completion_tokens';
  /** the answer's `finish_reason` (non-stream, and the stream's finish chunk); default `tool_calls` with a tool call, else `stop` */
  finishReason?: string;
  /**
   * stream: the tool call's arguments as these pieces, one delta each (their join stands for `toolCall.arguments`,
   * which a non-streaming answer still carries), instead of four equal fragments: a long tail after a given piece
   */
  argumentPieces?: string[];
}

export interface OpenAiFakeOptions {
  /** channel name in `channel`; default "openai-fake" (or "vllm-fake") */
  name?: string;
  /** `openai` (default: the fake requires a key) or `vllm` (no key needed; baseUrl without a key) */
  provider?: 'openai' | 'vllm';
  /** Bearer key the fake requires; default "sk-fake-openai" for openai, none for vllm */
  apiKey?: string;
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  /** parsed JSON body; undefined when it was not JSON (or empty) */
  body: Record<string, unknown> | undefined;
  /** arrival order across every fake in this process (compare requests on several fakes) */
  order: number;
}

export interface OpenAiFake extends FakeUpstream {
  /** every request received, oldest first */
  readonly requests: RecordedRequest[];
  /** number of requests whose path ends with `suffix` (default: all) */
  count(suffix?: string): number;
  /** behaviour for the next requests, one scenario each (FIFO), replacing the base scenario for that request */
  enqueue(...scenarios: OpenAiScenario[]): void;
  /** replaces the base scenario for all later requests */
  setScenario(s: OpenAiScenario): void;
  /** how many client connections closed before their answer finished */
  abortCount(): number;
  /** http://127.0.0.1:port/v1 */
  readonly baseUrl: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let arrivals = 0;

/** Deterministic embedding for an input (string, or token array) — what the fake's /v1/embeddings returns. */
export function openAiVector(input: unknown, dims = 8): number[] {
  const h = createHash('sha256').update(JSON.stringify(input)).digest();
  return Array.from({ length: dims }, (_, i) => Math.fround((h[i % h.length]! - 127.5) / 127.5));
}

/** Real OpenAI error bodies per status (type / code as the API sends them). */
function errorFor(status: number): { message: string; type: string; param: string | null; code: string | null } {
  switch (status) {
    case 400:
      return { message: "Invalid value for 'temperature': expected a decimal.", type: 'invalid_request_error', param: 'temperature', code: 'invalid_value' };
    case 401:
      return {
        message: 'Incorrect API key provided: sk-fake. You can find your API key at https://platform.openai.com/account/api-keys.',
        type: 'invalid_request_error',
        param: null,
        code: 'invalid_api_key',
      };
    case 404:
      return {
        message: 'The model `gpt-unknown` does not exist or you do not have access to it.',
        type: 'invalid_request_error',
        param: null,
        code: 'model_not_found',
      };
    case 429:
      return {
        message:
          'Rate limit reached for gpt-4o-mini in organization org-fake on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.',
        type: 'requests',
        param: null,
        code: 'rate_limit_exceeded',
      };
    case 503:
      return { message: 'The engine is currently overloaded, please try again later.', type: 'server_error', param: null, code: null };
    default:
      return { message: 'The server had an error while processing your request. Sorry about that!', type: 'server_error', param: null, code: null };
  }
}

/** An error body as older vLLM sends it (its ErrorResponse model, serialised at the top level). */
function vllmError(status: number): Record<string, unknown> {
  if (status === 400) return { object: 'error', message: VLLM_CONTEXT_MESSAGE, type: 'BadRequestError', param: null, code: 400 };
  return { object: 'error', message: errorFor(status).message, type: status === 404 ? 'NotFoundError' : 'InternalServerError', param: null, code: status };
}

/** vLLM's answer to a prompt longer than the model's context (a 400). */
export const VLLM_CONTEXT_MESSAGE =
  "This model's maximum context length is 4096 tokens. However, you requested 4363 tokens (4107 in the messages, 256 in the completion). Please reduce the length of the messages or completion.";

/** Reasons the real API would answer 400, or undefined. */
function invalidChat(body: Record<string, unknown>): { message: string; param: string | null; code: string | null } | undefined {
  if (typeof body.model !== 'string' || !body.model) return { message: 'you must provide a model parameter', param: null, code: null };
  const msgs = body.messages;
  if (!Array.isArray(msgs)) return { message: "Missing required parameter: 'messages'.", param: 'messages', code: 'missing_required_parameter' };
  if (msgs.length === 0)
    return {
      message: "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
      param: 'messages',
      code: 'empty_array',
    };
  if (body.stream_options != null && body.stream !== true) {
    return { message: "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param: 'stream_options', code: null };
  }
  for (let i = 0; i < msgs.length; i++) {
    const m = msgs[i] as { role?: unknown; tool_call_id?: unknown };
    if (!['system', 'developer', 'user', 'assistant', 'tool', 'function'].includes(String(m.role))) {
      return {
        message: `Invalid value: '${String(m.role)}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.`,
        param: `messages[${i}].role`,
        code: 'invalid_value',
      };
    }
    if (m.role === 'tool') {
      const prev = msgs
        .slice(0, i)
        .reverse()
        .find((p) => (p as { role?: unknown }).role !== 'tool') as { tool_calls?: unknown } | undefined;
      if (!prev || !Array.isArray(prev.tool_calls)) {
        return {
          message: "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
          param: `messages.[${i}].role`,
          code: null,
        };
      }
    }
  }
  return undefined;
}

/** "one two three" → ["one", " two", " three"] (OpenAI tokens carry their leading space) */
const pieces = (s: string) => s.match(/\s*\S+/g) ?? [s];

/** a JSON string cut into 4 fragments, like the API streams function arguments */
function fragments(json: string): string[] {
  const step = Math.max(1, Math.ceil(json.length / 4));
  const out: string[] = [];
  for (let i = 0; i < json.length; i += step) out.push(json.slice(i, i + step));
  return out;
}

function promptTokens(body: Record<string, unknown>): number {
  const msgs = Array.isArray(body.messages) ? (body.messages as Array<{ content?: unknown }>) : [];
  return msgs.reduce<number>((n, m) => n + (typeof m.content === 'string' ? pieces(m.content).length : 0) + 4, 0);
}

export async function startOpenAiUpstream(scenario: OpenAiScenario, opts: OpenAiFakeOptions = {}): Promise<OpenAiFake> {
  const provider = opts.provider ?? 'openai';
  const key = opts.apiKey ?? (provider === 'openai' ? 'sk-fake-openai' : undefined);
  let base = scenario;
  const queue: OpenAiScenario[] = [];
  const requests: RecordedRequest[] = [];
  let aborts = 0;
  let seq = 0;
  let markAborted!: () => void;
  const aborted = new Promise<void>((r) => (markAborted = r));

  const json = (res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}) => {
    if (res.destroyed) return;
    res.writeHead(status, { 'content-type': 'application/json', 'x-request-id': `req_fake_${seq}`, 'openai-processing-ms': '12', ...extra });
    res.end(JSON.stringify(body));
  };
  const fail = (res: ServerResponse, status: number, error: ReturnType<typeof errorFor>, extra: Record<string, string> = {}) =>
    json(res, status, { error }, extra);

  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      let cutByUs = false;
      res.on('close', () => {
        if (!res.writableFinished && !cutByUs) {
          aborts++;
          markAborted();
        }
      });
      const text = Buffer.concat(parts).toString('utf8');
      let body: Record<string, unknown> | undefined;
      try {
        const parsed: unknown = text ? JSON.parse(text) : undefined;
        body = parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
      } catch {
        body = undefined;
      }
      const path = (req.url ?? '/').split('?')[0]!;
      requests.push({ method: req.method ?? 'GET', path, headers: req.headers, body, order: ++arrivals });
      seq++;
      const s = queue.shift() ?? base;
      const cut = () => {
        cutByUs = true;
        res.socket?.destroy();
      };
      void answer(req, res, path, text, body, s, cut).catch(cut);
    });
  });

  async function answer(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    text: string,
    body: Record<string, unknown> | undefined,
    s: OpenAiScenario,
    cut: () => void,
  ): Promise<void> {
    if (s.hang) return;
    if (s.delayMs) await sleep(s.delayMs);
    if (res.destroyed) return;
    if (key !== undefined) {
      const auth = req.headers.authorization;
      if (!auth) {
        return fail(res, 401, {
          message:
            "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
          type: 'invalid_request_error',
          param: null,
          code: null,
        });
      }
      if (auth !== `Bearer ${key}`) return fail(res, 401, errorFor(401));
    }
    const route = `${req.method} ${path}`;
    if (route === 'GET /v1/models') {
      return json(res, 200, { object: 'list', data: [{ id: s.modelName ?? 'gpt-4o-mini', object: 'model', created: 1721172741, owned_by: 'system' }] });
    }
    if (route !== 'POST /v1/chat/completions' && route !== 'POST /v1/embeddings') {
      return fail(res, 404, { message: `Invalid URL (${route})`, type: 'invalid_request_error', param: null, code: null });
    }
    const asked = typeof body?.model === 'string' ? body.model : '';
    if (s.servedModels && !s.servedModels.includes(asked)) {
      if (s.vllmTopLevelErrors)
        return json(res, 404, { object: 'error', message: `The model \`${asked}\` does not exist.`, type: 'NotFoundError', param: null, code: 404 });
      return fail(res, 404, {
        message: `The model \`${asked}\` does not exist or you do not have access to it.`,
        type: 'invalid_request_error',
        param: null,
        code: 'model_not_found',
      });
    }
    if (s.failStatus) {
      const status = s.failStatus;
      const extra: Record<string, string> = s.retryAfter ? { 'retry-after': s.retryAfter } : {};
      if (s.vllmTopLevelErrors) return json(res, status, vllmError(status), extra);
      return fail(res, status, errorFor(status), extra);
    }
    if (!body) {
      return fail(res, 400, {
        message: `We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.${text ? '' : ' (empty body)'})`,
        type: 'invalid_request_error',
        param: null,
        code: null,
      });
    }
    if (s.garbage) {
      res.writeHead(200, { 'content-type': 'text/html' });
      return void res.end('<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>');
    }
    if (s.errorInReply && body.stream !== true) {
      return json(res, 200, s.vllmTopLevelErrors ? { object: 'error', ...s.errorInReply } : { error: s.errorInReply });
    }
    if (path === '/v1/embeddings') return embeddings(res, body, s);
    const why = invalidChat(body);
    if (why) return fail(res, 400, { ...why, type: 'invalid_request_error' });
    if (s.refuseTokenField === 'max_tokens' && 'max_tokens' in body)
      return fail(res, 400, {
        message: "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
        type: 'invalid_request_error',
        param: 'max_tokens',
        code: 'unsupported_parameter',
      });
    if (s.refuseTokenField === 'max_completion_tokens' && 'max_completion_tokens' in body)
      return fail(res, 422, { message: 'body.max_completion_tokens: Extra inputs are not permitted', type: 'invalid_request_error', param: null, code: null });
    return chat(res, body, s, cut);
  }

  function embeddings(res: ServerResponse, body: Record<string, unknown>, s: OpenAiScenario): void {
    const input = body.input;
    const inputs: unknown[] | undefined =
      typeof input === 'string'
        ? [input]
        : Array.isArray(input) && input.length > 0
          ? input.every((x) => typeof x === 'number')
            ? [input]
            : input
          : undefined;
    if (!inputs || typeof body.model !== 'string') {
      return fail(res, 400, {
        message: "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
        type: 'invalid_request_error',
        param: null,
        code: null,
      });
    }
    const dims = typeof body.dimensions === 'number' ? body.dimensions : 8;
    const tokens = inputs.reduce<number>((n, x) => n + (typeof x === 'string' ? pieces(x).length : Array.isArray(x) ? x.length : 1), 0);
    const data = inputs.map((x, index) => {
      const v = openAiVector(x, dims);
      const embedding = body.encoding_format === 'base64' ? Buffer.from(new Float32Array(v).buffer).toString('base64') : v;
      return { object: 'embedding', index, embedding };
    });
    const usage = s.usageObject ?? { prompt_tokens: tokens, total_tokens: tokens };
    json(res, 200, { object: 'list', data, model: body.model, ...(s.noUsage ? {} : { usage }) });
  }

  async function chat(res: ServerResponse, body: Record<string, unknown>, s: OpenAiScenario, cut: () => void): Promise<void> {
    const id = `chatcmpl-Fk${String(seq).padStart(4, '0')}${createHash('sha1').update(JSON.stringify(body.messages)).digest('hex').slice(0, 20)}`;
    const created = Math.floor(Date.now() / 1000);
    const model = s.modelName ?? String(body.model);
    const tool = s.toolCall;
    const reply = s.reply ?? (tool ? undefined : 'Hello from the fake OpenAI.');
    const words = reply ? pieces(reply) : [];
    const prompt = s.usage?.input ?? promptTokens(body);
    const completion = s.usage?.output ?? words.length + (tool ? 9 : 0);
    const usage = s.usageObject ?? {
      prompt_tokens: prompt,
      completion_tokens: completion,
      total_tokens: prompt + completion,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
    };
    const finish = s.finishReason ?? (tool ? 'tool_calls' : 'stop');

    if (body.stream !== true) {
      const message: Record<string, unknown> = { role: 'assistant', content: reply ?? null, refusal: null, annotations: [] };
      if (tool) message.tool_calls = [{ id: tool.id, type: 'function', function: { name: tool.name, arguments: tool.arguments } }];
      return json(res, 200, {
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [{ index: 0, message, logprobs: null, finish_reason: finish }],
        ...(s.noUsage ? {} : { usage }),
        service_tier: 'default',
        system_fingerprint: 'fp_fake0001',
      });
    }

    const withUsage = !s.noUsage && (body.stream_options as { include_usage?: unknown } | null | undefined)?.include_usage === true;
    const head = { id, object: 'chat.completion.chunk', created, model, service_tier: 'default', system_fingerprint: 'fp_fake0001' };
    const chunk = (delta: Record<string, unknown>, finish_reason: string | null = null) =>
      JSON.stringify({ ...head, choices: [{ index: 0, delta, logprobs: null, finish_reason }], ...(withUsage ? { usage: null } : {}) });
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-request-id': `req_fake_${seq}` });
    const send = (text: string) =>
      new Promise<boolean>((r) => {
        if (res.destroyed) return r(false);
        res.write(text, (err) => r(!err && !res.destroyed));
      });
    const eol = s.lineEnd ?? '\n';
    const data = (json: string) => send(`data: ${json}${eol}${eol}`);

    const inband = async () => {
      const error = s.inbandErrorBody ?? {
        message: 'The server had an error while processing your request. Sorry about that!',
        type: 'server_error',
        param: null,
        code: null,
      };
      await send(`data: ${JSON.stringify(s.vllmTopLevelErrors ? { object: 'error', ...error } : { error })}\n\n`);
      res.end();
    };
    let sent = 0;
    /** one content/argument delta, then the failure scenarios that trigger after content chunks; false = stop */
    const delta = async (d: Record<string, unknown>): Promise<boolean> => {
      if (s.chunkDelayMs) await sleep(s.chunkDelayMs);
      if (!(await data(chunk(d)))) return false;
      sent++;
      if (s.cutAfterChunks !== undefined && sent >= s.cutAfterChunks) {
        cut();
        return false;
      }
      if (s.stallAfterChunks !== undefined && sent >= s.stallAfterChunks) return false; // silent, never ends
      if (sent === 1 && s.inbandError) {
        await inband();
        return false;
      }
      if (sent === 1 && s.malformedChunk) {
        // a chunk cut off inside a string, then the stream carries on as if nothing happened
        if (
          !(await send(
            `data: {"id":"${id}","object":"chat.completion.chunk","created":${created},"model":"${model}","choices":[{"index":0,"delta":{"content":"tw\n\n`,
          ))
        )
          return false;
      }
      return true;
    };

    // A text answer opens with a role chunk; a tool-only answer carries the role in its first tool-call delta.
    const toolOnly = tool !== undefined && !reply;
    if (s.inbandError && s.inbandErrorFirst) return inband();
    if (!toolOnly && !(await data(chunk({ role: 'assistant', content: '', refusal: null })))) return;
    for (const w of words) if (!(await delta({ content: w }))) return;
    if (tool) {
      const open = { tool_calls: [{ index: 0, id: tool.id, type: 'function', function: { name: tool.name, arguments: '' } }] };
      if (!(await delta(toolOnly ? { role: 'assistant', content: null, ...open, refusal: null } : open))) return;
      for (const f of s.argumentPieces ?? fragments(tool.arguments)) if (!(await delta({ tool_calls: [{ index: 0, function: { arguments: f } }] }))) return;
    }
    if (withUsage && s.usageOnFinish) {
      if (!(await data(JSON.stringify({ ...head, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: finish }], usage })))) return;
    } else {
      if (!(await data(chunk({}, finish)))) return;
      if (withUsage && !(await data(JSON.stringify({ ...head, choices: [], usage })))) return;
    }
    res.end(`data: [DONE]${eol}${eol}`);
  }

  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const baseUrl = `http://127.0.0.1:${port}/v1`;
  const last = () => requests[requests.length - 1];
  return {
    channel: { name: opts.name ?? `${provider}-fake`, provider, baseUrl, ...(key !== undefined ? { apiKey: key } : {}), timeoutMs: 10_000 },
    baseUrl,
    requests,
    count: (suffix) => (suffix === undefined ? requests.length : requests.filter((r) => r.path.endsWith(suffix)).length),
    enqueue: (...s) => void queue.push(...s),
    setScenario: (s) => void (base = s),
    abortCount: () => aborts,
    lastRequest: () => last()?.body,
    lastPath: () => last()?.path,
    lastHeaders: () => last()?.headers,
    aborted: () => aborted,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
