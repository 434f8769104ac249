/**
 * An embeddings answer held to its shape before it is passed on: one embedding per input, each a vector of
 * finite numbers (or base64 text, when asked for). The one check for an OpenAI-compatible upstream's answer
 * (src/providers/openai) and a bridge peer's (src/bridge/forwarding.ts).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../wire/errors.js';
import type { EmbeddingsRequest, EmbeddingsResponse } from '../wire/openai.js';
import { isObj } from '../util/is-object.js';
import { replyError } from './reported-error.js';

/** The inputs `input` holds, as OpenAI reads them: a string or one token array is one input, an array of either several. */
export function inputsOf(input: EmbeddingsRequest['input']): Array<string | number[]> {
  return !Array.isArray(input) || input.every((x) => typeof x === 'number') ? [input] : input;
}

/** How many embeddings `input` asks for (inputsOf). */
export function inputCount(input: EmbeddingsRequest['input']): number {
  return inputsOf(input).length;
}

export function checkedEmbeddings(out: unknown, req: EmbeddingsRequest, label: string, headers?: IncomingHttpHeaders): EmbeddingsResponse {
  const bad = (what: string) => new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${label}: embeddings reply ${what}`);
  // a 2xx body that is an error object is the error it reports (src/providers/reported-error.ts)
  if (!isObj(out) || !Array.isArray(out.data)) throw replyError(out, label, headers) ?? bad('has no data');
  const expected = inputCount(req.input);
  if (out.data.length !== expected) throw bad(`has ${out.data.length} embeddings for ${expected} inputs`);
  for (const d of out.data as unknown[]) {
    const e = isObj(d) ? d.embedding : undefined;
    const vector = typeof e === 'string' || (Array.isArray(e) && e.every((n) => typeof n === 'number' && Number.isFinite(n)));
    if (!vector) throw bad('has an embedding that is not a vector of numbers');
  }
  return out as unknown as EmbeddingsResponse;
}
