/**
 * Incremental line splitting for upstream streams (SSE and NDJSON). Pure: bytes in, lines out, so the
 * parsers are testable from raw fixtures. Handles \n and \r\n, and multi-byte UTF-8 split across chunks.
 */
import { StringDecoder } from 'node:string_decoder';

export async function* splitLines(source: AsyncIterable<Uint8Array | string>): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  let rest = '';
  for await (const part of source) {
    const text = rest + (typeof part === 'string' ? part : decoder.write(part));
    let start = 0;
    let nl = text.indexOf('\n', start);
    while (nl !== -1) {
      let end = nl;
      if (end > start && text.charCodeAt(end - 1) === 13) end--;
      yield text.slice(start, end);
      start = nl + 1;
      nl = text.indexOf('\n', start);
    }
    rest = start === 0 ? text : text.slice(start);
  }
  rest += decoder.end();
  if (rest.length > 0) yield rest.endsWith('\r') ? rest.slice(0, -1) : rest;
}

export interface SseEvent {
  event: string | undefined;
  data: string;
}

/**
 * Server-sent events per the WHATWG rules that matter for LLM upstreams: `event:` and `data:` fields,
 * multi-line data joined by \n, comments (`:`) and unknown fields ignored, blank line dispatches.
 * One generator over the byte chunks (no inner line generator): this sits on every streamed chunk's path.
 */
export async function* parseSse(source: AsyncIterable<Uint8Array | string>): AsyncGenerator<SseEvent> {
  const decoder = new StringDecoder('utf8');
  let event: string | undefined;
  let data: string | undefined;
  let rest = '';
  const ready: SseEvent[] = [];
  const line = (l: string): void => {
    if (l.length === 0) {
      if (data !== undefined) ready.push({ event, data });
      event = undefined;
      data = undefined;
      return;
    }
    if (l.charCodeAt(0) === 58 /* : */) return;
    const colon = l.indexOf(':');
    const field = colon === -1 ? l : l.slice(0, colon);
    let value = colon === -1 ? '' : l.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === 'data') data = data === undefined ? value : data + '\n' + value;
    else if (field === 'event') event = value;
  };
  for await (const part of source) {
    const text = rest + (typeof part === 'string' ? part : decoder.write(part));
    let start = 0;
    let nl = text.indexOf('\n', start);
    while (nl !== -1) {
      line(text.slice(start, nl > start && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl));
      start = nl + 1;
      nl = text.indexOf('\n', start);
    }
    rest = start === 0 ? text : text.slice(start);
    while (ready.length > 0) yield ready.shift()!;
  }
  rest += decoder.end();
  if (rest.length > 0) line(rest.endsWith('\r') ? rest.slice(0, -1) : rest);
  // A stream that ends without the blank line still dispatches what it had: callers decide if it was complete.
  if (data !== undefined) ready.push({ event, data });
  while (ready.length > 0) yield ready.shift()!;
}
