/**
 * The one routing table: local channels and peers' shared channels, indexed by public model name.
 * `chat` picks a candidate, and retries a failure that happens before the first byte reaches the client
 * on another candidate (never one that already failed for this request while another exists), within
 * `retries`, the whole-request deadline and the first-byte timeout. For streams the first chunk is awaited
 * before the outcome is returned: that chunk is the commit point. After it, an upstream failure ends the
 * stream with an error (the caller's job), never a fake success.
 *
 * Over 400 lines on purpose: selection, the retry loop and the first-byte commit point are one algorithm, and
 * splitting it would scatter the one invariant (no failover after the first byte) over several files.
 */
import { Abort, type CancelSignal } from '../util/abort.js';
import { GatewayError, toGatewayError } from '../wire/errors.js';
import { quotedName } from '../wire/openai.js';
import type { ChatRequest, EmbeddingsRequest, EmbeddingsResponse, ModelEntry } from '../wire/openai.js';
import { nativeRequestOf } from '../wire/native.js';
import { contractAsks, contractRefusal, refusedAsk, type ContractAsk } from '../wire/chat-contract.js';
import type { ChatReply } from '../providers/chat-reply.js';
import type { ChunkStream, StreamChunk } from '../providers/provider.js';
import { enabled as logEnabled, type Logger } from '../util/log.js';
import { OTHER_LABEL } from '../util/label-budget.js';
import type { AttemptOptions, Candidate, RouteOptions } from './candidate.js';
import { pick, type Scored, type SelectOptions, type Strategy } from './select.js';
import { HealthTracker, type HealthConfig, type HealthSnapshot, type HealthState } from './health.js';

/**
 * Hooks for metrics and traces (src/obs), set by the composition root; unset = no cost. `attemptStarted`
 * returns the attempt's span: its `traceparent` is what the candidate passes on (a peer hop puts it in the
 * bridge frame) and `end` is called once, when the attempt's answer or stream ends.
 */
export interface RouterObserver {
  /** `channel`, `peer`: the candidate's metric labels (CandidateLabels; peer "" for a local channel) */
  attemptFailed(channel: string, peer: string, code: string, willRetry: boolean): void;
  /** `candidate`: the candidate's metric label (CandidateLabels.candidate) */
  healthChanged(candidate: string, from: HealthState, to: HealthState): void;
  attemptStarted(c: Candidate, model: string, opts: RouteOptions): AttemptSpan | undefined;
}

export interface AttemptSpan {
  readonly traceparent: string;
  end(ok: boolean, err?: GatewayError): void;
}

export interface RouterOptions {
  strategy: Strategy;
  preferLocal: boolean;
  retries: number;
  firstByteTimeoutMs: number;
  streamIdleTimeoutMs: number;
  logger: Logger;
  health: HealthConfig;
  /** how long an X-Session-Id keeps its candidate after its last request */
  affinityTtlMs?: number;
  random?: () => number;
  now?: () => number;
}

interface Stats {
  inflight: number;
  latencyMsEwma: number;
}

export type RoutedChat =
  | { stream: false; reply: ChatReply; candidate: Candidate; attempts: number }
  | { stream: true; first: StreamChunk | undefined; rest: ChunkStream; candidate: Candidate; attempts: number };

const EWMA_ALPHA = 0.2;
const AFFINITY_MAX = 10_000;

/**
 * Failures that say something about the candidate: not a cancel, not the client's fault, not backpressure, not a
 * peer's UNSUPPORTED (retryable there, as another candidate may take the request: it is about the request), and
 * not MODEL_NOT_FOUND (the upstream, or the peer, does not have that one model: the candidate is skipped for that
 * model instead, `skipMissing`, and serves its other models as before).
 */
function countsAgainst(e: GatewayError): boolean {
  return e.code !== 'CANCELLED' && e.code !== 'OVERLOADED' && e.code !== 'UNSUPPORTED' && e.code !== 'MODEL_NOT_FOUND' && e.retryable;
}

/** A (candidate, model) pair skipped because it answered that it does not have the model: until when, and its answer. */
export interface SkippedModel {
  model: string;
  /** ms since epoch */
  until: number;
  error: string;
}

export class Router {
  private readonly candidates = new Map<string, Candidate>();
  private readonly stats = new Map<string, Stats>();
  private readonly byModel = new Map<string, Candidate[]>();
  /** models with a candidate that refuses a contract field (ChannelCapabilities.refuses): only their requests are checked */
  private readonly limited = new Set<string>();
  private readonly listeners = new Set<() => void>();
  private readonly affinity = new Map<string, { id: string; at: number }>();
  /**
   * Candidates that left the table or were replaced under the same id by a different channel (a reload): the
   * outcomes of requests still running on them say nothing about what now holds that id, and must not recreate
   * a health record for an id that is gone. Empty but for the moments after a reload.
   */
  private readonly retired = new WeakSet<Candidate>();
  readonly health: HealthTracker;
  /**
   * Candidates that answered they do not have a model (MODEL_NOT_FOUND: an upstream's 404 for it, or a peer's),
   * by model, then by candidate id: until when each is skipped for that model (`health.baseEjectionMs` from its
   * answer), and its answer. Bounded by the table (a model is routed only when a candidate lists it; a candidate
   * that leaves takes its entries with it); usually empty, and a request pays only for its `size` then.
   */
  private readonly missing = new Map<string, Map<string, { until: number; error: string }>>();
  /** times every candidate of a model was ejected and the router used them all anyway */
  panics = 0;
  observer: RouterObserver | undefined;

  private readonly selectOptions: SelectOptions;

  constructor(private readonly opts: RouterOptions) {
    this.selectOptions = { strategy: opts.strategy, preferLocal: opts.preferLocal, random: opts.random };
    this.health = new HealthTracker(opts.health, opts.now, (id, from, to, why) => {
      opts.logger[to === 'ejected' ? 'warn' : 'info']('candidate health changed', { candidate: id, from, to, why });
      // a candidate no longer in the table (a peer's, gone): its labels went with it; a local one's is its id
      const label = this.candidates.get(id)?.labels.candidate ?? (id.startsWith('local/') ? id : `peer/${OTHER_LABEL}`);
      this.observer?.healthChanged(label, from, to);
    });
  }

  healthOf(id: string): HealthSnapshot {
    return this.health.snapshot(id);
  }

  /** Adds a candidate; one already under that id (a channel a reload changed) is replaced, and retired. */
  add(c: Candidate): void {
    const old = this.candidates.get(c.id);
    if (old && old !== c) {
      this.retired.add(old);
      // a changed channel (another upstream, another key) has to say again what it does not have
      this.forgetMissing(c.id);
    }
    this.candidates.set(c.id, c);
    if (!this.stats.has(c.id)) this.stats.set(c.id, { inflight: 0, latencyMsEwma: 0 });
    this.reindex();
  }

  remove(id: string): void {
    const c = this.candidates.get(id);
    if (c && this.candidates.delete(id)) {
      this.retired.add(c);
      this.dropped([id]);
    }
  }

  /** removes every candidate `pred` matches (a peer leaving) */
  removeWhere(pred: (c: Candidate) => boolean): void {
    this.replaceWhere(pred, []);
  }

  /**
   * Replaces every candidate `pred` matches with `next` (a peer's new channel list), re-indexing once. A
   * candidate that stays keeps its stats; what is gone takes its stats and health with it, so a peer
   * announcing ever new channel names cannot grow the tables.
   */
  replaceWhere(pred: (c: Candidate) => boolean, next: Candidate[]): void {
    const gone = new Map<string, Candidate>();
    for (const [id, c] of this.candidates) if (pred(c) && this.candidates.delete(id)) gone.set(id, c);
    for (const c of next) {
      this.candidates.set(c.id, c);
      if (!this.stats.has(c.id)) this.stats.set(c.id, { inflight: 0, latencyMsEwma: 0 });
    }
    // a peer's channel announced again keeps its id and its health; one that is gone is retired
    const left: string[] = [];
    for (const [id, c] of gone)
      if (!this.candidates.has(id)) {
        left.push(id);
        this.retired.add(c);
      }
    if (gone.size > 0 || next.length > 0) this.dropped(left);
  }

  /** Re-indexes after a change; `ids` left the table for good (a request still in flight keeps its own stats object). */
  private dropped(ids: string[]): void {
    for (const id of ids) {
      this.stats.delete(id);
      this.health.forget(id);
      this.forgetMissing(id);
    }
    this.reindex();
  }

  /** called whenever the table changes */
  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private reindex(): void {
    this.byModel.clear();
    this.limited.clear();
    for (const c of this.candidates.values()) {
      const refuses = c.capabilities.refuses !== undefined && c.capabilities.refuses.length > 0;
      for (const m of c.models) {
        let list = this.byModel.get(m);
        if (!list) this.byModel.set(m, (list = []));
        list.push(c);
        if (refuses) this.limited.add(m);
      }
    }
    for (const fn of this.listeners) fn();
  }

  all(): Candidate[] {
    return [...this.candidates.values()];
  }

  get(id: string): Candidate | undefined {
    return this.candidates.get(id);
  }

  inflightOf(id: string): number {
    return this.stats.get(id)?.inflight ?? 0;
  }

  latencyOf(id: string): number {
    return this.stats.get(id)?.latencyMsEwma ?? 0;
  }

  models(): ModelEntry[] {
    const out: ModelEntry[] = [];
    for (const [id, list] of [...this.byModel.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      out.push({
        id,
        object: 'model',
        created: 0,
        owned_by: list.every((c) => c.capabilities.synthetic) ? 'switchyard-mock' : 'switchyard',
        channels: list.map((c) => ({
          channel: c.channel,
          provider: c.provider,
          ...(c.peer ? { peer: c.peer.name } : {}),
          ...(c.capabilities.synthetic ? { mock: true } : {}),
        })),
      });
    }
    return out;
  }

  modelNames(): string[] {
    return [...this.byModel.keys()].sort();
  }

  private candidatesFor(model: string): Candidate[] {
    const list = this.byModel.get(model);
    if (!list || list.length === 0) {
      const names = this.modelNames();
      throw new GatewayError('MODEL_NOT_FOUND', `model "${quotedName(model)}" is not served here; available: ${names.length ? names.join(', ') : '(none)'}`, {
        param: 'model',
        details: { available: names },
      });
    }
    return list;
  }

  /**
   * `list` without the candidates skipped for `model` (`missing`), dropping skips that are over: `list` itself,
   * with no allocation, when none is skipped for it (one `size` check when none is skipped at all).
   */
  private present(model: string, list: Candidate[]): Candidate[] {
    if (this.missing.size === 0) return list;
    const m = this.missing.get(model);
    if (m === undefined) return list;
    const now = Date.now();
    for (const [id, s] of m) if (s.until <= now) m.delete(id);
    if (m.size === 0) {
      this.missing.delete(model);
      return list;
    }
    return keep(list, (c) => !m.has(c.id));
  }

  /**
   * The first attempt's candidates: `present`'s, or, when every candidate of the model is skipped, MODEL_NOT_FOUND
   * (404) saying so, with the first one's answer; no upstream is asked.
   */
  private presentOrThrow(model: string, list: Candidate[]): Candidate[] {
    const out = this.present(model, list);
    if (out.length > 0 || list.length === 0) return out;
    const s = this.missing.get(model)!.get(list[0]!.id)!;
    const n = list.length;
    const wait = Math.max(1, Math.ceil((s.until - Date.now()) / 1000));
    throw new GatewayError(
      'MODEL_NOT_FOUND',
      `model "${quotedName(model)}" is not available: ${n === 1 ? 'its channel' : `each of its ${n} channels`} answered that it does not have it, asked again in ${wait} s at the latest (${s.error})`,
      { param: 'model' },
    );
  }

  /** `c` answered that it does not have `model`: skipped for it for `health.baseEjectionMs`, its other models unaffected. */
  private skipMissing(id: string, model: string, error: string): void {
    let m = this.missing.get(model);
    if (m === undefined) this.missing.set(model, (m = new Map<string, { until: number; error: string }>()));
    m.set(id, { until: Date.now() + this.opts.health.baseEjectionMs, error });
  }

  private forgetMissing(id: string): void {
    if (this.missing.size === 0) return;
    for (const [model, m] of this.missing) if (m.delete(id) && m.size === 0) this.missing.delete(model);
  }

  /** The models `id` is skipped for now (docs/routing.md, Health; `/admin/channels`). */
  skippedOf(id: string): SkippedModel[] {
    const out: SkippedModel[] = [];
    const now = Date.now();
    for (const [model, m] of this.missing) {
      const s = m.get(id);
      if (s !== undefined && s.until > now) out.push({ model, until: s.until, error: s.error });
    }
    return out;
  }

  private score(c: Candidate): Scored {
    const s = this.stats.get(c.id)!;
    const l = c.load();
    return {
      candidate: c,
      inflight: Math.max(s.inflight, l.inflight),
      capacity: l.maxConcurrent,
      latencyMsEwma: s.latencyMsEwma || l.latencyMsEwma,
      healthy: l.healthy,
    };
  }

  private eligible(s: Scored): boolean {
    return this.health.eligible(s.candidate.id) && s.healthy !== false;
  }

  /**
   * Picks the candidate for one attempt. Order of rules: not failed already for this request (unless only
   * failed ones remain, and then not one in `waiting`: its Retry-After, or a peer's UNSUPPORTED), healthy (unless
   * every one is ejected: panic, use them all, and say so), not saturated, session affinity, then peers that
   * did not announce loadBalance only when no local candidate is left, then the strategy.
   */
  private choose(
    model: string,
    list: Candidate[],
    failed: Set<string>,
    kind: 'chat' | 'embeddings',
    sessionId?: string,
    waiting?: Set<string>,
  ): { chosen?: Scored; saturated: number; panic: boolean } {
    // `keep` returns its input when nothing is filtered out: the usual request (nothing failed, everyone healthy
    // and open, one tier) allocates the scored list and nothing else here
    const usable = kind === 'chat' ? list : keep(list, (c) => c.capabilities.embeddings);
    let fresh = failed.size === 0 ? usable : keep(usable, (c) => !failed.has(c.id));
    // Never the same failed candidate while another exists; with only failed ones left, they may be retried,
    // except one whose answer asked to wait (Retry-After): asked again at once, it would only refuse again.
    if (fresh.length === 0) fresh = waiting ? keep(usable, (c) => !waiting.has(c.id)) : usable;
    const scored = fresh.map((c) => this.score(c));
    let healthy = keep(scored, (x) => this.eligible(x));
    let panic = false;
    if (healthy.length === 0 && scored.length > 0) {
      const everyoneEjected = usable.every((c) => !this.eligible(this.score(c)));
      if (everyoneEjected) {
        panic = true;
        this.panics++;
        this.opts.logger.warn('panic: every candidate is ejected, routing to all of them', { model, candidates: usable.map((c) => c.id) });
        healthy = scored;
      }
    }
    const open = keep(healthy, (x) => x.inflight < x.capacity);
    // A candidate due for its half-open probe gets the next request, so recovery never waits on luck; if the
    // probe fails before the first byte the request is retried elsewhere like any other failure.
    const probe = panic ? undefined : open.find((x) => this.health.probeDue(x.candidate.id));
    if (probe) return { chosen: probe, saturated: scored.length - open.length, panic };
    if (sessionId) {
      const a = this.affinity.get(sessionId);
      const fresh = a && Date.now() - a.at < (this.opts.affinityTtlMs ?? 30 * 60_000);
      const sticky = fresh && open.find((x) => x.candidate.id === a.id);
      if (sticky) return { chosen: sticky, saturated: scored.length - open.length, panic };
    }
    const local = keep(open, (x) => !x.candidate.peer || x.candidate.peer.loadBalance);
    const pool = local.some((x) => !x.candidate.peer) ? local : open;
    const chosen = pick(pool, this.selectOptions);
    return { chosen, saturated: healthy.length - open.length, panic };
  }

  private remember(sessionId: string | undefined, c: Candidate): void {
    if (!sessionId) return;
    const now = Date.now();
    this.affinity.delete(sessionId);
    this.affinity.set(sessionId, { id: c.id, at: now });
    if (this.affinity.size > AFFINITY_MAX) {
      const ttl = this.opts.affinityTtlMs ?? 30 * 60_000;
      for (const [k, v] of this.affinity) {
        if (this.affinity.size <= AFFINITY_MAX && now - v.at < ttl) break;
        this.affinity.delete(k);
      }
    }
  }

  private track(c: Candidate, model: string, span?: AttemptSpan): { done: (ok: boolean, err?: unknown) => void } {
    const s = this.stats.get(c.id) ?? { inflight: 0, latencyMsEwma: 0 };
    this.stats.set(c.id, s);
    s.inflight++;
    // the half-open probe's outcome, and only it, decides whether an ejected candidate returns to service
    const probe = this.health.started(c.id);
    const started = performance.now();
    let ended = false;
    return {
      done: (ok, err) => {
        if (ended) return;
        ended = true;
        s.inflight--;
        span?.end(ok, err === undefined ? undefined : toGatewayError(err));
        // a request that outlived its candidate (removed, or changed by a reload) reports to no health record
        if (this.retired.has(c)) return;
        if (ok) {
          const ms = performance.now() - started;
          s.latencyMsEwma = s.latencyMsEwma === 0 ? ms : s.latencyMsEwma + EWMA_ALPHA * (ms - s.latencyMsEwma);
          this.health.succeeded(c.id, probe);
          return;
        }
        const e = err === undefined ? undefined : toGatewayError(err);
        if (e?.code === 'MODEL_NOT_FOUND') this.skipMissing(c.id, model, e.message);
        if (e && countsAgainst(e))
          this.health.failed(c.id, `${e.code}: ${e.message}`, e.code === 'RATE_LIMITED' || e.status === 503 ? e.retryAfterSec : undefined, probe);
        // no verdict (a cancel, a client error, backpressure): a probe's slot is given back
        else this.health.released(c.id, probe);
      },
    };
  }

  async chat(req: ChatRequest, opts: RouteOptions): Promise<RoutedChat> {
    // a request whose body the chat form could not hold whole may go only where it goes natively
    const onlyNative = nativeRequestOf(req)?.untranslatable !== undefined;
    let list = this.presentOrThrow(req.model, this.candidatesFor(req.model));
    if (onlyNative) list = nativeOnly(req, list);
    // One Set lookup per request: what the request asks for is read only when a candidate of its model refuses
    // something. Then only candidates that honour all of it are used; none: UNSUPPORTED, before any attempt.
    const asks = this.limited.has(req.model) ? contractAsks(req) : undefined;
    if (asks && asks.length > 0) list = honouring(req, asks, list, true);
    const failed = new Set<string>();
    // candidates not to ask again for this request: they answered with a Retry-After, or a peer's UNSUPPORTED
    // (what it cannot do now it will not do on a second try); made on the first such failure only
    let waiting: Set<string> | undefined;
    let lastError: GatewayError | undefined;
    // a candidate's answer that it does not have the model adds an attempt (once per candidate): it is cheap, and
    // another candidate that has the model must not be out of reach because of it
    let maxAttempts = 1 + this.opts.retries;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      mayAttempt(opts, lastError);
      // Re-read the table for every attempt: a peer that left since the last one must not be retried.
      if (attempt > 1) {
        const now = this.present(req.model, this.byModel.get(req.model) ?? []);
        list = onlyNative ? nativeOnly(req, now) : now;
        if (asks && asks.length > 0) list = honouring(req, asks, list, false);
      }
      const { chosen, saturated, panic } = this.choose(req.model, list, failed, 'chat', opts.sessionId, waiting);
      if (!chosen) {
        if (lastError) throw lastError;
        throw new GatewayError('OVERLOADED', `all ${saturated} candidate(s) for model "${req.model}" are at their concurrency limit`, { retryAfterSec: 1 });
      }
      const c = chosen.candidate;
      // the debug line's fields cost a map over the candidates: build them only when debug is on
      if (logEnabled('debug'))
        this.opts.logger.debug('route', {
          requestId: opts.requestId,
          model: req.model,
          attempt,
          candidates: list.map((x) => ({ id: x.id, inflight: this.inflightOf(x.id), health: this.health.state(x.id), failed: failed.has(x.id) })),
          chosen: c.id,
          why: `${panic ? 'PANIC (all ejected), ' : ''}${this.opts.strategy}, tier ${c.priority}, utilisation ${(chosen.inflight / chosen.capacity).toFixed(2)}`,
        });
      try {
        const out = await this.attempt(c, req, opts, attempt);
        this.remember(opts.sessionId, c);
        return out;
      } catch (err) {
        const e = toGatewayError(err);
        if (e.code === 'CANCELLED' || isCancelled(opts)) throw e;
        this.opts.logger.warn('attempt failed', { requestId: opts.requestId, candidate: c.id, attempt, code: e.code, message: e.message });
        lastError = e;
        if (e.code === 'MODEL_NOT_FOUND' && !failed.has(c.id)) maxAttempts++;
        failed.add(c.id);
        if (e.retryAfterSec !== undefined || e.code === 'UNSUPPORTED') (waiting ??= new Set()).add(c.id);
        this.observer?.attemptFailed(c.labels.channel, c.labels.peer, e.code, e.retryable && attempt < maxAttempts);
        if (!e.retryable) throw e;
      }
    }
    throw lastError!;
  }

  /** One attempt on one candidate, under the first-byte timeout. Resolves at the commit point. */
  private async attempt(c: Candidate, req: ChatRequest, opts: RouteOptions, attempts: number): Promise<RoutedChat> {
    const g = this.firstByteGuard(c, opts);
    const span = this.observer?.attemptStarted(c, req.model, opts);
    const t = this.track(c, req.model, span);
    try {
      const out = await c.chat(req, attemptOptions(opts, g.ac.signal, span?.traceparent ?? opts.trace));
      if (!out.stream) {
        g.stopTimer();
        g.release();
        t.done(true);
        return { stream: false, reply: out, candidate: c, attempts };
      }
      const it: ChunkStream = out.chunks[Symbol.asyncIterator]();
      const first = await it.next();
      g.stopTimer();
      return {
        stream: true,
        first: first.done ? undefined : first.value,
        rest: first.done ? emptyIterator(t, g.release) : this.guard(it, c, g.ac, t, g.release),
        candidate: c,
        attempts,
      };
    } catch (err) {
      const e = g.error(err);
      g.stopTimer();
      g.release();
      t.done(false, e);
      throw e;
    }
  }

  /**
   * One attempt's abort (a light `Abort`, src/util/abort.ts), tied to the request's cancellation (its
   * RequestCancel, or its signal through a listener), and its first-byte timer (bounded by the request
   * deadline). `error` turns whatever the attempt threw into UPSTREAM_TIMEOUT when the timer fired.
   */
  private firstByteGuard(c: Candidate, opts: RouteOptions) {
    const ac = new Abort();
    const { cancel, signal } = opts;
    let onAbort: (() => void) | undefined;
    if (cancel) cancel.attach(ac);
    else if (signal) {
      onAbort = () => ac.abort();
      if (signal.aborted) ac.abort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }
    const budget = Math.max(1, Math.min(this.opts.firstByteTimeoutMs, opts.deadline - Date.now()));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ac.abort();
    }, budget);
    return {
      ac,
      stopTimer: () => clearTimeout(timer),
      release: () => {
        if (cancel) cancel.detach(ac);
        else if (onAbort) signal!.removeEventListener('abort', onAbort);
      },
      error: (err: unknown) => (timedOut ? new GatewayError('UPSTREAM_TIMEOUT', `${describe(c)}: no first byte within ${budget} ms`) : toGatewayError(err)),
    };
  }

  /**
   * Wraps the rest of a stream: idle timeout between chunks, and bookkeeping when it ends in any way.
   * One timer for the whole stream, re-armed per chunk (`refresh`, no allocation per chunk), and no race per
   * chunk: when it fires it marks the stream timed out, then aborts the attempt, and whatever the pending
   * `next()` then throws (a CANCELLED from the abort, often synchronously from a peer's queue) is reported as
   * the timeout, so the abort never hides the timeout or spares the candidate's health. It only counts while
   * we wait on the upstream (armed), so a slow client never looks like an idle upstream. It relies on the
   * provider contract (providers/provider.ts): an aborted attempt's pending `next()` settles.
   */
  private guard(it: ChunkStream, c: Candidate, ac: Abort, t: { done: (ok: boolean, err?: unknown) => void }, release: () => void): ChunkStream {
    const idleMs = this.opts.streamIdleTimeoutMs;
    const finish = (ok: boolean, err?: unknown) => {
      release();
      t.done(ok, err);
    };
    let armed = false;
    let idleTimedOut = false;
    const timer = setTimeout(() => {
      if (!armed) return;
      idleTimedOut = true;
      ac.abort();
    }, idleMs);
    timer.unref();
    const fail = (err: unknown): never => {
      clearTimeout(timer);
      const e = idleTimedOut ? new GatewayError('UPSTREAM_TIMEOUT', `${describe(c)}: stream idle for ${idleMs} ms`) : toGatewayError(err);
      finish(false, e);
      void it.return?.().catch(() => undefined);
      throw e;
    };
    const settle = (r: IteratorResult<StreamChunk>): IteratorResult<StreamChunk> => {
      armed = false;
      if (idleTimedOut) return fail(undefined);
      if (r.done) {
        clearTimeout(timer);
        finish(true);
      }
      return r;
    };
    const failed = (err: unknown): never => {
      armed = false;
      return fail(err);
    };
    const abandon = async (why: GatewayError): Promise<IteratorResult<StreamChunk>> => {
      clearTimeout(timer);
      ac.abort();
      finish(false, why);
      await it.return?.().catch(() => undefined);
      return { done: true, value: undefined };
    };
    // a chunk the upstream already delivered involves no waiting: no timer work, and nothing to settle
    const takeReady = it.takeReady ? () => (idleTimedOut ? undefined : it.takeReady!()) : undefined;
    return {
      takeReady,
      next: () => {
        armed = true;
        timer.refresh();
        let p: Promise<IteratorResult<StreamChunk>>;
        try {
          p = it.next();
        } catch (err) {
          p = Promise.reject(toGatewayError(err));
        }
        return p.then(settle, failed);
      },
      return: () => abandon(new GatewayError('CANCELLED', 'stream abandoned before its end (the client left, or the gateway ended it)')),
      // the consumer found the stream unusable (a chunk it cannot translate): the attempt failed with that error
      throw: (err: unknown) => abandon(toGatewayError(err)),
    };
  }

  async embeddings(req: EmbeddingsRequest, opts: RouteOptions): Promise<{ response: EmbeddingsResponse; candidate: Candidate }> {
    let list = this.presentOrThrow(req.model, this.candidatesFor(req.model));
    const failed = new Set<string>();
    let waiting: Set<string> | undefined;
    let lastError: GatewayError | undefined;
    // as chat's: an answer that the model is missing adds an attempt, once per candidate
    let maxAttempts = 1 + this.opts.retries;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      mayAttempt(opts, lastError);
      if (attempt > 1) list = this.present(req.model, this.byModel.get(req.model) ?? []);
      const { chosen } = this.choose(req.model, list, failed, 'embeddings', opts.sessionId, waiting);
      if (!chosen) {
        if (lastError) throw lastError;
        if (!list.some((c) => c.capabilities.embeddings))
          throw new GatewayError('UNSUPPORTED', `no channel serving "${req.model}" supports embeddings`, { param: 'model' });
        throw new GatewayError('OVERLOADED', `all candidates for model "${req.model}" are at their concurrency limit`, { retryAfterSec: 1 });
      }
      const c = chosen.candidate;
      const g = this.firstByteGuard(c, opts);
      const t = this.track(c, req.model);
      try {
        const response = await c.embeddings(req, attemptOptions(opts, g.ac.signal, opts.trace));
        t.done(true);
        return { response, candidate: c };
      } catch (err) {
        const e = g.error(err);
        t.done(false, e);
        if (isCancelled(opts) || e.code === 'CANCELLED' || !e.retryable) throw e;
        lastError = e;
        if (e.code === 'MODEL_NOT_FOUND' && !failed.has(c.id)) maxAttempts++;
        failed.add(c.id);
        if (e.retryAfterSec !== undefined) (waiting ??= new Set()).add(c.id);
      } finally {
        g.stopTimer();
        g.release();
      }
    }
    throw lastError!;
  }

  /**
   * Serves a request addressed to one local channel (a bridge peer's forward). No retries here: the
   * requesting gateway does its own failover. Shares in-flight accounting and limits with local traffic.
   */
  /** The local channel a peer's forward names, if it serves the model and has room. */
  private servable(channel: string, model: string): Candidate {
    const c = this.candidates.get(`local/${channel}`);
    if (!c) throw new GatewayError('NOT_FOUND', `no channel "${quotedName(channel)}"`);
    if (!c.models.includes(model))
      throw new GatewayError('MODEL_NOT_FOUND', `channel "${channel}" does not serve model "${quotedName(model)}"`, { param: 'model' });
    // its upstream answered that it does not have the model: the peer is told so without asking it again
    if (this.missing.size > 0) this.presentOrThrow(model, [c]);
    const s = this.score(c);
    if (s.inflight >= s.capacity) throw new GatewayError('OVERLOADED', `channel "${channel}" is at its concurrency limit`, { retryAfterSec: 1 });
    return c;
  }

  async serveChannel(channel: string, req: ChatRequest, opts: RouteOptions): Promise<RoutedChat> {
    const c = this.servable(channel, req.model);
    // the requesting gateway checked what we announced; one that did not know it (an older build) is answered here
    if (c.capabilities.refuses !== undefined) {
      const refused = refusedAsk(contractAsks(req), c.capabilities.refuses);
      if (refused) throw contractRefusal(refused, `channel "${channel}" (${c.provider}) cannot`);
    }
    // awaited rather than returned: an async function resolved with a promise takes two more microtasks
    return await this.attempt(c, req, opts, 1);
  }

  async serveChannelEmbeddings(channel: string, req: EmbeddingsRequest, opts: AttemptOptions): Promise<EmbeddingsResponse> {
    const c = this.servable(channel, req.model);
    const t = this.track(c, req.model);
    try {
      const r = await c.embeddings(req, opts);
      t.done(true);
      return r;
    } catch (err) {
      const e = toGatewayError(err);
      t.done(false, e);
      throw e;
    }
  }
}

/** `list` itself when every element passes `pred`, else a filtered copy: no allocation in the usual case. */
function keep<T>(list: T[], pred: (x: T) => boolean): T[] {
  for (let i = 0; i < list.length; i++) if (!pred(list[i]!)) return list.filter(pred);
  return list;
}

function isCancelled(opts: RouteOptions): boolean {
  return opts.cancel?.cancelled === true || opts.signal?.aborted === true;
}

/**
 * The check before every attempt of a routed request (chat and embeddings): none once the request was cancelled
 * (CANCELLED) or its deadline passed (the last attempt's error, else UPSTREAM_TIMEOUT), so no attempt starts
 * after the deadline.
 */
function mayAttempt(opts: RouteOptions, lastError: GatewayError | undefined): void {
  if (isCancelled(opts)) throw new GatewayError('CANCELLED', 'request cancelled');
  if (Date.now() >= opts.deadline) throw lastError ?? new GatewayError('UPSTREAM_TIMEOUT', 'request deadline passed before an upstream answered');
}

/** The options one attempt's candidate gets: the request's, with the attempt's signal and trace parent. */
function attemptOptions(opts: RouteOptions, signal: CancelSignal, trace: string | undefined): AttemptOptions {
  return { requestId: opts.requestId, hops: opts.hops, deadline: opts.deadline, sessionId: opts.sessionId, trace, signal };
}

function describe(c: Candidate): string {
  return c.peer ? `peer ${c.peer.name} channel ${c.channel}` : `channel ${c.channel}`;
}

function emptyIterator(t: { done: (ok: boolean, err?: unknown) => void }, release: () => void): ChunkStream {
  release();
  t.done(true);
  return { next: async () => ({ done: true, value: undefined }) };
}

/**
 * The candidates that honour every contract field the request asks for (src/wire/chat-contract.ts): a local
 * channel that takes the request natively honours the client's own body whole; any other, what its
 * capabilities do not refuse. `list` itself when all do. None left: on the first attempt, UNSUPPORTED naming
 * the first field every candidate refuses (else the first one the first candidate refuses); on a retry, the
 * empty list (the last attempt's error is the answer).
 */
function honouring(req: ChatRequest, asks: readonly ContractAsk[], list: Candidate[], refuse: boolean): Candidate[] {
  const native = nativeRequestOf(req);
  const out = keep(
    list,
    (c) => (native !== undefined && c.peer === undefined && c.nativeApi === native.api) || refusedAsk(asks, c.capabilities.refuses) === undefined,
  );
  if (out.length > 0 || !refuse || list.length === 0) return out;
  const ask = asks.find((a) => list.every((c) => c.capabilities.refuses?.includes(a.field))) ?? refusedAsk(asks, list[0]!.capabilities.refuses);
  if (ask === undefined) return out;
  throw contractRefusal(ask, `no channel serving model "${quotedName(req.model)}" can`);
}

/**
 * The candidates that take the request's client API natively (src/wire/native.ts), for a request the chat
 * form could not hold whole; none: the translator's refusal (UNSUPPORTED, naming the part).
 */
function nativeOnly(req: ChatRequest, list: Candidate[]): Candidate[] {
  const native = nativeRequestOf(req)!;
  const out = list.filter((c) => c.peer === undefined && c.nativeApi === native.api);
  if (out.length === 0) throw native.untranslatable!;
  return out;
}
