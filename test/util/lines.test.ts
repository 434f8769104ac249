/** The upstream stream parsers, from raw bytes split at every awkward place. */
import { describe, expect, it } from 'vitest';
import { parseSse, SseParser, splitLines, type SseEvent } from '../../src/util/lines.js';
import { rng } from '../helpers/rng.js';

async function* pieces(text: string, size: number): AsyncGenerator<Uint8Array> {
  const bytes = Buffer.from(text, 'utf8');
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function events(text: string, size: number): Promise<SseEvent[]> {
  const out: SseEvent[] = [];
  for await (const e of parseSse(pieces(text, size))) out.push(e);
  return out;
}

const STREAM =
  ': comment line\n' +
  'event: message_start\r\n' +
  'data: {"a":1}\r\n' +
  '\r\n' +
  'data: first line\n' +
  'data:second line (no space)\n' +
  'id: 7\n' +
  '\n' +
  'data: héllo wörld ✓\n\n' +
  'event: ping\n\n' +
  'data: [DONE]\n\n' +
  'data: tail without blank line';

const EXPECTED: SseEvent[] = [
  { event: 'message_start', data: '{"a":1}' },
  { event: undefined, data: 'first line\nsecond line (no space)' },
  { event: undefined, data: 'héllo wörld ✓' },
  { event: undefined, data: '[DONE]' },
  { event: undefined, data: 'tail without blank line' },
];

describe('parseSse', () => {
  for (const size of [1, 2, 3, 7, 64, 4096]) {
    it(`parses events from ${size}-byte pieces (CRLF, comments, multi-line data, multi-byte UTF-8, no trailing blank)`, async () => {
      expect(await events(STREAM, size)).toEqual(EXPECTED);
    });
  }

  it('an event with only an event name and no data is not dispatched', async () => {
    expect(await events('event: ping\n\nevent: x\ndata: y\n\n', 5)).toEqual([{ event: 'x', data: 'y' }]);
  });

  it('stops reading when the consumer stops (return)', async () => {
    let pulled = 0;
    async function* source(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 100; i++) {
        pulled++;
        yield Buffer.from(`data: ${i}\n\n`);
      }
    }
    for await (const e of parseSse(source())) if (e.data === '2') break;
    expect(pulled).toBeLessThan(10);
  });
});

describe('SseParser (the synchronous parser under parseSse)', () => {
  const drain = (p: SseParser, out: SseEvent[]) => {
    for (let i = 0; i < p.count; i++) out.push({ event: p.names[i], data: p.datas[i]! });
  };

  it('completes events per push, reusing its arrays, and dispatches the tail at end()', () => {
    const p = new SseParser();
    const out: SseEvent[] = [];
    p.push('data: a\n\ndata: b\n');
    expect(p.count).toBe(1);
    drain(p, out);
    p.push('\nevent: x\ndata: c\n\ndata: d');
    expect(p.count).toBe(2);
    drain(p, out);
    p.end();
    drain(p, out);
    expect(out).toEqual([
      { event: undefined, data: 'a' },
      { event: undefined, data: 'b' },
      { event: 'x', data: 'c' },
      { event: undefined, data: 'd' },
    ]);
    p.push('');
    expect(p.count).toBe(0);
  });

  it('field names are matched whole: `data` and `event` with or without a value, nothing else', () => {
    const p = new SseParser();
    const out: SseEvent[] = [];
    p.push('data\n\ndata:\n\ndatax: no\nevent\ndata: y\n\nevents: no\neventx\ndata:  two spaces\n\n');
    drain(p, out);
    expect(out).toEqual([
      { event: undefined, data: '' },
      { event: undefined, data: '' },
      { event: '', data: 'y' },
      { event: undefined, data: ' two spaces' },
    ]);
  });

  it('a UTF-8 character split across pushes, and a CR-only last line', () => {
    const p = new SseParser();
    const out: SseEvent[] = [];
    const b = Buffer.from('data: ✓\n\ndata: z\r');
    p.push(b.subarray(0, 7));
    p.push(b.subarray(7));
    drain(p, out);
    p.end();
    drain(p, out);
    expect(out).toEqual([
      { event: undefined, data: '✓' },
      { event: undefined, data: 'z' },
    ]);
  });
});

describe('SSE line endings: \\r\\n, \\n and a lone \\r (the WHATWG rules allow all three, in any mix)', () => {
  const CR_STREAM = STREAM.replace(/\r?\n/g, '\r');
  const MIXED = 'data: a\r\rdata: b\n\r\ndata: c\r\ndata: d\n\ndata: e\r\r\n\r';

  for (const size of [1, 2, 3, 7, 64, 4096]) {
    it(`lone-CR stream and a mixed one from ${size}-byte pieces`, async () => {
      expect(await events(CR_STREAM, size)).toEqual(EXPECTED);
      // `data: e\r` then `\r\n`: one blank line, then a lone \r at the very end: a second blank line
      expect(await events(MIXED, size)).toEqual([
        { event: undefined, data: 'a' },
        { event: undefined, data: 'b' },
        { event: undefined, data: 'c\nd' },
        { event: undefined, data: 'e' },
      ]);
    });
  }

  it('a \\r last in a read waits for the next read: \\r\\n split across reads is one line end, not a line and a blank one', () => {
    const p = new SseParser();
    const out: SseEvent[] = [];
    const drain = () => {
      for (let i = 0; i < p.count; i++) out.push({ event: p.names[i], data: p.datas[i]! });
    };
    p.push('data: a\r');
    expect(p.count).toBe(0);
    p.push('\ndata: b\r');
    expect(p.count).toBe(0); // were the \r\n two line ends, `a` would have been dispatched by a blank line
    p.push('\r');
    expect(p.count).toBe(0); // the blank line's \r, held: a \n may follow
    expect(p.pending).toBe(1 + 'a\nb'.length); // the \r, and the event's data
    p.push('\n');
    drain();
    expect(out).toEqual([{ event: undefined, data: 'a\nb' }]);
    expect(p.pending).toBe(0);
    p.push('data: c\r');
    expect(p.count).toBe(0);
    p.end(); // the body's end: the held \r ends the line
    drain();
    expect(out).toEqual([
      { event: undefined, data: 'a\nb' },
      { event: undefined, data: 'c' },
    ]);
  });

  it('NDJSON allows no lone \\r: it stays inside its line', async () => {
    const out: string[] = [];
    for await (const l of splitLines(pieces('{"a":\r1}\r\n{"b":2}', 3))) out.push(l);
    expect(out).toEqual(['{"a":\r1}', '{"b":2}']);
  });
});

describe('SseParser: seeded fuzz against the events a generator wrote', () => {
  /**
   * A random stream: events of `event:` and `data:` lines (values with spaces, colons and multi-byte characters),
   * comments and unknown fields between them, each line ended by \n, \r\n or \r at random, split into random
   * pieces (bytes, so a character or a \r\n may be cut). What a parser must give is known from the generator.
   */
  function stream(next: () => number): { bytes: Buffer; events: SseEvent[] } {
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
    // A lone \r then an empty line ended by \n would read as one \r\n (a stream cannot say otherwise), so an
    // empty line after a lone \r ends in \r\n or \r.
    let last = '';
    const eol = (empty = false) => (last = empty && last === '\r' ? pick(['\r\n', '\r'] as const) : pick(['\n', '\r\n', '\r'] as const));
    const value = () => pick(['', 'x', ' lead', 'a:b', '{"k":"v ✓"}', 'ü', '[DONE]', 'tail ']);
    let text = next() < 0.2 ? '\ufeff' : '';
    const events: SseEvent[] = [];
    const count = 1 + Math.floor(next() * 6);
    for (let e = 0; e < count; e++) {
      if (next() < 0.3) text += `: comment ${e}${eol()}`;
      let name: string | undefined;
      if (next() < 0.4) {
        name = value();
        text += `event: ${name}${eol()}`;
      }
      const datas: string[] = [];
      const lines = Math.floor(next() * 3); // 0: an event with no data, which is not dispatched
      for (let l = 0; l < lines; l++) {
        if (next() < 0.2) text += `id: ${l}${eol()}`;
        const v = value();
        datas.push(v);
        // `data:` with one optional space; a value starting with a space keeps it only after the optional one
        text += next() < 0.5 || v.startsWith(' ') ? `data: ${v}${eol()}` : `data:${v}${eol()}`;
      }
      text += eol(true); // the blank line
      if (datas.length > 0) events.push({ event: name, data: datas.join('\n') });
    }
    return { bytes: Buffer.from(text, 'utf8'), events };
  }

  it('gives exactly the generated events for 2,000 streams cut into random pieces', () => {
    const next = rng(20261130);
    for (let run = 0; run < 2000; run++) {
      const { bytes, events } = stream(next);
      const p = new SseParser();
      const out: SseEvent[] = [];
      const drain = () => {
        for (let i = 0; i < p.count; i++) out.push({ event: p.names[i], data: p.datas[i]! });
      };
      for (let at = 0; at < bytes.length;) {
        const size = 1 + Math.floor(next() * 12);
        p.push(bytes.subarray(at, at + size));
        drain();
        at += size;
      }
      p.end();
      drain();
      expect(out, `run ${run}: ${JSON.stringify(bytes.toString('utf8'))}`).toEqual(events);
    }
  });
});

describe('splitLines', () => {
  it('splits on \\n and \\r\\n across pieces, keeps a last line without newline, and multi-byte characters intact', async () => {
    const out: string[] = [];
    for await (const l of splitLines(pieces('{"x":"ä"}\r\n{"y":2}\n\n{"z":"✓"}', 1))) out.push(l);
    expect(out).toEqual(['{"x":"ä"}', '{"y":2}', '', '{"z":"✓"}']);
  });
});
