/**
 * Internal chat completion → Gemini GenerateContentResponse, plus the pieces the stream writer shares.
 * Pure. finish_reason stop / tool_calls → STOP, length → MAX_TOKENS, content_filter → SAFETY. Reasoning is a
 * `thought: true` text part. usageMetadata holds the upstream's counts (a reported 0 included); the prompt is
 * estimated (and the output is 1) when the upstream gave no counts, or for the side its usage leaves without a
 * number (shownCounts). `thoughtsTokenCount` is the upstream's reasoning tokens, and `candidatesTokenCount` the
 * output without them, as Gemini counts (`totalTokenCount` = prompt + candidates + thoughts).
 */
import { shownCounts, type ChatCompletion, type FinishReason, type ToolCall, type Usage } from '../../wire/openai.js';
import { reasoningText } from '../../wire/reasoning.js';

export function toFinishReason(f: FinishReason | undefined): string {
  if (f === 'length') return 'MAX_TOKENS';
  if (f === 'content_filter') return 'SAFETY';
  return 'STOP';
}

export function toUsageMetadata(u: Usage | null | undefined, estimateIn: number): Record<string, number> {
  const shown = shownCounts(u);
  const prompt = shown?.input ?? estimateIn;
  const out = shown?.output ?? 1;
  const m: Record<string, number> = { promptTokenCount: prompt, candidatesTokenCount: out, totalTokenCount: prompt + out };
  const cached = u?.prompt_tokens_details?.cached_tokens;
  if (cached) m.cachedContentTokenCount = cached;
  const thoughts = (u?.completion_tokens_details as { reasoning_tokens?: unknown } | undefined)?.reasoning_tokens;
  if (typeof thoughts === 'number' && thoughts > 0) {
    m.thoughtsTokenCount = thoughts;
    // a chat upstream's completion_tokens include its reasoning; Gemini counts thoughts apart from the candidates
    // (totalTokenCount = prompt + candidates + thoughts), so a client adding them up counted the reasoning twice
    if (shown?.output !== undefined) m.candidatesTokenCount = Math.max(0, out - thoughts);
  }
  return m;
}

/**
 * A tool call as a `functionCall` part. Its `args` is an object (a protobuf Struct): blank arguments are `{}`, a
 * JSON object is itself, and anything else goes whole as `{"input": <text>}`: plain text, JSON that is no object
 * (`["a.txt"]`, `"Paris"`, `5`, which reached the client as a non-object `args`), and arguments that open as an
 * object and then break or never close, whatever the stop (nothing dropped: docs/apis.md, Gemini "Tool arguments").
 */
export function callPart(tc: Pick<ToolCall, 'id'> & { function: { name: string; arguments: string } }): Record<string, unknown> {
  const text = tc.function.arguments;
  let args: unknown;
  try {
    args = text.trim() ? JSON.parse(text) : {};
  } catch {
    args = undefined;
  }
  if (!args || typeof args !== 'object' || Array.isArray(args)) args = { input: text };
  return { functionCall: { id: tc.id, name: tc.function.name, args } };
}

export function toGeminiResponse(c: ChatCompletion, model: string, estimateIn: number): Record<string, unknown> {
  const choice = c.choices[0];
  const m = choice?.message;
  const parts: Array<Record<string, unknown>> = [];
  const reasoning = reasoningText(m);
  if (reasoning) parts.push({ text: reasoning, thought: true });
  if (typeof m?.content === 'string' && m.content) parts.push({ text: m.content });
  for (const tc of m?.tool_calls ?? []) parts.push(callPart(tc));
  return {
    candidates: [{ content: { role: 'model', parts }, finishReason: toFinishReason(choice?.finish_reason ?? 'stop'), index: 0 }],
    usageMetadata: toUsageMetadata(c.usage, estimateIn),
    modelVersion: model,
    // an upstream id that is not a string is none: Google's responseId is a string
    ...(typeof c.id === 'string' && c.id ? { responseId: c.id } : {}),
  };
}
