/**
 * Graceful stop (SIGTERM/SIGINT, `Gateway.close`), in this order so nothing in flight is cut:
 * 1. drain: /readyz says draining, new /v1 requests get 503 SHUTTING_DOWN with Retry-After, new ACP turns
 *    are refused, new bridge links are refused; the listener stays open so clients get that answer;
 * 2. peers are told we share nothing (bridge-channels) and route away at once;
 * 3. with `gateway.shutdown.drainSessionsTo`, every open session this gateway owns moves to that peer
 *    (running turns are waited for, like `switchyard sessions drain`; each transfer until the deadline, at least 1 s);
 * 4. in-flight HTTP requests and streams, running ACP turns and requests on the links finish, up to
 *    `gateway.shutdownGraceMs` from the start (a response whose end is written but whose client reads nothing of it
 *    for 1 s is cut meanwhile: src/http/unread.ts);
 * 5. links close with 4000 "gateway shutting down" and `/acp` WebSockets with 1001, then the listener closes
 *    (whatever is left is cut, the sockets node's HTTP layer does not track included: upgraded or refused ones,
 *    HTTPS connections still in their handshake);
 * 6. the ACP layer (its last session writes, its subscriptions and a retention run under way by the deadline), the upstream pools, the keys (pending usage records,
 *    those of the requests cut at the deadline included, written by the deadline; then the limiter and key store), the store (a Redis that does not answer QUIT is disconnected after 1 s) and tracing
 *    (pending spans exported by the deadline) close (closeParts: the same sequence a start that fails part-way
 *    runs; one that fails is logged). A client, a peer, a trace collector or a Redis that stops answering holds
 *    the stop for a bounded time past the deadline, not for ever (test/ops/regression-stop-*).
 */
import type { Config } from './config/schema.js';
import type { BridgeMesh } from './bridge/mesh.js';
import type { HttpServer } from './http/server.js';
import type { SessionStore } from './sessions/store.js';
import type { Logger } from './util/log.js';
import { settledWithin } from './util/settled-within.js';

export interface StopParts {
  config: Config;
  gatewayId: string;
  http: HttpServer;
  mesh: BridgeMesh;
  acp: { drain(graceMs: number): Promise<void> };
  store: SessionStore;
  logger: Logger;
  onDraining(): void;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/** Resolves with the stop's deadline (epoch ms), which the rest of the stop (the final usage write) shares. */
export async function gracefulStop(p: StopParts): Promise<number> {
  const graceMs = p.config.gateway.shutdownGraceMs;
  const deadline = Date.now() + graceMs;
  const left = () => Math.max(0, deadline - Date.now());
  p.onDraining();
  p.http.drain();
  p.mesh.drain();
  const turns = p.acp.drain(left());
  p.logger.info('graceful stop: draining', { graceMs, inflight: p.http.inflightRequests });
  const target = p.config.gateway.shutdown.drainSessionsTo;
  if (target) await drainSessions(p, target, left);
  while (left() > 0 && (p.http.inflightRequests > 0 || !p.mesh.idle())) await sleep(25);
  await settledWithin(turns, left());
  const cut = p.http.inflightRequests;
  if (cut > 0) p.logger.warn('graceful stop: grace period over, cutting requests still in flight', { inflight: cut });
  return deadline;
}

async function drainSessions(p: StopParts, target: string, left: () => number): Promise<void> {
  const peer = p.mesh.resolvePeer(target);
  if (!peer || !p.mesh.transfers) {
    p.logger.warn('graceful stop: cannot drain sessions, peer not connected', { drainSessionsTo: target });
    return;
  }
  let sessions: Awaited<ReturnType<SessionStore['list']>>;
  try {
    // the open sessions this gateway owns: the others (closed, moved, another instance's) are not read. Bounded by
    // the deadline: a store connected but not answering (a Redis stopped) would hold the list, and the stop, for ever
    const listing = Promise.all([p.store.list({ owner: p.gatewayId, status: 'active' }), p.store.list({ owner: p.gatewayId, status: 'running' })]).then(
      ([active, running]) => [...active, ...running],
    );
    if (!(await settledWithin(listing, left()))) throw new Error('the store did not answer before the grace period ended');
    sessions = await listing;
  } catch (err) {
    // the store is out of reach (a Redis gone, or not answering): the sessions stay where they are stored, and the
    // stop goes on
    p.logger.warn('graceful stop: cannot drain sessions, the store did not list them', {
      drainSessionsTo: target,
      error: String((err as Error)?.message ?? err),
    });
    return;
  }
  const mine = sessions.filter((s) => s.ownerGatewayId === p.gatewayId && (s.status === 'active' || s.status === 'running'));
  p.logger.info('graceful stop: moving sessions', { to: target, sessions: mine.length });
  let moved = 0;
  let stayed = 0;
  for (const s of mine) {
    if (left() <= 0) break;
    // bounded by the deadline (at least 1 s, as the transfer's offer is) whatever the transfer waits for: its
    // store reads and writes do not follow its timeoutMs, so a store that froze after the list held it for ever
    const transfer = p.mesh.transfers.transfer(s.id, peer.peer.id, { whenRunning: 'wait', timeoutMs: left() });
    if (!(await settledWithin(transfer, Math.max(1000, left())))) {
      stayed++;
      // it may have got as far as the offer: the next start settles who owns it (reconcile, ensureOwned)
      p.logger.warn('graceful stop: session transfer not finished by the deadline, the store or the peer did not answer', {
        sessionId: s.id,
      });
      break;
    }
    try {
      await transfer;
      moved++;
    } catch (err) {
      stayed++;
      p.logger.warn('graceful stop: session stayed here', { sessionId: s.id, error: String((err as Error)?.message ?? err) });
    }
  }
  p.logger.info('graceful stop: sessions drained', { to: target, moved, stayed, notTried: mine.length - moved - stayed });
}

/** One part a gateway opened, by the name its close failure is logged under, and how to close it. */
export type ClosePart = readonly [part: string, close: () => Promise<unknown>];

/**
 * A gateway's parts in the order a stop closes them: the links and the `/acp` WebSockets before the listener (peers
 * hear "shutting down" first, apps "going away"; the listener's close waits for every socket it accepted), the listener before what requests use, the keys (their last usage write) before the store.
 */
const CLOSE_ORDER = ['bridge', 'acp-sockets', 'http', 'acp', 'providers', 'keys', 'store', 'obs'] as const;
export type PartName = (typeof CLOSE_ORDER)[number];

/**
 * What a starting gateway has opened so far. Each part is added once it is open, so a start that fails at any step
 * (the store, the gateway id, the keys, the listen, ...) closes exactly what it opened, and a stop closes all of it,
 * by the one sequence (closeParts) in the stop's order whichever order they were opened in.
 */
export class OpenedParts {
  private readonly closers = new Map<PartName, (deadline?: number) => Promise<unknown>>();
  constructor(private readonly logger: Logger) {}

  /** `close` gets the stop's deadline (epoch ms), if any: the key store's last usage write is bounded by it */
  add(part: PartName, close: (deadline?: number) => Promise<unknown>): void {
    this.closers.set(part, close);
  }

  close(deadline?: number): Promise<void> {
    const parts: ClosePart[] = [];
    for (const part of CLOSE_ORDER) {
      const close = this.closers.get(part);
      if (close) parts.push([part, () => close(deadline)]);
    }
    return closeParts(parts, this.logger);
  }
}

/**
 * Closes `parts` one after the other, in the order given: the one close sequence of a gateway, for a stop
 * (`Gateway.close`, after the graceful drain) and for a start that failed part-way (OpenedParts). A part whose close fails does
 * not keep the parts after it open: the failure is logged (the part's name and the error's message, scrubbed as
 * every log line is) and the next part is closed. Never rejects.
 */
export async function closeParts(parts: readonly ClosePart[], logger: Logger): Promise<void> {
  for (const [part, close] of parts) {
    try {
      await close();
    } catch (err) {
      logger.error('closing a part of the gateway failed; the other parts are closed all the same', {
        part,
        error: String((err as Error)?.message ?? err),
      });
    }
  }
}
