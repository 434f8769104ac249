/**
 * POST /v1/messages and POST /v1/messages/count_tokens: the Anthropic Messages API over every channel,
 * local or a peer's. Translation (src/apis/anthropic/) happens here, once; a local `anthropic` channel gets
 * the client's body natively instead (src/wire/native.ts) and its answer is relayed verbatim, an error event
 * the upstream ends its stream with included.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatewayError } from '../../wire/errors.js';
import { quotedName } from '../../wire/openai.js';
import { checkedCompletion, parsedChunk } from '../../apis/common/chat-shape.js';
import type { Untranslatable } from '../../apis/common/untranslatable.js';
import { nativeBodyOf, withNative } from '../../wire/native.js';
import { wasRelayed, type ChannelProvider } from '../../providers/provider.js';
import { PASS_HEADERS } from '../../providers/anthropic/native.js';
import { anthropicToChat, checkCountTokens } from '../../apis/anthropic/request.js';
import { toAnthropicMessage } from '../../apis/anthropic/response.js';
import { AnthropicStreamWriter, nativeStart } from '../../apis/anthropic/stream.js';
import { anthropicErrorEvent } from '../../apis/anthropic/errors.js';
import { countAdmitted, pump, routeChat, sourceHeaders, startSse, StreamEnded, type ApiContext } from '../../apis/common/exchange.js';
import { readJsonSized, sendJson } from '../respond.js';
import type { ApiSurface } from './api-surface.js';
import { ANTHROPIC_EDGE } from './api-edges.js';
import { pinnedModel } from '../../util/model-tokens.js';
import type { Principal } from '../../keys/service.js';
import { estimateTokens } from '../../usage/record.js';

/** A local channel's provider and model map, for calls that bypass chat routing (count_tokens). */
export type LocalChannelLookup = (channel: string) => { provider: ChannelProvider; modelMap: Record<string, string> } | undefined;

export interface MessagesContext extends ApiContext {
  localChannel: LocalChannelLookup;
}

function passHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of PASS_HEADERS) {
    const v = req.headers[k];
    if (typeof v === 'string') out[k] = v;
  }
  return out;
}

export function anthropicApi(ctx: MessagesContext): ApiSurface {
  return {
    ...ANTHROPIC_EDGE,
    async handle(req, res, path, _query, requestId, principal) {
      if (path !== '/v1/messages' && path !== '/v1/messages/count_tokens')
        throw new GatewayError('NOT_FOUND', `no route ${req.method} ${path}: the Messages API here is POST /v1/messages and POST /v1/messages/count_tokens`);
      if (req.method !== 'POST')
        throw new GatewayError('METHOD_NOT_ALLOWED', `method ${req.method} not allowed here; use POST`, { details: { allow: 'POST' } });
      const { body, bytes } = await readJsonSized(req, ctx.maxBodyBytes);
      if (path === '/v1/messages/count_tokens') return countTokens(ctx, req, res, body, bytes, requestId, principal);
      return messages(ctx, req, res, body, bytes, requestId, principal);
    },
  };
}

async function messages(
  ctx: ApiContext,
  req: IncomingMessage,
  res: ServerResponse,
  body: unknown,
  bytes: number,
  requestId: string,
  principal: Principal,
): Promise<void> {
  // a part the chat form has no place for is left out of it: the request may then go only natively
  const leftOut: Untranslatable = {};
  const chat = anthropicToChat(body, leftOut);
  const raw = body as Record<string, unknown>;
  withNative(chat, { api: 'anthropic-messages', body: raw, headers: passHeaders(req), ...(leftOut.first ? { untranslatable: leftOut.first } : {}) });
  const estimateIn = estimateTokens(bytes);
  const ex = await routeChat(ctx, req, res, chat, requestId, principal, 'anthropic');
  // after routing: an agent's session token pins the model (routeChat), and the answer names the one that served it
  const model = chat.model;
  const headers = ex.headers;
  if (!ex.routed.stream) {
    const reply = ex.routed.reply;
    await ex.settle(reply.usage, true, reply);
    const native = nativeBodyOf(reply.completion);
    sendJson(res, 200, native ?? toAnthropicMessage(checkedCompletion(reply.completion), model, estimateIn), headers);
    return;
  }
  const native = ex.routed.first?.raw !== undefined;
  const w = new AnthropicStreamWriter(model, estimateIn);
  let started = false;
  try {
    const end = await pump(
      ctx,
      res,
      ex,
      () => startSse(res, headers),
      (c) => {
        if (native) {
          // message_start (after any ping) gets the id and model an Anthropic-compatible upstream left out
          if (started || c.raw === undefined) return c.raw ?? '';
          if (!c.raw.startsWith('event: ping')) started = true;
          return nativeStart(c.raw, model);
        }
        const chunk = parsedChunk(c.data);
        const head = started ? '' : ((started = true), w.start(chunk.id));
        const out = head + w.chunk(chunk);
        // tool arguments broke: the error event is the stream's end, and the upstream is stopped now (pump)
        if (w.failure) throw new StreamEnded(out);
        return out;
      },
    );
    if (end === 'gone') {
      ctx.logger.info('client went away mid-stream', { requestId, channel: ex.routed.candidate.id });
      return;
    }
    res.end(native ? undefined : (started ? '' : w.start(undefined)) + w.end());
    // the answer could not be carried (tool arguments that broke, or never closed): its error event was the stream's end
    const f = w.failure;
    if (f) ctx.logger.warn('stream ended with an error', { requestId, api: 'anthropic', channel: ex.routed.candidate.id, code: f.code, message: f.message });
  } catch (err) {
    const e = err as GatewayError;
    if (!res.headersSent) throw e; // the head never went out: the request's error, in its own format
    // the upstream's own error event (native) reached the client, or the writer's (tool arguments that broke, then
    // the upstream failed too): it is the stream's end
    if (!res.destroyed) res.end(wasRelayed(e) || w.failure ? undefined : (native || started ? '' : w.start(undefined)) + anthropicErrorEvent(e));
    if (e.code !== 'CANCELLED')
      ctx.logger.warn('stream ended with an error', { requestId, api: 'anthropic', channel: ex.routed.candidate.id, code: e.code, message: e.message });
  }
}

/**
 * count_tokens: the upstream's own endpoint when a local `anthropic` channel serves the model (header
 * `x-switchyard-token-count: upstream`), else an estimate from the request size (`estimate`). Admitted like a
 * message to the same model (countAdmitted), so a key cannot reach a model or an upstream it may not use.
 */
async function countTokens(
  ctx: MessagesContext,
  req: IncomingMessage,
  res: ServerResponse,
  body: unknown,
  bytes: number,
  requestId: string,
  principal: Principal,
): Promise<void> {
  // the Messages API's rules, so a malformed body is refused, not estimated or sent to the upstream's counter
  checkCountTokens(body);
  const model = pinnedModel(req) ?? body.model;
  await countAdmitted(ctx, principal, model, 'anthropic', async (limitHeaders) => {
    const candidates = ctx.router.all().filter((c) => c.models.includes(model));
    if (candidates.length === 0) throw new GatewayError('MODEL_NOT_FOUND', `model "${quotedName(model)}" is not served here`, { param: 'model' });
    for (const c of candidates) {
      if (c.peer || c.provider !== 'anthropic') continue;
      const local = ctx.localChannel(c.channel);
      if (!local?.provider.countTokens) continue;
      const out = await local.provider.countTokens({ ...body, model: local.modelMap[model] ?? model }, passHeaders(req), {
        signal: AbortSignal.timeout(ctx.timeoutMs),
        requestId,
      });
      sendJson(res, 200, out, { ...sourceHeaders(c, requestId), ...limitHeaders, 'x-switchyard-token-count': 'upstream' });
      return;
    }
    sendJson(res, 200, { input_tokens: estimateTokens(bytes) }, { 'x-request-id': requestId, ...limitHeaders, 'x-switchyard-token-count': 'estimate' });
  });
}
