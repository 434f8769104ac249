/**
 * What the HTTP server needs of each inbound API (Anthropic Messages, OpenAI Responses, Gemini) before its handler
 * is loaded: its name, the paths it owns, whether it takes the key as `?key=`, and how it writes an error in its
 * own format (an auth failure is answered before the handler runs). The route modules spread these into their
 * surfaces; apis.ts loads a route module, with its translators and stream writers, at the API's first request.
 */
import type { ApiSurface } from './api-surface.js';
import { sendErrorBody } from '../respond.js';
import { anthropicErrorBody } from '../../apis/anthropic/errors.js';
import { geminiErrorBody } from '../../apis/gemini/errors.js';

export type ApiEdge = Pick<ApiSurface, 'name' | 'owns' | 'queryKey' | 'sendError'>;

export const ANTHROPIC_EDGE: ApiEdge = {
  name: 'anthropic',
  // every path under /v1/messages is this API's, so an unknown one is refused in its format too
  owns: (path) => path === '/v1/messages' || path.startsWith('/v1/messages/'),
  sendError: (res, e, requestId) => sendErrorBody(res, e, anthropicErrorBody(e, requestId)),
};

export const RESPONSES_EDGE: ApiEdge = {
  name: 'responses',
  owns: (path) => path === '/v1/responses' || path.startsWith('/v1/responses/'),
  sendError: (res, e) => sendErrorBody(res, e, e.toOpenAI()),
};

export const GEMINI_EDGE: ApiEdge = {
  name: 'gemini',
  queryKey: true,
  // every path under /v1beta is this API's, so an unknown one is refused in Google's format too
  owns: (path) => path === '/v1beta' || path.startsWith('/v1beta/'),
  sendError: (res, e) => sendErrorBody(res, e, geminiErrorBody(e)),
};
