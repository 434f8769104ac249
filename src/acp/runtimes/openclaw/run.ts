/**
 * The client side of one `chat.send` run: buffers the session's `chat` events until the ack names the run,
 * accumulates the text (deltas or whole-text replacements, by protocol version), and settles once: `final` →
 * completed, `aborted` → cancelled, `error` → rejected, a connection lost after the ack → rejected, output past
 * `maxOutputChars` → rejected (the caller then aborts the run on the server).
 *
 * Bounds: every text change counts toward `maxOutputChars`, a whole-text replacement with its whole length (so a
 * server that keeps rewriting the text is stopped like one that keeps appending); the events kept before the ack
 * are at most 10 000 and, together, at most `maxOutputChars` characters of frames (later ones are dropped, as
 * events of another run would be).
 */
import { GatewayError, toGatewayError } from '../../../wire/errors.js';
import { MAX_TURN_OUTPUT_CHARS } from '../../runtime.js';
import { ChatTextAccumulator, errorFromChatEvent, mapStopReason, type ChatEvent, type ChatSendAck, type TextChange } from './protocol.js';
import type { Connection, ConnectionRun } from './connection.js';

export interface ChatSendOptions {
  /** each text change of the run (append a piece / replace the whole text) */
  onDelta?: (change: TextChange, event: ChatEvent) => void;
  /** every `chat` event of the run, parsed and raw, before it is acted on */
  onEvent?: (event: ChatEvent, raw: unknown) => void;
  /** the chat.send ack (`{ runId, status }`) */
  onAck?: (ack: ChatSendAck) => void;
  signal?: AbortSignal;
  /** whole-run deadline; on expiry the run is aborted and the call rejects with UPSTREAM_TIMEOUT */
  timeoutMs?: number;
  /** defaults to a fresh UUID; the same key is reused if the send has to be retried on a new connection */
  idempotencyKey?: string;
  /**
   * most characters of text changes the run may produce (appended pieces, and replacements with their whole
   * text): past it the call rejects with UPSTREAM_BAD_RESPONSE and the run is aborted. Default: the turn bound,
   * MAX_TURN_OUTPUT_CHARS
   */
  maxOutputChars?: number;
}

/** most events kept for a run before its ack names it */
const MAX_BUFFERED_EVENTS = 10_000;

export interface ChatResult {
  status: 'completed' | 'cancelled';
  runId: string;
  /** the full assistant text (for cancelled runs: what had arrived) */
  text: string;
  /** ACP stop reason: end_turn | max_tokens | refusal | cancelled */
  stopReason: string;
  /** the raw payload of the terminal `chat` event, when there was one */
  terminal?: unknown;
}

/** The client side of one chat.send run. */
export class Run implements ConnectionRun {
  runId: string | undefined;
  conn: Connection | undefined;
  acc: ChatTextAccumulator | undefined;
  cancelRequested = false;
  abortSent = false;
  settled = false;
  /** the run failed for passing maxOutputChars (the server's run is then aborted) */
  overflowed = false;
  buffered: Array<{ ev: ChatEvent; raw: unknown }> = [];
  /** characters of the frames in `buffered` */
  private bufferedChars = 0;
  /** characters of the text changes so far */
  private outputChars = 0;
  private readonly maxOutputChars: number;
  readonly done: Promise<ChatResult>;
  private resolveDone!: (r: ChatResult) => void;
  private rejectDone!: (e: GatewayError) => void;

  constructor(
    readonly sessionKey: string,
    readonly idempotencyKey: string,
    readonly opts: ChatSendOptions,
    private readonly secret: string,
  ) {
    this.done = new Promise<ChatResult>((res, rej) => {
      this.resolveDone = res;
      this.rejectDone = rej;
    });
    this.done.catch(() => undefined);
    this.maxOutputChars = opts.maxOutputChars ?? MAX_TURN_OUTPUT_CHARS;
  }

  attach(conn: Connection): void {
    this.conn = conn;
    // the text so far survives a reconnect; a new connection may speak another version: keep the longer-lived text
    const prev = this.acc;
    this.acc = new ChatTextAccumulator(conn.protocol);
    if (prev && prev.text) this.acc.apply({ runId: '-', sessionKey: '-', state: 'delta', message: prev.text });
    conn.runs.add(this);
  }

  matches(runId: string): boolean {
    return runId === this.runId || runId === this.idempotencyKey;
  }

  /** A `chat` event for this run's session key; `chars`: the length of the frame it came in. */
  event(ev: ChatEvent, raw: unknown, chars: number): void {
    if (this.settled) return;
    if (this.runId === undefined && !this.matches(ev.runId)) {
      // before the ack we do not know the run id yet: keep the session's events until we do (within bounds)
      if (this.buffered.length < MAX_BUFFERED_EVENTS && this.bufferedChars + chars <= this.maxOutputChars) {
        this.buffered.push({ ev, raw });
        this.bufferedChars += chars;
      }
      return;
    }
    if (!this.matches(ev.runId)) return;
    this.handle(ev, raw);
  }

  acked(runId: string): void {
    this.runId = runId;
    const b = this.buffered;
    this.buffered = [];
    this.bufferedChars = 0;
    for (const { ev, raw } of b) if (this.matches(ev.runId)) this.handle(ev, raw);
  }

  private handle(ev: ChatEvent, raw: unknown): void {
    if (this.settled) return;
    try {
      this.opts.onEvent?.(ev, raw);
      const change = this.acc?.apply(ev);
      if (change) {
        this.outputChars += change.text.length;
        if (this.outputChars > this.maxOutputChars) {
          this.overflowed = true;
          this.fail(
            new GatewayError(
              'UPSTREAM_BAD_RESPONSE',
              `the OpenClaw run's output passed ${this.maxOutputChars} characters (pieces and replacements counted): the run was stopped`,
              { details: { provider: 'openclaw' } },
            ),
          );
          return;
        }
        this.opts.onDelta?.(change, ev);
      }
    } catch (err) {
      this.fail(toGatewayError(err));
      return;
    }
    const runId = this.runId ?? ev.runId;
    const text = this.acc?.text ?? '';
    switch (ev.state) {
      case 'final':
        this.finish({ status: 'completed', runId, text, stopReason: mapStopReason(ev.stopReason), terminal: raw });
        break;
      case 'aborted':
        this.finish({ status: 'cancelled', runId, text, stopReason: 'cancelled', terminal: raw });
        break;
      case 'error':
        this.fail(errorFromChatEvent(ev, this.secret));
        break;
      default:
        break;
    }
  }

  connectionLost(err: GatewayError): void {
    // before the ack the chat.send request itself fails and chatSend decides whether to resend
    if (this.runId === undefined) return;
    if (this.cancelRequested) this.cancelled();
    else this.fail(err);
  }

  cancelled(): void {
    this.finish({ status: 'cancelled', runId: this.runId ?? '', text: this.acc?.text ?? '', stopReason: 'cancelled' });
  }

  finish(r: ChatResult): void {
    if (this.settled) return;
    this.settled = true;
    this.resolveDone(r);
  }

  fail(e: GatewayError): void {
    if (this.settled) return;
    this.settled = true;
    this.rejectDone(e);
  }
}
