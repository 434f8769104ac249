/** /v1/chat/completions, /v1/embeddings, /v1/models. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GatewayError } from '../../wire/errors.js';
import { cancelOnClose } from '../../router/cancel.js';
import { answerHeaders, deadlineError, pump, routeChat, type ApiContext } from '../../apis/common/exchange.js';
import { enabled as logEnabled } from '../../util/log.js';
import { pinAllows, pinnedModel } from '../../util/model-tokens.js';
import { readJson, sendError, sendJson, sendJsonText } from '../respond.js';
import { endSseDone, endSseError, sseEvent, startSse } from '../sse.js';
import { validateChat, validateEmbeddings } from '../../router/validate.js';
import type { Principal } from '../../keys/service.js';
import { estimatedInputUsage, inputCountOf } from '../../usage/record.js';

/** The /v1 routes' context: the inbound APIs' (router, keys, body and deadline bounds, the request meter). */
export type V1Context = ApiContext;

const OPEN: Principal = { kind: 'open' };

/**
 * /v1/chat/completions: the exchange every chat edge shares (src/apis/common/exchange.ts) with the OpenAI
 * shape on both sides, so nothing is translated: a non-streaming reply goes out as the upstream sent it (when
 * it is OpenAI-compatible), a stream's chunks as their JSON text.
 */
export async function handleChat(ctx: V1Context, req: IncomingMessage, res: ServerResponse, requestId: string, principal: Principal = OPEN): Promise<void> {
  const body = validateChat(await readJson(req, ctx.maxBodyBytes));
  const ex = await routeChat(ctx, req, res, body, requestId, principal, 'openai');
  const routed = ex.routed;
  const headers = ex.headers;
  if (!routed.stream) {
    // settled before the answer goes out, so the client's next request already sees this one's spend
    // (the reply's usage was read by a scan; the meter parses the body only when a span wants finish reasons)
    const reply = routed.reply;
    await ex.settle(reply.usage, true, reply);
    // an OpenAI-compatible upstream's body goes out as received, never parsed here; a translated completion is
    // serialised
    if (reply.raw !== undefined) sendJsonText(res, 200, reply.raw, headers);
    else sendJson(res, 200, reply.completion, headers);
    if (logEnabled('debug'))
      ctx.logger.debug('chat done', { requestId, model: body.model, channel: routed.candidate.id, attempts: routed.attempts, usage: reply.usage });
    return;
  }
  // Usage is always asked of the upstream, for accounting; a client that did not ask sees neither the usage
  // chunk nor the `"usage":null` OpenAI-compatible upstreams then add to every chunk.
  const clientWantsUsage = body.stream_options?.include_usage === true;
  try {
    const end = await pump(
      ctx,
      res,
      ex,
      () => startSse(res, headers),
      (chunk) => {
        if (clientWantsUsage) return sseEvent(chunk.data);
        // the usage chunk is left out; a content chunk that also counts (`inline`) is content
        if (chunk.usage && chunk.inline === undefined) return '';
        return sseEvent(chunk.data.endsWith(USAGE_NULL) ? chunk.data.slice(0, -USAGE_NULL.length) + '}' : chunk.data);
      },
    );
    if (end === 'gone') {
      ctx.logger.info('client went away mid-stream', { requestId, channel: routed.candidate.id });
      return;
    }
    endSseDone(res);
    if (logEnabled('debug')) ctx.logger.debug('chat stream done', { requestId, channel: routed.candidate.id, attempts: routed.attempts });
  } catch (err) {
    const e = err as GatewayError;
    if (!res.headersSent) throw e; // the head never went out: the request's error, in its own format
    if (!res.destroyed) endSseError(res, e);
    if (e.code !== 'CANCELLED') ctx.logger.warn('stream ended with an error', { requestId, channel: routed.candidate.id, code: e.code, message: e.message });
  }
}

const USAGE_NULL = ',"usage":null}';

export async function handleEmbeddings(
  ctx: V1Context,
  req: IncomingMessage,
  res: ServerResponse,
  requestId: string,
  principal: Principal = OPEN,
): Promise<void> {
  const body = validateEmbeddings(await readJson(req, ctx.maxBodyBytes));
  const pin = pinnedModel(req);
  if (pin) body.model = pin;
  const ticket = await ctx.keys?.admit(principal, body.model);
  const abort = cancelOnClose(res, ctx.timeoutMs);
  try {
    const { response, candidate } = await ctx.router.embeddings(body, { cancel: abort.cancel, requestId, hops: [], deadline: Date.now() + ctx.timeoutMs });
    ctx.meter?.routed(res, body.model, candidate);
    ctx.meter?.usage(res, response.usage);
    await ticket?.finish({
      model: body.model,
      channel: candidate.channel,
      peer: candidate.peer,
      pricing: candidate.pricing,
      // an answer the upstream did not count is charged the request's size, as a chat answer's input is
      usage: inputCountOf(response.usage) ?? estimatedInputUsage(body),
      stream: false,
      ok: true,
    });
    sendJson(res, 200, response, answerHeaders(candidate, requestId, ticket));
  } catch (err) {
    await ticket?.finish({ model: body.model, channel: '-', stream: false, ok: false });
    if (abort.cancel.timedOut) throw deadlineError(ctx);
    throw err;
  } finally {
    abort.dispose();
  }
}

export function handleModels(ctx: V1Context, req: IncomingMessage, res: ServerResponse, requestId: string, principal: Principal = OPEN): void {
  const all = ctx.router.models();
  // a key sees only the models it may use; an agent's session token only the model it is pinned to
  const data = all.filter((m) => pinAllows(req, m.id) && (principal.kind !== 'key' || !ctx.keys || ctx.keys.allows(principal, m.id)));
  sendJson(res, 200, { object: 'list', data }, { 'x-request-id': requestId });
}

export { sendError };
