/**
 * One routed chat exchange for an inbound API edge: the request's cancellation (client gone, or the
 * whole-request deadline), the router call, and the pump that moves a stream's chunks to the client with
 * backpressure. Each API supplies only its translator; the edge never buffers a whole response.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatewayError, toGatewayError } from '../../wire/errors.js';
import type { ChatRequest, Usage } from '../../wire/openai.js';
import type { Router, RoutedChat } from '../../router/router.js';
import type { Candidate } from '../../router/candidate.js';
import { cancelOnClose } from '../../router/cancel.js';
import { isOutputChunk, wasRelayed, type StreamChunk } from '../../providers/provider.js';
import type { ChatReply } from '../../providers/chat-reply.js';
import type { Logger } from '../../util/log.js';
import { pinnedModel } from '../../util/model-tokens.js';
import { writeSse } from '../../util/sse-start.js';
import { drainOrClose } from '../../util/drain.js';
import type { KeyService, Principal, Ticket } from '../../keys/service.js';
import type { HeaderFormat } from '../../keys/limit-error.js';
import { countOf, estimatedReplyUsage, estimatedUsage } from '../../usage/record.js';

export interface ApiContext {
  router: Router;
  /** virtual keys, limits and usage (absent: no limits, no usage records) */
  keys?: KeyService | undefined;
  logger: Logger;
  maxBodyBytes: number;
  timeoutMs: number;
  /** per-request metrics and traces (src/obs via src/http): absent = nothing observed */
  meter?: ExchangeMeter | undefined;
}

/** What an exchange tells the observer: the request's trace parent, the routed candidate, the usage. */
export interface ExchangeMeter {
  trace(res: ServerResponse): string | undefined;
  routed(res: ServerResponse, model: string, c: Candidate): void;
  /**
   * `reply`: a non-streaming answer, for its finish reasons; the meter reads `reply.completion` (which may parse
   * a relayed body) only when it records them, i.e. when the request has a span
   */
  usage(res: ServerResponse, usage: unknown, reply?: ChatReply): void;
}

export interface Exchange {
  routed: RoutedChat;
  /** the answer's headers: the request id, where it was served (`sourceHeaders`) and the key's rate-limit state */
  headers: Record<string, string>;
  /** the deadline fired (then any error is UPSTREAM_TIMEOUT) */
  timedOut(): boolean;
  /** the request's timers and listeners; idempotent */
  dispose(): void;
  /**
   * The exchange ended (ok or not): disposes it and settles the key's limits and usage, once, awaited so the
   * next request sees the spend. `pump` settles streams itself, with the chunks it `sent`; a non-streaming route
   * calls it before replying, with its `reply`. `usage` is the upstream's count (the meter reports only that);
   * without one (absent, or an object without a number: countOf) the key is charged an estimate: of the `reply`'s
   * text (estimatedReplyUsage), or of the chunks `sent` (estimatedUsage), whether the stream was cut short or the
   * upstream never counts.
   */
  settle(usage: Usage | null | undefined, ok: boolean, reply?: ChatReply, sent?: number): Promise<void>;
}

/** Routes `chat` with the request's deadline and client-disconnect abort. */
export async function routeChat(
  ctx: ApiContext,
  req: IncomingMessage,
  res: ServerResponse,
  chat: ChatRequest,
  requestId: string,
  principal: Principal,
  format: HeaderFormat,
): Promise<Exchange> {
  // an agent's per-session token runs every request on its session's model (util/model-tokens.ts)
  const pin = pinnedModel(req);
  if (pin) chat.model = pin;
  // a request without a virtual key is admitted at once: no await (no microtask) for it
  const admitted = ctx.keys?.admit(principal, chat.model, format);
  const ticket = admitted instanceof Promise ? await admitted : admitted;
  const { cancel, dispose } = cancelOnClose(res, ctx.timeoutMs);
  const sessionId = typeof req.headers['x-session-id'] === 'string' ? req.headers['x-session-id'] : undefined;
  try {
    const routed = await ctx.router.chat(chat, {
      cancel,
      requestId,
      hops: [],
      deadline: Date.now() + ctx.timeoutMs,
      sessionId,
      trace: ctx.meter?.trace(res),
    });
    ctx.meter?.routed(res, chat.model, routed.candidate);
    let settled = false;
    const settle = async (usage: Usage | null | undefined, ok: boolean, reply?: ChatReply, sent?: number) => {
      dispose();
      if (settled) return;
      settled = true;
      if (ok) ctx.meter?.usage(res, usage, reply);
      if (!ticket) return;
      // only an answer the upstream did not count (no usage, or one without a number) is estimated (the rare path:
      // reading a relayed reply parses it)
      const charged = countOf(usage) ?? (reply ? estimatedReplyUsage(chat, reply, usage) : sent !== undefined ? estimatedUsage(chat, sent, usage) : undefined);
      const c = routed.candidate;
      const finished = ticket.finish({ model: chat.model, channel: c.channel, peer: c.peer, pricing: c.pricing, usage: charged, stream: routed.stream, ok });
      if (finished) await finished;
    };
    return { routed, headers: answerHeaders(routed.candidate, requestId, ticket), timedOut: () => cancel.timedOut, dispose, settle };
  } catch (err) {
    dispose();
    await ticket?.finish({ model: chat.model, channel: '-', stream: chat.stream === true, ok: false });
    if (cancel.timedOut) throw deadlineError(ctx);
    throw err;
  }
}

/**
 * Runs a token count under the caller's key (`KeyService.admitCount`): refused like any request to the surface
 * (model globs, request limits; in `format`), its lease given back when `count` ends. `count` gets the key's
 * rate-limit headers for its answer.
 */
export async function countAdmitted(
  ctx: ApiContext,
  principal: Principal,
  model: string,
  format: HeaderFormat,
  count: (headers: Readonly<Record<string, string>>) => Promise<void> | void,
): Promise<void> {
  const admitted = ctx.keys?.admitCount(principal, model, format);
  const ticket = admitted instanceof Promise ? await admitted : admitted;
  try {
    await count(ticket?.headers ?? {});
  } finally {
    await ticket?.finish({ model, channel: '-', stream: false, ok: true });
  }
}

export const deadlineError = (ctx: { timeoutMs: number }) => new GatewayError('UPSTREAM_TIMEOUT', `request exceeded the ${ctx.timeoutMs} ms deadline`);

/** `sourceHeaders` plus the key's rate-limit headers (`Ticket.headers`): what a routed answer carries. */
export function answerHeaders(c: Candidate, requestId: string, ticket: Ticket | undefined): Record<string, string> {
  const h = sourceHeaders(c, requestId);
  return ticket?.headers ? Object.assign(h, ticket.headers) : h;
}

/**
 * A peer's name as a header value: as it is when it is printable ASCII, percent-encoded (encodeURIComponent)
 * otherwise. An inbound peer names itself (its `gateway.name`, free text such as "東京 GPU"); a character a
 * header cannot carry made Node throw while the answer's headers were written (a 500 for the request, and a
 * stream's attempt never released). One regex test per answer a peer served.
 */
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;
const headerSafe = (v: string): string => (PRINTABLE_ASCII.test(v) ? v : encodeURIComponent(v));

export function sourceHeaders(c: Candidate, requestId: string): Record<string, string> {
  const h: Record<string, string> = { 'x-request-id': requestId, 'x-switchyard-channel': c.channel };
  if (c.peer) h['x-switchyard-peer'] = headerSafe(c.peer.name);
  if (c.capabilities.synthetic) h['x-switchyard-mock'] = 'true';
  return h;
}

/**
 * Thrown by a pump's `each` when its translator ended the stream itself on an answer it cannot carry (a Messages
 * tool call whose arguments broke): `text`, ending in its error event, is the last the client gets. The upstream is
 * cancelled at once, so it stops generating.
 */
export class StreamEnded extends Error {
  constructor(readonly text: string) {
    super('the stream was ended by its translator');
  }
}

/**
 * What one write of `pump` carries at most (or one chunk, when a chunk is larger): the chunks a stream holds past
 * it stay in the stream until the client has taken the write. What waits for a slow client must wait there, where
 * the stream's flow control sees it: a bridged stream pauses its peer by what its queue holds, and resumes it once
 * that is down to STREAM_RESUME_CHARS (src/bridge/forwarding.ts), which must stay well above this. Moved into the
 * response's buffer in one write, a stream's whole backlog looked read: the peer was resumed and the link's budget
 * for unconfirmed pauses given back while all of it still waited for the client. An upstream's read is at most
 * 64 KiB, so an ordinary stream's chunks still leave one read per write.
 */
export const WRITE_BATCH_CHARS = 64 * 1024;

/**
 * Pumps a routed stream: `begin()` writes the response's head (and any opening event), then `each(chunk)`
 * returns the text to write for each chunk (may be ''), or throws StreamEnded with the stream's last text: that is
 * written, the upstream request is cancelled at once (the attempt's abort: no verdict on the channel, as the
 * upstream did nothing wrong by the protocol), and the exchange is settled as served, charged what the upstream
 * generated up to then (its count, when it sent one, else the chunks it delivered); it then resolves 'done', and
 * the caller ends the response with nothing more. Resolves 'done' on a normal end, 'gone' when the client
 * left (the upstream is released), or rejects with the GatewayError that ended the stream abnormally (deadline
 * → UPSTREAM_TIMEOUT). Writes carry at most WRITE_BATCH_CHARS and wait for 'drain'. The head is written here,
 * inside the same guard as the chunks: from the moment the route holds a routed stream, whatever throws (a header
 * value Node refuses, say) ends the router's attempt and settles the key's ticket, never leaves them held. The
 * caller sends its own error when the head never went out (`res.headersSent` false).
 */
export async function pump(ctx: ApiContext, res: ServerResponse, ex: Exchange, begin: () => void, each: (c: StreamChunk) => string): Promise<'done' | 'gone'> {
  const routed = ex.routed as Extract<RoutedChat, { stream: true }>;
  let usage: Usage | undefined;
  // content chunks the client was sent: what a stream that ends without the upstream's count is charged (Exchange.settle)
  let sent = 0;
  // waiting on the upstream: an error then is the stream's own (the router has settled the attempt); any other
  // (a chunk `each` cannot translate) must end the attempt here, or it would hold its channel slot for good
  let reading = false;
  let begun = false;
  // the text of the chunks translated from the current upstream read (written before the next read)
  let text = '';
  try {
    begin();
    begun = true;
    const rest = routed.rest;
    let chunk = routed.first;
    while (chunk !== undefined) {
      // the chunks the stream already holds (the rest of the same upstream read) are translated and written at
      // once, up to WRITE_BATCH_CHARS a write: the rest waits in the stream for the next one
      text = '';
      do {
        if (chunk.usage) usage = chunk.usage;
        if (isOutputChunk(chunk)) sent++;
        text += each(chunk);
        chunk = text.length < WRITE_BATCH_CHARS ? rest.takeReady?.() : undefined;
      } while (chunk !== undefined);
      if (text && !writeSse(res, text)) await drainOrClose(res);
      if (res.destroyed) break;
      chunk = rest.takeReady?.();
      if (chunk !== undefined) continue;
      reading = true;
      const r = await rest.next();
      reading = false;
      chunk = r.done ? undefined : r.value;
    }
    if (res.destroyed) {
      await routed.rest.return?.();
      await ex.settle(usage, false, undefined, sent);
      return 'gone';
    }
    // settled before the caller writes the stream's end, so a budget spent by this stream refuses the next request
    await ex.settle(usage, true, undefined, sent);
    return 'done';
  } catch (err) {
    if (err instanceof StreamEnded) {
      if (!res.destroyed) writeSse(res, text + err.text);
      // return, not throw: the attempt ends cancelled (the upstream's connection closed), the channel's health untouched
      await routed.rest.return?.();
      await ex.settle(usage, true, undefined, sent);
      return 'done';
    }
    // the head could not go out: our failure, no verdict on the channel (return, not throw, ends the attempt)
    if (!begun) await routed.rest.return?.();
    else if (!reading) await routed.rest.throw?.(err);
    await ex.settle(usage, false, undefined, sent);
    // a failure the client was already sent as the upstream's own event stays the stream's end
    throw ex.timedOut() && !wasRelayed(err) ? deadlineError(ctx) : toGatewayError(err);
  } finally {
    ex.dispose();
  }
}

export { startSse } from '../../util/sse-start.js';
