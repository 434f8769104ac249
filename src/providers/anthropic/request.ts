/**
 * OpenAI ChatRequest → Anthropic Messages request. Pure. Only fields the Messages API knows are emitted
 * (it rejects unknown ones). The contract fields it has no way to honour (REFUSED) never reach here: the router
 * refuses a request that asks for one (src/wire/chat-contract.ts). Sampling hints the Messages API lacks (seed,
 * penalties, logit_bias, service_tier, store, …) are left out, as docs/apis.md lists.
 *
 * - system / developer messages (anywhere) → one `system` string, joined by blank lines;
 * - roles must alternate, so consecutive same-role turns merge; `tool` messages become user `tool_result`
 *   blocks (their text as a string; with images, text and image blocks, which a tool_result takes), and in a
 *   user turn tool_result blocks are put first (the API requires it);
 * - assistant `tool_calls[].function.arguments` (a JSON string) → `tool_use.input` (an object);
 * - the request is malformed (INVALID_REQUEST, with the `param` at fault) when arguments are not a JSON
 *   object, an image URL is neither a base64 data URL nor http(s), or a part is malformed (the rule every
 *   translating channel shares: `imagePartUrl`, `textPartText` in src/wire/openai.ts).
 */
import { GatewayError } from '../../wire/errors.js';
import type { ContractField } from '../../wire/chat-contract.js';
import {
  imagePartUrl,
  textPartText,
  translatableToolChoice,
  type ChatMessage,
  type ChatRequest,
  type ContentPart,
  type ToolChoice,
  type ToolDefinition,
} from '../../wire/openai.js';
import type { ImageBlock, MessageParam, MessagesRequest, RequestBlock, TextBlock, ToolChoiceParam, ToolParam, ToolResultBlock } from './wire.js';

export const DEFAULT_MAX_TOKENS = 4096;

/**
 * What an anthropic channel cannot honour: the Messages API makes one text answer (no `n`, no audio), returns no
 * log probabilities, and this translation carries no output format (Anthropic's structured outputs are a beta
 * `output_format` on some models only; a JSON answer is not promised). tool_choice auto/any/tool/none and
 * disable_parallel_tool_use carry every tool_choice and parallel_tool_calls form (toToolChoice).
 */
export const ANTHROPIC_REFUSES: readonly ContractField[] = ['n', 'logprobs', 'response_format.json_object', 'response_format.json_schema', 'audio'];

export interface RequestMapOptions {
  /** max_tokens when the client sets neither max_completion_tokens nor max_tokens (the API requires one) */
  defaultMaxTokens?: number;
}

export function toMessagesRequest(req: ChatRequest, opts: RequestMapOptions = {}): MessagesRequest {
  const system: string[] = [];
  const turns: Array<{ role: 'user' | 'assistant'; content: RequestBlock[] }> = [];
  const push = (role: 'user' | 'assistant', blocks: RequestBlock[]) => {
    if (blocks.length === 0) return; // the API rejects empty turns
    const last = turns[turns.length - 1];
    if (last && last.role === role) last.content.push(...blocks);
    else turns.push({ role, content: blocks });
  };

  req.messages.forEach((m, i) => {
    const at = `messages[${i}]`;
    switch (m.role) {
      case 'system':
      case 'developer': {
        const text = textOnly(m.content, `${at}.content`);
        if (text) system.push(text);
        break;
      }
      case 'user':
        push('user', contentBlocks(m.content, `${at}.content`));
        break;
      case 'assistant':
        push('assistant', [...contentBlocks(m.content, `${at}.content`), ...toolUses(m, at)]);
        break;
      case 'tool': {
        if (!m.tool_call_id) throw new GatewayError('INVALID_REQUEST', `${at}: a tool message needs tool_call_id`, { param: `${at}.tool_call_id` });
        const content = toolResultContent(m.content, `${at}.content`);
        push('user', [{ type: 'tool_result', tool_use_id: m.tool_call_id, ...(content ? { content } : {}) }]);
        break;
      }
      default:
        throw new GatewayError('UNSUPPORTED', `${at}: role "${m.role}" is not supported by this channel`, { param: `${at}.role` });
    }
  });

  const messages: MessageParam[] = turns.map((t) =>
    t.role === 'user' ? { role: 'user', content: [...t.content.filter(isToolResult), ...t.content.filter((b) => !isToolResult(b))] } : t,
  );
  const out: MessagesRequest = {
    model: req.model,
    messages,
    max_tokens: req.max_completion_tokens ?? req.max_tokens ?? opts.defaultMaxTokens ?? DEFAULT_MAX_TOKENS,
  };
  if (system.length) out.system = system.join('\n\n');
  if (req.temperature != null) out.temperature = req.temperature;
  if (req.top_p != null) out.top_p = req.top_p;
  if (req.stop != null) out.stop_sequences = typeof req.stop === 'string' ? [req.stop] : req.stop;
  if (req.tools?.length) {
    out.tools = req.tools.map(toTool);
    const choice = toToolChoice(req.tool_choice, req.parallel_tool_calls === false);
    if (choice) out.tool_choice = choice;
  }
  if (typeof req.user === 'string' && req.user) out.metadata = { user_id: req.user };
  if (req.stream) out.stream = true;
  return out;
}

const isToolResult = (b: RequestBlock) => b.type === 'tool_result';

function textOnly(content: ChatMessage['content'], param: string): string {
  if (content == null) return '';
  if (typeof content === 'string') return content;
  return content
    .map((p, j) => {
      if (p.type !== 'text') throw new GatewayError('UNSUPPORTED', `${param}[${j}]: only text parts are allowed here`, { param: `${param}[${j}]` });
      return textPartText(p, `${param}[${j}]`);
    })
    .join('\n');
}

/**
 * A tool message's content as its tool_result's: text only → one string (text parts joined by a newline, as
 * before); with images → the blocks a user turn's parts become (text, then images in their order: the API
 * takes `text` and `image` blocks in a tool_result). Empty → undefined (no `content`).
 */
function toolResultContent(content: ChatMessage['content'], param: string): ToolResultBlock['content'] {
  if (content == null || typeof content === 'string' || content.every((p) => p.type === 'text')) return textOnly(content, param) || undefined;
  const blocks = contentBlocks(content, param) as Array<TextBlock | ImageBlock>;
  return blocks.length > 0 ? blocks : undefined;
}

function contentBlocks(content: ChatMessage['content'], param: string): RequestBlock[] {
  if (content == null) return [];
  if (typeof content === 'string') return content ? [{ type: 'text', text: content }] : [];
  const out: RequestBlock[] = [];
  content.forEach((p: ContentPart, j) => {
    if (p.type === 'text') {
      const text = textPartText(p, `${param}[${j}]`);
      if (text) out.push({ type: 'text', text } satisfies TextBlock); // the API refuses empty text blocks
    } else if (p.type === 'image_url') {
      out.push(imageBlock(imagePartUrl(p, `${param}[${j}]`), `${param}[${j}].image_url.url`));
    } else {
      throw new GatewayError('UNSUPPORTED', `${param}[${j}]: content part type "${p.type}" is not supported by this channel`, { param: `${param}[${j}].type` });
    }
  });
  return out;
}

const DATA_URL = /^data:([^;,]+);base64,(.*)$/s;

function imageBlock(url: string, param: string): ImageBlock {
  const m = DATA_URL.exec(url);
  if (m) return { type: 'image', source: { type: 'base64', media_type: m[1]!, data: m[2]! } };
  if (/^https?:\/\//i.test(url)) return { type: 'image', source: { type: 'url', url } };
  throw new GatewayError('INVALID_REQUEST', `${param}: expected a base64 data: URL or an http(s) URL`, { param });
}

function toolUses(m: ChatMessage, at: string): RequestBlock[] {
  return (m.tool_calls ?? []).map((tc, j) => {
    const param = `${at}.tool_calls[${j}].function.arguments`;
    const raw = tc.function.arguments.trim();
    let input: unknown;
    try {
      input = raw === '' ? {} : JSON.parse(raw);
    } catch {
      throw new GatewayError('INVALID_REQUEST', `${param}: not valid JSON`, { param });
    }
    if (!input || typeof input !== 'object' || Array.isArray(input)) {
      throw new GatewayError('INVALID_REQUEST', `${param}: must be a JSON object`, { param });
    }
    return { type: 'tool_use', id: tc.id, name: tc.function.name, input: input as Record<string, unknown> };
  });
}

function toTool(t: ToolDefinition): ToolParam {
  const out: ToolParam = { name: t.function.name, input_schema: t.function.parameters ?? { type: 'object', properties: {} } };
  if (t.function.description) out.description = t.function.description;
  return out;
}

function toToolChoice(choice: ToolChoice | undefined, noParallel: boolean): ToolChoiceParam | undefined {
  const c = translatableToolChoice(choice);
  const extra = noParallel ? { disable_parallel_tool_use: true } : {};
  if (c === undefined) return noParallel ? { type: 'auto', ...extra } : undefined;
  if (c === 'none') return { type: 'none' };
  if (c === 'auto') return { type: 'auto', ...extra };
  if (c === 'required') return { type: 'any', ...extra };
  return { type: 'tool', name: c.function.name, ...extra };
}
