/**
 * The permission relay (addendum 2026-10 §5, issue 12 item 4). An ACP agent's `session/request_permission`
 * becomes a prompt the app answers: a `task.permission_requested` update, an entry in
 * `xworkmate.permissions.list`, answered with `xworkmate.permissions.respond`.
 *
 * - A prompt is `{ requestId:"perm-<32 hex>", sessionId, turnId, createdAt, toolCall, options }`; it is kept
 *   in the session record (`metadata.pendingPermissions`, with the holder that asked) while pending, so it is
 *   listed from any instance, survives a restart and travels with a transfer.
 * - Once resolved, its id joins the record's last DECIDED_IN_RECORD decided ids (`metadata.decidedPermissions`):
 *   a late or second answer gets PERMISSION_ALREADY_DECIDED on any instance and after a restart, not NOT_FOUND.
 * - Resolved by: an offered option (reason `user`), `decision:"cancel"` (`user`), `session.cancel` or the turn
 *   ending otherwise (`run_cancelled`), no answer within `acp.permissionTimeoutMs` (`timeout`, default 10 min), or
 *   the agent going away (`run_cancelled`). An option the agent did not offer is refused
 *   (PERMISSION_OPTION_NOT_OFFERED) and the prompt stays pending. Each resolution is a
 *   `task.permission_resolved` update carrying the prompt, `outcome` and `reason`.
 * - After a restart the agent process is gone: prompts its previous life left pending are resolved as cancelled
 *   with reason `gateway_restarted`, recorded as a task event.
 * - An answer that reaches an instance other than the one running the turn (Redis) is passed on over the
 *   store's pub/sub.
 */
import { PerKeyQueue } from '../util/per-key-queue.js';
import { randomBytes } from 'node:crypto';
import { GatewayError } from '../wire/errors.js';
import { mutateSession, type SessionStore } from '../sessions/store.js';
import type { Session } from '../sessions/model.js';
import type { Logger } from '../util/log.js';
import type { PermissionOutcome, PermissionRequest } from './runtime.js';

export const DEFAULT_PERMISSION_TIMEOUT_MS = 10 * 60_000;
const CHANNEL = 'acp.permission';
/** resolved request ids this process remembers (any session), in memory */
const DECIDED_KEEP = 1000;
/** resolved request ids a session's record keeps (`metadata.decidedPermissions`), so every instance knows them */
export const DECIDED_IN_RECORD = 64;

export interface PermissionPrompt {
  requestId: string;
  sessionId: string;
  turnId: string;
  createdAt: string;
  toolCall: Record<string, unknown>;
  options: Array<{ optionId: string; name: string; kind: string }>;
}

export type ResolveReason = 'user' | 'run_cancelled' | 'timeout' | 'gateway_restarted';
export type Answer = { optionId: string } | { decision: 'cancel' };

/** What the broker tells the runner: a prompt was raised, or resolved (to become task events). */
export interface PermissionEvents {
  requested(p: PermissionPrompt): void;
  resolved(p: PermissionPrompt, outcome: PermissionOutcome, reason: ResolveReason): void;
}

interface Pending {
  prompt: PermissionPrompt;
  settle(outcome: PermissionOutcome, reason: ResolveReason): void;
}

type Stored = PermissionPrompt & { holder: string };

const storedOf = (s: Session | undefined): Stored[] => (Array.isArray(s?.metadata.pendingPermissions) ? (s.metadata.pendingPermissions as Stored[]) : []);
const decidedOf = (s: Session | undefined): string[] => (Array.isArray(s?.metadata.decidedPermissions) ? (s.metadata.decidedPermissions as string[]) : []);
/** `s`'s metadata with `pending` as its open prompts and `resolved` added to its decided ids (the newest kept) */
const withPrompts = (s: Session, pending: Stored[], resolved: string[]): Session['metadata'] =>
  resolved.length === 0
    ? { ...s.metadata, pendingPermissions: pending }
    : { ...s.metadata, pendingPermissions: pending, decidedPermissions: [...decidedOf(s), ...resolved].slice(-DECIDED_IN_RECORD) };
const publicOf = ({ holder: _h, ...p }: Stored): PermissionPrompt => p;
const err = (
  code: 'PERMISSION_REQUEST_NOT_FOUND' | 'PERMISSION_SESSION_MISMATCH' | 'PERMISSION_OPTION_NOT_OFFERED' | 'PERMISSION_ALREADY_DECIDED',
  details: Record<string, unknown>,
) => new GatewayError(code, code, { details });

/** Prompts one session may hold open at once; an agent asking for more gets `cancelled`. */
export const MAX_OPEN_PROMPTS = 16;
/** A prompt (tool call, options) larger than this, as JSON, is not relayed: `cancelled`. */
export const MAX_PROMPT_CHARS = 64 * 1024;

export class PermissionBroker {
  /** prompts open (or being stored) per session: MAX_OPEN_PROMPTS */
  private readonly openBySession = new Map<string, number>();
  /** the last write of each session's stored prompts (store): the next one follows it */
  private readonly writes = new PerKeyQueue();
  private readonly pending = new Map<string, Pending>();
  private readonly decided = new Set<string>();
  private unsubscribe: (() => Promise<void>) | undefined;

  constructor(private readonly o: { store: SessionStore; holder: string; timeoutMs: number; logger: Logger }) {}

  /** Listens for answers other instances pass on to prompts raised here. */
  async listen(): Promise<void> {
    this.unsubscribe = await this.o.store.subscribe(CHANNEL, (msg) => {
      const m = msg as { holder?: unknown; requestId?: unknown; sessionId?: unknown; answer?: unknown };
      if (m?.holder !== this.o.holder || typeof m.requestId !== 'string' || typeof m.sessionId !== 'string') return;
      try {
        this.answerLocal(m.sessionId, m.requestId, m.answer as Answer);
      } catch {
        // validated by the instance that took the answer; a late one is dropped
      }
    });
  }

  async close(): Promise<void> {
    await this.unsubscribe?.().catch(() => undefined);
    for (const p of [...this.pending.values()]) p.settle({ outcome: 'cancelled' }, 'run_cancelled');
  }

  /**
   * Raises a prompt for the agent's request and resolves with the app's answer (or cancelled). `signal` aborts
   * it as `run_cancelled` (turn cancelled, agent gone).
   */
  async ask(ids: { sessionId: string; turnId: string }, req: PermissionRequest, signal: AbortSignal, events: PermissionEvents): Promise<PermissionOutcome> {
    const prompt: PermissionPrompt = {
      requestId: `perm-${randomBytes(16).toString('hex')}`,
      sessionId: ids.sessionId,
      turnId: ids.turnId,
      createdAt: new Date().toISOString(),
      toolCall: req.toolCall,
      options: req.options.map((x) => ({ optionId: x.optionId, name: x.name, kind: x.kind })),
    };
    if (signal.aborted) return { outcome: 'cancelled' };
    // an agent's prompts are bounded: in number per session (each one is stored and shown to the app) and in
    // size; past either the agent is answered `cancelled` at once, and the app is not asked
    // counted before the first await: requests arriving together each see the ones before them
    const open = this.openBySession.get(ids.sessionId) ?? 0;
    if (open >= MAX_OPEN_PROMPTS || JSON.stringify(prompt).length > MAX_PROMPT_CHARS) {
      this.o.logger.warn('agent permission request refused: too many open, or too large', { sessionId: ids.sessionId, open });
      return { outcome: 'cancelled' };
    }
    this.openBySession.set(ids.sessionId, open + 1);
    const release = () => {
      const n = (this.openBySession.get(ids.sessionId) ?? 1) - 1;
      if (n > 0) this.openBySession.set(ids.sessionId, n);
      else this.openBySession.delete(ids.sessionId);
    };
    try {
      await this.store(ids.sessionId, (list) => [...list, { ...prompt, holder: this.o.holder }]);
    } catch (err) {
      release();
      throw err;
    }
    return new Promise<PermissionOutcome>((resolve) => {
      const onAbort = () => settle({ outcome: 'cancelled' }, 'run_cancelled');
      const timer = setTimeout(() => settle({ outcome: 'cancelled' }, 'timeout'), this.o.timeoutMs);
      timer.unref?.();
      const settle = (outcome: PermissionOutcome, reason: ResolveReason) => {
        if (!this.pending.delete(prompt.requestId)) return;
        release();
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.remember(prompt.requestId);
        void this.store(ids.sessionId, (list) => list.filter((x) => x.requestId !== prompt.requestId), [prompt.requestId]);
        // a failing listener (it runs from a timer too) must neither keep the agent waiting nor end the process
        try {
          events.resolved(prompt, outcome, reason);
        } catch (err) {
          this.o.logger.warn('permission_resolved could not be sent', { sessionId: ids.sessionId, error: String(err) });
        }
        resolve(outcome);
      };
      this.pending.set(prompt.requestId, { prompt, settle });
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        events.requested(prompt);
      } catch (err) {
        this.o.logger.warn('permission_requested could not be sent: the prompt is cancelled', { sessionId: ids.sessionId, error: String(err) });
        settle({ outcome: 'cancelled' }, 'run_cancelled');
      }
      // aborted while the prompt was being stored (its turn ended meanwhile): the abort event has passed
      if (signal.aborted) settle({ outcome: 'cancelled' }, 'run_cancelled');
    });
  }

  /** `xworkmate.permissions.respond`. */
  async respond(sessionId: string, requestId: string, answer: Answer): Promise<{ accepted: true; requestId: string }> {
    if (this.pending.has(requestId)) {
      this.answerLocal(sessionId, requestId, answer);
      return { accepted: true, requestId };
    }
    if (this.decided.has(requestId)) throw err('PERMISSION_ALREADY_DECIDED', { requestId });
    // raised by another instance sharing the store: check it there, pass the answer on
    const rec = await this.o.store.get(sessionId);
    const stored = storedOf(rec).find((x) => x.requestId === requestId);
    // resolved by another instance, or before a restart: the record keeps the session's last decided ids
    if (!stored && decidedOf(rec).includes(requestId)) throw err('PERMISSION_ALREADY_DECIDED', { requestId });
    if (!stored) throw err('PERMISSION_REQUEST_NOT_FOUND', { requestId, sessionId });
    check(stored, sessionId, answer);
    await this.o.store.publish(CHANNEL, { holder: stored.holder, requestId, sessionId, answer });
    return { accepted: true, requestId };
  }

  /**
   * `xworkmate.permissions.list`: a session's prompts (from its record, whichever instance holds them); without
   * `sessionId`, the prompts pending on this process of the sessions `caller` started (their record's
   * `metadata.caller`; a session started with no caller is listed only to a call with none).
   */
  async list(sessionId: string | undefined, caller?: string): Promise<PermissionPrompt[]> {
    if (sessionId !== undefined) return this.listOf(await this.o.store.get(sessionId));
    const prompts = [...this.pending.values()].map((p) => p.prompt);
    const mine = new Map<string, boolean>();
    for (const id of new Set(prompts.map((p) => p.sessionId))) {
      const rec = await this.o.store.get(id);
      mine.set(id, rec !== undefined && rec.metadata.caller === caller);
    }
    return prompts.filter((p) => mine.get(p.sessionId) === true);
  }

  /** The prompts `rec` (a session's record, read by the caller) holds open: `list` of its session, without a read. */
  listOf(rec: Session | undefined): PermissionPrompt[] {
    return storedOf(rec).map(publicOf);
  }

  /**
   * Resolves once every write of the session's prompts made so far is in the store: a prompt's removal is written
   * before its `permission_resolved` event is raised, but in its own queue, which the event's write does not wait for.
   */
  settled(sessionId: string): Promise<void> {
    return this.writes.idle(sessionId);
  }

  /** session.cancel / close: every prompt of the session pending here resolves as cancelled. */
  cancelSession(sessionId: string): number {
    let n = 0;
    for (const p of [...this.pending.values()]) {
      if (p.prompt.sessionId !== sessionId) continue;
      p.settle({ outcome: 'cancelled' }, 'run_cancelled');
      n++;
    }
    return n;
  }

  /**
   * Prompts a dead process left in the record (its agent is gone): resolved as cancelled, reason
   * `gateway_restarted`. `dead(holder)` says whose prompts to resolve. Returns the resolved prompts.
   */
  async resolveOrphans(sessionId: string, dead: (holder: string) => boolean): Promise<PermissionPrompt[]> {
    let orphans: Stored[] = [];
    await mutateSession(this.o.store, sessionId, (s) => {
      const list = storedOf(s);
      orphans = list.filter((x) => dead(x.holder) && !this.pending.has(x.requestId));
      if (orphans.length === 0) return undefined;
      const resolved = orphans.map((x) => x.requestId);
      return {
        ...s,
        metadata: withPrompts(
          s,
          list.filter((x) => !orphans.includes(x)),
          resolved,
        ),
      };
    }).catch(() => undefined);
    for (const o of orphans) this.remember(o.requestId);
    return orphans.map(publicOf);
  }

  private answerLocal(sessionId: string, requestId: string, answer: Answer): void {
    const p = this.pending.get(requestId);
    if (!p) throw err(this.decided.has(requestId) ? 'PERMISSION_ALREADY_DECIDED' : 'PERMISSION_REQUEST_NOT_FOUND', { requestId });
    const optionId = check(p.prompt, sessionId, answer);
    p.settle(optionId !== undefined ? { outcome: 'selected', optionId } : { outcome: 'cancelled' }, 'user');
  }

  /**
   * Applies `change` to the session's stored prompts, and adds `resolved` to its decided ids. The broker's writes
   * to one session go one after the other: prompts raised together would otherwise race each other's
   * compare-and-set until one gave up.
   */
  private store(sessionId: string, change: (list: Stored[]) => Stored[], resolved: string[] = []): Promise<void> {
    return this.writes.run(sessionId, () =>
      mutateSession(this.o.store, sessionId, (s) => ({ ...s, metadata: withPrompts(s, change(storedOf(s)), resolved) })).then(
        () => undefined,
        (e: unknown) => this.o.logger.warn('pending permission could not be stored', { sessionId, error: String(e) }),
      ),
    );
  }

  private remember(requestId: string): void {
    this.decided.add(requestId);
    if (this.decided.size > DECIDED_KEEP) this.decided.delete(this.decided.values().next().value as string);
  }
}

/**
 * Checks an answer against its prompt; returns the option chosen, as the agent offered it (the answer's optionId
 * comes trimmed: an offered id is matched trimmed too), or undefined for `decision:"cancel"`.
 */
function check(p: PermissionPrompt, sessionId: string, answer: Answer): string | undefined {
  if (p.sessionId !== sessionId) throw err('PERMISSION_SESSION_MISMATCH', { requestId: p.requestId, sessionId });
  if (!('optionId' in answer)) return undefined;
  const offered = p.options.find((o) => o.optionId === answer.optionId) ?? p.options.find((o) => String(o.optionId).trim() === answer.optionId);
  if (!offered) throw err('PERMISSION_OPTION_NOT_OFFERED', { requestId: p.requestId, optionId: answer.optionId, offered: p.options.map((o) => o.optionId) });
  return offered.optionId;
}
