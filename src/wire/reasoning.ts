/**
 * The model's reasoning text in a chat-form message or stream delta: OpenAI-compatible servers name it
 * `reasoning_content` or `reasoning`, and the first wins. Every translator reads it through here, so the rule
 * lives in one place. Undefined when absent, empty or not a string.
 */
export function reasoningText(m: Readonly<Record<string, unknown>> | undefined): string | undefined {
  const r = m?.reasoning_content ?? m?.reasoning;
  return typeof r === 'string' && r !== '' ? r : undefined;
}
