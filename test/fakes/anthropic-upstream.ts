/**
 * A fake Anthropic Messages API on 127.0.0.1:0, driven by a conformance Scenario. It speaks the real wire
 * format (shapes recorded from the public API: message object, named SSE events with ping, text_delta per
 * word, input_json_delta in several partial_json pieces, cumulative message_delta usage, error bodies
 * `{type: "error", error: {type, message}}`), and it enforces the request rules the real API enforces most
 * often (anthropic-version header, required max_tokens, no unknown top-level fields, alternating roles, the blocks
 * a tool_result may hold),
 * answering 400 invalid_request_error like the API does, so a bad mapping fails the conformance suite.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FakeUpstream, Scenario } from '../providers/conformance.js';

const REQUEST_FIELDS = new Set([
  'model',
  'messages',
  'max_tokens',
  'system',
  'temperature',
  'top_p',
  'top_k',
  'stop_sequences',
  'tools',
  'tool_choice',
  'metadata',
  'stream',
  'thinking',
  'service_tier',
]);

const ERROR_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  529: 'overloaded_error',
};

/** Anthropic-only knobs on top of the conformance Scenario. */
export interface AnthropicScenario extends Scenario {
  /** stream: the type of the `inbandError` event; default overloaded_error */
  inbandErrorType?: string;
  /** stream: the in-band error is the first event, before message_start (the API does this when overloaded at the start) */
  inbandErrorFirst?: boolean;
  /** stream: the `inbandError` event's message; default `Overloaded` for overloaded_error, else `fake <type>` */
  inbandErrorMessage?: string;
  /** the message of the `failStatus` answer's error; default `fake failure <status>` */
  failMessage?: string;
  /**
   * an answer that does not count: `omitted` leaves `usage` out everywhere (the message, message_start's
   * message, message_delta), `null` sends it with null counts (the shape the SDK's stream accumulator still
   * reads), as Anthropic-compatible servers that do not count answer; read per request, so a test may set it
   * between requests
   */
  uncounted?: 'omitted' | 'null';
  /**
   * extended thinking: a `thinking` block with this text before the reply, with its signature; streamed as one
   * thinking_delta per word, then one signature_delta (the API's order)
   */
  thinking?: string;
  /**
   * what an Anthropic-compatible server (not the real API, which always sends both) may leave out of its
   * message, and of message_start's message when streaming: its `id`, its `model`
   */
  omit?: ReadonlyArray<'id' | 'model'>;
  /** stream: the 200 answer's Retry-After header (a server that rate-limits inside its stream may send one) */
  streamRetryAfter?: string;
  /** the message's `stop_reason` (and message_delta's when streaming); default `tool_use` with a tool call, else `end_turn` */
  stopReason?: string;
}

/** the signature the fake gives its thinking block (opaque base64 on the real API) */
export const FAKE_SIGNATURE = 'EqQBCkYIBxgCKkDfakeSignatureOfTheThinkingBlock==';

const errorBody = (type: string, message: string) => JSON.stringify({ type: 'error', error: { type, message }, request_id: 'req_fake_01' });
const sse = (type: string, data: Record<string, unknown>) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;

/** Reasons the real API would reject the body with a 400, or undefined. */
function invalid(body: Record<string, unknown>, headers: IncomingMessage['headers']): string | undefined {
  if (!headers['anthropic-version']) return 'anthropic-version: header is required';
  const extra = Object.keys(body).find((k) => !REQUEST_FIELDS.has(k));
  if (extra) return `${extra}: Extra inputs are not permitted`;
  if (!Number.isInteger(body.max_tokens)) return 'max_tokens: Field required';
  const msgs = body.messages;
  if (!Array.isArray(msgs) || msgs.length === 0) return 'messages: at least one message is required';
  for (let i = 0; i < msgs.length; i++) {
    const m = msgs[i] as { role?: unknown; content?: unknown };
    if (m.role !== 'user' && m.role !== 'assistant') return `messages.${i}.role: Input should be 'user' or 'assistant'`;
    if (i > 0 && (msgs[i - 1] as { role: string }).role === m.role) return 'messages: roles must alternate between "user" and "assistant"';
    if (Array.isArray(m.content) && m.content.length === 0) return `messages.${i}: all messages must have non-empty content`;
    if (Array.isArray(m.content)) {
      for (let j = 0; j < m.content.length; j++) {
        const why = invalidToolResult(m.content[j], `messages.${i}.content.${j}`);
        if (why) return why;
      }
    }
  }
  return undefined;
}

/** The blocks a `tool_result`'s content may hold (docs.anthropic.com, "Tool use": text, images, documents, search results). */
const TOOL_RESULT_BLOCKS = new Set(['text', 'image', 'document', 'search_result']);

/** Why the API would refuse a `tool_result` block's content, or undefined: only those blocks, an image with a base64 or url source. */
function invalidToolResult(block: unknown, at: string): string | undefined {
  const b = block as { type?: unknown; content?: unknown };
  if (b?.type !== 'tool_result' || !Array.isArray(b.content)) return undefined;
  for (let k = 0; k < b.content.length; k++) {
    const c = b.content[k] as { type?: unknown; source?: { type?: unknown; media_type?: unknown; data?: unknown; url?: unknown } };
    const here = `${at}.tool_result.content.${k}`;
    if (!TOOL_RESULT_BLOCKS.has(String(c?.type))) return `${here}: Input tag '${String(c?.type)}' found using 'type' does not match any of the expected tags`;
    if (c.type !== 'image') continue;
    const src = c.source;
    if (src?.type === 'base64' && typeof src.data === 'string' && /^image\/(jpeg|png|gif|webp)$/.test(String(src.media_type))) continue;
    if (src?.type === 'url' && typeof src.url === 'string') continue;
    return `${here}.image.source: invalid image source`;
  }
  return undefined;
}

/** word pieces keeping their trailing space: "a b" → ["a ", "b"] */
const words = (s: string) => s.match(/\S+\s*|\s+/g) ?? [];

/** a JSON string cut into 4 roughly equal partial_json pieces (never whole) */
function pieces(json: string): string[] {
  const step = Math.max(1, Math.ceil(json.length / 4));
  const out: string[] = [];
  for (let i = 0; i < json.length; i += step) out.push(json.slice(i, i + step));
  return out;
}

export async function startAnthropicUpstream(scenario: AnthropicScenario): Promise<FakeUpstream> {
  let last: { body?: Record<string, unknown>; path?: string; headers?: IncomingMessage['headers'] } = {};
  let markAborted!: () => void;
  const aborted = new Promise<void>((r) => (markAborted = r));

  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      let cutByUs = false;
      res.on('close', () => {
        if (!res.writableFinished && !cutByUs) markAborted();
      });
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(Buffer.concat(parts).toString('utf8')) as Record<string, unknown>;
      } catch {
        /* answered as invalid below */
      }
      last = { body, path: req.url, headers: req.headers };
      void answer(req, res, body, () => (cutByUs = true));
    });
  });

  async function answer(req: IncomingMessage, res: ServerResponse, body: Record<string, unknown>, cut: () => void): Promise<void> {
    if (scenario.hang) return;
    const fail = (status: number, type: string, message: string, extra: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...extra }).end(errorBody(type, message));
    };
    if (req.method === 'POST' && req.url === '/v1/messages/count_tokens') {
      // the real endpoint answers { input_tokens } (docs.anthropic.com, "Count tokens in a message")
      if (!req.headers['anthropic-version']) return fail(400, 'invalid_request_error', 'anthropic-version: header is required');
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ input_tokens: 1000 + JSON.stringify(body.messages ?? []).length }));
      return;
    }
    if (req.method !== 'POST' || req.url !== '/v1/messages') return fail(404, 'not_found_error', `Not found: ${req.url}`);
    if (scenario.failStatus) {
      const status = scenario.failStatus;
      return fail(
        status,
        ERROR_TYPES[status] ?? 'api_error',
        scenario.failMessage ?? `fake failure ${status}`,
        scenario.retryAfter ? { 'retry-after': scenario.retryAfter } : {},
      );
    }
    const why = invalid(body, req.headers);
    if (why) return fail(400, 'invalid_request_error', why);
    if (scenario.garbage) {
      res.writeHead(200, { 'content-type': 'application/json' }).end('<html>502 Bad Gateway</html>');
      return;
    }

    const model = String(body.model);
    const id = 'msg_01FakeXk3TJj8q5sZbq9vA2';
    const reply = scenario.reply ?? (scenario.toolCall ? undefined : 'Hello!');
    const tool = scenario.toolCall;
    const input = scenario.usage?.input ?? Math.ceil(JSON.stringify(body.messages).length / 4);
    const output = scenario.usage?.output ?? words(reply ?? '').length + (tool ? 12 : 0);
    const stopReason = scenario.stopReason ?? (tool ? 'tool_use' : 'end_turn');
    const usage = { input_tokens: input, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: output, service_tier: 'standard' };
    const nulls = (u: Record<string, unknown>) => Object.fromEntries(Object.keys(u).map((k) => [k, k === 'service_tier' ? u[k] : null]));
    const withUsage = (o: Record<string, unknown>, u: Record<string, unknown>) =>
      scenario.uncounted === 'omitted' ? o : { ...o, usage: scenario.uncounted === 'null' ? nulls(u) : u };
    /** the message's fields, but those `omit` names */
    const message = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([k]) => !scenario.omit?.includes(k as 'id' | 'model')));

    if (body.stream !== true) {
      const content: unknown[] = [];
      if (scenario.thinking) content.push({ type: 'thinking', thinking: scenario.thinking, signature: FAKE_SIGNATURE });
      if (reply) content.push({ type: 'text', text: reply });
      if (tool) content.push({ type: 'tool_use', id: tool.id, name: tool.name, input: JSON.parse(tool.arguments) });
      const msg = withUsage(message({ id, type: 'message', role: 'assistant', model, content, stop_reason: stopReason, stop_sequence: null }), usage);
      res.writeHead(200, { 'content-type': 'application/json', 'request-id': 'req_fake_01' }).end(JSON.stringify(msg));
      return;
    }

    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'request-id': 'req_fake_01',
      ...(scenario.streamRetryAfter ? { 'retry-after': scenario.streamRetryAfter } : {}),
    });
    const send = (text: string) => new Promise<void>((r) => res.write(text, () => setImmediate(r)));
    const inbandType = scenario.inbandErrorType ?? 'overloaded_error';
    const inbandMessage = scenario.inbandErrorMessage ?? (inbandType === 'overloaded_error' ? 'Overloaded' : `fake ${inbandType}`);
    const inband = () => sse('error', { error: { type: inbandType, message: inbandMessage } });
    if (scenario.inbandError && scenario.inbandErrorFirst) {
      res.end(inband());
      return;
    }
    let deltas = 0;
    /** sends a content delta, then applies the failure scenarios that trigger after content chunks */
    const delta = async (index: number, d: Record<string, unknown>): Promise<boolean> => {
      await send(sse('content_block_delta', { index, delta: d }));
      deltas++;
      if (scenario.cutAfterChunks !== undefined && deltas >= scenario.cutAfterChunks) {
        cut();
        res.socket?.destroy();
        return false;
      }
      if (deltas === 1 && scenario.inbandError) {
        res.end(inband());
        return false;
      }
      if (deltas === 1 && scenario.malformedChunk)
        await send('event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_del\n\n');
      return true;
    };

    await send(
      sse('message_start', {
        message: withUsage(message({ id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null }), {
          ...usage,
          output_tokens: 1,
        }),
      }),
    );
    let index = 0;
    if (scenario.thinking) {
      await send(sse('content_block_start', { index, content_block: { type: 'thinking', thinking: '', signature: '' } }));
      for (const w of words(scenario.thinking)) await send(sse('content_block_delta', { index, delta: { type: 'thinking_delta', thinking: w } }));
      await send(sse('content_block_delta', { index, delta: { type: 'signature_delta', signature: FAKE_SIGNATURE } }));
      await send(sse('content_block_stop', { index }));
      index++;
    }
    if (reply) {
      await send(sse('content_block_start', { index, content_block: { type: 'text', text: '' } }));
      await send(sse('ping', {}));
      for (const w of words(reply)) if (!(await delta(index, { type: 'text_delta', text: w }))) return;
      await send(sse('content_block_stop', { index }));
      index++;
    }
    if (tool) {
      await send(sse('content_block_start', { index, content_block: { type: 'tool_use', id: tool.id, name: tool.name, input: {} } }));
      await send(sse('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: '' } }));
      for (const p of pieces(tool.arguments)) if (!(await delta(index, { type: 'input_json_delta', partial_json: p }))) return;
      await send(sse('content_block_stop', { index }));
    }
    await send(sse('message_delta', withUsage({ delta: { stop_reason: stopReason, stop_sequence: null } }, { output_tokens: output })));
    res.end(sse('message_stop', {}));
  }

  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    channel: { name: 'anthropic-fake', provider: 'anthropic', baseUrl: `http://127.0.0.1:${port}`, apiKey: 'sk-ant-fake', timeoutMs: 10_000 },
    lastRequest: () => last.body,
    lastPath: () => last.path,
    lastHeaders: () => last.headers,
    aborted: () => aborted,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
