import { randomBytes, randomUUID } from 'node:crypto';

/** short random id with a prefix: `req_3f9a…` */
export function newId(prefix: string, bytes = 12): string {
  return `${prefix}_${randomBytes(bytes).toString('hex')}`;
}

/**
 * An id in the form of OpenAI's chat completion ids (`chatcmpl-` and 24 hex digits), for an answer the gateway
 * builds whose upstream gave it none (Ollama never does; an Anthropic-compatible server may leave its out).
 */
export function chatCompletionId(): string {
  return `chatcmpl-${randomBytes(12).toString('hex')}`;
}

const PROCESS_TAG = randomBytes(5).toString('hex');
let counter = 0;

/**
 * A cheap id that is unique, not unpredictable: a random per-process tag plus a counter (`req_9f3a1c2b4e_1k`).
 * For request and forward ids on the hot path; use newId where an id must not be guessable.
 */
export function seqId(prefix: string): string {
  counter = (counter + 1) % Number.MAX_SAFE_INTEGER;
  return `${prefix}_${PROCESS_TAG}_${counter.toString(36)}`;
}

export function uuid(): string {
  return randomUUID();
}
