/**
 * The ACP core, assembled: availability probes → catalog, runtime factories per provider id, the turn runner on
 * the session store, and the transport-free method table (`dispatch`). The JSON-RPC transports that serve it on
 * `/acp/rpc` and `/acp` are built in src/http/acp/; peers reach it over the bridge (peers.ts).
 *
 * Runtimes: `acp.agents[]` → ACP stdio agents (runtimes/agent.ts); `acp.gateways[]` of kind `channels` → chats
 * over the Router (runtimes/channels.ts); kind `openclaw` → an operator client of that OpenClaw gateway
 * (runtimes/openclaw/), whose availability is a cached connect probe. Peers' shared runtimes join the catalog
 * and run on the peer (peers.ts).
 *
 * The agent runtime, its probe and the OpenClaw client are imported (`import()`) on first use, so a gateway
 * whose config names no agent and no OpenClaw gateway never loads them (idle RSS, docs/benchmarks.md).
 */
import path, { basename } from 'node:path';
import { secrets } from '../util/redact.js';
import type { Config } from '../config/schema.js';
import { resolvePath } from '../config/load.js';
import type { Router } from '../router/router.js';
import type { SessionStore } from '../sessions/store.js';
import type { Logger } from '../util/log.js';
import { startRetention } from '../util/retention.js';
import { REDIS_CLOSE_WAIT_MS } from '../util/redis-close.js';
import { settledWithin } from '../util/settled-within.js';
import { GatewayError } from '../wire/errors.js';
import { buildCatalog, type AvailabilitySource, type Availability } from './capabilities.js';
import { createDispatch, type Dispatch } from './methods.js';
import { createSessionApi, type SessionApi } from './session-api.js';
import { TurnRunner, type TurnRunnerOptions } from './turn-runner.js';
import { resultOutputMaxChars, taskBytesBudget, type TaskRegistryHeld } from './task-registry.js';
import { updateLogPageBytes, type ReplayFlow } from './update-log.js';
import { leaseHolderId } from './lease.js';
import type { PluggedGatewayRuntime, Runtime, RuntimeContext, RuntimeFactories, RuntimeFactory } from './runtime.js';
import { createChannelsRuntime } from './runtimes/channels.js';
import { resolveAgent, wireHome, type LlmContext } from './runtimes/agent/launch.js';
import { AgentProcessLimiter } from './runtimes/agent/limits.js';
import type { ModelTokens } from '../util/model-tokens.js';
import type { KeyService } from '../keys/service.js';
import type { WarmPools, WarmPoolStatus } from './runtimes/agent/warm-pool.js';
import type { OpenClawGatewayConfig, OpenClawGatewayOptions } from './runtimes/openclaw/runtime.js';
import type { BridgeMesh } from '../bridge/mesh.js';
import { peerRpcHandler, peerRuntimes, remoteSessions } from './peers.js';

export interface AcpCoreDeps {
  config: Config;
  baseDir: string;
  router: Router;
  store: SessionStore;
  gatewayId: string;
  logger: Logger;
  /** replaces the built-in availability probes (tests) */
  availability?: AvailabilitySource;
  /**
   * Gateway provider runtimes built by the caller, keyed by `acp.gateways[].id` (e.g. OpenClaw). A configured
   * gateway provider without a built-in runtime and without an entry here is reported unavailable.
   */
  gatewayRuntimes?: ReadonlyMap<string, PluggedGatewayRuntime>;
  /** the bridge: peers' shared runtimes join the catalog, sessions on peers are reached through it, and
   *  peers' calls for the runtimes we share are served (mesh.rpcHandler is set here) */
  mesh?: BridgeMesh;
  /** per-session model-API tokens for agents run with `llm` (the HTTP server's model APIs accept them) */
  modelTokens?: ModelTokens;
  /** this gateway's base URL as an agent on this host reaches it; known once the server listens */
  modelApiUrl?: () => string;
  /** metrics hook: each turn's end (TurnRunnerOptions.onTurnEnded) */
  onTurnEnded?: TurnRunnerOptions['onTurnEnded'];
  /** tracing hook: a span per turn (TurnRunnerOptions.traceTurn) */
  traceTurn?: TurnRunnerOptions['traceTurn'];
  /**
   * Virtual keys: the transports accept keys created with `acp: true`, and a gateway chat task's model request
   * is admitted and recorded like an agent's (the session's key, else `agent:<runtime id>`).
   */
  keys?: KeyService;
}

/** what the runtime table is built from */
export type AcpRuntimeLists = Pick<Config['acp'], 'agents' | 'gateways'>;

export interface AcpCore {
  /** the method table every transport serves */
  dispatch: Dispatch;
  /** the task-session REST surface (addendum §6) over the method table */
  sessions: SessionApi;
  /** resume: a session's updates after `afterSeq`, then its live ones, until the returned function is called */
  follow(sessionId: string, afterSeq: number, push: (params: Record<string, unknown>) => void, caller?: string, flow?: ReplayFlow): Promise<() => void>;
  /** the `acp` logger (transports log under it) */
  log: Logger;
  /**
   * config reload, in two steps (as src/gateway-prepare.ts does for channels): builds the runtime table for
   * `next`, which is all that can throw, and returns the commit that swaps it in whole and cannot throw. Nothing
   * changes until the commit is called (the reload calls it once `acp.agents` / `acp.gateways` hold `next`'s);
   * a table not committed is dropped, having opened nothing. Commit before the next prepare.
   */
  prepare(next: AcpRuntimeLists): () => void;
  /** graceful stop: refuses new turns, waits (bounded) for the running ones */
  drain(graceMs: number): Promise<void>;
  /**
   * cancels running turns, ends runtime sessions and plugged gateway runtimes; `deadline`: the stop's (epoch ms),
   * which the last session writes share (TurnRunner.shutdown)
   */
  close(deadline?: number): Promise<void>;
  /** the warm pools (`acp.agents[].warm`), one row per entry that has one; empty when none was ever asked for */
  warmPools(): WarmPoolStatus[];
  /** what the task registry (`xworkmate.tasks.get`) holds in memory now */
  tasksHeld(): TaskRegistryHeld;
}

export function createAcpCore(deps: AcpCoreDeps): AcpCore {
  const acp = deps.config.acp;
  const log = deps.logger.child({ part: 'acp' });
  const workspaceRoot = resolvePath(deps.baseDir, acp.workspaceRoot);

  let factories: RuntimeFactories = { agent: new Map(), gateway: new Map() };
  const limiter = new AgentProcessLimiter(acp.maxAgentProcesses);
  /** the agent runtime's module, loaded by the first agent session; each later one takes the same promise (one
   *  microtask), not another `import()`, whose resolution runs through the module loader on every call */
  let agentRuntimeModule: Promise<typeof import('./runtimes/agent/runtime.js')> | undefined;
  const homeRoot = resolvePath(deps.baseDir, acp.agentHomeRoot);
  const llm: LlmContext | undefined = deps.modelTokens && deps.modelApiUrl ? { tokens: deps.modelTokens, gatewayUrl: deps.modelApiUrl, homeRoot } : undefined;
  /** launch specs by agent id (preset defaults applied), rebuilt by `build` on a reload */
  let specs = new Map<string, ReturnType<typeof resolveAgent>>();
  /**
   * The probe of an `llm` agent runs as a session would (same HOME layout, config files and switches, so it
   * calls nowhere else either), in a folder per preset, with a token no API accepts: initialize needs no model.
   */
  const probeHomes = new Map<string, Promise<Record<string, string>>>();
  const probeSpec = async (id: string) => {
    const spec = specs.get(id)!;
    const a = acp.agents.find((x) => x.id === id);
    if (!a?.llm || !a.preset) return spec;
    let wired = probeHomes.get(a.preset); // written once per preset: probes of one preset share the folder
    if (!wired) {
      const home = path.join(homeRoot, `.probe-${a.preset}`);
      wired = wireHome(a.preset, home, { gatewayUrl: deps.modelApiUrl?.() || 'http://127.0.0.1:9', token: 'sy-probe-no-access', model: 'probe' });
      probeHomes.set(a.preset, wired);
    }
    return { ...spec, env: { ...spec.env, ...(await wired), ...a.env } };
  };
  const plugged = new Map<string, PluggedGatewayRuntime>(deps.gatewayRuntimes ?? []);
  /** built-in OpenClaw runtimes by id, with the config they were built from (a reload replaces changed ones) */
  const builtIn = new Map<string, string>();
  const localIds = new Set<string>();
  /** warm agent processes (`acp.agents[].warm`), loaded only when an entry asks for them */
  let warm: Promise<WarmPools> | undefined;
  /** the same, once its module is loaded (the status view reads it synchronously) */
  let warmLoaded: WarmPools | undefined;
  // Builds the runtime table for `lists` (at start: the config's; a config reload: the new file's, `prepare`).
  // Everything that can fail is made here, into new tables, and nothing in use is touched; the returned commit
  // swaps them in, whole, and cannot throw. Sessions already running keep their runtime; new sessions see the
  // new table.
  const build = (lists: AcpRuntimeLists): (() => void) => {
    const agents = [...lists.agents];
    const gateways = [...lists.gateways];
    const nextSpecs = new Map(agents.map((a) => [a.id, resolveAgent(a)] as const));
    const next: RuntimeFactories = { agent: new Map(), gateway: new Map() };
    for (const a of agents) {
      const agent = nextSpecs.get(a.id)!;
      next.agent.set(a.id, (ctx) => {
        if (a.llm && !llm)
          throw new GatewayError('UNSUPPORTED', `agent provider "${a.id}" runs on this gateway's model API, which this gateway does not serve`);
        return (agentRuntimeModule ??= import('./runtimes/agent/runtime.js')).then(({ createAgentRuntime }) =>
          (a.warm > 0 && warm ? warm : Promise.resolve(undefined)).then((w) => {
            const pool = w?.pool(a.id);
            return createAgentRuntime(
              {
                agent,
                config: a,
                ...(a.llm ? { llm } : {}),
                workspaceRoot,
                idleTimeoutMs: acp.agentIdleTimeoutMs,
                limiter,
                ...(pool ? { warm: pool } : {}),
                log,
              },
              ctx,
            );
          }),
        );
      });
    }
    // built-in OpenClaw runtimes whose config changed (or is gone) are replaced; the old ones are closed once
    // the new table is in
    const wanted = new Map(gateways.filter((g) => g.kind === 'openclaw').map((g) => [g.id, JSON.stringify(g)]));
    const retired = [...builtIn].filter(([id, was]) => wanted.get(id) !== was).map(([id]) => id);
    const nextPlugged = new Map(plugged);
    const nextBuiltIn = new Map(builtIn);
    for (const id of retired) {
      nextPlugged.delete(id);
      nextBuiltIn.delete(id);
    }
    for (const g of gateways) {
      if (g.kind === 'openclaw' && !nextPlugged.has(g.id)) {
        nextPlugged.set(g.id, lazyOpenClaw({ id: g.id, label: g.label, url: g.url, token: g.token }, { log }));
        nextBuiltIn.set(g.id, JSON.stringify(g));
      }
    }
    for (const g of gateways) {
      const p = nextPlugged.get(g.id);
      if (p) {
        next.gateway.set(g.id, p.factory);
        continue;
      }
      if (g.kind !== 'channels') continue; // openclaw without a plugged runtime: unavailable
      next.gateway.set(g.id, (ctx) =>
        createChannelsRuntime({
          router: deps.router,
          model: ctx.target.model || g.model,
          sessionId: ctx.sessionId,
          timeoutMs: deps.config.gateway.routing.timeoutMs,
          ...(deps.keys
            ? { admit: (model: string) => deps.keys!.admit({ kind: 'agent', agentId: g.id, sessionId: ctx.sessionId, keyId: ctx.keyId }, model) }
            : {}),
        }),
      );
    }

    // the swap: nothing in it throws
    return () => {
      const closing = retired.map((id) => plugged.get(id));
      factories = next;
      specs = nextSpecs;
      replaceMap(plugged, nextPlugged);
      replaceMap(builtIn, nextBuiltIn);
      localIds.clear();
      for (const x of [...agents, ...gateways]) localIds.add(x.id);
      for (const p of closing) void p?.close().catch((err: unknown) => log.warn('gateway runtime close failed', { error: String(err) }));
      if (warm || agents.some((a) => a.warm > 0)) {
        warm ??= import('./runtimes/agent/warm-pool.js').then(
          ({ WarmPools }) => (warmLoaded = new WarmPools({ ...(llm ? { llm } : {}), homeRoot, limiter, log })),
        );
        void warm.then((w) => w.configure(agents, nextSpecs));
      }
    };
  };
  build(acp)();

  const availability: AvailabilitySource = deps.availability ?? {
    async agent(a): Promise<Availability> {
      // a ready warm spare of this entry just did what the probe checks (started, answered initialize): no probe
      // process, which would otherwise sit in a session.start's path once per probe TTL
      if (a.warm > 0 && (await warm)?.pool(a.id)?.hasReady) return { enabled: true };
      const spec = await probeSpec(a.id);
      const { probeAgent } = await import('./runtimes/agent/probe.js');
      const r = await probeAgent(spec, 20_000, { cwd: deps.baseDir, log });
      // the client sees the reason: name the command, never the server's folder layout
      // (and never a secret the agent printed while failing: its diagnostics often name its provider key)
      return r.ok
        ? { enabled: true }
        : { enabled: false, reason: secrets.scrubError(r.reason.split(spec.command).join(basename(spec.command)).split(deps.baseDir).join('.')) };
    },
    async gateway(g): Promise<Availability> {
      const p = plugged.get(g.id);
      if (p) return p.probe();
      if (g.kind === 'channels' && !deps.router.modelNames().includes(g.model)) {
        return { enabled: false, reason: `model "${g.model}" is not served by any channel of this gateway or its peers` };
      }
      return { enabled: true };
    },
  };

  const runtimeFor = async (ctx: RuntimeContext): Promise<Runtime> => {
    const t = ctx.target;
    const f: RuntimeFactory | undefined = t.executionTarget === 'agent' ? factories.agent.get(t.providerId) : factories.gateway.get(t.gatewayProviderId);
    if (!f) {
      const what = t.executionTarget === 'agent' ? `agent provider "${t.providerId}"` : `gateway provider "${t.gatewayProviderId}"`;
      throw new GatewayError('UNSUPPORTED', `${what} has no runtime on this gateway (not configured, or its kind is not implemented)`);
    }
    return f(ctx);
  };

  const holderId = leaseHolderId(deps.gatewayId, deps.config.store);
  const runner = new TurnRunner({
    store: deps.store,
    gatewayId: deps.gatewayId,
    logger: log,
    runtimeFor,
    leaseTtlMs: acp.turnLeaseMs,
    leaseWaitMs: acp.turnLeaseWaitMs,
    permissionTimeoutMs: acp.permissionTimeoutMs,
    updateLogMaxBytes: acp.updateLogMaxBytes,
    updateLogPageBytes: updateLogPageBytes(acp.maxStreamBacklogBytes),
    resultOutputMaxChars: resultOutputMaxChars(acp.maxStreamBacklogBytes),
    maxTaskBytes: taskBytesBudget(acp.maxStreamBacklogBytes),
    ...(holderId ? { holderId } : {}),
    onTurnEnded: deps.onTurnEnded,
    traceTurn: deps.traceTurn,
  });
  const listening = runner.listen().catch((err) => log.warn('cross-instance cancel unavailable', { error: String(err) }));
  // closed and moved-away sessions (records, update logs) are kept until this says otherwise
  const retention =
    acp.endedSessionRetentionDays > 0
      ? startRetention({
          days: acp.endedSessionRetentionDays,
          what: 'ended sessions',
          setting: 'endedSessionRetentionDays',
          logger: log,
          deleteBefore: (before) => deps.store.deleteEndedBefore(before),
        })
      : undefined;
  const mesh = deps.mesh;
  const dispatch = createDispatch({
    acp,
    runner,
    catalog: () => buildCatalog(acp, availability, mesh ? peerRuntimes(mesh, localIds) : []),
    remote: mesh ? remoteSessions(mesh, deps.store, localIds) : undefined,
    servedModels: () => deps.router.modelNames(),
  });
  if (mesh && acp.enabled) mesh.rpcHandler = peerRpcHandler(dispatch, deps.store, (sessionId) => runner.cancel(sessionId));
  if (mesh?.transfers) mesh.transfers.onMovedAway = (sessionId) => runner.movedAway(sessionId);
  // a warning when agents or gateway runtimes are configured (someone means to use /acp/rpc); a gateway that
  // only serves models runs this way by default, so there it is an info line
  if (acp.enabled && acp.tokens.length === 0)
    log[acp.agents.length + acp.gateways.length > 0 ? 'warn' : 'info'](
      '/acp/rpc refuses every request but those with a virtual key created with acp: true: acp.tokens is empty',
    );

  return {
    dispatch,
    sessions: createSessionApi({ dispatch, store: deps.store, runner }),
    follow: (sessionId, afterSeq, push, caller, flow) => runner.follow(sessionId, afterSeq, push, caller, flow),
    log,
    drain: (graceMs) => runner.drain(graceMs),
    prepare: build,
    warmPools: () => warmLoaded?.status() ?? [],
    tasksHeld: () => runner.tasksHeld(),
    async close(deadline) {
      // until the stop's deadline, at least 1 s: a store connected but not answering (a Redis stopped) would hold
      // the subscriptions, or the settling of what a previous run left open, and the stop, for ever
      if (!(await settledWithin(listening, Math.max(REDIS_CLOSE_WAIT_MS, (deadline ?? 0) - Date.now()))))
        log.warn('graceful stop: cross-instance cancel and the settling of sessions a previous run left open unfinished: the store did not answer');
      await retention?.stop(deadline);
      await runner.shutdown(undefined, deadline);
      await (await warm)?.close();
      await Promise.all([...plugged.values()].map((p) => p.close().catch((err: unknown) => log.warn('gateway runtime close failed', { error: String(err) }))));
    },
  };
}

/** `into` holds what `from` holds, in place (its holders keep their reference). */
function replaceMap<K, V>(into: Map<K, V>, from: ReadonlyMap<K, V>): void {
  into.clear();
  for (const [k, v] of from) into.set(k, v);
}

/** An OpenClaw gateway runtime whose client module is imported on first use (a probe, a session or close). */
function lazyOpenClaw(config: OpenClawGatewayConfig, opts: OpenClawGatewayOptions): PluggedGatewayRuntime {
  let made: ReturnType<typeof make> | undefined;
  const make = () => import('./runtimes/openclaw/runtime.js').then(({ OpenClawGateway }) => new OpenClawGateway(config, opts));
  const gw = () => (made ??= make());
  return {
    factory: async (ctx) => (await gw()).factory(ctx),
    probe: async () => (await gw()).probe(),
    close: async () => {
      if (made) await (await made).close();
    },
  };
}
