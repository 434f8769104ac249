/**
 * `kind: "channels"` gateway runtime: a turn is one streamed OpenAI chat over this gateway's Router (local
 * channels and channels bridged from peers), sent with the session's history. Content deltas become
 * `delta` updates as they arrive; finish_reason becomes the ACP stop reason; cancel aborts the router request.
 * With `admit`, each turn's model request goes through the keys' checks and its usage is recorded, as a
 * request on the model APIs is (src/keys/service.ts).
 */
import { GatewayError, toGatewayError } from '../../wire/errors.js';
import type { ChatCompletionChunk, ChatMessage, ChatRequest, FinishReason, Usage } from '../../wire/openai.js';
import type { RoutedChat } from '../../router/router.js';
import type { RouteOptions } from '../../router/candidate.js';
import { isOutputChunk, type StreamChunk } from '../../providers/provider.js';
import { newId } from '../../util/ids.js';
import type { Runtime, TurnInput, TurnOutput, UpdateEvent } from '../runtime.js';
import type { Ticket } from '../../keys/service.js';
import { countOf, estimatedReplyUsage, estimatedUsage } from '../../usage/record.js';

/** The part of Router this runtime uses (tests pass a fake). */
export interface ChatRouter {
  chat(req: ChatRequest, opts: RouteOptions): Promise<RoutedChat>;
}

export interface ChannelsRuntimeOptions {
  router: ChatRouter;
  /** the gateway provider's configured model, unless the session asked for another */
  model: string;
  sessionId: string;
  /** whole-turn deadline */
  timeoutMs: number;
  /**
   * Admits a turn's model request (the session's key: its models, limits and budget; refusals fail the turn)
   * and gives the ticket its usage is recorded with. Absent: nothing is checked or recorded (tests).
   */
  admit?: (model: string) => Ticket | Promise<Ticket>;
}

export function stopReasonOf(f: FinishReason | undefined): string {
  switch (f) {
    case 'length':
      return 'max_tokens';
    case 'content_filter':
      return 'refusal';
    default:
      return 'end_turn';
  }
}

export function createChannelsRuntime(o: ChannelsRuntimeOptions): Runtime {
  return {
    async prompt(turn: TurnInput, emit: (u: UpdateEvent) => void, signal: AbortSignal): Promise<TurnOutput> {
      const ticket = o.admit ? await o.admit(o.model) : undefined;
      const seen: Seen = { chunks: 0 };
      let ok = false;
      try {
        const out = await runTurn(o, turn, emit, signal, seen);
        ok = seen.routed !== undefined; // a turn cancelled before its request left has nothing to record
        return out;
      } finally {
        if (ticket) {
          const c = seen.routed?.candidate;
          // an answer without the upstream's count (cancelled or broken before it, an upstream that never counts,
          // or a usage without a number) is charged an estimate, as on /v1 (Exchange.settle)
          const usage = countOf(seen.usage) ?? (seen.routed ? estimateOf(seen.routed, seen.request!, seen.chunks, seen.usage) : undefined);
          await ticket.finish({ model: o.model, channel: c?.channel ?? '-', peer: c?.peer, pricing: c?.pricing, usage, stream: true, ok });
        }
      }
    },
    close: async () => undefined,
  };
}

/** What a turn's request met on its way, for its usage record. */
interface Seen {
  request?: ChatRequest;
  routed?: RoutedChat;
  usage?: Usage | undefined;
  /** the stream's content chunks taken (not the usage chunk) */
  chunks: number;
}

const estimateOf = (routed: RoutedChat, req: ChatRequest, chunks: number, counted: Usage | undefined): Usage =>
  routed.stream ? estimatedUsage(req, chunks, counted) : estimatedReplyUsage(req, routed.reply, counted);

async function runTurn(o: ChannelsRuntimeOptions, turn: TurnInput, emit: (u: UpdateEvent) => void, signal: AbortSignal, seen: Seen): Promise<TurnOutput> {
  const userMsg: ChatMessage = { role: 'user', content: turn.text };
  const req: ChatRequest = { model: o.model, messages: [...turn.history, userMsg], stream: true, stream_options: { include_usage: true } };
  seen.request = req;
  let output = '';
  let finish: FinishReason | undefined;
  const done = (): TurnOutput => ({
    output,
    stopReason: signal.aborted ? 'cancelled' : stopReasonOf(finish),
    messages: [userMsg, { role: 'assistant', content: output }],
    model: o.model,
  });
  const onChunk = (c: StreamChunk) => {
    if (c.usage) seen.usage = c.usage;
    if (isOutputChunk(c)) seen.chunks++;
    let parsed: ChatCompletionChunk;
    try {
      parsed = JSON.parse(c.data) as ChatCompletionChunk;
    } catch {
      throw new GatewayError('UPSTREAM_BAD_RESPONSE', 'channel stream carried a chunk that is not JSON');
    }
    for (const ch of parsed.choices ?? []) {
      const d = ch.delta?.content;
      if (typeof d === 'string' && d.length > 0) {
        output += d;
        emit({ type: 'delta', event: 'delta', delta: d, text: d });
      }
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  };
  let routed: RoutedChat;
  try {
    routed = seen.routed = await o.router.chat(req, {
      signal,
      requestId: newId('acp'),
      hops: [],
      deadline: Date.now() + o.timeoutMs,
      sessionId: o.sessionId,
      trace: turn.trace,
    });
  } catch (err) {
    if (signal.aborted) return done();
    throw toGatewayError(err);
  }
  if (!routed.stream) {
    // the router returns what the candidate gave; a non-stream answer to a stream request is still usable
    seen.usage = routed.reply.usage ?? undefined;
    const choice = routed.reply.completion.choices[0];
    const text = typeof choice?.message.content === 'string' ? choice.message.content : '';
    if (text) {
      output = text;
      emit({ type: 'delta', event: 'delta', delta: text, text });
    }
    finish = choice?.finish_reason ?? undefined;
    return done();
  }
  const rest = routed.rest;
  try {
    if (routed.first) onChunk(routed.first);
    for (;;) {
      if (signal.aborted) {
        await rest.return?.();
        return done();
      }
      const r = await rest.next();
      if (r.done) break;
      onChunk(r.value);
    }
  } catch (err) {
    await rest.return?.().catch(() => undefined);
    if (signal.aborted) return done();
    throw toGatewayError(err);
  }
  return done();
}
