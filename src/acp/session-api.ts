/**
 * The task-session REST surface of the 2026-10 addendum (§6), transport-free: a session's events after a seq,
 * and a message posted at most once per `clientRequestId`. Served on `/api/v1/sessions/…` by
 * src/http/acp/sessions-route.ts.
 *
 * Both are built on the method table, so they behave as `xworkmate.tasks.get` and `session.message` do: a
 * virtual key reaches only the sessions it started, a session that lives on a bridge peer is followed there,
 * and the events are the session's update log (the same `seq`). What is added here is the idempotency of a
 * posted message: the `clientRequestId` is recorded in the session's record (`metadata.clientRequests`, the
 * newest CLIENT_REQUESTS_KEPT), claimed with a compare-and-set before the turn is queued, so a repeat, from
 * any instance sharing the store, answers with the original event and run and never runs the message again.
 */
import { mutateSession, type SessionStore } from '../sessions/store.js';
import type { Session } from '../sessions/model.js';
import { GatewayError, toGatewayError } from '../wire/errors.js';
import { clientRequestIdOf, invalidParams } from './params.js';
import type { Dispatch } from './methods.js';
import type { TurnRunner } from './turn-runner.js';

/** clientRequestIds remembered per session (older ones may run again if repeated) */
export const CLIENT_REQUESTS_KEPT = 100;
/** a claim without a run after this long was left by an instance that stopped: a repeat may take it over */
const CLAIM_STALE_MS = 60_000;
export const EVENTS_LIMIT_DEFAULT = 100;
export const EVENTS_LIMIT_MAX = 500;

/** One entry of a session's event list: a `session.update` of its log, typed by what it says. */
export interface RestEvent {
  seq: number;
  /** `run.<status event>` (run.queued, run.started, run.running, run.completed…), `message.delta`, `step.<event>`, `task.<phase>` */
  type: string;
  /** the update without the fields the envelope already names (sessionId, threadId, seq, type, event, at) */
  payload: Record<string, unknown>;
  /** when the gateway sent it (RFC 3339); null for updates logged before the gateway stamped them */
  createdAt: string | null;
}

export interface RestRun {
  runId: string;
  turnId: string;
  sessionId: string;
  threadId: string;
  status: string;
}

interface ClientRequest {
  claimedAt: number;
  event?: RestEvent;
  run?: RestRun;
}

/** A logged `session.update` as a REST event. */
export function restEvent(u: Record<string, unknown>): RestEvent {
  const { seq, at, type, event, sessionId: _s, threadId: _t, ...payload } = u;
  let kind: string;
  if (type === 'status') kind = `run.${String(event)}`;
  else if (type === 'task') kind = String(event);
  else if (type === 'delta') kind = 'message.delta';
  else if (type === 'step') kind = `step.${String(event)}`;
  else kind = String(type);
  return { seq: typeof seq === 'number' ? seq : 0, type: kind, payload, createdAt: typeof at === 'string' ? at : null };
}

export interface SessionApiDeps {
  dispatch: Dispatch;
  store: SessionStore;
  /** `assertReach`: FORBIDDEN when `caller` may not reach the session; with `watch`, the read it shares (record-read.ts) */
  runner: Pick<TurnRunner, 'assertReach' | 'watch' | 'unwatch'>;
}

export interface SessionApi {
  /** updates with seq > afterSeq, oldest first, at most `limit`; `lastEventSeq`: the session's highest seq */
  events(sessionId: string, afterSeq: number, limit: number, caller: string | undefined): Promise<{ events: RestEvent[]; lastEventSeq: number }>;
  /**
   * Queues `text` as the session's next turn and answers once it is queued (the turn runs on without the
   * request); `created` false when the clientRequestId was seen: the original event and the run's status now.
   */
  postMessage(
    sessionId: string,
    body: { clientRequestId: string; text: string },
    caller: string | undefined,
    trace?: string,
  ): Promise<{ created: boolean; event: RestEvent | null; run: RestRun }>;
}

/** The body of a POST …/messages: `{ clientRequestId, text }`, checked (INVALID_PARAMS naming the field). */
export function messageBody(value: unknown): { clientRequestId: string; text: string } {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new GatewayError('INVALID_REQUEST', 'the body must be a JSON object: { clientRequestId, text }');
  const p = value as Record<string, unknown>;
  const clientRequestId = clientRequestIdOf(p);
  if (typeof p.text !== 'string') throw invalidParams('text', 'text is required (a non-empty string)');
  return { clientRequestId, text: p.text };
}

const requestsOf = (s: Session): Record<string, ClientRequest> => {
  const v = s.metadata.clientRequests;
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, ClientRequest>) : {};
};

/** the session's clientRequests with `id` set to `entry` (undefined: removed), the newest CLIENT_REQUESTS_KEPT kept */
function withRequest(s: Session, id: string, entry: ClientRequest | undefined): Session {
  const { [id]: _old, ...rest } = requestsOf(s);
  const list = Object.entries(rest);
  if (entry) list.push([id, entry]);
  return { ...s, metadata: { ...s.metadata, clientRequests: Object.fromEntries(list.slice(-CLIENT_REQUESTS_KEPT)) } };
}

export function createSessionApi(deps: SessionApiDeps): SessionApi {
  // a virtual key's caller check reads the record: whether there is one is its answer, not a second read (shared
  // while nothing began or ended on the session in this process: record-read.ts)
  const exists = async (sessionId: string, caller: string | undefined) => {
    const seen = deps.runner.watch(sessionId);
    try {
      await deps.runner.assertReach(sessionId, caller, seen);
      if (!(await seen.get(() => deps.store.get(sessionId))))
        throw new GatewayError('SESSION_NOT_FOUND', `no session "${sessionId}"`, { details: { sessionId } });
    } finally {
      deps.runner.unwatch(seen);
    }
  };

  /** the run's status now (where the session lives); the recorded one when it cannot be read */
  const runNow = async (run: RestRun, caller: string | undefined): Promise<RestRun> => {
    try {
      const snap = (await deps.dispatch(
        { method: 'xworkmate.tasks.get', params: { sessionId: run.sessionId, runId: run.runId } },
        { notify: () => undefined, caller },
      )) as Record<string, unknown>;
      return typeof snap.status === 'string' ? { ...run, status: snap.status } : run;
    } catch {
      return run;
    }
  };

  return {
    async events(sessionId, afterSeq, limit, caller) {
      await exists(sessionId, caller);
      // the limit goes with the call, so a peer that runs the session answers one page (a bridge frame carries 16 MiB
      // at most); a peer that does not read it answers up to 1000, cut here
      const r = (await deps.dispatch({ method: 'xworkmate.tasks.get', params: { sessionId, afterSeq, limit } }, { notify: () => undefined, caller })) as {
        updates?: Array<Record<string, unknown>>;
        lastSeq?: number;
      };
      const updates = Array.isArray(r.updates) ? r.updates : [];
      return { events: updates.slice(0, limit).map(restEvent), lastEventSeq: typeof r.lastSeq === 'number' ? r.lastSeq : afterSeq };
    },

    async postMessage(sessionId, body, caller, trace) {
      await exists(sessionId, caller);
      const id = body.clientRequestId;
      // the claim: one compare-and-set on the record, so two posts of one id never both run (any instance)
      let prior: ClientRequest | undefined;
      const claim: ClientRequest = { claimedAt: Date.now() };
      await mutateSession(deps.store, sessionId, (s) => {
        prior = requestsOf(s)[id];
        if (prior && (prior.run || Date.now() - prior.claimedAt < CLAIM_STALE_MS)) return undefined;
        prior = undefined;
        return withRequest(s, id, claim);
      });
      if (prior?.run) return { created: false, event: prior.event ?? null, run: await runNow(prior.run, caller) };
      if (prior) {
        throw new GatewayError('REQUEST_IN_PROGRESS', `a message with clientRequestId "${id}" is being queued: repeat the request in a moment`, {
          retryAfterSec: 1,
          details: { sessionId, clientRequestId: id },
        });
      }

      // the turn's first update (a `queued` status carrying the id) answers the request; the turn runs on
      let first: ((u: Record<string, unknown>) => void) | undefined;
      const firstUpdate = new Promise<Record<string, unknown>>((resolve) => (first = resolve));
      const turn = deps.dispatch(
        { method: 'session.message', params: { sessionId, taskPrompt: body.text } },
        {
          notify: (method, params) => {
            if (method === 'session.update' && typeof params.runId === 'string') first?.(params);
          },
          caller,
          trace,
          queued: { clientRequestId: id },
        },
      );
      let update: Record<string, unknown> | undefined;
      let result: Record<string, unknown> | undefined;
      try {
        const won = await Promise.race([firstUpdate.then((u) => ({ u })), turn.then((r) => ({ r: r as Record<string, unknown> }))]);
        if ('u' in won) update = won.u;
        else result = won.r;
      } catch (err) {
        // nothing was queued: the id is free again, so the client may repeat it
        await mutateSession(deps.store, sessionId, (s) => (requestsOf(s)[id]?.claimedAt === claim.claimedAt ? withRequest(s, id, undefined) : undefined)).catch(
          () => undefined,
        );
        const e = toGatewayError(err);
        // the prompt's checks name the method's param: here it is `text`
        if (e.param === 'taskPrompt') throw invalidParams('text', e.message.replaceAll('taskPrompt', 'text'));
        throw e;
      }
      turn.catch(() => undefined); // its failure is the run's status, read through the events or tasks.get
      const src = update ?? result ?? {};
      const str = (v: unknown, def: string) => (typeof v === 'string' ? v : def);
      const run: RestRun = {
        runId: str(src.runId, ''),
        turnId: str(src.turnId, ''),
        sessionId,
        threadId: str(src.threadId, sessionId),
        status: str(src.status, 'queued'),
      };
      const event = update ? restEvent(update) : null;
      await mutateSession(deps.store, sessionId, (s) => withRequest(s, id, { claimedAt: claim.claimedAt, ...(event ? { event } : {}), run })).catch(
        () => undefined,
      );
      return { created: true, event, run };
    },
  };
}
