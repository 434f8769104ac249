/**
 * The chat form an edge translates from (Anthropic, Responses, Gemini), held to its types before any field is
 * read. An upstream may send anything in a 2xx answer, and the OpenAI edge relays it as sent; a translating edge
 * builds a new answer from its fields, so a wrong type there would become an invented tool call, an empty
 * "successful" answer or a crash. Such an answer is UPSTREAM_BAD_RESPONSE, naming the field.
 *
 * Accepted besides the declared types: content as an array of text parts (`[{type:"text",text}]`, which some
 * OpenAI-compatible servers send), taken as its joined text.
 */
import { GatewayError } from '../../wire/errors.js';
import type { ChatCompletion, ChatCompletionChunk } from '../../wire/openai.js';
import { isObj } from '../../util/is-object.js';

function bad(field: string, what: string): never {
  throw new GatewayError('UPSTREAM_BAD_RESPONSE', `the upstream's answer is malformed: ${field} ${what}`);
}

/** `content` as a string or null; text parts joined; anything else refused. */
function text(v: unknown, field: string): string | null | undefined {
  if (v === undefined || v === null || typeof v === 'string') return v;
  if (Array.isArray(v) && v.every((p) => isObj(p) && p.type === 'text' && typeof p.text === 'string'))
    return v.map((p) => (p as { text: string }).text).join('');
  return bad(field, 'is not a string');
}

/** A non-streaming answer's choices: at least one, each a message with text content and well-formed tool calls. */
export function checkedCompletion(c: ChatCompletion): ChatCompletion {
  if (!Array.isArray(c.choices)) bad('choices', 'is not an array');
  // no choice is no answer: translated, it became an empty "successful" message
  if (c.choices.length === 0) bad('choices', 'is empty');
  c.choices.forEach((ch: unknown, i: number) => {
    if (!isObj(ch) || !isObj(ch.message)) bad(`choices[${i}].message`, 'is not an object');
    const m = ch.message;
    const content = text(m.content, `choices[${i}].message.content`);
    if (content !== m.content) m.content = content;
    const calls = m.tool_calls;
    if (calls === undefined || calls === null) return;
    if (!Array.isArray(calls)) bad(`choices[${i}].message.tool_calls`, 'is not an array');
    calls.forEach((tc: unknown, j: number) => {
      const at = `choices[${i}].message.tool_calls[${j}]`;
      if (!isObj(tc) || typeof tc.id !== 'string') bad(`${at}.id`, 'is not a string');
      if (!isObj(tc.function) || typeof tc.function.name !== 'string' || tc.function.name === '') bad(`${at}.function.name`, 'is not a name');
      if (typeof tc.function.arguments !== 'string') bad(`${at}.function.arguments`, 'is not a string');
    });
  });
  return c;
}

/** One stream chunk, parsed and held to the same rules (a delta's tool calls carry their `index`). */
export function parsedChunk(data: string): ChatCompletionChunk {
  const c = JSON.parse(data) as ChatCompletionChunk;
  if (!isObj(c) || !Array.isArray(c.choices)) bad('choices', 'is not an array');
  c.choices.forEach((ch: unknown, i: number) => {
    if (!isObj(ch)) bad(`choices[${i}]`, 'is not an object');
    const d = ch.delta;
    if (d === undefined || d === null) return;
    if (!isObj(d)) bad(`choices[${i}].delta`, 'is not an object');
    const content = text(d.content, `choices[${i}].delta.content`);
    if (content !== d.content) d.content = content;
    const calls = d.tool_calls;
    if (calls === undefined || calls === null) return;
    if (!Array.isArray(calls)) bad(`choices[${i}].delta.tool_calls`, 'is not an array');
    calls.forEach((tc: unknown, j: number) => {
      const at = `choices[${i}].delta.tool_calls[${j}]`;
      if (!isObj(tc) || !Number.isInteger(tc.index) || (tc.index as number) < 0) bad(`${at}.index`, 'is not an index');
      if (tc.id !== undefined && tc.id !== null && typeof tc.id !== 'string') bad(`${at}.id`, 'is not a string');
      const f = tc.function;
      if (f === undefined || f === null) return;
      if (!isObj(f)) bad(`${at}.function`, 'is not an object');
      if (f.name !== undefined && f.name !== null && typeof f.name !== 'string') bad(`${at}.function.name`, 'is not a string');
      if (f.arguments !== undefined && f.arguments !== null && typeof f.arguments !== 'string') bad(`${at}.function.arguments`, 'is not a string');
    });
  });
  return c;
}
