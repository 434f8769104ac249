/**
 * Parts of a client's body the chat form has no place for (an Anthropic server tool or `document` block, a
 * Responses item type such as `computer_call`). A strict translation refuses them (UNSUPPORTED, naming the
 * part). A lenient one, run for a request that may go natively (src/wire/native.ts), leaves them out of the
 * chat form and keeps the first refusal: the router then sends the request only to a channel that takes the
 * client's API natively, and fails it with that refusal when there is none.
 *
 * The translators are synchronous and never re-entered, so the collector of the translation under way is
 * held here rather than passed through every helper.
 */
import { GatewayError } from '../../wire/errors.js';

/** What a lenient translation left out: the first refusal, if any. */
export interface Untranslatable {
  first?: GatewayError;
}

let current: Untranslatable | undefined;

/** Runs `translate` leniently when `collector` is given, strictly otherwise. */
export function leniently<T>(collector: Untranslatable | undefined, translate: () => T): T {
  current = collector;
  try {
    return translate();
  } finally {
    current = undefined;
  }
}

/** A part with no place in the chat form: throws UNSUPPORTED, or (lenient) records it for the caller to leave out. */
export function untranslatable(param: string, message: string): void {
  const e = new GatewayError('UNSUPPORTED', message, { param });
  if (!current) throw e;
  current.first ??= e;
}

/** Whether a lenient translation has left something out so far. */
export function leftOut(): boolean {
  return current?.first !== undefined;
}
