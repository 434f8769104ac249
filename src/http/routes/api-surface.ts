/**
 * An inbound model API other than OpenAI chat (Anthropic Messages, OpenAI Responses, Gemini): the paths it
 * owns, its handler, and how it writes an error in its own format. The server checks the client token (any
 * of the API's auth headers, src/keys/service.ts `authenticateClient`) before `handle`, and sends every error thrown
 * before the response started through `sendError`, so a client never sees another API's error shape.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GatewayError } from '../../wire/errors.js';
import type { Principal } from '../../keys/service.js';

export interface ApiSurface {
  /** short name for logs: anthropic, responses, gemini */
  readonly name: string;
  owns(path: string): boolean;
  /** Gemini only: the API also takes the key as `?key=` */
  readonly queryKey?: boolean;
  /** `principal`: who the server authenticated (virtual key, static token, or open); limits and usage follow it */
  handle(req: IncomingMessage, res: ServerResponse, path: string, query: string, requestId: string, principal: Principal): Promise<void>;
  sendError(res: ServerResponse, e: GatewayError, requestId: string): void;
}
