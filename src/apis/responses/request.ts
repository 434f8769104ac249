/**
 * OpenAI Responses request (the subset Codex and the openai SDK send; docs/apis.md lists it) → the internal
 * chat form. Pure; errors are INVALID_REQUEST / UNSUPPORTED naming the field.
 *
 * - `instructions` → a leading system message; `input` as a string → one user message;
 * - input items: `message` (role user / system / developer / assistant; content a string or input_text /
 *   output_text / input_image parts) → chat messages (developer → system, which every upstream takes);
 *   consecutive `function_call` items → one assistant message's tool_calls (joined to the assistant text
 *   just before them); `function_call_output` → a `tool` message (content parts: their text; their images follow
 *   the run of tool messages as a user message); `reasoning` items → kept in the stored
 *   history and passed back natively, dropped in the chat form (chat upstreams take no reasoning input);
 * - tools: `function` tools → chat function tools; other tool types (web_search, local_shell, custom, mcp…)
 *   need OpenAI's own servers and are dropped (listed in `dropped`);
 * - tool_choice, parallel_tool_calls, temperature, top_p, user map 1:1; max_output_tokens → max_tokens;
 *   text.format json_schema / json_object → response_format; reasoning, include, store, prompt_cache_key,
 *   metadata, truncation, service_tier have no chat form (store is the gateway's own, see the route).
 */
import { GatewayError } from '../../wire/errors.js';
import { jsonKind, quotedName, type ChatMessage, type ChatRequest, type ContentPart, type ToolCall, type ToolDefinition } from '../../wire/openai.js';
import { isObj } from '../../util/is-object.js';
import { leniently, untranslatable, type Untranslatable } from '../common/untranslatable.js';
import { finiteNumber, requireTurn, tokenLimit, toolDescription, toolName, toolSchema } from '../common/fields.js';

export type Item = Record<string, unknown>;

function bad(param: string, what: string): never {
  throw new GatewayError('INVALID_REQUEST', `${param}: ${what}`, { param });
}

/** The request's `input` as items (a string is one user message). */
export function inputItems(input: unknown): Item[] {
  if (typeof input === 'string') return [{ type: 'message', role: 'user', content: input }];
  if (!Array.isArray(input)) bad('input', 'required, a string or an array of items');
  input.forEach((it: unknown, i: number) => {
    if (!isObj(it)) bad(`input[${i}]`, 'must be an object');
  });
  return input as Item[];
}

/** Checks the top-level fields the gateway relies on. */
export function validateResponses(body: unknown): Record<string, unknown> & { model: string } {
  if (!isObj(body)) bad('body', 'must be a JSON object');
  if (typeof body.model !== 'string' || !body.model) bad('model', 'required, a non-empty string');
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean') bad('stream', 'must be a boolean');
  if (body.instructions !== undefined && body.instructions !== null && typeof body.instructions !== 'string') bad('instructions', 'must be a string');
  if (body.previous_response_id !== undefined && body.previous_response_id !== null && typeof body.previous_response_id !== 'string')
    bad('previous_response_id', 'must be a string');
  if (body.tools !== undefined && !Array.isArray(body.tools)) bad('tools', 'must be an array');
  // a flag or name the translation would leave out for its type changes what the client asked for (`"false"`: one call)
  if (body.parallel_tool_calls !== undefined && body.parallel_tool_calls !== null && typeof body.parallel_tool_calls !== 'boolean')
    bad('parallel_tool_calls', 'must be a boolean');
  if (body.user !== undefined && body.user !== null && typeof body.user !== 'string') bad('user', 'must be a string');
  if (body.metadata !== undefined && body.metadata !== null) {
    if (!isObj(body.metadata)) bad('metadata', `must be an object of strings, not ${jsonKind(body.metadata)}`);
    for (const [k, v] of Object.entries(body.metadata)) if (typeof v !== 'string') bad(`metadata.${k}`, 'must be a string');
  }
  finiteNumber(body.temperature, 'temperature');
  finiteNumber(body.top_p, 'top_p');
  tokenLimit(body.max_output_tokens, 'max_output_tokens');
  // a store the client did not mean (`"store": "no"`) would keep the conversation it asked not to keep
  if (body.store !== undefined && body.store !== null && typeof body.store !== 'boolean') bad('store', 'must be a boolean');
  if (body.text !== undefined && body.text !== null) {
    if (!isObj(body.text)) bad('text', 'must be an object');
    const f = body.text.format;
    if (f !== undefined && f !== null && (!isObj(f) || typeof f.type !== 'string')) bad('text.format', 'must be an object with a string "type"');
    if (isObj(f) && f.type === 'json_schema') {
      if (!isObj(f.schema)) bad('text.format.schema', 'required for json_schema, a JSON Schema object');
      if (f.name !== undefined && typeof f.name !== 'string') bad('text.format.name', 'must be a string');
    }
  }
  return body as Record<string, unknown> & { model: string };
}

export interface ChatForm {
  chat: ChatRequest;
  /** names / types of tools that have no chat form */
  dropped: string[];
}

/**
 * The request's chat form. With `leftOut`, an item or part the chat form has no place for is left out instead
 * of refused, and the first such refusal kept there (src/apis/common/untranslatable.ts).
 */
export function responsesToChat(body: Record<string, unknown> & { model: string }, items: Item[], leftOut?: Untranslatable): ChatForm {
  return leniently(leftOut, () => translate(body, items));
}

function translate(body: Record<string, unknown> & { model: string }, items: Item[]): ChatForm {
  const messages: ChatMessage[] = [];
  if (typeof body.instructions === 'string' && body.instructions) messages.push({ role: 'system', content: body.instructions });
  // images from function_call_output items: shown to the model as a user message once the run of tool
  // messages ends (a chat tool message carries text only, and nothing may come between the tool messages)
  const trailing: ContentPart[] = [];
  items.forEach((it, i) => {
    if (trailing.length && it.type !== 'function_call_output') messages.push({ role: 'user', content: trailing.splice(0) });
    item(it, `input[${i}]`, messages, trailing);
  });
  if (trailing.length) messages.push({ role: 'user', content: trailing });
  // nothing left but what only a native channel takes: the request goes there whole
  requireTurn(messages, 'input');

  // content the request names rather than holds (a Conversations API conversation, a stored prompt template) is on
  // OpenAI's servers: left out, the model answered without it. A native channel's, refused on any other
  for (const [k, what] of [
    ['conversation', 'a stored conversation (the Conversations API)'],
    ['prompt', 'a stored prompt template'],
  ] as const)
    if (body[k] !== undefined && body[k] !== null)
      untranslatable(k, `${k}: ${what} is read only by OpenAI's own API, and cannot be translated for this channel`);

  const chat: ChatRequest = { model: body.model, messages };
  if (body.stream === true) chat.stream = true;
  if (typeof body.temperature === 'number') chat.temperature = body.temperature;
  if (typeof body.top_p === 'number') chat.top_p = body.top_p;
  if (typeof body.max_output_tokens === 'number') chat.max_tokens = body.max_output_tokens;
  if (typeof body.user === 'string') chat.user = body.user;
  const dropped: string[] = [];
  const tools: ToolDefinition[] = [];
  ((body.tools as unknown[] | undefined) ?? []).forEach((t, i) => {
    if (!isObj(t) || typeof t.type !== 'string') bad(`tools[${i}]`, 'must be an object with a "type"');
    if (t.type !== 'function') return void dropped.push(typeof t.name === 'string' ? t.name : t.type);
    const fn: ToolDefinition['function'] = {
      name: toolName(t.name, `tools[${i}].name`),
      parameters: toolSchema(t.parameters, `tools[${i}].parameters`) ?? { type: 'object', properties: {} },
    };
    const description = toolDescription(t.description, `tools[${i}].description`);
    if (description !== undefined) fn.description = description;
    if (typeof t.strict === 'boolean') fn.strict = t.strict;
    tools.push({ type: 'function', function: fn });
  });
  if (tools.length) {
    chat.tools = tools;
    const tc = body.tool_choice;
    if (tc === 'auto' || tc === 'none' || tc === 'required') chat.tool_choice = tc;
    else if (isObj(tc) && tc.type === 'function' && typeof tc.name === 'string')
      chat.tool_choice = { type: 'function', function: { name: toolName(tc.name, 'tool_choice.name') } };
    // a choice the API has that the chat form has not (`allowed_tools`, a hosted tool's type): a native channel's
    else if (isObj(tc) && typeof tc.type === 'string' && tc.type !== 'function')
      untranslatable('tool_choice', `tool_choice: a choice of type "${quotedName(tc.type)}" cannot be translated for this channel`);
    else if (tc !== undefined && tc !== null) bad('tool_choice', 'must be "auto", "none", "required" or { type: "function", name }');
    if (typeof body.parallel_tool_calls === 'boolean') chat.parallel_tool_calls = body.parallel_tool_calls;
  } else {
    // no function tool to choose: "auto" / "none" (or a choice of a hosted tool) mean nothing here, but a choice
    // that asks for a call no tool could make is refused, as OpenAI refuses it ("required" with a hosted tool only
    // is a native channel's to answer: it may call that tool)
    const tc = body.tool_choice;
    const noTools = !Array.isArray(body.tools) || body.tools.length === 0;
    if ((tc === 'required' && noTools) || (isObj(tc) && tc.type === 'function'))
      bad(
        'tool_choice',
        tc === 'required' ? '"required" needs tools, and none were given' : 'a function choice needs that function in tools, and tools holds no function',
      );
    if (tc !== undefined && tc !== null && tc !== 'auto' && tc !== 'none' && !(isObj(tc) && typeof tc.type === 'string'))
      bad('tool_choice', 'must be "auto", "none", "required" or { type: "function", name }');
  }
  const fmt = isObj(body.text) && isObj(body.text.format) ? body.text.format : undefined;
  if (fmt?.type === 'json_schema')
    chat.response_format = {
      type: 'json_schema',
      json_schema: { name: fmt.name ?? 'output', schema: fmt.schema, ...(typeof fmt.strict === 'boolean' ? { strict: fmt.strict } : {}) },
    };
  else if (fmt?.type === 'json_object') chat.response_format = { type: 'json_object' };
  // a format this translation does not know asks for an answer shape it cannot promise: a native channel's
  else if (fmt !== undefined && fmt.type !== 'text')
    untranslatable('text.format.type', `text.format.type: output format "${quotedName(String(fmt.type))}" cannot be translated for this channel`);
  return { chat, dropped };
}

function item(it: Item, at: string, out: ChatMessage[], images: ContentPart[]): void {
  const type = it.type ?? (typeof it.role === 'string' ? 'message' : undefined);
  // an item that names no type (nor a role, which makes it a message) is malformed, not an unknown kind of item
  if (typeof type !== 'string') bad(`${at}.type`, 'required, a string (an item type such as "message" or "function_call")');
  switch (type) {
    case 'message':
      return message(it, at, out);
    case 'function_call': {
      if (typeof it.name !== 'string' || typeof it.call_id !== 'string') bad(at, 'a function_call needs name and call_id');
      toolName(it.name, `${at}.name`);
      const call: ToolCall = {
        id: it.call_id,
        type: 'function',
        function: { name: it.name, arguments: typeof it.arguments === 'string' ? it.arguments : JSON.stringify(it.arguments ?? {}) },
      };
      const last = out[out.length - 1];
      if (last?.role === 'assistant') (last.tool_calls ??= []).push(call);
      else out.push({ role: 'assistant', content: null, tool_calls: [call] });
      return;
    }
    case 'function_call_output': {
      if (typeof it.call_id !== 'string') bad(`${at}.call_id`, 'required, a string');
      out.push({ role: 'tool', tool_call_id: it.call_id, content: outputText(it.output, `${at}.output`, images) });
      return;
    }
    case 'reasoning':
      return; // kept in history and native requests; chat upstreams take no reasoning input
    default:
      untranslatable(`${at}.type`, `${at}.type: item type ${JSON.stringify(type)} cannot be translated for this channel`);
  }
}

function message(it: Item, at: string, out: ChatMessage[]): void {
  const role = it.role;
  if (role !== 'user' && role !== 'assistant' && role !== 'system' && role !== 'developer') bad(`${at}.role`, 'must be user, assistant, system or developer');
  const chatRole = role === 'developer' ? 'system' : role;
  const c = it.content;
  if (typeof c === 'string') return void out.push({ role: chatRole, content: c });
  if (!Array.isArray(c)) bad(`${at}.content`, 'must be a string or an array of content parts');
  const parts: ContentPart[] = [];
  c.forEach((p: unknown, j: number) => {
    const q = `${at}.content[${j}]`;
    if (!isObj(p) || typeof p.type !== 'string') bad(q, 'must be an object with a string "type"');
    if (p.type === 'input_text' || p.type === 'output_text' || p.type === 'text') {
      if (typeof p.text !== 'string') bad(`${q}.text`, 'must be a string');
      parts.push({ type: 'text', text: p.text });
    } else if (p.type === 'input_image') {
      parts.push(inputImage(p, q));
    } else if (p.type !== 'refusal') {
      untranslatable(`${q}.type`, `${q}.type: content type "${p.type}" cannot be translated for this channel`);
    }
  });
  // nothing in it (`content: []`, or only refusals): no message, as the other edges leave an empty turn out, and
  // requireTurn refuses a request left with no turn
  if (parts.length === 0) return;
  const textOnly = parts.every((p) => p.type === 'text');
  const content = textOnly ? parts.map((p) => (p as { text: string }).text).join('') : parts;
  if (chatRole === 'system' || chatRole === 'assistant') {
    if (!textOnly) bad(`${at}.content`, `${role} messages take text only`);
  }
  out.push({ role: chatRole, content });
}

/** An `input_image` part as a chat image part: its `image_url` is the URL itself (`{"url": …}` is the chat form's). */
function inputImage(p: Record<string, unknown>, q: string): ContentPart {
  if (typeof p.image_url !== 'string')
    bad(
      `${q}.image_url`,
      p.image_url === undefined || p.image_url === null
        ? 'required (a URL or data: URL); file_id is not supported'
        : `expected a string (a URL or data: URL), but got ${jsonKind(p.image_url)} instead`,
    );
  return { type: 'image_url', image_url: { url: p.image_url, ...(typeof p.detail === 'string' ? { detail: p.detail } : {}) } };
}

/**
 * A function_call_output's `output`: a string, or content parts (`input_text`, `input_image`, `input_file`) whose
 * text becomes the tool message; its images go to `images` (the caller shows them after the tool messages), and a
 * part the chat form has no place for (`input_file`) is refused like one in a message, never dropped.
 */
function outputText(o: unknown, at: string, images: ContentPart[]): string {
  if (typeof o === 'string') return o;
  if (!Array.isArray(o)) return bad(at, 'must be a string or an array of content parts');
  let text = '';
  o.forEach((p: unknown, k: number) => {
    const q = `${at}[${k}]`;
    if (!isObj(p) || typeof p.type !== 'string') bad(q, 'must be an object with a string "type"');
    if (p.type === 'input_text' || p.type === 'output_text' || p.type === 'text') {
      if (typeof p.text !== 'string') bad(`${q}.text`, 'must be a string');
      text += p.text;
    } else if (p.type === 'input_image') images.push(inputImage(p, q));
    else untranslatable(`${q}.type`, `${q}.type: content type "${p.type}" cannot be translated for this channel`);
  });
  return text;
}
