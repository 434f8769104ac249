/**
 * Forwarding over a link, both ways: `forwardChat` / `forwardEmbeddings` send a bridge-forward and settle
 * it from the peer's bridge-response / bridge-stream / bridge-stream-end / bridge-error; `serveForward` runs
 * a peer's forward on our router (only for channels we share with it) and streams the answer back.
 */
import { Abort, type CancelSignal } from '../util/abort.js';
import { GatewayError, stackOf, toGatewayError } from '../wire/errors.js';
import { validateChat, validateEmbeddings } from '../router/validate.js';
import type { ChatCompletion, ChatRequest, EmbeddingsRequest, EmbeddingsResponse, Usage } from '../wire/openai.js';
import type { BridgeForwardFrame, BridgeResponseFrame, BridgeStreamEndFrame, BridgeStreamFrame } from '../wire/bridge-frames.js';
import { isOutputChunk, type ChatOutcome, type StreamChunk } from '../providers/provider.js';
import { AsyncQueue } from '../util/async-queue.js';
import { seqId } from '../util/ids.js';
import { answeredWrongKind, fromBridgeError, sendAnswerTooLarge, toBridgeCode, tooLargeToSend } from './errors.js';
import { refuseToServe } from './serve-guard.js';
import { isForward, type LinkContext, type PendingForward } from './link-types.js';
import type { PeerAdmission } from '../keys/peer-gate.js';
import { TIMER_MAX_MS } from '../config/schema.js';
import { ChatReply } from '../providers/chat-reply.js';
import { JsonScan, scanJson } from '../wire/json-scan.js';
import { checkedChunk } from '../providers/openai/stream.js';
import { checkedEmbeddings } from '../providers/embeddings-shape.js';
import { countOf, estimatedInputUsage, inputCountOf, estimatedReplyUsage, estimatedUsage } from '../usage/record.js';

export interface ForwardOptions {
  signal: CancelSignal;
  hops: string[];
  /** absolute deadline, ms since epoch (sent as a relative budget: clocks differ) */
  deadline: number;
  sessionId?: string | undefined;
  /** W3C traceparent of the hop span (tracing on), sent as the frame's `traceparent` */
  trace?: string | undefined;
  /** the request id where the request entered the mesh, sent as `originRequestId` */
  requestId?: string | undefined;
}

/**
 * Flow control per forwarded stream (protocol 1.1), counted in characters of chunk text (~1–2 bytes each):
 * once a stream holds more than STREAM_PAUSE_CHARS for a client that reads slower than the peer sends, the
 * peer is sent bridge-stream-pause and sends no further chunk of it; once the client has read it down to
 * STREAM_RESUME_CHARS, bridge-stream-resume. The peer's own upstream then waits too (it stops reading it), so a
 * slow client slows the whole path instead of filling a gateway's memory. A link negotiated at 1.0 has no
 * pause.
 */
export const STREAM_PAUSE_CHARS = 1024 * 1024;
export const STREAM_RESUME_CHARS = 256 * 1024;
/**
 * What a forwarded stream may hold at most: past this the request is abandoned (its client gets the error
 * after what was held) rather than the peer filling our memory. It bounds a 1.0 peer, which cannot be paused,
 * and a peer that goes on sending after it has read a pause.
 */
export const STREAM_HOLD_CHARS = 8 * 1024 * 1024;
/**
 * What the paused streams of one link may take in all, past their pause points, until the peer confirms it has
 * read their pauses (the pong to the ping sent right after each: `afterPeerRead`). Until then what arrives was on
 * its way when the pause left, and that is not bounded by anything of ours: the peer's unwritten frames (it waits
 * past 1 MiB), its socket's send buffer and ours' receive buffer, which Linux grows up to `net.ipv4.tcp_wmem` and
 * `tcp_rmem`'s maximum (4 and 32 MiB here) when this process is slow to read. The same as the most a link may
 * have unwritten (MAX_BACKLOG_BYTES). It is the link's budget, not each stream's: what was on its way is one
 * socket's, however many streams it carried, so a peer that confirms no pause cannot make each of N paused
 * streams take this much. A stream's share goes back once the peer confirms its pause (also after the stream
 * ended) or its client has read it down to STREAM_RESUME_CHARS; not when it is abandoned, as what it holds still
 * waits for its client. A peer that confirms nothing keeps the budget spent: every later pause on the link is
 * then abandoned at its first chunk past the pause point (fail closed).
 */
export const LINK_UNCONFIRMED_HOLD_CHARS = 64 * 1024 * 1024;
const chunkChars = (c: StreamChunk): number => c.data.length;

/** Without a given deadline, a served forward may run this long. */
const DEFAULT_SERVE_BUDGET_MS = 600_000;

/**
 * How long a served forward may run: the peer's `deadlineMs`, at most TIMER_MAX_MS (a paused stream's wait is a
 * timer, and a longer one would fire at once: `resumed`); none or 0: DEFAULT_SERVE_BUDGET_MS.
 */
const servedBudgetMs = (deadlineMs: number | undefined): number =>
  deadlineMs !== undefined && deadlineMs > 0 ? Math.min(deadlineMs, TIMER_MAX_MS) : DEFAULT_SERVE_BUDGET_MS;

/**
 * Sends a chat forward. For streams the outcome resolves at once with an iterable fed by bridge-stream frames;
 * a bridge-error before the first chunk makes the first `next()` throw (so the router can still fail over),
 * after it the stream throws (never a fake end).
 */
export function forwardChat(l: LinkContext, targetChannel: string, req: ChatRequest, o: ForwardOptions): Promise<ChatOutcome> {
  const body = { kind: 'chat', payload: req } as const;
  if (req.stream === true) {
    const queue = new AsyncQueue<StreamChunk>(chunkChars);
    const err = launch(l, o, targetChannel, body, true, { queue, resolve: () => undefined, fail: (e) => queue.fail(e) });
    return err ? Promise.reject(err) : Promise.resolve({ stream: true, chunks: queue });
  }
  return new Promise((resolve, reject) => {
    const err = launch(l, o, targetChannel, body, false, {
      queue: undefined,
      // an answer another sender laid out otherwise (the usual one is relayed as text, below): the same rule
      resolve: (v) =>
        Array.isArray((v as Partial<ChatCompletion>).choices)
          ? resolve(ChatReply.of(v as ChatCompletion))
          : reject(new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${label(l, targetChannel)}: upstream reply has no choices`)),
      // the peer relayed its upstream's body: relay it on, validated by a scan (as from an upstream), not parsed
      relay: (payload) => {
        let reply: ChatReply;
        try {
          reply = ChatReply.relayed(payload, label(l, targetChannel));
        } catch {
          return false; // not a chat answer as text: the frame is parsed and checked as any other
        }
        resolve(reply);
        return true;
      },
      fail: reject,
    });
    if (err) reject(err);
  });
}

export function forwardEmbeddings(l: LinkContext, targetChannel: string, req: EmbeddingsRequest, o: ForwardOptions): Promise<EmbeddingsResponse> {
  return new Promise((resolve, reject) => {
    const err = launch(l, o, targetChannel, { kind: 'embeddings', payload: req }, false, {
      queue: undefined,
      resolve: (v) => {
        try {
          resolve(checkedEmbeddings(v, req, label(l, targetChannel)));
        } catch (e) {
          reject(toGatewayError(e));
        }
      },
      fail: reject,
    });
    if (err) reject(err);
  });
}

type Body = { kind: 'chat'; payload: ChatRequest } | { kind: 'embeddings'; payload: EmbeddingsRequest };

/** How a peer's channel is named in the errors its answers raise. */
const label = (l: LinkContext, targetChannel: string): string => `${l.name}/${targetChannel}`;

/** Registers the pending entry (abort → bridge-cancel) and sends the frame; an error when it cannot start. */
function launch(
  l: LinkContext,
  o: ForwardOptions,
  targetChannel: string,
  body: Body,
  stream: boolean,
  e: Pick<PendingForward, 'queue' | 'resolve' | 'relay' | 'fail'>,
): GatewayError | undefined {
  if (!l.open) return new GatewayError('PEER_UNAVAILABLE', `bridge peer ${l.name} is not connected`);
  if (o.signal.aborted) return new GatewayError('CANCELLED', 'request cancelled');
  const requestId = seqId('fwd');
  const onAbort = () => l.abandon(requestId, new GatewayError('CANCELLED', 'request cancelled'));
  o.signal.addEventListener('abort', onAbort, { once: true });
  if (e.queue) e.queue.onReturn = onAbort;
  const entry: PendingForward = { kind: 'forward', label: label(l, targetChannel), ...e, refused: (f) => entry.fail(fromBridgeError(f, l.name, 'forward')) };
  l.pending.add(requestId, entry, { cleanup: () => o.signal.removeEventListener('abort', onAbort) });
  // the optional fields are assigned, not spread from conditional objects (a spread of a literal per field)
  const frame: BridgeForwardFrame = {
    type: 'bridge-forward',
    requestId,
    targetChannel,
    ...body,
    stream,
    hops: [...o.hops, l.selfId],
    deadlineMs: Math.max(1, o.deadline - Date.now()),
  };
  if (o.sessionId) frame.sessionId = o.sessionId;
  if (o.trace) frame.traceparent = o.trace;
  if (o.requestId) frame.originRequestId = o.requestId;
  if (l.send(frame)) return undefined;
  // larger than the peer takes in one frame: this candidate cannot serve it, another may
  l.pending.take(requestId);
  return tooLargeToSend(l, 'request', true);
}

/** An answer too large for the link: the requester's router may try another candidate if nothing was relayed yet. */
function answerTooLarge(l: LinkContext, requestId: string, started: boolean): void {
  sendAnswerTooLarge(l, requestId, 'the answer', { retryable: true, started });
}

/**
 * A bridge-response split without parsing (`splitRelayFrame`): settles a non-streaming chat forward with the
 * payload's text. False when nothing here takes it (another kind of request, an unknown id, a payload that is
 * not a chat answer): the frame is then parsed and handled like any other.
 */
export function onRelayedResponse(l: LinkContext, requestId: string, payload: string): boolean {
  const p = l.pending.get(requestId);
  if (!p || !isForward(p) || !p.relay?.(payload)) return false;
  l.pending.take(requestId);
  return true;
}

/** One scan at a time (synchronous), so one scratch record serves every relayed chunk. */
const chunkScan = new JsonScan();

/**
 * A bridge-stream split without parsing (`splitRelayFrame`): the chunk's text goes to the stream as the peer
 * relayed it, validated by a scan (exactly JSON.parse's grammar) instead of parsed and serialised again; its
 * usage is read from its own slice. False when nothing here takes it (an unknown id, a chunk that is not a JSON
 * object): the frame is then parsed, and the codec answers a bad one as before.
 */
export function onRelayedChunk(l: LinkContext, requestId: string, chunk: string): boolean {
  const p = l.pending.get(requestId);
  if (!p || !isForward(p) || !p.queue) return false;
  const s = chunkScan;
  if (!scanJson(chunk, s) || !s.object) return false;
  pushChunk(l, requestId, p, chunk, s);
  return true;
}

/**
 * A peer's chunk, held to the rules an upstream's chunks are (checkedChunk: an in-band error, no `choices`):
 * a bad one fails the request (the stream ends with the error, never as content) and the peer is told to stop.
 */
function pushChunk(l: LinkContext, requestId: string, p: PendingForward, data: string, s: JsonScan): void {
  let chunk: StreamChunk;
  try {
    chunk = checkedChunk(data, s, p.label);
  } catch (err) {
    return l.abandon(requestId, toGatewayError(err));
  }
  const q = p.queue!;
  if (p.unconfirmed === undefined) {
    if (q.held > (p.holdLimit ?? STREAM_HOLD_CHARS)) return tooSlow(l, requestId, `${mi(q.held)} waiting`);
  } else {
    // paused, and the peer has not confirmed it read the pause: no limit of the stream's own, this chunk counts
    // against the link's budget
    const n = chunkChars(chunk);
    if (l.unconfirmedHeld + n > LINK_UNCONFIRMED_HOLD_CHARS) {
      return tooSlow(l, requestId, `${mi(q.held)} waiting, ${mi(l.unconfirmedHeld)} sent past unconfirmed pauses on the link`);
    }
    p.unconfirmed += n;
    l.unconfirmedHeld += n;
  }
  q.push(chunk);
  if (q.held > STREAM_PAUSE_CHARS && p.paused !== true && l.streamPause) pauseStream(l, requestId, p, q);
}

/**
 * Asks the peer to hold the stream until its client has read what waits for it down to STREAM_RESUME_CHARS.
 * What the peer sent before it read the pause still comes, however much the two sockets held: the stream may
 * take its share of LINK_UNCONFIRMED_HOLD_CHARS until the peer has read the pause. From then on it may take one more
 * chunk (the one the peer's serving loop was waiting for when the pause came: STREAM_PAUSE_CHARS of room for
 * it), and anything past that is a peer that goes on sending after a pause.
 */
function pauseStream(l: LinkContext, requestId: string, p: PendingForward, q: AsyncQueue<StreamChunk>): void {
  p.paused = true;
  const pause = (p.pauses = (p.pauses ?? 0) + 1);
  // until the peer confirms it read the pause, the link's budget bounds the stream (LINK_UNCONFIRMED_HOLD_CHARS),
  // not `holdLimit` (pushChunk)
  p.unconfirmed = 0;
  l.traffic.pausesSent++;
  l.send({ type: 'bridge-stream-pause', requestId });
  l.afterPeerRead(() => {
    // a pause already resumed (or a later one's) is not what the peer confirms here
    if (p.pauses !== pause) return;
    // confirmed, also for a stream that ended or was abandoned meanwhile: its share goes back
    releaseUnconfirmed(l, p);
    if (p.paused === true) p.holdLimit = Math.max(STREAM_HOLD_CHARS, q.held + STREAM_PAUSE_CHARS);
  });
  q.whenHeldAtMost(STREAM_RESUME_CHARS, () => {
    p.paused = false;
    p.holdLimit = undefined;
    releaseUnconfirmed(l, p);
    // a stream that ended or failed meanwhile has nothing to resume
    if (l.pending.get(requestId) === p) l.send({ type: 'bridge-stream-resume', requestId });
  });
}

/** A stream's pause is confirmed, or its client read it down: its share of the link's budget goes back (once). */
function releaseUnconfirmed(l: LinkContext, p: PendingForward): void {
  if (p.unconfirmed === undefined) return;
  l.unconfirmedHeld -= p.unconfirmed;
  p.unconfirmed = undefined;
}

const mi = (chars: number): string => `${Math.round(chars / (1024 * 1024))} Mi characters`;

function tooSlow(l: LinkContext, requestId: string, what: string): void {
  l.abandon(requestId, new GatewayError('CLIENT_TOO_SLOW', `the client read the stream slower than bridge peer ${l.name} sent it (${what}): abandoned`));
}

/**
 * An answer of the other kind (a bridge-response to a stream; a bridge-stream or bridge-stream-end to a plain
 * request): nothing would ever settle the request, so it fails now as a bad answer and the peer is told to stop.
 */
function wrongKind(l: LinkContext, requestId: string, p: PendingForward, type: string): void {
  const asked = p.queue ? 'a streaming' : 'a non-streaming';
  l.abandon(requestId, new GatewayError('UPSTREAM_BAD_RESPONSE', `bridge peer ${l.name} answered ${asked} request with ${type}`));
}

export function onResponse(l: LinkContext, f: BridgeResponseFrame): void {
  const p = l.pending.get(f.requestId);
  if (!p) return;
  if (!isForward(p)) return answeredWrongKind(l, f.requestId, p, f.type);
  if (p.queue) return wrongKind(l, f.requestId, p, f.type);
  l.pending.take(f.requestId);
  p.resolve(f.payload);
}

export function onStream(l: LinkContext, f: BridgeStreamFrame): void {
  const p = l.pending.get(f.requestId);
  if (!p) return;
  if (!isForward(p)) return answeredWrongKind(l, f.requestId, p, f.type);
  if (!p.queue) return wrongKind(l, f.requestId, p, f.type);
  // a frame another sender laid out otherwise (the usual one is split: onRelayedChunk): serialised (the codec
  // bounds its depth) and scanned, then the same rules
  const data = JSON.stringify(f.chunk);
  scanJson(data, chunkScan);
  pushChunk(l, f.requestId, p, data, chunkScan);
}

export function onStreamEnd(l: LinkContext, f: BridgeStreamEndFrame): void {
  const p = l.pending.get(f.requestId);
  if (!p) return;
  if (!isForward(p)) return answeredWrongKind(l, f.requestId, p, f.type);
  if (!p.queue) return wrongKind(l, f.requestId, p, f.type);
  l.pending.take(f.requestId);
  p.queue.end();
}

// ---- serving a peer's forward ----------------------------------------------------------------------------

export async function serveForward(l: LinkContext, f: BridgeForwardFrame): Promise<void> {
  const requestId = f.requestId;
  const hops = f.hops ?? [];
  const refusal = refuseToServe(l, requestId, hops, () =>
    l.ourShare.has(f.targetChannel) ? undefined : { code: 'CHANNEL_NOT_SHARED', message: `channel "${f.targetChannel}" is not shared with this gateway` },
  );
  if (refusal) return l.sendError(refusal.code, refusal.message, { requestId, started: false });

  // a light Abort, not an AbortController: bridge-cancel or the link's end fires it at most once, and the router
  // links it into the attempt without EventTarget listeners (src/util/abort.ts; docs/benchmarks.md, ninth pass)
  const ac = new ServedForward();
  l.serving.set(requestId, ac);
  l.loadChanged();
  let started = false;
  let usage: Usage | undefined;
  // a stream's content chunks sent: without the upstream's count, the peer is charged an estimate of them (usage/record.ts)
  let chunks = 0;
  let served = false;
  let gate: PeerAdmission | undefined;
  const opts = {
    signal: ac.signal,
    requestId: f.originRequestId ?? `${l.peer.id}:${requestId}`,
    hops: [...hops, l.selfId],
    trace: f.traceparent,
    deadline: Date.now() + servedBudgetMs(f.deadlineMs),
    sessionId: f.sessionId,
  };
  try {
    // peerLimits (src/keys/peer-gate.ts): a refusal makes the requesting gateway fail over to another candidate
    // held to the rules a /v1 request is held to at the edge: a peer's body is input like any other
    const payload = f.kind === 'embeddings' ? validateEmbeddings(f.payload) : validateChat({ ...f.payload, stream: f.stream === true });
    gate = await l.peerGate()?.(l.peer.id, f.targetChannel, payload.model, f.stream === true);
    if (gate && !gate.ok)
      return l.sendError('RATE_LIMITED', gate.message, { requestId, retryable: true, retryAfterMs: gate.retryAfterMs, gatewayCode: 'RATE_LIMITED' });
    if (ac.signal.aborted) throw new GatewayError('CANCELLED', 'request cancelled'); // bridge-cancel during the check
    if (f.kind === 'embeddings') {
      const answer = await l.router.serveChannelEmbeddings(f.targetChannel, payload as EmbeddingsRequest, opts);
      // an answer the upstream did not count is charged the request's size, as on /v1/embeddings
      usage = inputCountOf(answer.usage) ?? (gate?.ok ? estimatedInputUsage(payload as EmbeddingsRequest) : undefined);
      if (l.send({ type: 'bridge-response', requestId, payload: answer })) served = true;
      else answerTooLarge(l, requestId, false);
      return;
    }
    const routed = await l.router.serveChannel(f.targetChannel, payload as ChatRequest, opts);
    if (!routed.stream) {
      const reply = routed.reply;
      // an answer the upstream did not count is charged an estimate of its text (parsing a relayed one: rare)
      usage = countOf(reply.usage) ?? (gate?.ok ? estimatedReplyUsage(payload as ChatRequest, reply, reply.usage) : undefined);
      // an upstream's reply relayed as received (already checked JSON) is spliced into the frame, not parsed or
      // re-serialised
      const sent =
        reply.raw !== undefined
          ? l.send(`{"type":"bridge-response","requestId":${JSON.stringify(requestId)},"payload":${reply.raw}}`)
          : l.send({ type: 'bridge-response', requestId, payload: reply.completion });
      if (sent) served = true;
      else answerTooLarge(l, requestId, false);
      return;
    }
    const idJson = JSON.stringify(requestId);
    let chunk = routed.first;
    // the chunks of one upstream read (takeReady) are sent in one tick, so they leave in one socket write
    while (chunk !== undefined) {
      if (chunk.usage) usage = chunk.usage;
      if (isOutputChunk(chunk)) chunks++;
      // The chunk is already JSON: splice it into the frame instead of parsing and re-serialising it.
      if (!l.send(`{"type":"bridge-stream","requestId":${idJson},"chunk":${chunk.data}}`)) {
        await routed.rest.return?.();
        return answerTooLarge(l, requestId, started);
      }
      started = true;
      // a peer slower than the upstream: the next chunk is read once it has taken what was sent
      const slow = l.backpressure();
      if (slow) await slow;
      // a peer whose client reads slower than this stream runs asked us to hold it (bridge-stream-pause): the
      // upstream is not read meanwhile, so it waits too
      if (ac.paused) await ac.resumed(l, opts.deadline);
      if (ac.signal.aborted) {
        await routed.rest.return?.();
        return;
      }
      // a chunk the stream already holds needs no promise (ChunkStream.takeReady)
      chunk = routed.rest.takeReady?.();
      if (chunk !== undefined) continue;
      const r = await routed.rest.next();
      chunk = r.done ? undefined : r.value;
    }
    served = true;
    l.send({ type: 'bridge-stream-end', requestId, ...(usage ? { usage } : {}) });
  } catch (err) {
    const e = toGatewayError(err);
    if (e.code === 'INTERNAL') l.logger.error('unhandled error', { requestId: opts.requestId, err: stackOf(err) });
    if (e.code !== 'CANCELLED') l.logger.warn('serving a peer request failed', { requestId: opts.requestId, code: e.code });
    l.sendError(toBridgeCode(e.code), e.message, { requestId, retryable: e.retryable, started, gatewayCode: e.code, param: e.param });
  } finally {
    if (served) l.logger.debug('served a peer request', { requestId: opts.requestId, channel: f.targetChannel });
    // a stream that went out without the upstream's count (cancelled, failed, or never counted) is charged an estimate
    if (gate?.ok) gate.done(countOf(usage) ?? (started ? estimatedUsage(f.payload as ChatRequest, chunks, usage) : undefined), served);
    l.serving.delete(requestId);
    l.loadChanged();
  }
}

/**
 * A forward we serve: bridge-cancel or the link's end aborts it; on a 1.1 link the peer may hold its stream
 * (bridge-stream-pause, bridge-stream-resume). A pause is only a flag until the serving loop, between two
 * chunks, finds it set and waits in `resumed`.
 */
class ServedForward extends Abort {
  paused = false;
  private wake: (() => void) | undefined;

  pause(): void {
    if (!this.aborted) this.paused = true;
  }

  resume(): void {
    this.paused = false;
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  override abort(reason?: unknown): void {
    super.abort(reason);
    this.resume();
  }

  /**
   * Resolves on bridge-stream-resume or the abort (the loop then checks `aborted`); rejects once the request's
   * deadline passes while the stream is held, so a peer that never resumes cannot hold our upstream and its
   * channel slot past the time the request was given.
   */
  async resumed(l: LinkContext, deadline: number): Promise<void> {
    l.pausedStreams++;
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        this.wake = resolve;
        timer = setTimeout(
          () => reject(new GatewayError('UPSTREAM_TIMEOUT', `the request's deadline passed while bridge peer ${l.name} held the stream paused`)),
          Math.max(0, deadline - Date.now()),
        );
      });
    } finally {
      clearTimeout(timer);
      this.wake = undefined;
      l.pausedStreams--;
    }
  }
}
