/**
 * A non-streaming chat answer as a provider hands it over (the `stream: false` side of ChatOutcome).
 *
 * Contract:
 * - `usage` is the answer's top-level `usage` when it is an object, else undefined (null, a number, an array
 *   and absent all count as no usage, as every consumer of usage already treated them).
 * - `raw`, when set, is the upstream's JSON body exactly as received: an OpenAI-compatible upstream, nothing
 *   translated. The OpenAI edge and the bridge relay these bytes; nothing there needs the object.
 * - `completion` is the answer as an object. For a relayed body it is parsed on its first read, once, and
 *   cannot fail (the body was validated by a scan that accepts exactly what JSON.parse accepts). It is a getter
 *   on purpose: a consumer that needs the object asks for it where it reads it. Never spread a ChatReply
 *   (`{ ...reply }` drops the getter); carry the instance.
 * - Adapters that build or translate the answer (anthropic, ollama, mock, responses-native, a bridge peer's
 *   answer) wrap their object with `ChatReply.of`: no `raw`, nothing parsed later.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../wire/errors.js';
import { JsonScan, scanJson } from '../wire/json-scan.js';
import type { ChatCompletion, Usage } from '../wire/openai.js';
import { isObj } from '../util/is-object.js';
import { notJson, tooDeep } from './upstream.js';
import { answerError, replyError } from './reported-error.js';

/** One scan at a time (scanJson is synchronous), so one scratch record serves every relayed reply. */
const scan = new JsonScan();

export class ChatReply {
  /** discriminates ChatOutcome */
  readonly stream = false as const;
  /** the relayed body until the first `completion` read, then the object */
  private value: ChatCompletion | string;

  private constructor(
    readonly raw: string | undefined,
    readonly usage: Usage | undefined,
    value: ChatCompletion | string,
  ) {
    this.value = value;
  }

  /** An answer the adapter built or translated (serialised by the edge that sends it). */
  static of(completion: ChatCompletion): ChatReply {
    return new ChatReply(undefined, isObj(completion.usage) ? completion.usage : undefined, completion);
  }

  /**
   * An OpenAI-compatible upstream's body, relayed as received: validated by one scan, its usage parsed from its
   * own slice, the rest left unparsed. Throws UPSTREAM_BAD_RESPONSE for a body that is not JSON or not an
   * object with a `choices` array (`label`: the channel, for the message), unless that body is an error object
   * (`{"error": …}`, vLLM's `{"object":"error",…}`): then the error it reports (`replyError`). An answer with
   * `choices` and an `error` object that reads as one is that error (`answerError`). Only a body without
   * `choices`, or with a non-null `error`, is parsed for that. `headers`: the answer's (the error's Retry-After).
   */
  static relayed(text: string, label: string, headers?: IncomingHttpHeaders): ChatReply {
    if (!scanJson(text, scan)) throw scan.tooDeep ? tooDeep(label) : notJson(label);
    if (!scan.object || !scan.choicesArray) {
      throw (
        (scan.object ? replyError(JSON.parse(text), label, headers) : undefined) ??
        new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${label}: upstream reply has no choices`)
      );
    }
    // an answer with a non-null `error` beside its choices (the scan's own finding: no cost for any other) is
    // parsed, and is the error it holds when that reads as one (`answerError`, the stream's rule)
    if (scan.error) {
      const body = JSON.parse(text) as ChatCompletion & Record<string, unknown>;
      const e = answerError(body, label, headers);
      if (e !== undefined) throw e;
      return new ChatReply(text, scan.usageOf(text) as Usage | undefined, body);
    }
    return new ChatReply(text, scan.usageOf(text) as Usage | undefined, text);
  }

  /** The answer as an object; a relayed body is parsed here, on the first read only. */
  get completion(): ChatCompletion {
    const v = this.value;
    if (typeof v !== 'string') return v;
    const parsed = JSON.parse(v) as ChatCompletion;
    this.value = parsed;
    return parsed;
  }
}
