/**
 * Internal chat chunks → Anthropic Messages SSE, chunk by chunk (state: the open content block only).
 *
 * Sequence written, as the real API does:
 *   message_start (usage: input estimated from the request size, output 1; the upstream's real counts come in
 *                  message_delta, because chat upstreams report usage only at the end)
 *   per block: content_block_start, [ping after the first one], content_block_delta*, content_block_stop
 *     reasoning_content / reasoning → `thinking` block, thinking_delta
 *     content                       → `text` block, text_delta
 *     tool_calls[i] with id/name    → `tool_use` block; its arguments → input_json_delta, piece by piece once
 *                                     they open as a JSON object (`{"`), as long as they stay JSON
 *                                     (ObjectPrefix): a piece that breaks them is not sent, and the stream ends
 *                                     there with the `error` event of the error a non-streaming answer of them is
 *                                     (brokenArguments; nothing after it is sent); arguments that do not
 *                                     open as an object (plain text, `{city: …}`) are held and sent whole at the
 *                                     block's close as `{"input": …}`, as toolInput makes them; arguments
 *                                     that opened as an object and never closed end the stream with the
 *                                     error (unfinishedArguments) instead of message_delta, unless the answer
 *                                     was cut short inside that call (cutShort: the last call, `length` or
 *                                     `content_filter`), as a non-streaming answer of them does
 *   message_delta (stop_reason, usage with the upstream's real counts), message_stop
 * A new kind of content closes the open block; blocks are numbered from 0 in order of appearance.
 * Arguments for a tool call whose block is already closed (interleaved parallel calls, which no chat
 * upstream we know sends) go to that block's index.
 * An abnormal end is `event: error` (./errors.ts) instead of message_delta/message_stop.
 */
import type { ChatCompletionChunk, Usage } from '../../wire/openai.js';
import { cutShort, messageId, toAnthropicUsage, toStopReason, toolInput, toolUseId } from './response.js';
import { reasoningText } from '../../wire/reasoning.js';
import { isObj, jsonObject } from '../../util/is-object.js';
import { sseFrame } from '../../util/lines.js';
import { brokenArguments, ObjectPrefix, opensObject, unfinishedArguments } from './json-prefix.js';
import { anthropicErrorEvent } from './errors.js';
import type { GatewayError } from '../../wire/errors.js';

const ev = (type: string, data: Record<string, unknown>) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;

const inputDelta = (index: number, json: string) => ev('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: json } });

const NATIVE_START = 'event: message_start\n';

/**
 * A native stream's `message_start` as the client gets it. An Anthropic-compatible upstream (not the real API) may
 * leave the message's `id` or `model` out or empty, which the SDK's types require and a client keys the message by:
 * they are filled in as the translated stream has them (`messageId`, the model the client asked for). Any other
 * event, and a message_start that has both, is relayed byte for byte. `raw` is one SSE event as the pass-through
 * relays it; the caller passes only the stream's first events, so one event per stream is parsed.
 */
export function nativeStart(raw: string, model: string): string {
  if (!raw.startsWith(NATIVE_START)) return raw;
  const data = raw
    .slice(NATIVE_START.length)
    .split('\n')
    .filter((l) => l.startsWith('data: '))
    .map((l) => l.slice(6))
    .join('\n');
  const ev = jsonObject(data);
  const m = ev?.message;
  if (!ev || !isObj(m)) return raw;
  const has = (v: unknown): v is string => typeof v === 'string' && v !== '';
  if (has(m.id) && has(m.model)) return raw;
  const message = { ...m, id: has(m.id) ? m.id : messageId(undefined), model: has(m.model) ? m.model : model };
  return sseFrame(JSON.stringify({ ...ev, message }), 'message_start');
}

export class AnthropicStreamWriter {
  private open: 'text' | 'thinking' | 'tool_use' | undefined;
  private index = -1;
  private pinged = false;
  private readonly toolBlock = new Map<number, number>();
  /**
   * A tool block's arguments, by block, until their first two non-blank characters show whether they open a JSON
   * object (opensObject): `{"` or `{}` sends what was held and streams the rest as it comes; anything else
   * (`Paris`, `{city: …}`, a model's plain-text or array arguments) is held whole and sent at the block's close as
   * the non-streaming answer has it (toolInput: `{"input": "Paris"}`), since `input_json_delta` pieces must make a
   * JSON object (the SDK throws on others).
   */
  private readonly held = new Map<number, string>();
  /**
   * The scan of a block's streamed arguments (ObjectPrefix): a piece goes out while the arguments stay a JSON
   * object's prefix; the first character that breaks it (a bad escape, a stray `}`) ends the stream with the error
   * (`failure`), as toolInput fails a non-streaming answer of the same arguments, so the client never reads a call
   * missing what came after the break.
   */
  private readonly scans = new Map<number, ObjectPrefix>();
  /** a tool block's tool name, for the error of arguments that break */
  private readonly toolNames = new Map<number, string>();
  /** the last tool block opened: the one call a cut-short answer may leave unfinished */
  private lastTool = -1;
  /** held blocks closed while their arguments were only `{` (and blanks): their length, an unfinished object */
  private readonly unclosed = new Map<number, number>();
  private finish: string | undefined;
  private usage: Usage | undefined;
  private broke: GatewayError | undefined;

  constructor(
    private readonly model: string,
    private readonly estimateIn: number,
  ) {}

  start(id: string | undefined): string {
    const message = {
      id: messageId(id),
      type: 'message',
      role: 'assistant',
      model: this.model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: this.estimateIn, output_tokens: 1 },
    };
    return ev('message_start', { message });
  }

  /**
   * The error that ended the stream (tool arguments that broke): its `error` event was the last text `chunk`
   * returned, and nothing follows it (`chunk` and `end` return ''). The upstream's answer itself was whole: the
   * exchange is settled as the upstream served it, as a non-streaming answer of the same arguments is.
   */
  get failure(): GatewayError | undefined {
    return this.broke;
  }

  chunk(c: ChatCompletionChunk): string {
    if (this.broke) return '';
    if (c.usage) this.usage = c.usage;
    const choice = c.choices?.[0];
    if (!choice) return '';
    let out = '';
    const d = choice.delta ?? {};
    const reasoning = reasoningText(d);
    if (reasoning) {
      out += this.ensure('thinking', { type: 'thinking', thinking: '', signature: '' });
      out += ev('content_block_delta', { index: this.index, delta: { type: 'thinking_delta', thinking: reasoning } });
    }
    if (typeof d.content === 'string' && d.content) {
      out += this.ensure('text', { type: 'text', text: '' });
      out += ev('content_block_delta', { index: this.index, delta: { type: 'text_delta', text: d.content } });
    }
    for (const tc of d.tool_calls ?? []) {
      let block = this.toolBlock.get(tc.index);
      if (block === undefined) {
        const name = tc.function?.name ?? '';
        out += this.openBlock('tool_use', { type: 'tool_use', id: toolUseId(tc.id), name, input: {} });
        block = this.index;
        this.toolBlock.set(tc.index, block);
        this.toolNames.set(block, name);
        this.lastTool = block;
      }
      const args = tc.function?.arguments;
      if (args) out += this.toolArgs(block, args);
      if (this.broke) return out + anthropicErrorEvent(this.broke);
    }
    if (choice.finish_reason) this.finish = choice.finish_reason;
    return out;
  }

  /**
   * The normal end: closes the open block, reports stop reason and the upstream's usage ('' after a `failure`). A
   * tool call left unfinished in an answer not cut short ends the stream with its error instead (`failure`).
   */
  end(): string {
    if (this.broke) return '';
    this.broke = this.unfinished();
    if (this.broke) return anthropicErrorEvent(this.broke);
    const u = toAnthropicUsage(this.usage, this.estimateIn);
    const stop = toStopReason(this.finish, this.toolBlock.size > 0);
    return this.close() + ev('message_delta', { delta: { stop_reason: stop, stop_sequence: null }, usage: u }) + ev('message_stop', {});
  }

  /**
   * The first tool call whose arguments opened as a JSON object and never closed, except the last call of an answer
   * cut short (cutShort), which the stop reason says is unfinished: toolArguments' rule for a non-streaming answer.
   */
  private unfinished(): GatewayError | undefined {
    const cut = cutShort(this.finish);
    for (const [block, name] of this.toolNames) {
      if (cut && block === this.lastTool) continue;
      const scan = this.scans.get(block);
      const held = this.held.get(block);
      // a scan that broke ended the stream already; ObjectPrefix.closed() marks a block sent whole
      const at =
        scan && !scan.broken
          ? scan.complete
            ? undefined
            : scan.length
          : held !== undefined && held.trim() && opensObject(held) === undefined
            ? held.length
            : this.unclosed.get(block);
      if (at !== undefined) return unfinishedArguments(name, at);
    }
    return undefined;
  }

  private toolArgs(block: number, args: string): string {
    const scan = this.scans.get(block);
    if (scan) return this.scanned(block, scan, args);
    const held = this.held.get(block);
    const text = held === undefined ? args : held + args;
    // once known not to open an object, the rest is only collected
    if (held === undefined || opensObject(held) === undefined) {
      if (opensObject(text) === true) {
        this.held.delete(block);
        const s = new ObjectPrefix();
        this.scans.set(block, s);
        return this.scanned(block, s, text);
      }
    }
    this.held.set(block, text);
    return '';
  }

  private scanned(block: number, scan: ObjectPrefix, args: string): string {
    // a block whose arguments already went out whole (held, then sent at its close) takes no late piece
    if (scan.broken) return '';
    const n = scan.feed(args);
    if (scan.broken) {
      this.broke = brokenArguments(this.toolNames.get(block) ?? '', scan.length);
      return '';
    }
    return n === 0 ? '' : inputDelta(block, args);
  }

  private ensure(kind: 'text' | 'thinking', block: Record<string, unknown>): string {
    return this.open === kind ? '' : this.openBlock(kind, block);
  }

  private openBlock(kind: 'text' | 'thinking' | 'tool_use', block: Record<string, unknown>): string {
    let out = this.close();
    this.index++;
    this.open = kind;
    out += ev('content_block_start', { index: this.index, content_block: block });
    if (!this.pinged) {
      this.pinged = true;
      out += ev('ping', {});
    }
    return out;
  }

  private close(): string {
    if (this.open === undefined) return '';
    this.open = undefined;
    let out = '';
    const held = this.held.get(this.index);
    if (held !== undefined) {
      this.held.delete(this.index);
      // sent whole: a late piece for this block (interleaved calls) would break what went out
      this.scans.set(this.index, ObjectPrefix.closed());
      // only `{` so far: an object that never closed (unfinished, unless it is the call a cut answer ended in)
      if (held.trim() && opensObject(held) === undefined) this.unclosed.set(this.index, held.length);
      if (held.trim()) out += inputDelta(this.index, JSON.stringify(toolInput(held, this.toolNames.get(this.index), true)));
    }
    return out + ev('content_block_stop', { index: this.index });
  }
}
