/**
 * OpenAI request → Ollama request. Pure. Whatever cannot be expressed in Ollama's form is rejected with a
 * GatewayError naming the field, never dropped silently: a remote image URL (Ollama only takes inline
 * base64), an unknown content part, assistant tool-call arguments that are not a JSON object, token-array
 * embedding inputs. A malformed part is refused by the rule every translating channel shares (`imagePartUrl`,
 * `textPartText` in src/wire/openai.ts). Images go on the message they came in, whatever its role: Ollama's
 * `images` is a field of every message.
 */
import { GatewayError } from '../../wire/errors.js';
import type { ContractField } from '../../wire/chat-contract.js';
import {
  imagePartUrl,
  namedTool,
  textPartText,
  translatableToolChoice,
  type ChatMessage,
  type ChatRequest,
  type EmbeddingsRequest,
  type ToolDefinition,
} from '../../wire/openai.js';
import type { OllamaChatRequest, OllamaEmbedRequest, OllamaMessage, OllamaOptions, OllamaTool, OllamaToolCall } from './wire.js';

/** Channel-level knobs (channel.options) that have no OpenAI request field. */
export interface OllamaRequestDefaults {
  keepAlive?: string | number | undefined;
}

const DATA_URL = /^data:image\/[\w.+-]+;base64,(.*)$/s;

function contentOf(msg: ChatMessage, at: string): { text: string; images: string[] } {
  const c = msg.content;
  if (c === undefined || c === null) return { text: '', images: [] };
  if (typeof c === 'string') return { text: c, images: [] };
  if (!Array.isArray(c)) throw new GatewayError('INVALID_REQUEST', 'message content must be a string or an array of parts', { param: `${at}.content` });
  const texts: string[] = [];
  const images: string[] = [];
  c.forEach((part, j) => {
    const pa = `${at}.content[${j}]`;
    if (part.type === 'text') texts.push(textPartText(part, pa));
    else if (part.type === 'image_url') {
      const m = DATA_URL.exec(imagePartUrl(part, pa));
      if (!m) throw new GatewayError('UNSUPPORTED', 'ollama channels take images as data: URLs (base64) only', { param: `${pa}.image_url.url` });
      images.push(m[1]!);
    } else {
      throw new GatewayError('UNSUPPORTED', `content part type "${part.type}" is not supported by ollama channels`, { param: pa });
    }
  });
  return { text: texts.join('\n'), images };
}

function parseArguments(raw: string, param: string): Record<string, unknown> {
  if (raw.trim() === '') return {};
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new GatewayError('INVALID_REQUEST', 'tool call arguments are not valid JSON', { param });
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new GatewayError('INVALID_REQUEST', 'tool call arguments must be a JSON object', { param });
  return v as Record<string, unknown>;
}

export function toOllamaMessages(messages: ChatMessage[]): OllamaMessage[] {
  // call id → tool name, filled as assistant turns go by so each tool result finds its own call
  const toolNames = new Map<string, string>();
  return messages.map((msg, i): OllamaMessage => {
    const at = `messages[${i}]`;
    const { text, images } = contentOf(msg, at);
    // Ollama takes `images` on a message of any role (its server puts every message's images into the prompt,
    // and its own /v1 layer carries an image part of a system or tool message so), so they go on every role
    const withImages = (m: OllamaMessage): OllamaMessage => (images.length ? { ...m, images } : m);
    switch (msg.role) {
      case 'system':
      case 'developer':
        return withImages({ role: 'system', content: text });
      case 'user':
        return withImages({ role: 'user', content: text });
      case 'assistant': {
        const out: OllamaMessage = withImages({ role: 'assistant', content: text });
        if (msg.tool_calls?.length) {
          out.tool_calls = msg.tool_calls.map((tc, j): OllamaToolCall => {
            toolNames.set(tc.id, tc.function.name);
            const args = parseArguments(tc.function.arguments ?? '', `${at}.tool_calls[${j}].function.arguments`);
            return { id: tc.id, function: { name: tc.function.name, arguments: args } };
          });
        }
        return out;
      }
      case 'tool': {
        const out: OllamaMessage = withImages({ role: 'tool', content: text });
        const name = msg.tool_call_id !== undefined ? toolNames.get(msg.tool_call_id) : undefined;
        if (name !== undefined) out.tool_name = name;
        if (msg.tool_call_id !== undefined) out.tool_call_id = msg.tool_call_id;
        return out;
      }
      case 'function':
        // legacy OpenAI function result: the name is on the message itself
        return withImages(msg.name ? { role: 'tool', content: text, tool_name: msg.name } : { role: 'tool', content: text });
      default:
        throw new GatewayError('INVALID_REQUEST', `unknown message role "${String(msg.role)}"`, { param: `${at}.role` });
    }
  });
}

/**
 * What an ollama channel cannot honour: /api/chat makes one text answer (no `n`, no audio) and has no tool_choice, so it cannot
 * force a call ("required", a named function). Its `format` takes "json" or a JSON schema (formatFor). Its logprobs
 * (Ollama 0.12.11 and later) are not carried by this translation, so `logprobs` is refused rather than answered
 * without them. `parallel_tool_calls: false` is served though Ollama cannot hold the model to one call: coding
 * agents send it for every model they do not know (Codex: `parallel_tool_calls` is its model family's, false for
 * an unknown model), and refusing it would make them unusable on every Ollama model; models make one call at a
 * time as a rule, and an agent that asked for one takes several all the same (docs/apis.md).
 */
export const OLLAMA_REFUSES: readonly ContractField[] = ['n', 'logprobs', 'tool_choice.required', 'tool_choice.function', 'audio'];

/**
 * tool_choice has no Ollama equivalent: "none" withholds the tools. The forms that force a call are refused
 * before here (OLLAMA_REFUSES); a named function, should one arrive, offers only that one.
 */
function toolsFor(req: ChatRequest): OllamaTool[] | undefined {
  if (!req.tools?.length || req.tool_choice === 'none') return undefined;
  const named = namedTool(translatableToolChoice(req.tool_choice));
  const picked = named ? req.tools.filter((t) => t.function.name === named) : req.tools;
  if (named && picked.length === 0)
    throw new GatewayError('INVALID_REQUEST', `tool_choice names a tool that is not in tools: ${named}`, { param: 'tool_choice' });
  return picked.map((t: ToolDefinition): OllamaTool => {
    const { name, description, parameters } = t.function;
    return { type: 'function', function: { name, ...(description !== undefined ? { description } : {}), ...(parameters ? { parameters } : {}) } };
  });
}

function optionsFor(req: ChatRequest): OllamaOptions | undefined {
  const o: OllamaOptions = {};
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
  const set = <K extends keyof OllamaOptions>(k: K, v: OllamaOptions[K] | undefined) => {
    if (v !== undefined) o[k] = v;
  };
  set('temperature', num(req.temperature));
  set('top_p', num(req.top_p));
  set('num_predict', num(req.max_completion_tokens) ?? num(req.max_tokens));
  set('seed', num(req.seed));
  set('presence_penalty', num(req.presence_penalty));
  set('frequency_penalty', num(req.frequency_penalty));
  if (typeof req.stop === 'string') o.stop = [req.stop];
  else if (Array.isArray(req.stop) && req.stop.length) o.stop = req.stop;
  return Object.keys(o).length ? o : undefined;
}

function formatFor(req: ChatRequest): OllamaChatRequest['format'] {
  const rf = req.response_format as { type?: string; json_schema?: { schema?: Record<string, unknown> } } | undefined | null;
  if (rf?.type === 'json_object') return 'json';
  if (rf?.type === 'json_schema') {
    if (!rf.json_schema?.schema)
      throw new GatewayError('INVALID_REQUEST', 'response_format json_schema needs a schema', { param: 'response_format.json_schema.schema' });
    return rf.json_schema.schema;
  }
  return undefined;
}

export function toOllamaChat(req: ChatRequest, defaults: OllamaRequestDefaults = {}): OllamaChatRequest {
  const body: OllamaChatRequest = { model: req.model, messages: toOllamaMessages(req.messages), stream: req.stream === true };
  const tools = toolsFor(req);
  if (tools) body.tools = tools;
  const options = optionsFor(req);
  if (options) body.options = options;
  const format = formatFor(req);
  if (format !== undefined) body.format = format;
  if (defaults.keepAlive !== undefined) body.keep_alive = defaults.keepAlive;
  return body;
}

export function toOllamaEmbed(req: EmbeddingsRequest, defaults: OllamaRequestDefaults = {}): OllamaEmbedRequest {
  const input = req.input;
  const ok = typeof input === 'string' || (Array.isArray(input) && input.every((s) => typeof s === 'string'));
  if (!ok) throw new GatewayError('UNSUPPORTED', 'ollama channels embed text only (a string or an array of strings)', { param: 'input' });
  const body: OllamaEmbedRequest = { model: req.model, input };
  if (typeof req.dimensions === 'number') body.dimensions = req.dimensions;
  if (defaults.keepAlive !== undefined) body.keep_alive = defaults.keepAlive;
  return body;
}
