/**
 * The scan of streamed tool arguments (src/apis/anthropic/json-prefix.ts): what it lets out is a prefix the
 * Anthropic SDK's partial-JSON parser takes, and the object it makes of a whole argument string is the one the SDK
 * reads from the pieces a stream of them sends.
 */
import { describe, expect, it } from 'vitest';
// the parser the SDK's MessageStream reads `input_json_delta` pieces with
import { partialParse } from '@anthropic-ai/sdk/_vendor/partial-json-parser/parser.js';
import { ObjectPrefix, opensObject, toolArguments } from '../../src/apis/anthropic/json-prefix.js';

const CASES = [
  '{"city": "Paris"}',
  '{"a": -1.5e+3, "b": 0, "c": [true, false, null], "d": {"e": "\\u00e9\\n"}}',
  '{"city": "Pa',
  '{"a":1}}',
  '{"a":1}{"b":2}',
  '{"re": "a\\.b", "x": 1}',
  '{"a": [1, 2',
  '{"a": true, "b": nul',
  '{"a": 01}',
  '{"a":1, }',
  '{"a": "x\ny"}',
  '{"a": {"b": {"c": 1}, "d": [tr',
  '{',
  ' { ',
  '{}',
];

/** the CASES that open as an object and then stop being JSON (a bad escape, a stray `}`, a second object, a raw newline in a string, …) */
const BREAKING = new Set(['{"a":1}}', '{"a":1}{"b":2}', '{"re": "a\\.b", "x": 1}', '{"a": 01}', '{"a":1, }', '{"a": "x\ny"}']);

describe('ObjectPrefix and toolArguments', () => {
  it('let out only what the SDK parses; arguments cut at their end make the object the SDK reads from them, arguments that break or never close fail', () => {
    for (const args of CASES) {
      const p = new ObjectPrefix();
      const n = p.feed(args);
      const sent = args.slice(0, n);
      expect(() => partialParse(sent), args).not.toThrow();
      expect(p.broken, args).toBe(BREAKING.has(args));
      if (p.broken) {
        expect(p.length, args).toBe(n);
        expect(() => toolArguments(args, 'read_file'), args).toThrow(
          `tool "read_file" whose arguments open as a JSON object and stop being JSON at offset ${n}`,
        );
      } else {
        // cut at their end by the token limit: the object the SDK reads from the pieces a stream sends
        expect(toolArguments(args, 'read_file', true), args).toEqual(partialParse(sent));
        // ended otherwise: a whole object is itself; one that never closed fails, naming where it ends
        if (p.complete) expect(toolArguments(args, 'read_file'), args).toEqual(JSON.parse(args));
        else
          expect(() => toolArguments(args, 'read_file'), args).toThrow(
            `tool "read_file" whose arguments open as a JSON object and end at offset ${args.length} before it closes`,
          );
      }
    }
  });

  it('a JSON object goes out whole, piece by piece; the first character that breaks it stops the rest', () => {
    const p = new ObjectPrefix();
    expect(p.feed('{"a": "x')).toBe(8);
    expect(p.feed('y", "b": [1')).toBe(11);
    expect(p.feed(']}')).toBe(2);
    expect(p.complete).toBe(true);
    expect(p.feed(' }')).toBe(1);
    expect(p.broken).toBe(true);
    expect(p.feed('more')).toBe(0);
  });

  it('arguments that do not open as an object are wrapped whole, as plain-text arguments are', () => {
    for (const args of ['Paris', '{city: "Paris"}', "{'city': 'Paris'}", '[1]']) {
      expect(opensObject(args), args).toBe(false);
      expect(toolArguments(args)).toEqual({ input: args });
    }
    expect(opensObject(' { ')).toBeUndefined();
    expect(opensObject('{ "')).toBe(true);
    expect(toolArguments('  ')).toEqual({});
  });
});
