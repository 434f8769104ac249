/**
 * The Gemini API (v1beta): GET /v1beta/models[/{model}], POST /v1beta/models/{model}:generateContent,
 * :streamGenerateContent (alt=sse: SSE; otherwise one JSON array, streamed element by element), and
 * :countTokens (an estimate, header `x-switchyard-token-count: estimate`). Every channel kind, local or a
 * peer's; translation (src/apis/gemini/) happens here, once. Errors in Google's JSON shape.
 *
 * Model names may contain ':' (e.g. Ollama's `qwen2.5:7b`): the method is what follows the last ':'.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatewayError } from '../../wire/errors.js';
import { quotedName } from '../../wire/openai.js';
import { checkedCompletion, parsedChunk } from '../../apis/common/chat-shape.js';
import { decodeSegment } from '../guard.js';
import { checkCountTokens, geminiToChat } from '../../apis/gemini/request.js';
import { toGeminiResponse } from '../../apis/gemini/response.js';
import { GeminiStreamWriter } from '../../apis/gemini/stream.js';
import { geminiErrorBody } from '../../apis/gemini/errors.js';
import { countAdmitted, pump, routeChat, startSse, type ApiContext } from '../../apis/common/exchange.js';
import { readJsonSized, sendJson } from '../respond.js';
import type { ApiSurface } from './api-surface.js';
import { GEMINI_EDGE } from './api-edges.js';
import { pinAllows, pinnedModel } from '../../util/model-tokens.js';
import type { Principal } from '../../keys/service.js';
import { estimateTokens } from '../../usage/record.js';

const PREFIX = '/v1beta/models';
const METHODS = new Set(['generateContent', 'streamGenerateContent', 'countTokens']);

export function geminiApi(ctx: ApiContext): ApiSurface {
  return {
    ...GEMINI_EDGE,
    async handle(req, res, path, query, requestId, principal) {
      if (path !== PREFIX && !path.startsWith(PREFIX + '/'))
        throw new GatewayError('NOT_FOUND', `no route ${req.method} ${path}: the Gemini API here is ${PREFIX} and ${PREFIX}/{model}[:method]`);
      // HEAD as GET, as on /v1/models: Node sends the headers and no body
      const get = req.method === 'GET' || req.method === 'HEAD';
      if (path === PREFIX) {
        if (!get) throw notAllowed(req, 'GET, HEAD');
        // a key sees only the models it may use, an agent's session token only its pinned model, as on /v1/models
        const models = ctx.router.models().filter((m) => pinAllows(req, m.id) && (!ctx.keys || ctx.keys.allows(principal, m.id)));
        sendJson(res, 200, { models: models.map((m) => modelInfo(m.id)) }, { 'x-request-id': requestId });
        return;
      }
      const rest = decodeSegment(path.slice(PREFIX.length + 1), 'model');
      const colon = rest.lastIndexOf(':');
      const method = colon === -1 ? '' : rest.slice(colon + 1);
      if (!METHODS.has(method)) {
        if (!get)
          throw new GatewayError('NOT_FOUND', `no Gemini method "${quotedName(method || rest)}"; use generateContent, streamGenerateContent or countTokens`);
        if (!ctx.router.modelNames().includes(rest)) throw new GatewayError('NOT_FOUND', `model "${quotedName(rest)}" is not served here`, { param: 'model' });
        // as the list leaves it out: a key reads only the models it may use (the refusal a request for it gets)
        if (ctx.keys && !ctx.keys.allows(principal, rest))
          throw new GatewayError('MODEL_NOT_ALLOWED', `this API key may not use model "${quotedName(rest)}"`, { param: 'model' });
        sendJson(res, 200, modelInfo(rest), { 'x-request-id': requestId });
        return;
      }
      if (req.method !== 'POST') throw notAllowed(req, 'POST');
      const model = pinnedModel(req) ?? rest.slice(0, colon);
      const { body, bytes } = await readJsonSized(req, ctx.maxBodyBytes);
      if (method === 'countTokens') return countTokens(ctx, res, model, body, bytes, requestId, principal);
      const sse = new URLSearchParams(query).get('alt') === 'sse';
      return generate(ctx, req, res, model, body, bytes, method === 'streamGenerateContent', sse, requestId, principal);
    },
  };
}

const notAllowed = (req: IncomingMessage, allow: string) =>
  new GatewayError('METHOD_NOT_ALLOWED', `method ${req.method} not allowed here; use ${allow}`, { details: { allow } });

function modelInfo(id: string): Record<string, unknown> {
  return {
    name: `models/${id}`,
    baseModelId: id,
    version: 'switchyard',
    displayName: id,
    description: `${id}, served through Switchyard`,
    supportedGenerationMethods: ['generateContent', 'streamGenerateContent', 'countTokens'],
  };
}

async function generate(
  ctx: ApiContext,
  req: IncomingMessage,
  res: ServerResponse,
  model: string,
  body: unknown,
  bytes: number,
  stream: boolean,
  sse: boolean,
  requestId: string,
  principal: Principal,
): Promise<void> {
  const chat = geminiToChat(model, body, stream);
  const estimateIn = estimateTokens(bytes);
  const ex = await routeChat(ctx, req, res, chat, requestId, principal, 'openai');
  const headers = ex.headers;
  if (!ex.routed.stream) {
    const reply = ex.routed.reply;
    await ex.settle(reply.usage, true, reply);
    sendJson(res, 200, toGeminiResponse(checkedCompletion(reply.completion), model, estimateIn), headers);
    return;
  }
  const begin = () => {
    if (sse) return startSse(res, headers);
    res.socket?.setNoDelay(true);
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', ...headers });
  };
  let n = 0;
  const frame = (json: string) => (sse ? `data: ${json}\r\n\r\n` : `${n++ === 0 ? '[' : ',\r\n'}${json}`);
  const w = new GeminiStreamWriter(model, estimateIn);
  try {
    const end = await pump(ctx, res, ex, begin, (c) => {
      let out = '';
      for (const j of w.chunk(parsedChunk(c.data))) out += frame(j);
      return out;
    });
    if (end === 'gone') {
      ctx.logger.info('client went away mid-stream', { requestId, channel: ex.routed.candidate.id });
      return;
    }
    res.end(frame(w.end()) + (sse ? '' : ']'));
  } catch (err) {
    const e = err as GatewayError;
    if (!res.headersSent) throw e; // the head never went out: the request's error, in its own format
    if (!res.destroyed) res.end(frame(JSON.stringify(geminiErrorBody(e))) + (sse ? '' : ']'));
    if (e.code !== 'CANCELLED')
      ctx.logger.warn('stream ended with an error', { requestId, api: 'gemini', channel: ex.routed.candidate.id, code: e.code, message: e.message });
  }
}

/**
 * countTokens has no chat-form counterpart on any channel: always an estimate from the request size, once the body
 * passes generateContent's checks (either form: `contents` or `generateContentRequest`). Admitted
 * like generateContent on the same model (countAdmitted).
 */
function countTokens(
  ctx: ApiContext,
  res: ServerResponse,
  model: string,
  body: unknown,
  bytes: number,
  requestId: string,
  principal: Principal,
): Promise<void> {
  // generateContent's rules, so a malformed body is refused rather than estimated
  checkCountTokens(model, body);
  return countAdmitted(ctx, principal, model, 'openai', (limitHeaders) => {
    if (!ctx.router.modelNames().includes(model))
      throw new GatewayError('MODEL_NOT_FOUND', `model "${quotedName(model)}" is not served here`, { param: 'model' });
    sendJson(res, 200, { totalTokens: estimateTokens(bytes) }, { 'x-request-id': requestId, ...limitHeaders, 'x-switchyard-token-count': 'estimate' });
  });
}
