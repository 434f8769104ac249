/**
 * POST /v1/responses and GET /v1/responses/{id}: the OpenAI Responses API over every channel, local or a
 * peer's. Translation (src/apis/responses/) happens here, once; an `openai` channel with
 * `options.responsesApi` gets the client's body natively and its answer is relayed verbatim. Errors are
 * OpenAI error JSON before a stream starts, `response.failed` after (natively, the upstream's own
 * `response.failed` or `error` event when it sent one).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatewayError } from '../../wire/errors.js';
import { quotedName } from '../../wire/openai.js';
import { checkedCompletion, parsedChunk } from '../../apis/common/chat-shape.js';
import type { Untranslatable } from '../../apis/common/untranslatable.js';
import { nativeBodyOf, withNative } from '../../wire/native.js';
import { inputItems, responsesToChat, validateResponses, type Item } from '../../apis/responses/request.js';
import { newResponseId, skeleton, toResponse } from '../../apis/responses/response.js';
import { nativeFailed, ResponsesStreamWriter } from '../../apis/responses/stream.js';
import type { ResponseStore } from '../../apis/responses/stored.js';
import { pump, routeChat, startSse, type ApiContext } from '../../apis/common/exchange.js';
import { readJsonSized, sendJson } from '../respond.js';
import type { ApiSurface } from './api-surface.js';
import { RESPONSES_EDGE } from './api-edges.js';
import type { Principal } from '../../keys/service.js';
import { estimateTokens } from '../../usage/record.js';
import { wasRelayed } from '../../providers/provider.js';

export interface ResponsesContext extends ApiContext {
  stored: ResponseStore;
}

/**
 * Whose a stored response is: the virtual key the request came with (an agent session's model traffic: the key
 * its session was started with). A static token or an open gateway has no owner, and reads only what no key made.
 */
function ownerOf(p: Principal): string | undefined {
  if (p.kind === 'key') return p.key.id;
  if (p.kind === 'agent') return p.keyId;
  return undefined;
}

export function responsesApi(ctx: ResponsesContext): ApiSurface {
  return {
    ...RESPONSES_EDGE,
    async handle(req, res, path, _query, requestId, principal) {
      if (path === '/v1/responses') {
        if (req.method !== 'POST')
          throw new GatewayError('METHOD_NOT_ALLOWED', `method ${req.method} not allowed here; use POST`, { details: { allow: 'POST' } });
        const { body, bytes } = await readJsonSized(req, ctx.maxBodyBytes);
        return create(ctx, req, res, body, bytes, requestId, principal);
      }
      const id = path.slice('/v1/responses/'.length);
      // the API's sub-resources (…/input_items, …/cancel) are not served here: a route error, not "no stored response"
      if (id.includes('/'))
        throw new GatewayError('NOT_FOUND', `no route ${req.method} ${path}: the Responses API here is POST /v1/responses and GET /v1/responses/{id}`);
      if (req.method !== 'GET') throw new GatewayError('METHOD_NOT_ALLOWED', `method ${req.method} not allowed here; use GET`, { details: { allow: 'GET' } });
      const found = await ctx.stored.get(id, ownerOf(principal));
      if (!found)
        throw new GatewayError('NOT_FOUND', `no stored response "${quotedName(id)}" (responses are kept ${ctx.stored.ttlMs} ms when created with store)`, {
          param: 'response_id',
        });
      sendJson(res, 200, found.response, { 'x-request-id': requestId });
    },
  };
}

async function create(
  ctx: ResponsesContext,
  req: IncomingMessage,
  res: ServerResponse,
  raw: unknown,
  bytes: number,
  requestId: string,
  principal: Principal,
): Promise<void> {
  const body = validateResponses(raw);
  const owner = ownerOf(principal);
  let history = inputItems(body.input);
  let historyBytes = 0;
  if (typeof body.previous_response_id === 'string') {
    const prev = await ctx.stored.get(body.previous_response_id, owner);
    if (!prev)
      throw new GatewayError('NOT_FOUND', `previous_response_id: no stored response "${quotedName(body.previous_response_id)}"`, {
        param: 'previous_response_id',
      });
    history = [...prev.history, ...history];
    historyBytes = JSON.stringify(prev.history).length;
  }
  // an item the chat form has no place for is left out of it: the request may then go only natively
  const leftOut: Untranslatable = {};
  const { chat, dropped } = responsesToChat(body, history, leftOut);
  // The gateway's store is the one previous_response_id refers to: a native upstream gets the whole history.
  const nativeBody: Record<string, unknown> = { ...body, input: history };
  delete nativeBody.previous_response_id;
  withNative(chat, { api: 'openai-responses', body: nativeBody, headers: {}, ...(leftOut.first ? { untranslatable: leftOut.first } : {}) });
  const store = body.store !== false;
  const estimateIn = estimateTokens(bytes + historyBytes);
  const ex = await routeChat(ctx, req, res, chat, requestId, principal, 'openai');
  const headers = ex.headers;
  // names come from the client: only token characters go into a header
  if (dropped.length)
    headers['x-switchyard-dropped-tools'] = dropped
      .map((n) => n.replace(/[^\w.-]/g, ''))
      .join(',')
      .slice(0, 512);
  // chat.model: an agent's session token pins the model (routeChat), and the answer names the one that served it
  const shell = skeleton(newResponseId(), body, chat.model);

  if (!ex.routed.stream) {
    const reply = ex.routed.reply;
    await ex.settle(reply.usage, true, reply);
    const native = nativeBodyOf(reply.completion) as Record<string, unknown> | undefined;
    const response = native ?? toResponse(checkedCompletion(reply.completion), shell, estimateIn);
    if (store) await keep(ctx, response, history, owner, requestId);
    sendJson(res, 200, response, headers);
    return;
  }

  // native: the upstream's first event (its response.created) announced the response; a failure the gateway
  // writes itself is that response's, after the last event relayed (nativeFailed)
  const announced = ex.routed.first?.raw;
  const native = announced !== undefined;
  const w = new ResponsesStreamWriter(shell, estimateIn);
  let final: Record<string, unknown> | undefined;
  let last: string | undefined;
  const begin = () => {
    startSse(res, headers);
    if (!native) res.write(w.start());
  };
  try {
    const end = await pump(ctx, res, ex, begin, (c) => {
      if (native) {
        if (c.usage && c.raw) final = terminalResponse(c.raw);
        return (last = c.raw ?? '');
      }
      return w.chunk(parsedChunk(c.data));
    });
    if (end === 'gone') {
      ctx.logger.info('client went away mid-stream', { requestId, channel: ex.routed.candidate.id });
      return;
    }
    if (!native) {
      const done = w.end();
      final = done.response;
      res.end(done.text);
    } else res.end();
    if (store && final) await keep(ctx, final, history, owner, requestId);
  } catch (err) {
    const e = err as GatewayError;
    if (!res.headersSent) throw e; // the head never went out: the request's error, in its own format
    // the upstream's own response.failed or error event (native) reached the client: it is the stream's end
    if (!res.destroyed) res.end(wasRelayed(e) ? undefined : native ? nativeFailed(announced, last, shell, e) : w.fail(e));
    if (e.code !== 'CANCELLED')
      ctx.logger.warn('stream ended with an error', { requestId, api: 'responses', channel: ex.routed.candidate.id, code: e.code, message: e.message });
  }
}

/** the `response` of a native terminal event (response.completed / .incomplete) */
function terminalResponse(raw: string): Record<string, unknown> | undefined {
  const at = raw.indexOf('\ndata: ');
  try {
    return (JSON.parse(raw.slice(at + 7)) as { response?: Record<string, unknown> }).response;
  } catch {
    return undefined;
  }
}

async function keep(ctx: ResponsesContext, response: Record<string, unknown>, history: Item[], owner: string | undefined, requestId: string): Promise<void> {
  const output = Array.isArray(response.output) ? (response.output as Item[]) : [];
  try {
    await ctx.stored.put(response, [...history, ...output], owner);
  } catch (err) {
    // the answer is already the client's; a store failure only costs a later previous_response_id
    ctx.logger.warn('could not store response', { requestId, err: String(err) });
  }
}
