/**
 * Warm agent processes (`acp.agents[].warm: N`, issue 15): N processes of one agent entry kept spawned and past
 * `initialize`, so a session.start on that agent needs only `session/new` (and any model binding) before its
 * prompt goes out, instead of a process start (tens of ms for a Node agent, seconds for some real ones).
 *
 * Contract:
 * - Slots: a spare holds a slot of `acp.maxAgentProcesses` (limits.ts), taken only when free (never by
 *   eviction, never while a session waits for one). Spares are the first stopped when a session needs a slot
 *   at the cap; a pool short of slots refills when a slot is given back.
 * - take() hands a ready spare (process, peer, slot; with `llm` its private folder and token, relabelled with
 *   the session id and the virtual key that started it, which the token's traffic is then billed to) to a session; its replacement starts in the background once the session's first update is
 *   out (a spawn blocks the event loop for a moment: not in the path the spare saves). With none ready but one
 *   still booting, the session waits for that one (already part-way through its start, it is never slower than
 *   a fresh spawn); each booting spare is claimed by one session at most. None at all: the session spawns cold.
 *   The session owns it from then on: it is stopped at session close like any session's process; its token
 *   dies with the session.
 * - Isolation: a spare starts in a private folder of its own (mode 0700, under acp.agentHomeRoot): with `llm`,
 *   the folder and token a session would get (minted for `llm.model`: a session whose role routing chose
 *   another model takes no spare); without, an empty `warm-<agent>-<random>` folder removed when the process
 *   ends. The same minimal environment as a cold start. The session's workspace reaches the agent as
 *   `session/new`'s `cwd` (ACP), and the gateway confines fs/* and terminal/* to it as for every session; an
 *   agent that works in its process's cwd instead of the session's must not be run warm (docs/acp-agents.md).
 *   An unused spare's folder is removed and its token revoked when it stops.
 * - Spares have no idle timeout (by design: they wait to be taken); they stop when evicted, when a reload
 *   changes or removes their entry, or when the gateway stops.
 * - A spare that fails to start, or dies while waiting, is replaced after a back-off (1 s, doubling to 60 s;
 *   reset when a spare is taken or had lived 30 s), so a broken command costs one spawn per back-off step.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { AgentConfig } from '../../../config/schema.js';
import { GatewayError } from '../../../wire/errors.js';
import type { Logger } from '../../../util/log.js';
import { agentName, initializeAgent, type AgentSpec, type BootedAgent, type InitializeResult } from './agent-session.js';
import { minimalEnv } from './env.js';
import { JsonRpcStdioPeer } from './jsonrpc-stdio.js';
import { launchEnv, openLlmSession, type LlmContext, type LlmSession } from './launch.js';
import type { AgentProcessLimiter, LimitedSession } from './limits.js';
import { AgentProcess, describeExit } from './process.js';
import { safeFolderName } from './workspace.js';

export const WARM_BACKOFF_FIRST_MS = 1_000;
export const WARM_BACKOFF_MAX_MS = 60_000;
/** a taken spare's replacement starts when its session's first update is out, or after this long */
const REPLENISH_AFTER_MS = 2_000;
/** a spare that lived this long before dying was not a broken command: the back-off starts over */
const HEALTHY_AFTER_MS = 30_000;

export interface WarmPoolOptions {
  config: AgentConfig;
  spec: AgentSpec;
  /** required for entries with `llm` */
  llm?: LlmContext;
  /** acp.agentHomeRoot, absolute: spares' start folders go there */
  homeRoot: string;
  limiter?: AgentProcessLimiter;
  log: Logger;
  startTimeoutMs?: number;
  stopGraceMs?: number;
}

/** A spare as the session sees it once taken. */
export interface TakenSpare extends BootedAgent {
  /** with `llm`: the private folder and token, owned by the session from now on */
  readonly llm?: LlmSession;
  /** starts the replacement (the taker calls it once its first update is out); idempotent */
  readonly replenish: () => void;
}

/**
 * One pool as an operator sees it (`GET /admin/overview` → `warmPools`, `switchyard status`). Counters run since
 * the pool was made: gateway start, or the reload that last changed the entry.
 */
export interface WarmPoolStatus {
  agentId: string;
  /** `warm` of the entry: the spares the pool keeps */
  target: number;
  /** spares past `initialize`, waiting to be taken */
  ready: number;
  /** spares started and not yet past `initialize`; `claimed` of them have a session waiting for them */
  booting: number;
  claimed: number;
  /** failures in a row, each doubling the back-off: reset when a spare is taken; a spare that had lived 30 s
   *  before dying counts as the first */
  consecutiveFailures: number;
  /** when a back-off is running: the time the pool starts its next spare (ISO), else null */
  retryAt: string | null;
  /** processes spawned for spares */
  spawned: number;
  /** agent processes sessions took from the pool, and those they started themselves (none to take, or with
   *  `llm` the session's model is not the one spares are minted for) */
  taken: number;
  cold: number;
  /** spares that failed to start or died while waiting */
  failed: number;
}

class Spare implements LimitedSession {
  proc: AgentProcess | undefined;
  peer: JsonRpcStdioPeer | undefined;
  /** set once past `initialize`: what a session takes */
  booted: TakenSpare | undefined;
  env: Record<string, string> = {};
  llm: LlmSession | undefined;
  /** the start folder made for a spare without `llm` */
  folder: string | undefined;
  readonly born = Date.now();
  readonly reloadable = true; // stopping a spare loses nothing
  readonly lastUsed = 0; // least recently used of all: the first evicted
  taken = false;
  /** a session waits for this booting spare */
  claimed = false;
  /** resolves when boot() is over, booted or not */
  settled: Promise<void> = Promise.resolve();
  closing: Promise<void> | undefined;

  constructor(private readonly pool: WarmPool) {}

  get idle(): boolean {
    return !this.taken && !this.closing;
  }

  /** Stops an untaken spare and removes what it made (the limiter calls it with "evicted"). Idempotent. */
  close(reason: string): Promise<void> {
    this.closing ??= this.pool.discard(this, reason);
    return this.closing;
  }

  async released(): Promise<void> {
    if (this.folder) await rm(this.folder, { recursive: true, force: true });
  }
}

export class WarmPool {
  readonly size: number;
  private readonly spares = new Set<Spare>(); // untaken: booting or ready
  private readonly ready: Spare[] = [];
  private failures = 0;
  private retry: NodeJS.Timeout | undefined;
  private retryAt = 0;
  private closed = false;
  private readonly unsubscribe: () => void;
  private readonly counts = { spawned: 0, taken: 0, cold: 0, failed: 0 };

  constructor(private readonly o: WarmPoolOptions) {
    this.size = o.config.warm;
    this.unsubscribe = o.limiter?.onFree(() => this.fill()) ?? (() => {});
  }

  /** a spare is ready: the entry's command runs and answers `initialize` (what the availability probe checks) */
  get hasReady(): boolean {
    return this.ready.some((s) => !s.claimed && !s.proc?.exit);
  }

  status(): WarmPoolStatus {
    const ready = this.ready.length;
    let claimed = 0;
    for (const s of this.spares) if (s.claimed && !s.booted) claimed++;
    return {
      agentId: this.o.config.id,
      target: this.size,
      ready,
      booting: this.spares.size - ready,
      claimed,
      consecutiveFailures: this.failures,
      retryAt: this.retry ? new Date(this.retryAt).toISOString() : null,
      ...this.counts,
    };
  }

  /** Starts spares up to `size`, as far as free slots allow; a no-op during a back-off. */
  fill(): void {
    if (this.closed || this.retry) return;
    while (this.spares.size < this.size) {
      const s = new Spare(this);
      if (this.o.limiter && !this.o.limiter.tryAcquire(s)) return; // refilled when a slot is given back
      this.spares.add(s);
      s.settled = this.boot(s);
    }
  }

  /**
   * A ready spare for session `sessionId`, or undefined (none ready, or with `llm` the session's `model` is not
   * the one spares' tokens are minted for). A replacement starts in the background. Every call counts, in
   * status(), as `taken` or `cold`.
   */
  async take(sessionId: string, model?: string, keyId?: string): Promise<TakenSpare | undefined> {
    const taken = await this.claim(sessionId, model, keyId);
    if (!taken) this.counts.cold++;
    return taken;
  }

  private async claim(sessionId: string, model?: string, keyId?: string): Promise<TakenSpare | undefined> {
    const pinned = this.o.config.llm?.model;
    if (this.closed || (pinned !== undefined && model !== undefined && model !== pinned)) return undefined;
    let s = this.ready.find((x) => !x.claimed && !x.proc?.exit && !x.peer?.closed);
    if (!s) {
      const booting = [...this.spares].find((x) => !x.claimed && !x.booted && !x.closing);
      if (!booting) return void this.fill();
      booting.claimed = true;
      await booting.settled;
      if (!booting.booted || booting.closing || booting.proc?.exit || booting.peer?.closed) return undefined;
      s = booting;
    }
    const booted = s.booted;
    if (!booted) return undefined;
    const i = this.ready.indexOf(s);
    if (i >= 0) this.ready.splice(i, 1);
    s.taken = true;
    this.spares.delete(s);
    this.failures = 0;
    this.counts.taken++;
    s.llm?.relabel(sessionId, keyId);
    this.o.log.info('warm agent process taken', { agent: this.o.config.id, session: sessionId, pid: s.proc?.pid });
    // the replacement waits for the taker's first update (replenish), at most REPLENISH_AFTER_MS
    let done = false;
    const replenish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      this.fill();
    };
    const timer = setTimeout(replenish, REPLENISH_AFTER_MS).unref();
    return { ...booted, replenish };
  }

  /** Stops every untaken spare; nothing is started afterwards. */
  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe();
    clearTimeout(this.retry);
    await Promise.all([...this.spares].map((s) => s.close('shutdown')));
  }

  private async boot(s: Spare): Promise<void> {
    const { config, spec, log } = this.o;
    const name = agentName(spec);
    try {
      let cwd: string;
      if (config.llm) {
        if (!this.o.llm) throw new GatewayError('UNSUPPORTED', `${name} runs on this gateway's model API, which this gateway does not serve`);
        const l = await openLlmSession(config, this.o.llm, `warm-${config.id}`);
        if (s.closing) return void (await l.dispose());
        s.llm = l;
        cwd = l.home;
      } else {
        cwd = s.folder = path.join(this.o.homeRoot, `warm-${safeFolderName(config.id).slice(0, 60)}-${randomBytes(4).toString('hex')}`);
        await mkdir(cwd, { recursive: true, mode: 0o700 });
        if (s.closing) return void (await rm(cwd, { recursive: true, force: true }));
      }
      s.env = { ...minimalEnv(), ...launchEnv(spec, config, s.llm) };
      const proc = (s.proc = new AgentProcess({ command: spec.command, args: spec.args ?? [], env: s.env, cwd, stopGraceMs: this.o.stopGraceMs ?? 2_000 }));
      this.counts.spawned++;
      await proc.spawned.catch((err: NodeJS.ErrnoException) => {
        throw new GatewayError('UPSTREAM_ERROR', `${name}: command "${spec.command}" could not be started (${err.code ?? err.message})`);
      });
      const peer = (s.peer = new JsonRpcStdioPeer(proc.stdout, proc.stdin, { name, log }));
      const died = proc.exited.then((info) => {
        throw new GatewayError('UPSTREAM_ERROR', `${name} ${describeExit(info)} before answering initialize`);
      });
      died.catch(() => {});
      const init: InitializeResult = await Promise.race([initializeAgent(peer, name, this.o.startTimeoutMs ?? 30_000), died]);
      if (s.closing) return;
      const llm = s.llm;
      s.booted = { proc, peer, init, env: s.env, slot: s, released: () => s.released(), replenish: () => this.fill(), ...(llm ? { llm } : {}) };
      this.ready.push(s);
      void proc.exited.then((info) => {
        if (s.taken || s.closing) return;
        log.warn('warm agent process exited while waiting', {
          agent: config.id,
          pid: proc.pid,
          code: info.code,
          signal: info.signal,
          stderr: proc.stderr(2_000),
        });
        this.failed(Date.now() - s.born >= HEALTHY_AFTER_MS);
        void s.close('exited');
      });
      log.info('warm agent process ready', { agent: config.id, pid: proc.pid });
    } catch (err) {
      if (s.closing || this.closed) return void (await s.close('shutdown'));
      // the model-API URL is known once the server listens: not the command's fault, try again soon
      const early = config.llm !== undefined && this.o.llm !== undefined && !this.o.llm.gatewayUrl();
      const stderr = s.proc?.stderr(2_000);
      if (!early) log.warn('warm agent process failed to start', { agent: config.id, error: String(err), ...(stderr ? { stderr } : {}) });
      this.failed(false, early ? 100 : undefined);
      await s.close('start-failed');
    }
  }

  /** Counts a failure and holds refills back for the back-off. */
  private failed(healthy: boolean, delayMs?: number): void {
    if (delayMs === undefined) {
      this.counts.failed++;
      if (healthy) this.failures = 0;
      delayMs = Math.min(WARM_BACKOFF_FIRST_MS * 2 ** this.failures, WARM_BACKOFF_MAX_MS);
      this.failures++;
    }
    clearTimeout(this.retry);
    this.retryAt = Date.now() + delayMs;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      this.fill();
    }, delayMs).unref();
  }

  /** Spare.close: stops the process, gives the slot back, revokes the token, removes the folder. */
  async discard(s: Spare, reason: string): Promise<void> {
    this.spares.delete(s);
    const i = this.ready.indexOf(s);
    if (i >= 0) this.ready.splice(i, 1);
    const pid = s.proc?.pid;
    s.peer?.close(new GatewayError('CANCELLED', `warm ${agentName(this.o.spec)} process stopped (${reason})`));
    await s.proc?.stop();
    this.o.limiter?.release(s);
    await s.llm?.dispose();
    await s.released();
    this.o.log.info('warm agent process stopped', { agent: this.o.config.id, pid, reason });
  }
}

/** The warm pools of a gateway's `acp.agents`, rebuilt by a config reload. */
export class WarmPools {
  private readonly pools = new Map<string, { key: string; pool: WarmPool }>();
  private closed = false;

  constructor(private readonly o: Omit<WarmPoolOptions, 'config' | 'spec'>) {}

  /** Keeps the pools whose entry is unchanged; replaces changed ones, stops removed ones, starts new ones. */
  configure(agents: readonly AgentConfig[], specs: ReadonlyMap<string, AgentSpec>): void {
    if (this.closed) return; // a reload racing the gateway's stop starts nothing
    const wanted = new Set<string>();
    for (const a of agents) {
      const spec = specs.get(a.id);
      if (a.warm <= 0 || !spec || (a.llm && !this.o.llm)) continue;
      wanted.add(a.id);
      const key = JSON.stringify(a);
      const had = this.pools.get(a.id);
      if (had?.key === key) continue;
      if (had) void this.stop(had.pool);
      const pool = new WarmPool({ ...this.o, config: a, spec });
      this.pools.set(a.id, { key, pool });
      pool.fill();
    }
    for (const [id, { pool }] of this.pools) {
      if (wanted.has(id)) continue;
      this.pools.delete(id);
      void this.stop(pool);
    }
  }

  pool(agentId: string): WarmPool | undefined {
    return this.pools.get(agentId)?.pool;
  }

  status(): WarmPoolStatus[] {
    return [...this.pools.values()].map((p) => p.pool.status());
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.pools.values()].map((p) => p.pool);
    this.pools.clear();
    await Promise.all(all.map((p) => this.stop(p)));
  }

  private stop(pool: WarmPool): Promise<void> {
    return pool.close().catch((err: unknown) => this.o.log.warn('warm pool stop failed', { error: String(err) }));
  }
}
