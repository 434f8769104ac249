/** /v1/chat/completions, /v1/embeddings, /v1/models. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { once } from 'node:events';
import { toGatewayError } from '../../wire/errors.js';
import type { Router, RoutedChat } from '../../router/router.js';
import { cancelOnClose } from '../../router/cancel.js';
import { deadlineError, sourceHeaders } from '../../apis/common/exchange.js';
import { enabled as logEnabled, type Logger } from '../../util/log.js';
import type { Usage } from '../../wire/openai.js';
import { pinnedModel } from '../../util/model-tokens.js';
import { readJson, sendError, sendJson, sendJsonText } from '../respond.js';
import { endSseDone, endSseError, sseEvent, startSse, writeSse } from '../sse.js';
import { validateChat, validateEmbeddings } from '../validate.js';
import { noteRouted, noteUsage, traceOf } from '../../obs/request-meter.js';
import type { KeyService, Principal, Ticket } from '../../keys/service.js';

export interface V1Context {
  router: Router;
  logger: Logger;
  maxBodyBytes: number;
  timeoutMs: number;
  /** virtual keys, limits and usage (absent: no limits, no usage records) */
  keys?: KeyService | undefined;
}

const OPEN: Principal = { kind: 'open' };

export async function handleChat(ctx: V1Context, req: IncomingMessage, res: ServerResponse, requestId: string, principal: Principal = OPEN): Promise<void> {
  const body = validateChat(await readJson(req, ctx.maxBodyBytes));
  const pin = pinnedModel(req);
  if (pin) body.model = pin;
  const ticket = await ctx.keys?.admit(principal, body.model);
  const clientWantsUsage = body.stream === true && body.stream_options?.include_usage === true;
  const abort = cancelOnClose(res, ctx.timeoutMs);
  const sessionId = typeof req.headers['x-session-id'] === 'string' ? req.headers['x-session-id'] : undefined;
  let routed: RoutedChat;
  try {
    routed = await ctx.router.chat(body, { cancel: abort.cancel, requestId, hops: [], deadline: Date.now() + ctx.timeoutMs, sessionId, trace: traceOf(res) });
  } catch (err) {
    abort.dispose();
    await ticket?.finish({ model: body.model, channel: '-', stream: body.stream === true, ok: false });
    if (abort.cancel.timedOut) throw deadlineError(ctx);
    throw err;
  }
  const headers = sourceHeaders(routed.candidate, requestId);
  noteRouted(res, body.model, routed.candidate);
  if (!routed.stream) {
    abort.dispose();
    noteUsage(res, routed.completion.usage, routed.completion);
    // settled before the answer goes out, so the client's next request already sees this one's spend
    await ticket?.finish({
      model: body.model,
      channel: routed.candidate.channel,
      peer: routed.candidate.peer,
      pricing: routed.candidate.pricing,
      usage: routed.completion.usage,
      stream: false,
      ok: true,
    });
    // an OpenAI-compatible upstream's body goes out as received; a translated completion is serialised
    if (routed.raw !== undefined) sendJsonText(res, 200, routed.raw, headers);
    else sendJson(res, 200, routed.completion, headers);
    if (logEnabled('debug'))
      ctx.logger.debug('chat done', { requestId, model: body.model, channel: routed.candidate.id, attempts: routed.attempts, usage: routed.completion.usage });
    return;
  }
  await pipeStream(ctx, res, routed, headers, clientWantsUsage, abort, requestId, ticket, body.model);
}

async function pipeStream(
  ctx: V1Context,
  res: ServerResponse,
  routed: Extract<RoutedChat, { stream: true }>,
  headers: Record<string, string>,
  clientWantsUsage: boolean,
  abort: ReturnType<typeof cancelOnClose>,
  requestId: string,
  ticket: Ticket | undefined,
  model: string,
): Promise<void> {
  startSse(res, headers);
  let usage: Usage | undefined;
  const finish = (ok: boolean) =>
    ticket?.finish({ model, channel: routed.candidate.channel, peer: routed.candidate.peer, pricing: routed.candidate.pricing, usage, stream: true, ok });
  const rest = routed.rest;
  try {
    let chunk = routed.first;
    while (chunk !== undefined) {
      // every chunk the stream already holds (the rest of the same upstream read) leaves in one write
      let text = '';
      do {
        if (chunk.usage) usage = chunk.usage;
        // Usage was asked of the upstream for accounting; a client that did not ask sees neither the usage
        // chunk nor the `"usage":null` OpenAI-compatible upstreams then add to every chunk.
        if (clientWantsUsage) text += sseEvent(chunk.data);
        else if (!chunk.usage) text += sseEvent(chunk.data.endsWith(',"usage":null}') ? chunk.data.slice(0, -',"usage":null}'.length) + '}' : chunk.data);
        chunk = rest.takeReady?.();
      } while (chunk !== undefined);
      if (text !== '' && !writeSse(res, text)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
      if (res.destroyed) break;
      const r = await rest.next();
      chunk = r.done ? undefined : r.value;
    }
    if (res.destroyed) {
      await routed.rest.return?.();
      await finish(false);
      ctx.logger.info('client went away mid-stream', { requestId, channel: routed.candidate.id });
      return;
    }
    noteUsage(res, usage);
    await finish(true);
    endSseDone(res);
    if (logEnabled('debug')) ctx.logger.debug('chat stream done', { requestId, channel: routed.candidate.id, attempts: routed.attempts, usage });
  } catch (err) {
    let e = toGatewayError(err);
    if (abort.cancel.timedOut) e = deadlineError(ctx);
    await finish(false);
    if (!res.destroyed) endSseError(res, e);
    if (e.code !== 'CANCELLED') ctx.logger.warn('stream ended with an error', { requestId, channel: routed.candidate.id, code: e.code, message: e.message });
  } finally {
    abort.dispose();
  }
}

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
    noteRouted(res, body.model, candidate);
    await ticket?.finish({
      model: body.model,
      channel: candidate.channel,
      peer: candidate.peer,
      pricing: candidate.pricing,
      usage: response.usage as Usage,
      stream: false,
      ok: true,
    });
    sendJson(res, 200, response, sourceHeaders(candidate, requestId));
  } catch (err) {
    await ticket?.finish({ model: body.model, channel: '-', stream: false, ok: false });
    if (abort.cancel.timedOut) throw deadlineError(ctx);
    throw err;
  } finally {
    abort.dispose();
  }
}

export function handleModels(ctx: V1Context, res: ServerResponse, requestId: string, principal: Principal = OPEN): void {
  const all = ctx.router.models();
  // a key sees only the models it may use
  const data = principal.kind === 'key' && ctx.keys ? all.filter((m) => ctx.keys!.allows(principal, m.id)) : all;
  sendJson(res, 200, { object: 'list', data }, { 'x-request-id': requestId });
}

export { sendError };
