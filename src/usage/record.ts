/**
 * One usage record per completed request, and how records are summed for `switchyard usage`.
 * `peer` + `direction` say where it ran: `local` (our channel, for our client), `served-by` (a peer's
 * channel served our client: peer = that peer), `served-for` (our channel served a peer's forward: peer =
 * the requesting peer).
 */
import { isCount, type ChatCompletion, type ChatRequest, type EmbeddingsRequest, type Usage } from '../wire/openai.js';
import { reasoningText } from '../wire/reasoning.js';
import { inputsOf } from '../providers/embeddings-shape.js';

export type UsageDirection = 'local' | 'served-by' | 'served-for';

export interface UsageRecord {
  /** epoch ms when the request completed */
  ts: number;
  /** virtual key id; `-` for a static token or an open gateway; `peer` for served-for */
  key: string;
  model: string;
  channel: string;
  /** peer gateway id, or `-` */
  peer: string;
  direction: UsageDirection;
  inputTokens: number;
  outputTokens: number;
  cachedTokens: number;
  /** from the serving channel's pricing: channels[].pricing for our own, the peer's announced pricing (SharedChannel.pricing) for one served by a peer; 0 when no price is configured or announced */
  cost: number;
  stream: boolean;
  /**
   * the token counts (and the cost they make) are Switchyard's estimate, not the upstream's count: it reported
   * none (no `usage`, or one without a number), or the stream ended before it (docs/keys.md)
   */
  estimated: boolean;
}

export interface Pricing {
  /** per million tokens */
  input: number;
  output: number;
  /** per million cached input tokens; default: the input price */
  cachedInput?: number | undefined;
}

/** Tokens from an upstream's usage object (OpenAI shape; Anthropic's cache reads count as cached). */
export function tokensOf(u: Usage | undefined | null): { input: number; output: number; cached: number } {
  if (!u) return { input: 0, output: 0, cached: 0 };
  const n = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0);
  return { input: n(u.prompt_tokens), output: n(u.completion_tokens), cached: n(u.prompt_tokens_details?.cached_tokens) || n(u.cache_read_input_tokens) };
}

/** Cost in the pricing's currency: cached input tokens (part of input) at the cached price. */
export function costOf(p: Pricing | undefined, t: { input: number; output: number; cached: number }): number {
  if (!p) return 0;
  const cached = Math.min(t.cached, t.input);
  return ((t.input - cached) * p.input + cached * (p.cachedInput ?? p.input) + t.output * p.output) / 1_000_000;
}

export type UsageGroup = 'model' | 'key' | 'peer' | 'day' | 'channel';

export interface UsageRow {
  group: string;
  requests: number;
  inputTokens: number;
  outputTokens: number;
  cachedTokens: number;
  cost: number;
  /** how many of `requests` were charged an estimate (UsageRecord.estimated) */
  estimated: number;
}

export function summarise(records: Iterable<UsageRecord>, by: UsageGroup): { rows: UsageRow[]; total: UsageRow } {
  const map = new Map<string, UsageRow>();
  const total: UsageRow = { group: 'total', requests: 0, inputTokens: 0, outputTokens: 0, cachedTokens: 0, cost: 0, estimated: 0 };
  for (const r of records) {
    const g = by === 'day' ? new Date(r.ts).toISOString().slice(0, 10) : by === 'peer' ? (r.peer === '-' ? '-' : `${r.direction} ${r.peer}`) : r[by];
    let row = map.get(g);
    if (!row) map.set(g, (row = { group: g, requests: 0, inputTokens: 0, outputTokens: 0, cachedTokens: 0, cost: 0, estimated: 0 }));
    for (const x of [row, total]) {
      x.requests++;
      x.inputTokens += r.inputTokens;
      x.outputTokens += r.outputTokens;
      x.cachedTokens += r.cachedTokens;
      x.cost += r.cost;
      if (r.estimated) x.estimated++;
    }
  }
  const rows = [...map.values()].sort((a, b) => (by === 'day' ? a.group.localeCompare(b.group) : b.requests - a.requests || a.group.localeCompare(b.group)));
  return { rows, total };
}

/** A rough token count from a size (~4 bytes or characters per token): only where the upstream has not counted. */
export function estimateTokens(size: number): number {
  return Math.max(1, Math.ceil(size / 4));
}

/**
 * The upstream's usage when it is a whole count: a number (finite, not negative) in both `prompt_tokens` and
 * `completion_tokens`; undefined otherwise, and the answer is charged an estimate (estimatedUsage,
 * estimatedReplyUsage) for each side the usage does not count. A side without a number is no count, never a
 * count of 0: `{}`, `{"prompt_tokens": null}` or only `total_tokens` counted nothing, and a usage with one side
 * (an Ollama answer without `prompt_eval_count`, as on a prompt-cache hit) keeps that side and has the other
 * estimated. Read once per request, where the request is settled (never per chunk).
 */
export function countOf(u: Usage | null | undefined): Usage | undefined {
  return u && isCount(u.prompt_tokens) && isCount(u.completion_tokens) ? u : undefined;
}

/** countOf for an answer that has no output (embeddings): the usage when `prompt_tokens` is a count. */
export function inputCountOf(u: { prompt_tokens?: unknown } | null | undefined): Usage | undefined {
  return u && isCount(u.prompt_tokens) ? (u as Usage) : undefined;
}

/**
 * The usages this module estimated: whoever records one (KeyService, the bridge's peer gate) flags its record
 * `estimated` from the usage itself, so the flag cannot part from the counts it describes. A WeakSet rather than
 * a field: nothing an upstream sends can claim to be an estimate, and no estimate's flag reaches a wire.
 */
const estimates = new WeakSet<Usage>();

/** `u` is an estimate made here (estimatedUsage, estimatedReplyUsage, estimatedInputUsage), not an upstream's count. */
export function isEstimate(u: Usage | null | undefined): boolean {
  return u != null && estimates.has(u);
}

/**
 * What a stream without the upstream's whole count is charged (its client left, it was cancelled, it failed
 * mid-way, the upstream never sends a usage chunk: it ignores `stream_options.include_usage`, or its usage
 * counts one side only), so that no stream spends nothing: the request's size as input, one token per content
 * chunk the client was sent as output (upstreams send about one per chunk; the usage chunk is not content).
 * A side `counted` holds a count for is kept (countOf). docs/keys.md.
 */
export function estimatedUsage(req: ChatRequest, chunks: number, counted?: Usage | null): Usage {
  return estimated(req, counted, () => chunks);
}

/**
 * What a non-streaming answer without the upstream's whole count is charged: the request's size as input, as
 * for a stream, and the answer's text (every choice's content, reasoning, refusal and tool calls) as output, ~4
 * characters a token; a side `counted` holds a count for is kept. The answer is read (for a relayed body:
 * parsed) only when its output is estimated.
 */
export function estimatedReplyUsage(req: ChatRequest, reply: { readonly completion: ChatCompletion }, counted?: Usage | null): Usage {
  return estimated(req, counted, () => estimateTokens(answerChars(reply.completion)));
}

/**
 * What an answer with no output tokens (embeddings) is charged without the upstream's count: the request's
 * size, or for token arrays (`[1, 2, 3]`, `[[1, 2], [3]]`) the number of tokens they hold.
 */
export function estimatedInputUsage(req: EmbeddingsRequest): Usage {
  return flagged(embeddingsTokens(req.input) ?? requestTokens(req), 0);
}

/** `counted`'s counts where it has them, the estimate (the request's size as input, `output()`) for the rest */
function estimated(req: ChatRequest, counted: Usage | null | undefined, output: () => number): Usage {
  const input = counted && isCount(counted.prompt_tokens) ? counted.prompt_tokens : requestTokens(req);
  const out = counted && isCount(counted.completion_tokens) ? counted.completion_tokens : output();
  // the upstream's cache counts (a part of input) stay
  return flagged(input, out, counted ?? undefined);
}

function flagged(input: number, output: number, counted?: Usage): Usage {
  const u: Usage = { ...counted, prompt_tokens: input, completion_tokens: output, total_tokens: input + output };
  estimates.add(u);
  return u;
}

const requestTokens = (req: ChatRequest | EmbeddingsRequest): number => estimateTokens(JSON.stringify(req).length);

/** The tokens an input of token arrays holds; undefined for text (validateEmbeddings: all of one kind). */
function embeddingsTokens(input: EmbeddingsRequest['input']): number | undefined {
  const inputs = inputsOf(input);
  if (typeof inputs[0] === 'string') return undefined;
  let n = 0;
  for (const x of inputs) n += x.length;
  return n;
}

function answerChars(c: ChatCompletion): number {
  let n = 0;
  for (const choice of Array.isArray(c.choices) ? c.choices : []) {
    const m = choice?.message;
    if (!m || typeof m !== 'object') continue;
    n += textChars(m.content) + textChars(reasoningText(m)) + textChars(m.refusal);
    for (const t of Array.isArray(m.tool_calls) ? m.tool_calls : []) n += textChars(t?.function?.name) + textChars(t?.function?.arguments);
  }
  return n;
}

/** a string's length, or the text parts' of a content array */
function textChars(v: unknown): number {
  if (typeof v === 'string') return v.length;
  if (!Array.isArray(v)) return 0;
  let n = 0;
  for (const p of v) if (p && typeof (p as { text?: unknown }).text === 'string') n += (p as { text: string }).text.length;
  return n;
}
