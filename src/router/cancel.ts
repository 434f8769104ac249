/**
 * The cancellation of one routed request, with no abort of its own. The router makes one `Abort` per attempt
 * anyway (a first-byte timeout must abort that attempt alone so the next one can start), and registers it
 * here; the client going away or the request's deadline aborts the current attempt and any later one. Against
 * a request-wide abort linked into each attempt's, this saves an object and a listener pair per request on
 * the hot path (docs/benchmarks.md).
 *
 * Callers that already hold an AbortSignal (bridge serving, ACP chat tasks) pass `RouteOptions.signal`
 * instead; the router links it into each attempt the old way.
 */
import type { ServerResponse } from 'node:http';
import type { Abort } from '../util/abort.js';

export class RequestCancel {
  /** the client went away or the deadline passed: no attempt may run any more */
  cancelled = false;
  /** it was the deadline (then any error is UPSTREAM_TIMEOUT) */
  timedOut = false;
  private current: Abort | undefined;

  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.current?.abort();
  }

  timeout(): void {
    this.timedOut = true;
    this.cancel();
  }

  /** @internal router: the abort of the attempt now running (aborted at once when already cancelled) */
  attach(ac: Abort): void {
    this.current = ac;
    if (this.cancelled) ac.abort();
  }

  /** @internal router: that attempt ended */
  detach(ac: Abort): void {
    if (this.current === ac) this.current = undefined;
  }
}

/**
 * A RequestCancel for an HTTP request: cancelled when the client closes the connection before the response
 * finished, timed out at `timeoutMs`. `dispose` when the response is done (idempotent).
 */
export function cancelOnClose(res: ServerResponse, timeoutMs: number): { cancel: RequestCancel; dispose: () => void } {
  const cancel = new RequestCancel();
  const onClose = () => {
    if (!res.writableFinished) cancel.cancel();
  };
  // 'close' comes once, and dispose() removes the listener: `on` spares the wrapper `once` allocates
  res.on('close', onClose);
  const timer = setTimeout(() => cancel.timeout(), timeoutMs);
  return {
    cancel,
    dispose: () => {
      clearTimeout(timer);
      res.off('close', onClose);
    },
  };
}
