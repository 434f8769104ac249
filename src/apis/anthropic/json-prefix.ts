/**
 * A tool call's arguments as the Messages API carries them: one JSON object, streamed as `input_json_delta` pieces
 * that the SDK joins and parses (a partial-JSON parser, which takes any prefix of a JSON object but throws on a
 * character no JSON has there). A chat upstream's arguments are a string the model wrote, which may not be JSON.
 *
 * ObjectPrefix scans them as they stream, character by character (a small state machine of JSON's grammar, no
 * copy): `feed` says how much of each piece still keeps the whole a prefix of a JSON object, and `broken` whether a
 * character broke it, so a stream sends only pieces that keep it one. `repaired` is what a prefix cut at its end
 * (the answer stopped there: the output-token limit) is read as: the object up to its last complete member (an
 * unfinished one dropped, as the SDK reads a call cut there), closed. toolArguments makes the same object of a
 * whole argument string, so a non-streaming answer and a stream agree.
 *
 * Arguments that open as an object and then break (`{"path": "a\.b"}`, an invalid escape; a raw newline in a
 * string; `{"a":1}{"b":2}`) are not the call the model made, and no object the Messages API can carry holds what
 * follows the break: both paths fail the answer with `brokenArguments` (UPSTREAM_BAD_RESPONSE) rather than hand
 * the client a call without the members after it (a tool run without an argument the model gave). Arguments that
 * end before their object closes (`{"path": "src/ma`) fail alike (`unfinishedArguments`) unless the answer was cut
 * short there (the output-token limit, or the content filter: the client is told by the stop reason), as the
 * reading up to the last complete member would drop the unfinished one without a word. docs/apis.md.
 */
import { GatewayError } from '../../wire/errors.js';
import { quotedName } from '../../wire/openai.js';

const enum S {
  Start,
  KeyOrEnd,
  Key,
  Colon,
  Value,
  ValueOrEnd,
  After,
  Done,
  Str,
  Esc,
  Hex,
  NumSign,
  NumZero,
  NumInt,
  NumDot,
  NumFrac,
  NumExp,
  NumExpSign,
  NumExpDigit,
  Literal,
  Broken,
}

const isWs = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
const isHex = (c: number) => isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);

export class ObjectPrefix {
  private state = S.Start;
  /** closers of the open containers, innermost first (`}]}`) */
  private closers = '';
  private key = false;
  private hex = 0;
  private literal = '';
  /** characters taken so far (the valid prefix's length) */
  private taken = 0;
  /** the prefix ends after a complete value, or just after an opening bracket, at `safe`; `safeClose` closes it */
  private safe = 0;
  private safeClose = '';

  /** A scanner that takes nothing more (a block whose arguments already went out whole). */
  static closed(): ObjectPrefix {
    const p = new ObjectPrefix();
    p.state = S.Broken;
    return p;
  }

  /** A character broke the prefix: nothing from it on is JSON. */
  get broken(): boolean {
    return this.state === S.Broken;
  }

  /** Characters taken so far: where a break is, once `broken`. */
  get length(): number {
    return this.taken;
  }

  /** The object was closed (only blanks may follow). */
  get complete(): boolean {
    return this.state === S.Done;
  }

  /** How many characters of `s` keep the arguments a JSON object's prefix: `s.length`, or fewer when one broke it. */
  feed(s: string): number {
    if (this.state === S.Broken) return 0;
    for (let i = 0; i < s.length; i++) {
      if (!this.step(s.charCodeAt(i))) {
        this.state = S.Broken;
        return i;
      }
      this.taken++;
    }
    return s.length;
  }

  /** What the valid prefix `text` (the characters taken) is read as: its complete members, closed. */
  repaired(text: string): Record<string, unknown> {
    if (this.safe === 0) return {};
    return JSON.parse(text.slice(0, this.safe) + this.safeClose) as Record<string, unknown>;
  }

  private open(closer: string, next: S): boolean {
    this.closers = closer + this.closers;
    this.state = next;
    this.markSafe(this.taken + 1);
    return true;
  }

  private markSafe(at: number): void {
    this.safe = at;
    this.safeClose = this.closers;
  }

  /** A value ended just before position `at`. */
  private valueEnd(at: number): void {
    this.state = S.After;
    this.markSafe(at);
  }

  private value(c: number): boolean {
    switch (c) {
      case 0x22:
        this.key = false;
        this.state = S.Str;
        return true;
      case 0x7b:
        return this.open('}', S.KeyOrEnd);
      case 0x5b:
        return this.open(']', S.ValueOrEnd);
      case 0x2d:
        this.state = S.NumSign;
        return true;
      case 0x30:
        this.state = S.NumZero;
        return true;
      case 0x74:
        return this.lit('rue');
      case 0x66:
        return this.lit('alse');
      case 0x6e:
        return this.lit('ull');
      default:
        if (isDigit(c)) {
          this.state = S.NumInt;
          return true;
        }
        return false;
    }
  }

  private lit(rest: string): boolean {
    this.literal = rest;
    this.state = S.Literal;
    return true;
  }

  private close(c: number): boolean {
    const want = this.closers.charCodeAt(0);
    if (c !== want) return false;
    this.closers = this.closers.slice(1);
    if (this.closers === '') {
      this.state = S.Done;
      this.markSafe(this.taken + 1);
    } else this.valueEnd(this.taken + 1);
    return true;
  }

  /**
   * A number ended at this character: it is read again as what follows a value. When it breaks the prefix there,
   * the number is not taken as complete (`01`: the prefix sent ends in `0`, which a reader takes as unfinished).
   */
  private numberEnd(c: number): boolean {
    const [safe, safeClose] = [this.safe, this.safeClose];
    this.valueEnd(this.taken);
    if (this.step(c)) return true;
    this.safe = safe;
    this.safeClose = safeClose;
    return false;
  }

  private step(c: number): boolean {
    switch (this.state) {
      case S.Start:
        if (isWs(c)) return true;
        return c === 0x7b && this.open('}', S.KeyOrEnd);
      case S.KeyOrEnd:
        if (isWs(c)) return true;
        if (c === 0x7d) return this.close(c);
        if (c !== 0x22) return false;
        this.key = true;
        this.state = S.Str;
        return true;
      case S.Key:
        if (isWs(c)) return true;
        if (c !== 0x22) return false;
        this.key = true;
        this.state = S.Str;
        return true;
      case S.Colon:
        if (isWs(c)) return true;
        if (c !== 0x3a) return false;
        this.state = S.Value;
        return true;
      case S.Value:
        return isWs(c) || this.value(c);
      case S.ValueOrEnd:
        if (isWs(c)) return true;
        return c === 0x5d ? this.close(c) : this.value(c);
      case S.After:
        if (isWs(c)) return true;
        if (c === 0x2c) {
          this.state = this.closers.charCodeAt(0) === 0x7d ? S.Key : S.Value;
          return true;
        }
        return (c === 0x7d || c === 0x5d) && this.close(c);
      case S.Done:
        return isWs(c);
      case S.Str:
        if (c === 0x22) {
          if (this.key) this.state = S.Colon;
          else this.valueEnd(this.taken + 1);
          return true;
        }
        if (c === 0x5c) this.state = S.Esc;
        return c >= 0x20;
      case S.Esc:
        if (c === 0x75) {
          this.hex = 4;
          this.state = S.Hex;
          return true;
        }
        this.state = S.Str;
        return c === 0x22 || c === 0x5c || c === 0x2f || c === 0x62 || c === 0x66 || c === 0x6e || c === 0x72 || c === 0x74;
      case S.Hex:
        if (!isHex(c)) return false;
        if (--this.hex === 0) this.state = S.Str;
        return true;
      case S.NumSign:
        if (c === 0x30) this.state = S.NumZero;
        else if (isDigit(c)) this.state = S.NumInt;
        else return false;
        return true;
      case S.NumZero:
      case S.NumInt:
        if (isDigit(c) && this.state === S.NumInt) return true;
        if (c === 0x2e) this.state = S.NumDot;
        else if (c === 0x65 || c === 0x45) this.state = S.NumExp;
        else return this.numberEnd(c);
        return true;
      case S.NumDot:
        if (!isDigit(c)) return false;
        this.state = S.NumFrac;
        return true;
      case S.NumFrac:
        if (isDigit(c)) return true;
        if (c === 0x65 || c === 0x45) {
          this.state = S.NumExp;
          return true;
        }
        return this.numberEnd(c);
      case S.NumExp:
        if (c === 0x2b || c === 0x2d) this.state = S.NumExpSign;
        else if (isDigit(c)) this.state = S.NumExpDigit;
        else return false;
        return true;
      case S.NumExpSign:
        if (!isDigit(c)) return false;
        this.state = S.NumExpDigit;
        return true;
      case S.NumExpDigit:
        return isDigit(c) || this.numberEnd(c);
      case S.Literal:
        if (c !== this.literal.charCodeAt(0)) return false;
        this.literal = this.literal.slice(1);
        if (this.literal === '') this.valueEnd(this.taken + 1);
        return true;
      default:
        return false;
    }
  }
}

/**
 * Whether arguments open as a JSON object (`{` and then `"` or `}`, blanks aside): true, false, or undefined while
 * only `{` and blanks are known. What does not (`Paris`, `{city: …}`, `{'city': …}`) is no object at all and goes
 * whole as `{"input": …}`; what does is streamed while it is JSON (one that then breaks fails the answer: brokenArguments).
 */
export function opensObject(text: string): boolean | undefined {
  let i = 0;
  while (i < text.length && isWs(text.charCodeAt(i))) i++;
  if (i === text.length) return undefined;
  if (text.charCodeAt(i) !== 0x7b) return false;
  i++;
  while (i < text.length && isWs(text.charCodeAt(i))) i++;
  if (i === text.length) return undefined;
  const c = text.charCodeAt(i);
  return c === 0x22 || c === 0x7d;
}

/**
 * The error of a tool call whose arguments open as a JSON object and break at offset `at` (0-based, the breaking character's): the
 * answer is not one the Messages API can carry without losing what follows. The arguments themselves are not
 * quoted (model output, possibly large); the tool's name is, bounded.
 */
export function brokenArguments(name: string, at: number): GatewayError {
  return new GatewayError(
    'UPSTREAM_BAD_RESPONSE',
    `upstream answered a call of tool "${quotedName(name)}" whose arguments open as a JSON object and stop being JSON at offset ${at}: ` +
      'a tool_use input is one object, and the arguments after that point would be lost',
    { details: { tool: quotedName(name), at } },
  );
}

/**
 * The error of a tool call whose arguments open as a JSON object and end at offset `at` (their length) before the
 * object closes, in an answer that was not cut short: the model did not finish the call, and the object up to its
 * last complete member would drop the unfinished one without a word. Bounded as brokenArguments.
 */
export function unfinishedArguments(name: string, at: number): GatewayError {
  return new GatewayError(
    'UPSTREAM_BAD_RESPONSE',
    `upstream answered a call of tool "${quotedName(name)}" whose arguments open as a JSON object and end at offset ${at} before it closes, ` +
      'and the answer was not cut short inside it: a tool_use input is one object, and the unfinished member would be lost',
    { details: { tool: quotedName(name), at } },
  );
}

/**
 * A whole argument string as the Messages API's `input` object, the same object a stream of it makes: blank → `{}`;
 * a JSON object → itself; arguments that do not open as an object → `{"input": <text>}`; arguments that open as
 * one and end early → the object as far as it is JSON (its complete members) when `cut` (the answer was cut short
 * inside this call: the token limit), else `unfinishedArguments` is thrown; arguments that open as one and break →
 * `brokenArguments` is thrown (`name`: the tool's, for its message).
 */
export function toolArguments(args: string, name = '', cut = false): Record<string, unknown> {
  if (!args.trim()) return {};
  try {
    const v: unknown = JSON.parse(args);
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    /* read below */
  }
  if (opensObject(args) === false) return { input: args };
  const p = new ObjectPrefix();
  const n = p.feed(args);
  if (p.broken) throw brokenArguments(name, n);
  if (!p.complete && !cut) throw unfinishedArguments(name, n);
  return p.repaired(args.slice(0, n));
}
