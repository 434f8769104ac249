/**
 * The chat request fields that change the answer's shape or contract (as opposed to sampling hints): a channel
 * either honours each one the request asks for or the request does not reach it. A provider lists the ones
 * its channels cannot honour in `ChannelCapabilities.refuses` (absent: it honours them all, as an
 * OpenAI-compatible upstream does); the router sends a request only to a candidate that refuses none of what
 * it asks (src/router/router.ts), and refuses it with UNSUPPORTED naming the field when no candidate is left.
 * The drop_params=false rule of LiteLLM: a field that changes what the client gets back is honoured or
 * refused, never silently dropped. Sampling hints (seed, penalties, logit_bias, …) are outside this list: a
 * channel without them leaves them out (docs/apis.md has the table per provider).
 *
 * What each name covers (only the values that ask for something; `n: 1`, `logprobs: false`,
 * `response_format: {type: "text"}`, tool_choice `auto`/`none` ask for nothing):
 * - `n`: `n` above 1 (several choices);
 * - `logprobs`: `logprobs: true`, or `top_logprobs` above 0;
 * - `response_format.json_object` / `response_format.json_schema`: that `response_format.type`;
 * - `tool_choice.required` / `tool_choice.function`: `tool_choice` "required" / naming a function, with tools;
 * - `parallel_tool_calls`: `parallel_tool_calls: false` (at most one call), with tools;
 * - `audio`: `modalities` holding "audio" (a spoken answer), or an `audio` output option.
 * The tool fields ask for nothing without `tools`: no call can be made either way.
 */
import { GatewayError } from './errors.js';
import { quotedName, type ChatRequest } from './openai.js';

export const CONTRACT_FIELDS = [
  'n',
  'logprobs',
  'response_format.json_object',
  'response_format.json_schema',
  'tool_choice.required',
  'tool_choice.function',
  'parallel_tool_calls',
  'audio',
] as const;
export type ContractField = (typeof CONTRACT_FIELDS)[number];

const KNOWN: ReadonlySet<string> = new Set(CONTRACT_FIELDS);
export const isContractField = (v: unknown): v is ContractField => typeof v === 'string' && KNOWN.has(v);

/** One thing a request asks for: which contract field, the request field to name (`param`) and what it asks, in words. */
export interface ContractAsk {
  field: ContractField;
  param: string;
  what: string;
}

const NONE: readonly ContractAsk[] = Object.freeze([]);

/**
 * What `req` asks for, in CONTRACT_FIELDS order; the one shared empty list when nothing (the usual request).
 * The body was validated (src/router/validate.ts): `n` is a finite number when present.
 */
export function contractAsks(req: ChatRequest): readonly ContractAsk[] {
  let out: ContractAsk[] | undefined;
  const add = (field: ContractField, param: string, what: string) => (out ??= []).push({ field, param, what });
  const n = req.n;
  if (typeof n === 'number' && n > 1) add('n', 'n', `${n} choices (n: ${n})`);
  if (req.logprobs === true) add('logprobs', 'logprobs', 'log probabilities (logprobs: true)');
  else if (typeof req.top_logprobs === 'number' && req.top_logprobs > 0)
    add('logprobs', 'top_logprobs', `log probabilities (top_logprobs: ${req.top_logprobs})`);
  const rf = req.response_format;
  if (typeof rf === 'object' && rf !== null) {
    const type = (rf as { type?: unknown }).type;
    if (type === 'json_object') add('response_format.json_object', 'response_format', 'a JSON object (response_format json_object)');
    else if (type === 'json_schema') add('response_format.json_schema', 'response_format', 'an answer held to a JSON schema (response_format json_schema)');
  }
  if (req.tools?.length) {
    const tc = req.tool_choice;
    if (tc === 'required') add('tool_choice.required', 'tool_choice', 'a forced tool call (tool_choice "required")');
    else if (typeof tc === 'object' && tc.function)
      add('tool_choice.function', 'tool_choice', `a forced call of "${quotedName(tc.function.name)}" (tool_choice naming it)`);
    if (req.parallel_tool_calls === false) add('parallel_tool_calls', 'parallel_tool_calls', 'at most one tool call (parallel_tool_calls: false)');
  }
  if (Array.isArray(req.modalities) && req.modalities.includes('audio')) add('audio', 'modalities', 'an audio answer (modalities "audio")');
  else if (typeof req.audio === 'object' && req.audio !== null) add('audio', 'audio', 'an audio answer (audio)');
  return out ?? NONE;
}

/** The first of `asks` that `refuses` holds, if any. */
export function refusedAsk(asks: readonly ContractAsk[], refuses: readonly ContractField[] | undefined): ContractAsk | undefined {
  if (!refuses || refuses.length === 0) return undefined;
  for (const a of asks) if (refuses.includes(a.field)) return a;
  return undefined;
}

/**
 * The refusal: UNSUPPORTED naming the request field, first in the message too (`n: no channel serving model "m"
 * can give 3 choices (n: 3) …`). `who` is the subject and its verb: `no channel serving model "m" can`.
 */
export function contractRefusal(ask: ContractAsk, who: string): GatewayError {
  return new GatewayError('UNSUPPORTED', `${ask.param}: ${who} give ${ask.what}; docs/apis.md lists what each provider honours`, { param: ask.param });
}
