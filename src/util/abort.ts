/**
 * One attempt's cancellation without an AbortController. What the code below the router (providers, the
 * upstream client, bridge forwarding, the mock) uses of an AbortSignal is `aborted`, `reason` and an 'abort'
 * listener; `CancelSignal` is that subset, so an AbortSignal is one (callers that hold a real signal pass it
 * as it is) and so is `Abort`, which the router makes per attempt. An AbortController builds an EventTarget,
 * an AbortSignal and their internal state: measured at ~5 % of a non-streaming request's CPU
 * (docs/benchmarks.md), for one event that fires at most once and usually never.
 */

export interface CancelSignal {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/**
 * A one-shot abort: `abort()` sets `aborted` and `reason` (an AbortError DOMException by default, as
 * AbortController's) and calls each listener once, in the order added. A listener added after the abort is
 * never called (as with EventTarget); unlike EventTarget, adding the same function twice calls it twice.
 */
export class Abort implements CancelSignal {
  aborted = false;
  reason: unknown = undefined;
  // almost always zero or one listener (the upstream request's), so no array until a second one
  private first: (() => void) | undefined;
  private rest: Array<() => void> | undefined;

  /** this object, as the signal handed to the attempt (mirrors AbortController.signal) */
  get signal(): CancelSignal {
    return this;
  }

  abort(reason?: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason ?? new DOMException('This operation was aborted', 'AbortError');
    const first = this.first;
    const rest = this.rest;
    this.first = undefined;
    this.rest = undefined;
    if (first) call(first);
    if (rest) for (const fn of rest) call(fn);
  }

  addEventListener(_type: 'abort', listener: () => void): void {
    if (this.aborted) return;
    if (this.first === undefined) this.first = listener;
    else (this.rest ??= []).push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    if (this.first === listener) this.first = undefined;
    else if (this.rest) {
      const i = this.rest.indexOf(listener);
      if (i !== -1) this.rest.splice(i, 1);
    }
  }
}

// a throwing listener neither stops the others nor reaches the caller of abort(): it is reported the way
// EventTarget reports it, as an uncaught exception on a later tick
function call(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    process.nextTick(() => {
      throw err;
    });
  }
}
