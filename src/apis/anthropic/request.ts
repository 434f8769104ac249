/**
 * Anthropic Messages request (what @anthropic-ai/sdk and Claude Code send to POST /v1/messages) → the
 * gateway's internal chat form. Pure; every error is INVALID_REQUEST / UNSUPPORTED naming the field at fault.
 *
 * - `system` (string or text blocks) → one leading system message;
 * - user turns: `tool_result` blocks → `tool` messages (in order, before the turn's other content); images
 *   inside a tool_result follow as a user message (chat tool messages carry text only); text / image blocks →
 *   content parts (base64 image → data: URL, url image → its URL);
 * - assistant turns: text → content, `tool_use` → tool_calls (input → JSON arguments), thinking and
 *   redacted_thinking → dropped (only an anthropic channel can take them back, and that one gets the
 *   request natively);
 * - tools (custom, no server-tool `type`) → function tools; tool_choice auto/any/tool/none →
 *   auto/required/named/none, `disable_parallel_tool_use` → parallel_tool_calls: false (without tools, auto and
 *   none are left out, any and tool refused);
 * - max_tokens, stop_sequences, temperature, top_p, metadata.user_id, stream map 1:1; top_k, thinking,
 *   service_tier and cache_control have no chat form and are dropped.
 */
import { GatewayError } from '../../wire/errors.js';
import { jsonKind, type ChatMessage, type ChatRequest, type ContentPart, type ToolCall, type ToolDefinition } from '../../wire/openai.js';
import { isObj } from '../../util/is-object.js';
import { leniently, untranslatable, type Untranslatable } from '../common/untranslatable.js';
import { base64DataUrl, finiteNumber, requireTurn, toolDescription, toolName, toolSchema } from '../common/fields.js';

function bad(param: string, what: string): never {
  throw new GatewayError('INVALID_REQUEST', `${param}: ${what}`, { param });
}

/** A part the chat form has no place for: refused, or left out (src/apis/common/untranslatable.ts). */
const skip = (param: string, what: string): void => untranslatable(param, `${param}: ${what}`);

/**
 * Validates the body enough to route it natively, and returns its chat form. With `untranslatable`, a part
 * the chat form has no place for (a server tool, a `document` block) is left out instead of refused, and the
 * first such refusal is kept there: the request may then go only to a channel that takes it natively.
 */
export function anthropicToChat(body: unknown, leftOut?: Untranslatable): ChatRequest {
  return leniently(leftOut, () => translate(body, false));
}

/**
 * A `count_tokens` body held to the same rules (it is a Messages request without `max_tokens`), leniently: what
 * only Anthropic's own API takes is left for the upstream's counter. Throws INVALID_REQUEST naming the field.
 */
export function checkCountTokens(body: unknown): asserts body is Record<string, unknown> & { model: string } {
  leniently({}, () => translate(body, true));
}

function translate(body: unknown, count: boolean): ChatRequest {
  if (!isObj(body)) bad('body', 'must be a JSON object');
  if (typeof body.model !== 'string' || body.model.length === 0) bad('model', 'required, a non-empty string');
  if (!count && (!Number.isSafeInteger(body.max_tokens) || (body.max_tokens as number) < 1)) bad('max_tokens', 'required, a positive integer');
  if (!Array.isArray(body.messages) || body.messages.length === 0) bad('messages', 'required, a non-empty array');
  if (body.stream !== undefined && typeof body.stream !== 'boolean') bad('stream', 'must be a boolean');

  const messages: ChatMessage[] = [];
  const system = systemText(body.system);
  if (system) messages.push({ role: 'system', content: system });
  body.messages.forEach((m: unknown, i: number) => turn(m, `messages.${i}`, messages));
  requireTurn(messages, 'messages');

  const out: ChatRequest = { model: body.model, messages };
  if (!count) out.max_tokens = body.max_tokens as number;
  if (body.stream === true) out.stream = true;
  for (const k of ['temperature', 'top_p'] as const) {
    const v = finiteNumber(body[k], k);
    if (v !== undefined) out[k] = v;
  }
  if (body.stop_sequences !== undefined) {
    if (!Array.isArray(body.stop_sequences) || !body.stop_sequences.every((s) => typeof s === 'string')) bad('stop_sequences', 'must be an array of strings');
    if (body.stop_sequences.length) out.stop = body.stop_sequences;
  }
  if (body.tools !== undefined) {
    if (!Array.isArray(body.tools)) bad('tools', 'must be an array');
    const tools = body.tools.map((t: unknown, i: number) => tool(t, `tools.${i}`)).filter((t): t is ToolDefinition => t !== undefined);
    if (tools.length) out.tools = tools;
  }
  if (body.tool_choice !== undefined) toolChoice(body.tool_choice, out, Array.isArray(body.tools) && body.tools.length > 0);
  if (body.metadata !== undefined && body.metadata !== null) {
    if (!isObj(body.metadata)) bad('metadata', `must be an object, not ${jsonKind(body.metadata)}`);
    const u = body.metadata.user_id;
    if (u !== undefined && u !== null && typeof u !== 'string') bad('metadata.user_id', 'must be a string');
    if (typeof u === 'string') out.user = u;
  }
  return out;
}

function systemText(s: unknown): string {
  if (s === undefined || s === null) return '';
  if (typeof s === 'string') return s;
  if (!Array.isArray(s)) bad('system', 'must be a string or an array of text blocks');
  return s
    .map((b: unknown, i: number) => {
      if (!isObj(b) || b.type !== 'text' || typeof b.text !== 'string') bad(`system.${i}`, 'must be a text block');
      return b.text;
    })
    .join('\n\n');
}

function turn(m: unknown, at: string, out: ChatMessage[]): void {
  if (!isObj(m)) bad(at, 'must be an object');
  if (m.role !== 'user' && m.role !== 'assistant') bad(`${at}.role`, 'must be "user" or "assistant"');
  const c = m.content;
  if (typeof c === 'string') {
    out.push({ role: m.role, content: c });
    return;
  }
  if (!Array.isArray(c)) bad(`${at}.content`, 'must be a string or an array of content blocks');
  const parts: ContentPart[] = [];
  const calls: ToolCall[] = [];
  const trailing: ContentPart[] = []; // images from tool results, shown to the model after the tool messages
  c.forEach((b: unknown, j: number) => {
    const p = `${at}.content.${j}`;
    if (!isObj(b) || typeof b.type !== 'string') bad(p, 'must be an object with a string "type"');
    switch (b.type) {
      case 'text':
        if (typeof b.text !== 'string') bad(`${p}.text`, 'must be a string');
        parts.push({ type: 'text', text: b.text });
        break;
      case 'image':
        parts.push(image(b, p));
        break;
      case 'tool_use':
        if (m.role !== 'assistant') bad(p, 'tool_use blocks belong in assistant turns');
        if (typeof b.id !== 'string' || typeof b.name !== 'string') bad(p, 'tool_use needs id and name');
        // an empty name names no tool: an upstream refuses the conversation under a field the client never sent
        toolName(b.name, `${p}.name`);
        // the call's arguments: a JSON object (a string or an array became arguments no tool could take)
        if (b.input !== undefined && !isObj(b.input)) bad(`${p}.input`, `must be an object, not ${jsonKind(b.input)}`);
        calls.push({ id: b.id, type: 'function', function: { name: b.name, arguments: JSON.stringify(b.input ?? {}) } });
        break;
      case 'tool_result': {
        if (m.role !== 'user') bad(p, 'tool_result blocks belong in user turns');
        if (typeof b.tool_use_id !== 'string') bad(`${p}.tool_use_id`, 'required, a string');
        // read as a flag: `"true"` left the model without the error marker
        if (b.is_error !== undefined && b.is_error !== null && typeof b.is_error !== 'boolean') bad(`${p}.is_error`, 'must be a boolean');
        out.push({ role: 'tool', tool_call_id: b.tool_use_id, content: toolResultText(b.content, `${p}.content`, trailing, b.is_error === true) });
        break;
      }
      case 'thinking':
      case 'redacted_thinking':
        break;
      default:
        skip(`${p}.type`, `content block type "${b.type}" cannot be translated for this channel`);
    }
  });
  if (trailing.length) out.push({ role: 'user', content: trailing });
  if (m.role === 'assistant') {
    const msg: ChatMessage = { role: 'assistant', content: parts.length === 0 ? null : textOrParts(parts) };
    if (calls.length) msg.tool_calls = calls;
    if (parts.length || calls.length) out.push(msg);
  } else if (parts.length) {
    out.push({ role: 'user', content: textOrParts(parts) });
  }
}

/** A single text part collapses to a string: every chat upstream takes that. */
function textOrParts(parts: ContentPart[]): string | ContentPart[] {
  return parts.length === 1 && parts[0]!.type === 'text' ? (parts[0] as { text: string }).text : parts;
}

function toolResultText(c: unknown, at: string, images: ContentPart[], isError: boolean): string {
  let text = '';
  if (typeof c === 'string') text = c;
  else if (Array.isArray(c)) {
    text = c
      .map((b: unknown, k: number) => {
        if (!isObj(b)) bad(`${at}.${k}`, 'must be a content block');
        if (b.type === 'text') {
          if (typeof b.text !== 'string') bad(`${at}.${k}.text`, 'must be a string');
          return b.text;
        }
        if (b.type === 'image') {
          images.push(image(b, `${at}.${k}`));
          return '';
        }
        skip(`${at}.${k}.type`, `block type "${String(b.type)}" cannot be translated inside a tool_result`);
        return '';
      })
      .filter((t) => t !== '')
      .join('\n');
  } else if (c !== undefined && c !== null) bad(at, 'must be a string or an array of blocks');
  return isError ? `[tool error] ${text}` : text;
}

function image(b: Record<string, unknown>, at: string): ContentPart {
  const s = b.source;
  if (isObj(s) && s.type === 'base64') {
    const url = base64DataUrl(s.media_type, s.data, { mediaType: `${at}.source.media_type`, data: `${at}.source.data` });
    // an image block holds an image (the API takes jpeg, png, gif, webp): a PDF belongs in a document block
    if (!/^data:image\//i.test(url)) bad(`${at}.source.media_type`, 'must be an image media type such as "image/png"');
    return { type: 'image_url', image_url: { url } };
  }
  if (isObj(s) && s.type === 'url' && typeof s.url === 'string') return { type: 'image_url', image_url: { url: s.url } };
  return bad(`${at}.source`, 'must be { type: "base64", media_type, data } or { type: "url", url }');
}

function tool(t: unknown, at: string): ToolDefinition | undefined {
  if (!isObj(t)) bad(at, 'must be { name, input_schema, … }');
  if (t.type !== undefined && t.type !== 'custom') {
    skip(`${at}.type`, `server tool ${JSON.stringify(t.type)} runs only on Anthropic's own API`);
    return undefined;
  }
  const fn: ToolDefinition['function'] = {
    name: toolName(t.name, `${at}.name`),
    parameters: toolSchema(t.input_schema, `${at}.input_schema`) ?? { type: 'object', properties: {} },
  };
  const description = toolDescription(t.description, `${at}.description`);
  if (description !== undefined) fn.description = description;
  return { type: 'function', function: fn };
}

/**
 * `tools`: the request names any tool (a server tool included: a native channel may call it). Without one, `auto` and
 * `none` ask for nothing and are left out (an OpenAI upstream refuses a `tool_choice` or `parallel_tool_calls` without
 * `tools`), and `any` or `tool`, which ask for a call no tool could make, are refused, as the Responses edge does.
 */
function toolChoice(tc: unknown, out: ChatRequest, tools: boolean): void {
  if (!isObj(tc) || typeof tc.type !== 'string') bad('tool_choice', 'must be { type: "auto" | "any" | "tool" | "none" }');
  if (tc.disable_parallel_tool_use !== undefined && typeof tc.disable_parallel_tool_use !== 'boolean')
    bad('tool_choice.disable_parallel_tool_use', 'must be a boolean');
  let choice: ChatRequest['tool_choice'];
  if (tc.type === 'auto') choice = 'auto';
  else if (tc.type === 'any') choice = 'required';
  else if (tc.type === 'none') choice = 'none';
  else if (tc.type === 'tool' && typeof tc.name === 'string') choice = { type: 'function', function: { name: toolName(tc.name, 'tool_choice.name') } };
  else bad('tool_choice', 'must be { type: "auto" | "any" | "tool" (with name) | "none" }');
  if (!tools) {
    if (tc.type === 'any' || tc.type === 'tool') bad('tool_choice', `{ type: "${tc.type}" } needs tools, and none were given`);
    return;
  }
  if (!out.tools) return; // only server tools, left out for a native channel: the choice is that channel's
  out.tool_choice = choice;
  if (tc.disable_parallel_tool_use === true) out.parallel_tool_calls = false;
}
