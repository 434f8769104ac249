/**
 * Internal chat chunks → OpenAI Responses SSE, chunk by chunk. Every event is `event: <type>` plus
 * `data: {"type": <type>, …, "sequence_number": n}`, n counting from 0.
 *
 *   response.created, response.in_progress                              (start)
 *   reasoning text  → output_item.added {reasoning}, reasoning_text.delta*, reasoning_text.done, output_item.done
 *   content         → output_item.added {message}, content_part.added {output_text}, output_text.delta*,
 *                     output_text.done, content_part.done, output_item.done
 *   tool_calls[i]   → output_item.added {function_call}, function_call_arguments.delta*,
 *                     function_call_arguments.done, output_item.done
 *   response.completed (or response.incomplete on a `length` or `content_filter` finish, whose last item, the one
 *   open at the end, is then `incomplete` in its output_item.done and in the output) with the whole output and usage
 *   response.failed with { error: { code, message } } on an abnormal end, never a completed
 * A new kind of output closes the open item. The final event repeats the output, as the API defines it, so
 * the writer keeps each item's text (what the client has been sent already), nothing more.
 */
import type { GatewayError } from '../../wire/errors.js';
import type { ChatCompletionChunk, FinishReason, Usage } from '../../wire/openai.js';
import type { Item } from './request.js';
import { callItem, cutShort, failed, finish, itemId, messageItem, reasoningItem, toResponsesUsage } from './response.js';
import { reasoningText } from '../../wire/reasoning.js';
import { isObj, jsonObject } from '../../util/is-object.js';

interface Open {
  kind: 'message' | 'reasoning' | 'function_call';
  index: number;
  id: string;
  text: string;
  callId?: string;
  name?: string;
}

export class ResponsesStreamWriter {
  private seq = 0;
  private readonly output: Item[] = [];
  private open: Open | undefined;
  private readonly calls = new Map<number, Open>();
  private finishReason: FinishReason | undefined;
  private usage: Usage | undefined;

  constructor(
    private readonly response: Record<string, unknown>,
    private readonly estimateIn: number,
  ) {}

  private ev(type: string, data: Record<string, unknown>): string {
    return `event: ${type}\ndata: ${JSON.stringify({ type, ...data, sequence_number: this.seq++ })}\n\n`;
  }

  start(): string {
    return this.ev('response.created', { response: this.response }) + this.ev('response.in_progress', { response: this.response });
  }

  chunk(c: ChatCompletionChunk): string {
    if (c.usage) this.usage = c.usage;
    const choice = c.choices?.[0];
    if (!choice) return '';
    let out = '';
    const d = choice.delta ?? {};
    const reasoning = reasoningText(d);
    if (reasoning) {
      if (this.open?.kind !== 'reasoning') out += this.openItem('reasoning', reasoningItem(itemId('rs'), ''));
      const o = this.open!;
      o.text += reasoning;
      out += this.ev('response.reasoning_text.delta', { item_id: o.id, output_index: o.index, content_index: 0, delta: reasoning });
    }
    if (typeof d.content === 'string' && d.content) {
      if (this.open?.kind !== 'message') {
        out += this.openItem('message', messageItem(itemId('msg'), '', 'in_progress'));
        out += this.ev('response.content_part.added', {
          item_id: this.open!.id,
          output_index: this.open!.index,
          content_index: 0,
          part: { type: 'output_text', text: '', annotations: [] },
        });
      }
      const o = this.open!;
      o.text += d.content;
      out += this.ev('response.output_text.delta', { item_id: o.id, output_index: o.index, content_index: 0, delta: d.content, logprobs: [] });
    }
    for (const tc of d.tool_calls ?? []) {
      let o = this.calls.get(tc.index);
      if (!o) {
        const id = itemId('fc');
        const callId = tc.id || id;
        const name = tc.function?.name ?? '';
        out += this.openItem('function_call', callItem(id, callId, name, '', 'in_progress'));
        o = this.open!;
        o.callId = callId;
        o.name = name;
        this.calls.set(tc.index, o);
      }
      const args = tc.function?.arguments;
      if (args) {
        o.text += args;
        out += this.ev('response.function_call_arguments.delta', { item_id: o.id, output_index: o.index, delta: args });
      }
    }
    if (choice.finish_reason) this.finishReason = choice.finish_reason;
    return out;
  }

  /** Normal end: closes the open item; response.completed (or .incomplete) with output and usage. */
  end(): { text: string; response: Record<string, unknown> } {
    // the item open at the end is the one the upstream was writing: cut short, it is incomplete
    const text = this.close(cutShort(this.finishReason));
    const response = finish(this.response, this.output, this.finishReason, toResponsesUsage(this.usage, this.estimateIn));
    return { text: text + this.ev(response.status === 'incomplete' ? 'response.incomplete' : 'response.completed', { response }), response };
  }

  /** Abnormal end: response.failed carrying the error; the open item is left unfinished. */
  fail(e: GatewayError): string {
    return this.ev('response.failed', { response: failed(this.response, this.output, e) });
  }

  private openItem(kind: Open['kind'], item: Item): string {
    const out = this.close();
    this.open = { kind, index: this.output.length, id: String(item.id), text: '' };
    return out + this.ev('response.output_item.added', { output_index: this.open.index, item });
  }

  /** Closes the open item; `cut`: the answer ended inside it (cut short), so the item is `incomplete`. */
  private close(cut = false): string {
    const o = this.open;
    if (!o) return '';
    this.open = undefined;
    let out = '';
    let item: Item;
    if (o.kind === 'reasoning') {
      out += this.ev('response.reasoning_text.done', { item_id: o.id, output_index: o.index, content_index: 0, text: o.text });
      item = reasoningItem(o.id, o.text, cut ? 'incomplete' : undefined);
    } else if (o.kind === 'message') {
      const part = { type: 'output_text', text: o.text, annotations: [] };
      out += this.ev('response.output_text.done', { item_id: o.id, output_index: o.index, content_index: 0, text: o.text, logprobs: [] });
      out += this.ev('response.content_part.done', { item_id: o.id, output_index: o.index, content_index: 0, part });
      item = messageItem(o.id, o.text, cut ? 'incomplete' : 'completed');
    } else {
      // `name` is one of the event's fields (the API reference, the SDK's ResponseFunctionCallArgumentsDoneEvent)
      out += this.ev('response.function_call_arguments.done', { item_id: o.id, output_index: o.index, name: o.name, arguments: o.text });
      item = callItem(o.id, o.callId!, o.name!, o.text, cut ? 'incomplete' : 'completed');
    }
    this.output.push(item);
    return out + this.ev('response.output_item.done', { output_index: o.index, item });
  }
}

/** The data of one relayed SSE event (`sseFrame`'s form: its `data:` lines joined), parsed; undefined if not an object. */
function eventData(raw: string | undefined): Record<string, unknown> | undefined {
  if (raw === undefined) return undefined;
  const data = raw
    .split('\n')
    .filter((l) => l.startsWith('data: '))
    .map((l) => l.slice(6))
    .join('\n');
  return jsonObject(data);
}

/**
 * A native pass-through's abnormal end that the gateway writes itself (the upstream's body died, the deadline
 * fired, an event it could not read): the stream's `response.failed` for the response the client was already
 * announced, so the client sees one response and one count. `announced` is the first event relayed (the
 * upstream's `response.created`, whose `response` this failure repeats, with its id); `last` is the last event
 * relayed, whose `sequence_number` this one follows. Both are parsed here only, once the stream has failed;
 * without them (an upstream that sent something else first, or no sequence number) the gateway's own `fallback`
 * response and the count from 0 are used, as on a translated stream.
 */
export function nativeFailed(announced: string | undefined, last: string | undefined, fallback: Record<string, unknown>, e: GatewayError): string {
  const first = eventData(announced)?.response;
  const response = isObj(first) && typeof first.id === 'string' && first.id !== '' ? first : fallback;
  const n = eventData(last)?.sequence_number;
  const seq = typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 ? n + 1 : 0;
  const output = Array.isArray(response.output) ? (response.output as Item[]) : [];
  const data = { type: 'response.failed', response: failed(response, output, e), sequence_number: seq };
  return `event: response.failed\ndata: ${JSON.stringify(data)}\n\n`;
}
