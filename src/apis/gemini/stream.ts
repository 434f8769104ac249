/**
 * Internal chat chunks → Gemini `streamGenerateContent` chunks (each a GenerateContentResponse), chunk by
 * chunk: every text or reasoning delta is one chunk with one part. Gemini sends a function call whole
 * (`args` is an object), so a tool call's argument pieces are collected until the answer finishes and go
 * out in the final chunk, with finishReason and usageMetadata (the upstream's counts). The caller frames
 * each chunk: `data: <json>\r\n\r\n` for alt=sse, elements of one JSON array otherwise.
 */
import type { ChatCompletionChunk, FinishReason, Usage } from '../../wire/openai.js';
import { callPart, toFinishReason, toUsageMetadata } from './response.js';
import { reasoningText } from '../../wire/reasoning.js';

export class GeminiStreamWriter {
  private readonly calls = new Map<number, { id: string; name: string; args: string }>();
  private finish: FinishReason | undefined;
  private usage: Usage | undefined;
  private id = '';

  constructor(
    private readonly model: string,
    private readonly estimateIn: number,
  ) {}

  /** the chunks (as JSON texts) this chat chunk becomes; usually 0 or 1 */
  chunk(c: ChatCompletionChunk): string[] {
    if (c.usage) this.usage = c.usage;
    if (typeof c.id === 'string' && c.id) this.id = c.id;
    const choice = c.choices?.[0];
    if (!choice) return [];
    const d = choice.delta ?? {};
    const parts: Array<Record<string, unknown>> = [];
    const reasoning = reasoningText(d);
    if (reasoning) parts.push({ text: reasoning, thought: true });
    if (typeof d.content === 'string' && d.content) parts.push({ text: d.content });
    for (const tc of d.tool_calls ?? []) {
      let call = this.calls.get(tc.index);
      if (!call) this.calls.set(tc.index, (call = { id: tc.id ?? `call_${tc.index}`, name: tc.function?.name ?? '', args: '' }));
      if (tc.function?.arguments) call.args += tc.function.arguments;
    }
    if (choice.finish_reason) this.finish = choice.finish_reason;
    return parts.length ? [this.frame(parts)] : [];
  }

  /** the final chunk: collected function calls, finishReason, usageMetadata */
  end(): string {
    const parts = [...this.calls.values()].map((c) => callPart({ id: c.id, function: { name: c.name, arguments: c.args } }));
    return JSON.stringify({
      candidates: [{ content: { role: 'model', parts: parts.length ? parts : [{ text: '' }] }, finishReason: toFinishReason(this.finish), index: 0 }],
      usageMetadata: toUsageMetadata(this.usage, this.estimateIn),
      modelVersion: this.model,
      responseId: this.id,
    });
  }

  private frame(parts: Array<Record<string, unknown>>): string {
    return JSON.stringify({ candidates: [{ content: { role: 'model', parts }, index: 0 }], modelVersion: this.model, responseId: this.id });
  }
}
