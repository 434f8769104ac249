/**
 * Incremental line splitting for upstream streams (SSE and NDJSON). Pure: bytes in, lines out, so the
 * parsers are testable from raw fixtures. Handles \n and \r\n (and in SSE a lone \r), and multi-byte UTF-8 split across chunks.
 */
import { StringDecoder } from 'node:string_decoder';

export async function* splitLines(source: AsyncIterable<Uint8Array | string>): AsyncGenerator<string> {
  const p = new LineParser();
  for await (const part of source) {
    p.push(part);
    for (let i = 0; i < p.count; i++) yield p.datas[i]!;
  }
  p.end();
  for (let i = 0; i < p.count; i++) yield p.datas[i]!;
}

/**
 * An incremental framer: each push() or end() refills `datas` (and `names`) [0, count) with the frames it
 * completed, valid until the next call. SseParser frames SSE events, LineParser NDJSON lines; the upstream
 * stream reader (src/providers/stream-reader.ts) runs either.
 */
export interface Framer {
  readonly names: (string | undefined)[];
  readonly datas: string[];
  readonly count: number;
  /** characters of the frame still unfinished (held until its end arrives) */
  readonly pending: number;
  push(part: Uint8Array | string): void;
  end(): void;
}

/**
 * What both framers share: the body's pieces decoded as UTF-8 (a character split across reads is kept whole),
 * the unfinished end kept for the next piece, and a byte order mark at the very start dropped (the SSE parsing
 * rules strip it; a JSON line cannot start with one either).
 */
abstract class BodyText {
  private readonly decoder = new StringDecoder('utf8');
  private begun = false;
  /** the unfinished line */
  protected rest = '';

  /** The unfinished line and the next piece, as text. */
  protected next(part: Uint8Array | string): string {
    return this.bom(this.rest + (typeof part === 'string' ? part : this.decoder.write(part)));
  }

  /** What is left when the body ended. */
  protected last(): string {
    const text = this.bom(this.rest + this.decoder.end());
    this.rest = '';
    return text;
  }

  private bom(text: string): string {
    if (this.begun || text.length === 0) return text;
    this.begun = true;
    return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  }
}

/**
 * NDJSON lines as a Framer (\n or \r\n: NDJSON allows no lone \r, so one is part of its line; a last line
 * without its newline counts at the end); `names` stays empty. Its loop is its own, not SseParser's: one loop
 * shared through the base class measured ~10 % more CPU per streamed request (docs/benchmarks.md, "Fourth pass").
 */
export class LineParser extends BodyText implements Framer {
  readonly names: (string | undefined)[] = [];
  readonly datas: string[] = [];
  count = 0;

  get pending(): number {
    return this.rest.length;
  }

  push(part: Uint8Array | string): void {
    this.count = 0;
    const text = this.next(part);
    let start = 0;
    let nl = text.indexOf('\n', start);
    while (nl !== -1) {
      this.datas[this.count++] = text.slice(start, nl > start && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl);
      start = nl + 1;
      nl = text.indexOf('\n', start);
    }
    this.rest = start === 0 ? text : text.slice(start);
  }

  end(): void {
    this.count = 0;
    const text = this.last();
    if (text.length > 0) this.datas[this.count++] = text.endsWith('\r') ? text.slice(0, -1) : text;
  }
}

export interface SseEvent {
  event: string | undefined;
  data: string;
}

/**
 * Server-sent events per the WHATWG rules that matter for LLM upstreams: lines ended by \r\n, \n or \r,
 * `event:` and `data:` fields, multi-line data joined by \n, comments (`:`) and unknown fields ignored, blank
 * line dispatches.
 * Synchronous and incremental, so a relay can run it inside its own loop over the body (no generator per
 * layer on every streamed chunk's path). Each push() or end() refills `names`/`datas`[0, count) with the events
 * it completed; they are valid until the next call. The arrays are reused: no object per event.
 */
export class SseParser extends BodyText implements Framer {
  /** the `event:` field of each completed event (undefined when it had none) */
  readonly names: (string | undefined)[] = [];
  /** the data of each completed event */
  readonly datas: string[] = [];
  /** how many events the last push()/end() completed */
  count = 0;
  private event: string | undefined = undefined;
  private data: string | undefined = undefined;

  /** the unfinished line, and the data lines of the event not yet dispatched */
  get pending(): number {
    return this.rest.length + (this.data === undefined ? 0 : this.data.length);
  }

  /** Feeds the next piece of the body. */
  push(part: Uint8Array | string): void {
    this.count = 0;
    const text = this.next(part);
    const start = this.lines(text, false);
    this.rest = start === 0 ? text : text.slice(start);
  }

  /** The body ended: a last line without its newline counts, and an event without its blank line is dispatched. */
  end(): void {
    this.count = 0;
    const text = this.last();
    const start = this.lines(text, true);
    if (start < text.length) this.line(text, start, text.length);
    // A stream that ends without the blank line still dispatches what it had: callers decide if it was complete.
    if (this.data !== undefined) this.dispatch();
  }

  /**
   * The complete lines of `text`, each ended by \r\n, \n or a lone \r (the SSE rules allow all three); returns
   * where the unfinished line begins. A \r that is the text's last character ends a line only at the body's end
   * (`last`): until then its \n may be the next read's first. A stream with no \r pays one search per read.
   */
  private lines(text: string, last: boolean): number {
    let start = 0;
    let nl = text.indexOf('\n');
    let cr = text.indexOf('\r');
    while (nl !== -1 || cr !== -1) {
      let end: number;
      let next: number;
      if (cr === -1 || (nl !== -1 && nl < cr)) {
        end = nl;
        next = nl + 1;
      } else if (cr + 1 < text.length) {
        end = cr;
        next = text.charCodeAt(cr + 1) === 10 ? cr + 2 : cr + 1;
      } else if (last) {
        end = cr;
        next = cr + 1;
      } else break;
      this.line(text, start, end);
      start = next;
      if (nl !== -1 && nl < start) nl = text.indexOf('\n', start);
      if (cr !== -1 && cr < start) cr = text.indexOf('\r', start);
    }
    return start;
  }

  /** One line: text[s, e). Field names are compared in place; only values are sliced out. */
  private line(text: string, s: number, e: number): void {
    if (s === e) {
      if (this.data !== undefined) this.dispatch();
      this.event = undefined;
      return;
    }
    let v: number;
    if (text.startsWith('data', s) && (s + 4 === e || text.charCodeAt(s + 4) === 58)) v = s + 5;
    else if (text.startsWith('event', s) && (s + 5 === e || text.charCodeAt(s + 5) === 58)) v = s + 6;
    else return; // a comment (`:` first) or a field we do not use
    if (v < e && text.charCodeAt(v) === 32) v++;
    const value = v < e ? text.slice(v, e) : '';
    if (text.charCodeAt(s) === 100 /* d */) this.data = this.data === undefined ? value : this.data + '\n' + value;
    else this.event = value;
  }

  private dispatch(): void {
    this.names[this.count] = this.event;
    this.datas[this.count] = this.data!;
    this.count++;
    this.event = undefined;
    this.data = undefined;
  }
}

/** parseSse as an async generator of events, for callers that are not on a per-chunk hot path. */
export async function* parseSse(source: AsyncIterable<Uint8Array | string>): AsyncGenerator<SseEvent> {
  const p = new SseParser();
  for await (const part of source) {
    p.push(part);
    for (let i = 0; i < p.count; i++) yield { event: p.names[i], data: p.datas[i]! };
  }
  p.end();
  for (let i = 0; i < p.count; i++) yield { event: p.names[i], data: p.datas[i]! };
}

/**
 * One SSE event as text. A value received over several `data:` lines holds newlines (the parser joins them
 * with `\n`): each line is written as a `data:` line of its own again, so the client reads the same value. A
 * single-line value, the usual one, costs one search for a newline.
 */
export function sseFrame(data: string, event?: string): string {
  const head = event === undefined ? '' : `event: ${event}\n`;
  return data.indexOf('\n') === -1 ? `${head}data: ${data}\n\n` : `${head}data: ${data.split('\n').join('\ndata: ')}\n\n`;
}
