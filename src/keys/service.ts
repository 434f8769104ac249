/**
 * Keys, limits and usage for the whole gateway, behind three calls the transports make:
 *
 * - `authenticateClient(req) → Principal` — every inbound API surface (`/v1/*`, `/v1/messages`,
 *   `/v1/responses`, `/v1beta`) calls it first. It reads `Authorization: Bearer`, `x-api-key` or
 *   `x-goog-api-key`, accepts a virtual key (`sy-…`) or a static `gateway.auth.tokens` entry, and throws
 *   UNAUTHORIZED (401) for a missing, wrong, disabled or expired key, KEY_STORE_UNAVAILABLE (503, retryable)
 *   for a `sy-` secret not loaded while the key store cannot be read. With no static token and
 *   `auth.requireKey` false the surface is open (loopback only): anything else is let through as `open`,
 *   but a `sy-…` secret is still checked, so a key's limits apply when one is sent.
 * - `admit(principal, model, format) → Ticket` — after the body is parsed: MODEL_NOT_ALLOWED (403) for a
 *   model outside the key's globs, RATE_LIMITED / BUDGET_EXCEEDED (429 + Retry-After + rate-limit headers in
 *   `format`) when over a limit. `ticket.finish(...)` exactly once when the request ended: it settles the
 *   limits (awaited, so the next request sees the spend) and queues the usage record.
 * - `admitCount(principal, model, format) → Ticket` — the same for a token count, which spends nothing: only
 *   the key's models and request limits apply, and it leaves no usage record.
 * - `peerGate(peerId, channel, model)` — the bridge's serving side, for a peer's forward (see peer-gate.ts).
 */
import type { IncomingMessage } from 'node:http';
import type { Config } from '../config/schema.js';
import type { Logger } from '../util/log.js';
import { startRetention, type RetentionJob } from '../util/retention.js';
import { clientCredential, tokenMatches } from '../util/secret.js';
import { GatewayError } from '../wire/errors.js';
import { quotedName, type Usage } from '../wire/openai.js';
import { costOf, isEstimate, summarise, tokensOf, type Pricing, type UsageGroup } from '../usage/record.js';
import { UsageRecorder } from '../usage/recorder.js';
import { KeyCache } from './key-cache.js';
import type { BudgetCheck, Limiter } from './limiter.js';
import { rateLimitHeaders, refusal, type HeaderFormat } from './limit-error.js';
import { MemoryLimiter } from './memory-limiter.js';
import {
  createKeySchema,
  hashSecret,
  hintOf,
  KEY_SECRET_PREFIX,
  keySummary,
  modelAllowed,
  newKeyId,
  newSecret,
  periodOf,
  type Limits,
  type VirtualKey,
} from './model.js';
import type { KeyPage, KeyStore } from './store.js';
import { makePeerGate, type PeerGate } from './peer-gate.js';

/**
 * Who a request is: an open gateway, a static token, a virtual key, or an ACP agent's per-session model token
 * (its model traffic is recorded as `agent:<agentId>`, so `usage --by key` shows what each agent consumed;
 * or, for a session a key started, as that key's, under its models, limits and budget).
 */
export type Principal =
  | { kind: 'open' }
  | { kind: 'token' }
  | { kind: 'key'; key: VirtualKey }
  /** `keyId`: the session was started on /acp/rpc with that key, which its model traffic is billed to */
  | { kind: 'agent'; agentId: string; sessionId: string; keyId?: string | undefined };

export interface Finish {
  /** the public model name the client asked for */
  model: string;
  channel: string;
  /** set when a bridge peer served it */
  peer?: { id: string } | undefined;
  /**
   * the serving candidate's prices: a local channel's `channels[].pricing` as the routing table has it (a reload
   * replaces the candidate), a peer's from its announcement; absent: cost 0
   */
  pricing?: Pricing | undefined;
  /** the upstream's count, or the estimate charged without one (`isEstimate`: the record says so) */
  usage?: Usage | null | undefined;
  stream: boolean;
  /** false when the request failed; a failure with no usage is not recorded */
  ok: boolean;
}

export interface Ticket {
  /** settles the request's limits and records its usage; a promise only when a limiter must be told */
  finish(f: Finish): Promise<void> | void;
  /**
   * The key's rate-limit headers for the answer, in the admitting edge's format (`x-ratelimit-*`,
   * `anthropic-ratelimit-*`), as they stand after this request was admitted; absent when the key has no
   * per-minute limit (and for requests without a key).
   */
  readonly headers?: Readonly<Record<string, string>> | undefined;
}

export interface KeyServiceOptions {
  config: Config;
  store: KeyStore;
  limiter: Limiter;
  logger: Logger;
}

export class KeyService {
  readonly cache: KeyCache;
  readonly recorder: UsageRecorder;
  readonly peerGate: PeerGate;
  private readonly auth: Config['gateway']['auth'];
  private readonly leaseMs: number;
  private retention: RetentionJob | undefined;
  /**
   * tickets that will record usage (a key's, a served peer forward's) or settle a lease, not settled yet: a stop's
   * final usage write waits for them
   */
  private unsettled = 0;
  private settledWaiters: Array<() => void> = [];

  constructor(private readonly o: KeyServiceOptions) {
    const g = o.config.gateway;
    // the live config's object: a reload replaces `auth.tokens` in place (gateway-reload.ts), and whether a
    // credential is required follows it from the next request (read per request, never copied)
    this.auth = g.auth;
    this.leaseMs = g.routing.timeoutMs + 5000;
    this.cache = new KeyCache(o.store, g.keys.refreshMs, o.logger);
    this.recorder = new UsageRecorder(o.store, { flushIntervalMs: g.usage.flushIntervalMs, maxBatch: g.usage.maxBatch, logger: o.logger });
    this.peerGate = makePeerGate({
      limits: g.bridge.peerLimits,
      limiter: o.limiter,
      leaseMs: this.leaseMs,
      record: (r) => this.recorder.record(r),
      // our channel that served a peer's forward, priced from the live config (a reload replaces `channels` in place)
      costOf: (ch, u) => costOf(o.config.channels.find((c) => c.name === ch)?.pricing, tokensOf(u)),
      // a served forward is a ticket as a /v1 request's: the stop waits for its settlement the same way
      tickets: { opened: () => this.ticketOpened(), settled: () => this.ticketSettled() },
    });
  }

  get limiter(): Limiter {
    return this.o.limiter;
  }

  async start(): Promise<void> {
    await this.cache.start();
    const days = this.o.config.gateway.usage.retentionDays;
    if (days > 0)
      this.retention = startRetention({
        days,
        what: 'usage records',
        setting: 'retentionDays',
        logger: this.o.logger,
        deleteBefore: (before) => this.o.store.pruneUsage(before),
      });
    if (this.o.limiter instanceof MemoryLimiter) {
      // A single-process limiter starts from what the recorded usage says was spent this day / month.
      const now = Date.now();
      for (const period of ['day', 'month'] as const) {
        const p = periodOf(period, now);
        for (const [key, s] of await this.o.store.spendSince(p.start)) this.o.limiter.seedBudget(`key:${key}`, p.id, s.tokens, s.cost);
      }
    }
  }

  // ---- the request path ---------------------------------------------------------------------------------

  /** The caller's principal: at once for a static token or an open surface, after the key store for a `sy-` key. */
  authenticateClient(req: IncomingMessage, query = '', allowQueryKey = false): Principal | Promise<Principal> {
    const secret = clientCredential(req.headers, query, allowQueryKey);
    if (secret === undefined) {
      if (this.requireAuth()) throw new GatewayError('UNAUTHORIZED', 'missing API key (send Authorization: Bearer <key>)');
      return OPEN;
    }
    if (secret.startsWith(KEY_SECRET_PREFIX)) return this.keyPrincipal(secret);
    return this.tokenPrincipal(secret, !this.requireAuth());
  }

  /** a credential is required: a static token is configured, or `requireKey` */
  private requireAuth(): boolean {
    return this.auth.tokens.length > 0 || this.auth.requireKey;
  }

  private async keyPrincipal(secret: string): Promise<Principal> {
    let k: VirtualKey | undefined;
    try {
      k = await this.knownKey(secret);
    } catch (err) {
      // the key store cannot say whether it is a key: a static token that is this secret still works, anything
      // else is refused as what it is (503 KEY_STORE_UNAVAILABLE), never as a wrong key
      if (this.isStaticToken(secret, err)) return TOKEN;
      throw err;
    }
    // a `sy-` secret no key has may still be a static token; it never falls back to an open surface
    return k ? { kind: 'key', key: k } : this.tokenPrincipal(secret, false);
  }

  /** `secret` is a `gateway.auth.tokens` entry and `err` says only that the key store could not be read */
  private isStaticToken(secret: string, err: unknown): boolean {
    return err instanceof GatewayError && err.code === 'KEY_STORE_UNAVAILABLE' && this.auth.tokens.length > 0 && tokenMatches(secret, this.auth.tokens);
  }

  /** A static token's principal; else OPEN when the surface may be used without one, else UNAUTHORIZED. */
  private tokenPrincipal(secret: string, open: boolean): Principal {
    if (this.auth.tokens.length > 0 && tokenMatches(secret, this.auth.tokens)) return TOKEN;
    if (open) return OPEN;
    throw new GatewayError('UNAUTHORIZED', 'invalid API key');
  }

  /** Whether `p` may use `model` (for filtering model lists). */
  allows(p: Principal, model: string): boolean {
    return p.kind !== 'key' || modelAllowed(p.key, model);
  }

  /** A ticket at once for a request without a virtual key (no promise on the hot path); a key's checks otherwise. */
  admit(p: Principal, model: string, format: HeaderFormat = 'openai'): Ticket | Promise<Ticket> {
    if (p.kind === 'agent')
      return p.keyId === undefined
        ? new RequestTicket(this, `agent:${p.agentId}`, undefined, undefined)
        : this.admitSessionKey(p.agentId, p.keyId, model, format, true);
    if (p.kind !== 'key') return new RequestTicket(this, '-', undefined, undefined);
    return this.admitKey(p.key, model, format, true);
  }

  /**
   * A token count (`/v1/messages/count_tokens`, Gemini `:countTokens`): a request to the surface like any other,
   * so the key's model globs, `requestsPerMin` and `concurrent` apply; it spends no tokens and no money, so
   * `tokensPerMin` and the budget neither refuse nor charge it, and `finish` records no usage.
   */
  admitCount(p: Principal, model: string, format: HeaderFormat): Ticket | Promise<Ticket> {
    if (p.kind === 'agent' && p.keyId !== undefined) return this.admitSessionKey(p.agentId, p.keyId, model, format, false);
    if (p.kind === 'key') return this.admitKey(p.key, model, format, false);
    return new RequestTicket(this, undefined, undefined, undefined);
  }

  /**
   * A model request of a session a key started (an agent's on its session token, a gateway chat task's): that
   * key's checks, as the key stands now (disabled or expired since: refused too). A key this gateway's store
   * does not hold (the session moved here from a gateway with another key store) leaves the traffic to the
   * runtime's account, as for a session a peer runs here.
   */
  private async admitSessionKey(agentId: string, keyId: string, model: string, format: HeaderFormat, spends: boolean): Promise<Ticket> {
    // not loaded yet (created on another instance a moment ago): the store, bounded; a store failure fails the
    // request with KEY_STORE_UNAVAILABLE (503, retryable)
    const k = await this.cache.byIdOrStore(keyId);
    if (!k) return new RequestTicket(this, spends ? `agent:${agentId}` : undefined, undefined, undefined);
    return this.admitKey(usable(k), model, format, spends);
  }

  /**
   * `/acp/rpc` and `/acp` with a virtual key: the key, when `secret` is one this gateway knows and it may start
   * agent tasks; undefined for a secret that is no key (the caller then checks `acp.tokens`). Throws
   * UNAUTHORIZED for a disabled or expired key, FORBIDDEN for a key created without `acp`, KEY_STORE_UNAVAILABLE
   * when the secret is not loaded and the store cannot be read.
   */
  async acpKey(secret: string): Promise<VirtualKey | undefined> {
    if (!secret.startsWith(KEY_SECRET_PREFIX)) return undefined;
    const k = await this.knownKey(secret);
    if (!k) return undefined;
    if (k.acp !== true) throw new GatewayError('FORBIDDEN', `API key ${k.hint} may not start agent tasks: create a key with acp: true (keys create --acp)`);
    return k;
  }

  /**
   * An open `/acp` WebSocket's recheck of the key it was opened with (`AcpKeys.acpKeyCheck`): the reason the key no
   * longer opens `/acp`, or undefined. Reads the key cache only (one Map lookup, no hashing per call), so a change
   * made on this instance counts at once and one made on another within `gateway.keys.refreshMs`.
   */
  acpKeyCheck(secret: string, keyId: string): () => string | undefined {
    const hash = hashSecret(secret);
    const hint = hintOf(secret);
    return () => {
      const k = this.cache.get(keyId);
      if (!k || k.hash !== hash) return `API key ${hint} was rotated or no longer exists`;
      if (k.disabled) return `API key ${hint} is disabled`;
      if (k.expiresAt !== undefined && k.expiresAt <= Date.now()) return `API key ${hint} has expired`;
      if (k.acp !== true) return `API key ${hint} may not start agent tasks`;
      return undefined;
    };
  }

  /** The key a `sy-` secret names, if this gateway knows it; throws UNAUTHORIZED when it is disabled or expired. */
  private async knownKey(secret: string): Promise<VirtualKey | undefined> {
    const k = await this.cache.lookup(hashSecret(secret));
    return k === undefined ? undefined : usable(k);
  }

  /** `spends` false: a token count (admitCount), held to the request limits only and never recorded. */
  private async admitKey(k: VirtualKey, model: string, format: HeaderFormat, spends: boolean): Promise<Ticket> {
    if (!modelAllowed(k, model)) {
      throw new GatewayError('MODEL_NOT_ALLOWED', `API key ${k.hint} may not use model "${quotedName(model)}"`, {
        param: 'model',
        details: { allowed: k.models },
      });
    }
    const l: Limits = spends ? k.limits : requestLimits(k.limits);
    const budget = spends ? budgetOf(k) : undefined;
    const keyId = spends ? k.id : undefined;
    if (l.requestsPerMin === undefined && l.tokensPerMin === undefined && l.concurrent === undefined && !budget)
      return new RequestTicket(this, keyId, undefined, undefined);
    const scope = `key:${k.id}`;
    const a = await this.o.limiter.admit({ scope, limits: l, budget, leaseMs: this.leaseMs });
    if (!a.ok) throw refusal(`API key "${k.name}"`, a.reason, a.retryAfterMs, a.state, format);
    const headers = a.state.requests || a.state.tokens ? rateLimitHeaders(a.state, format) : undefined;
    return new RequestTicket(this, keyId, { scope, lease: a.lease, limits: l }, budget, headers);
  }

  /** @internal a RequestTicket that will record usage or settle a lease was made: counted until `ticketSettled` */
  ticketOpened(): void {
    this.unsettled++;
  }

  /** @internal its settlement (the limiter's, then the usage record) is over */
  ticketSettled(): void {
    if (--this.unsettled === 0) for (const w of this.settledWaiters.splice(0)) w();
  }

  /** resolves when no ticket is left unsettled: the usage of every request that ended is in the recorder */
  private allSettled(): Promise<void> {
    return this.unsettled === 0 ? Promise.resolve() : new Promise((resolve) => this.settledWaiters.push(resolve));
  }

  /**
   * @internal RequestTicket.finish: synchronous unless a limiter lease is held. `keyId` undefined: a token
   * count, nothing recorded.
   */
  settle(keyId: string | undefined, held: Held | undefined, budget: BudgetCheck | undefined, f: Finish): Promise<void> | void {
    const t = tokensOf(f.usage);
    const cost = costOf(f.pricing, t);
    if (!held) return this.recordUsage(keyId, f, t, cost);
    return this.o.limiter
      .settle(held.scope, held.lease, { tokens: t.input + t.output, cost, budget, limits: held.limits })
      .then(() => this.recordUsage(keyId, f, t, cost));
  }

  private recordUsage(keyId: string | undefined, f: Finish, t: ReturnType<typeof tokensOf>, cost: number): void {
    if (keyId === undefined || (!f.ok && !f.usage)) return;
    this.recorder.record({
      ts: Date.now(),
      key: keyId,
      model: f.model,
      channel: f.channel,
      peer: f.peer?.id ?? '-',
      direction: f.peer ? 'served-by' : 'local',
      inputTokens: t.input,
      outputTokens: t.output,
      cachedTokens: t.cached,
      cost,
      stream: f.stream,
      estimated: isEstimate(f.usage),
    });
  }

  // ---- administration -----------------------------------------------------------------------------------

  async create(input: unknown): Promise<{ key: VirtualKey; secret: string }> {
    const parsed = createKeySchema.safeParse(input);
    if (!parsed.success) {
      const i = parsed.error.issues[0]!;
      // a field the schema does not have is named itself (`limits.rpm`), not the object it was found in
      if (i.code === 'unrecognized_keys') {
        const param = [...i.path, i.keys[0]!].join('.');
        throw new GatewayError('INVALID_REQUEST', `${param}: unknown field`, { param });
      }
      const path = i.path.join('.');
      throw new GatewayError('INVALID_REQUEST', `${path || 'body'}: ${i.message}`, { param: path || undefined });
    }
    const v = parsed.data;
    const secret = newSecret();
    const now = Date.now();
    const key: VirtualKey = {
      id: newKeyId(),
      name: v.name,
      owner: v.owner,
      hash: hashSecret(secret),
      hint: hintOf(secret),
      models: v.models,
      expiresAt: v.expiresAt,
      limits: v.limits,
      budget: v.budget,
      ...(v.acp ? { acp: true } : {}),
      disabled: false,
      createdAt: now,
      updatedAt: now,
    };
    await this.o.store.create(key);
    await this.cache.refresh(true);
    this.o.logger.info('key created', { keyId: key.id, name: key.name, owner: key.owner });
    return { key, secret };
  }

  /** `GET /admin/keys`: one page, by name (KeyStore.listPage) */
  async page(after: string | undefined, limit: number): Promise<KeyPage> {
    return this.o.store.listPage(after, limit);
  }

  /** By id or by name; NOT_FOUND otherwise. */
  async find(idOrName: string): Promise<VirtualKey> {
    const k = (await this.o.store.get(idOrName)) ?? (await this.o.store.list()).find((x) => x.name === idOrName);
    if (!k) throw new GatewayError('NOT_FOUND', `no key with id or name "${idOrName}"`);
    return k;
  }

  /** One atomic change of the stored record (`KeyStore.modify`): a rotation made at the same time still holds. */
  async setDisabled(idOrName: string, disabled: boolean): Promise<VirtualKey> {
    const k = await this.o.store.modify((await this.find(idOrName)).id, (cur) => ({ ...cur, disabled, updatedAt: Date.now() }));
    await this.cache.refresh(true);
    this.o.logger.info(disabled ? 'key disabled' : 'key enabled', { keyId: k.id, name: k.name });
    return k;
  }

  /**
   * New secret, same id, limits and usage; the old secret stops working (see KeyCache for the bound). One atomic
   * change of the stored record: a disable made at the same time still holds.
   */
  async rotate(idOrName: string): Promise<{ key: VirtualKey; secret: string }> {
    const secret = newSecret();
    const hash = hashSecret(secret);
    const hint = hintOf(secret);
    const k = await this.o.store.modify((await this.find(idOrName)).id, (cur) => {
      const now = Date.now();
      return { ...cur, hash, hint, rotatedAt: now, updatedAt: now };
    });
    await this.cache.refresh(true);
    this.o.logger.info('key rotated', { keyId: k.id, name: k.name });
    return { key: k, secret };
  }

  /** `keys show`: the record plus its budget spend this period. */
  async describe(idOrName: string) {
    const k = await this.find(idOrName);
    const b = budgetOf(k);
    const spent = b ? await this.o.limiter.spent(`key:${k.id}`, b.periodId) : undefined;
    return { ...keySummary(k), spent: spent && b ? { period: b.periodId, ...spent } : null };
  }

  async usage(q: { since?: number | undefined; key?: string | undefined; by: UsageGroup }) {
    await this.recorder.flush(); // what this instance still holds is part of the answer
    const keyId = q.key ? (await this.find(q.key)).id : undefined;
    const records = await this.o.store.queryUsage({ since: q.since, key: keyId });
    const names = new Map((await this.o.store.list()).map((k) => [k.id, k.name]));
    const named = q.by === 'key' ? records.map((r) => ({ ...r, key: names.get(r.key) ?? r.key })) : records;
    return summarise(named, q.by);
  }

  /**
   * Stops the refresh and retention timers (waiting for a running retention pass) and writes every pending
   * usage record (graceful stop), giving up on the store at `deadline` (epoch ms; see UsageRecorder.close).
   * The final write first waits, within that same bound, for the requests still settling: a request cut at the
   * grace's end (its stream destroyed by the listener's close) settles its lease and records its usage after the
   * listener has closed, and that record came after the recorder had closed: kept in a list nobody wrote, lost
   * without a word; and its settlement could reach the limiter after its QUIT. Then closes the limiter and the store
   * together: on one Redis that stopped answering each waits its own bound, side by side, not one after the other.
   * Both are closed even when one fails; the first failure is thrown.
   */
  async close(deadline?: number): Promise<void> {
    await this.retention?.stop();
    this.cache.stop();
    await this.recorder.close(deadline, { settled: () => this.allSettled(), unsettled: () => this.unsettled });
    const closed = await Promise.allSettled([this.o.limiter.close(), this.o.store.close()]);
    const failed = closed.find((c): c is PromiseRejectedResult => c.status === 'rejected');
    if (failed) throw failed.reason;
  }
}

const OPEN: Principal = { kind: 'open' };
const TOKEN: Principal = { kind: 'token' };

interface Held {
  scope: string;
  lease: string;
  /** the limits it was admitted under, settled the same */
  limits: Limits;
}

class RequestTicket implements Ticket {
  private done = false;
  constructor(
    private readonly svc: KeyService,
    private readonly keyId: string | undefined,
    private readonly held: Held | undefined,
    private readonly budget: BudgetCheck | undefined,
    readonly headers?: Readonly<Record<string, string>>,
  ) {
    if (keyId !== undefined || held) svc.ticketOpened();
  }

  finish(f: Finish): Promise<void> | void {
    if (this.done) return;
    this.done = true;
    if (this.keyId === undefined && !this.held) return this.svc.settle(this.keyId, this.held, this.budget, f);
    let settling: Promise<void> | void;
    try {
      settling = this.svc.settle(this.keyId, this.held, this.budget, f);
    } catch (err) {
      this.svc.ticketSettled();
      throw err;
    }
    if (!settling) return this.svc.ticketSettled();
    return settling.finally(() => this.svc.ticketSettled());
  }
}

/** `k` when it may be used now; else UNAUTHORIZED (disabled, expired). */
function usable(k: VirtualKey): VirtualKey {
  if (k.disabled) throw new GatewayError('UNAUTHORIZED', `API key ${k.hint} is disabled`);
  if (k.expiresAt !== undefined && k.expiresAt <= Date.now()) throw new GatewayError('UNAUTHORIZED', `API key ${k.hint} has expired`);
  return k;
}

/** The limits on requests, leaving out what a request spends (tokensPerMin): what a token count is held to. */
function requestLimits(l: Limits): Limits {
  return { requestsPerMin: l.requestsPerMin, concurrent: l.concurrent };
}

function budgetOf(k: VirtualKey): BudgetCheck | undefined {
  if (!k.budget) return undefined;
  const p = periodOf(k.budget.period);
  return { periodId: p.id, periodEnd: p.end, tokens: k.budget.tokens, cost: k.budget.cost };
}
