/**
 * The composition root: config → providers → router → bridge mesh → HTTP server. Everything the CLI's
 * `gateway` command, the demo and the tests start goes through `startGateway`.
 */
import { Server as TlsServer } from 'node:tls';
import type { LoadedConfig } from './config/load.js';
import { ConfigError, resolvePath } from './config/load.js';
import type { Config } from './config/schema.js';
import { prepareConfig, type Prepared } from './gateway-prepare.js';
import { Router } from './router/router.js';
import { localCandidate } from './router/local-candidate.js';
import { HttpServer, type RouteHandler } from './http/server.js';
import { createLogger, setConfiguredLogLevel, type Logger } from './util/log.js';
import { newId } from './util/ids.js';
import { secrets } from './util/redact.js';
import { registerConfigSecrets } from './config/secrets.js';
import { adminRoutes } from './http/routes/admin.js';
import { BridgeMesh } from './bridge/mesh.js';
import { createAcp } from './http/acp/index.js';
import { openStore, persistedGatewayId } from './sessions/open-store.js';
import type { SessionStore } from './sessions/store.js';
import { ModelTokens } from './util/model-tokens.js';
import { Observability } from './obs/index.js';
import { metricsRoute } from './http/routes/metrics.js';
import { opsRoutes } from './http/routes/ops.js';
import { uiRoutes } from './http/routes/ui.js';
import { gracefulStop, OpenedParts } from './gateway-stop.js';
import { applyReload, readForReload, type ReloadReport } from './gateway-reload.js';
import { openKeys } from './keys/open.js';
import type { KeyService } from './keys/service.js';
import { adminKeyRoutes } from './http/routes/admin-keys.js';
import { exchangeMeter, inboundApis } from './http/routes/apis.js';
import { GatewayError } from './wire/errors.js';
import { untilAborted } from './util/until-aborted.js';

export interface Gateway {
  readonly id: string;
  readonly name: string;
  readonly config: Config;
  readonly router: Router;
  readonly mesh: BridgeMesh;
  /** durable sessions and small gateway state (SQLite by default, Redis for several instances) */
  readonly store: SessionStore;
  /** virtual keys, limits and usage accounting */
  readonly keys: KeyService;
  readonly port: number;
  readonly host: string;
  /** http(s)://host:port */
  readonly url: string;
  readonly logger: Logger;
  /** metrics, traces and the request-rate window (docs/operations.md) */
  readonly obs: Observability;
  /** re-reads the config file and applies what can change live (src/config/reload.ts); throws ConfigError */
  reload(): Promise<ReloadReport>;
  /**
   * graceful: stop accepting, finish in-flight up to gateway.shutdownGraceMs, then close links, listener, ACP,
   * pools, keys, store and tracing in that order (a part that fails to close is logged, the others still close)
   */
  close(): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
  /**
   * aborts the start (a SIGTERM while it starts): a step waiting on a store or a collector is given up at once, what
   * the start opened is closed, and the start rejects with the signal's reason; no listener is left. A part still
   * opening when the abort came is closed when its open ends.
   */
  signal?: AbortSignal;
}

/**
 * Starts a gateway from a loaded config. The log level (one for the process) becomes `gateway.log.level` first,
 * unless `--log-level` (setLogLevel) or SWITCHYARD_LOG chose one: the rule of the CLI start and of a reload.
 */
export async function startGateway(loaded: LoadedConfig, opts: StartOptions = {}): Promise<Gateway> {
  const cfg = loaded.config;
  setConfiguredLogLevel(cfg.gateway.log.level);
  registerConfigSecrets(cfg);
  // before anything is opened: the files the config names, where the store is and the channels' providers (the
  // same check as a reload and `config check`), every problem listed
  const prepared = await prepareConfig(loaded);
  const { providers } = prepared;
  const logger = (opts.logger ?? createLogger()).child({ gw: cfg.gateway.name });
  // Every part is added to `opened` as soon as it is open: a start that fails at any step after this one (the
  // store, the gateway id the store cannot keep, the keys, the listen, ...) closes exactly what it opened so far, by
  // the stop's one sequence, before it throws; a stop closes the same parts the same way.
  const opened = new OpenedParts(logger);
  opened.add('providers', () => Promise.all([...providers.values()].map((p) => p.close())));
  try {
    opts.signal?.throwIfAborted();
    return await assemble(loaded, prepared, logger, opened, opts.signal);
  } catch (err) {
    await opened.close();
    throw err;
  }
}

/** The rest of a start, from the store on; `opened` gets each part once it is open (see startGateway). */
async function assemble(
  loaded: LoadedConfig,
  { providers, https, tls, bridgeCa }: Prepared,
  logger: Logger,
  opened: OpenedParts,
  signal: AbortSignal | undefined,
): Promise<Gateway> {
  const cfg = loaded.config;
  // the steps that wait on a store or a collector (a Redis that does not answer holds them for ever) are given up
  // when the start is aborted; each part opened after the abort is closed as soon as its open ends
  const store = await untilAborted(openConfiguredStore(cfg, loaded.baseDir, logger), signal, (s) => s.close());
  opened.add('store', () => store.close());
  // The gateway id: configured, else generated once and persisted in the store.
  const id = await untilAborted(
    persistedGatewayId(store, cfg.gateway.id, () => newId('gw', 8)),
    signal,
  );
  const keys = await untilAborted(openKeys(cfg, loaded.baseDir, logger), signal, (k) => k.close());
  opened.add('keys', (deadline) => keys.close(deadline)); // writes every pending usage record, or logs what it could not by the deadline
  const r = cfg.gateway.routing;
  const router = new Router({
    strategy: r.strategy,
    preferLocal: r.preferLocal,
    retries: r.retries,
    firstByteTimeoutMs: r.firstByteTimeoutMs,
    streamIdleTimeoutMs: r.streamIdleTimeoutMs,
    affinityTtlMs: r.affinityTtlMs,
    health: r.health,
    logger,
  });
  for (const ch of cfg.channels) router.add(localCandidate(ch, providers.get(ch.name)!));
  // a local channel's provider and model map as they are now: a reload replaces both (`providers` and
  // `cfg.channels` are updated in place), and count_tokens must reach the channel that serves now
  const localChannel = (name: string) => {
    const provider = providers.get(name);
    const ch = cfg.channels.find((c) => c.name === name);
    return provider && ch ? { provider, modelMap: ch.modelMap } : undefined;
  };

  const mesh = new BridgeMesh({ config: cfg, gatewayId: id, router, store, logger: logger.child({ part: 'bridge' }) });
  opened.add('bridge', () => mesh.close());
  mesh.peerGate = keys.peerGate;
  // agents run with `llm` call this gateway back on its loopback address with a per-session token
  const modelTokens = new ModelTokens(
    (token) => secrets.register(token),
    (token) => secrets.forget(token),
  );
  let selfUrl = '';
  // the tracer is started here: a construction that fails after that shuts it down before it throws
  const obs = await untilAborted(
    Observability.open({
      config: cfg,
      gatewayId: id,
      router,
      mesh,
      store,
      // an agent's model requests (its session token) join the trace of the turn that is running
      parentOf: (req) => modelTokens.traceParent(req),
    }),
    signal,
    (o) => o.close(),
  );
  opened.add('obs', async (deadline) => {
    // the pending spans are exported by the stop's deadline (at least 1 s): a collector that does not answer does
    // not hold the exit for the exporter's own timeout
    if (!(await obs.close(deadline))) logger.warn('graceful stop: pending spans not exported: the trace collector did not answer in time');
  });
  const acp = createAcp({
    config: cfg,
    baseDir: loaded.baseDir,
    router,
    store,
    gatewayId: id,
    logger,
    maxBodyBytes: cfg.gateway.maxBodyBytes,
    mesh,
    modelTokens,
    keys,
    modelApiUrl: () => selfUrl,
    onTurnEnded: (runtime, status) => obs.metrics.turnEnded(runtime, status),
    traceTurn: (runtime, sessionId, parent) => obs.turnSpan(runtime, sessionId, parent),
  });
  opened.add('acp', (deadline) => acp.close(deadline));
  opened.add('acp-sockets', () => acp.closeSockets());
  obs.metrics.warmPools = acp.warmPools;
  obs.metrics.acpStreams = () => ({ ...acp.streams.backlog(), cut: acp.streams.cut });
  obs.metrics.acpTasks = acp.tasksHeld;
  // the certificate and key in service: a reload that reads others puts them into service for new connections
  // (setSecureContext parses them: the reload's one parse; it throws for an unusable pair, which is not served)
  let servingPem = tls;
  const servedTls =
    https instanceof TlsServer && servingPem
      ? {
          serving: () => servingPem!,
          use: (pem: { cert: string; key: string }) => {
            https.setSecureContext(pem);
            servingPem = pem;
          },
        }
      : undefined;
  // the `ca` text each configured bridge is dialled with: a reload re-dials a bridge whose `ca` file changed
  const dialledCa = new Map(bridgeCa);
  let reloading: Promise<unknown> = Promise.resolve();
  let closing: Promise<void> | undefined;
  const reload = (): Promise<ReloadReport> => {
    // One reload at a time; the file is read when its turn comes.
    const run = reloading.then(() => {
      // A stop has begun (SIGHUP and the admin API still reach a draining gateway): nothing is applied. The stop
      // told every peer that this gateway shares nothing; a reload would re-send the share lists (peers route back
      // to a gateway going away), dial the file's bridges and make providers for parts being closed. A reload runs
      // from here to its apply without waiting on a timer or I/O, so a stop cannot begin part-way through one.
      if (closing) throw new GatewayError('SHUTTING_DOWN', 'gateway is shutting down: the config is not reloaded');
      return applyReload(
        { live: cfg, path: loaded.path, baseDir: loaded.baseDir, router, mesh, providers, logger, acp, tls: servedTls, bridgeCa: dialledCa },
        readForReload(loaded.path, cfg),
      );
    });
    // a refusal is logged as well as answered: the log is where an operator looks after a `systemctl reload`
    reloading = run.catch((err: unknown) => {
      // a problem's key path is not taken for a credential's name (src/util/log.ts): an error that is no config
      // problem is scrubbed as error text first
      const problems = err instanceof ConfigError ? err.problems : [secrets.scrubError(String((err as Error)?.message ?? err))];
      logger.warn('config not reloaded, the running config is unchanged', { problems });
    });
    return run;
  };
  const routes: RouteHandler[] = [
    metricsRoute(() => cfg, obs.metrics),
    opsRoutes({ config: cfg, gatewayId: id, router, mesh, store, obs, warmPools: acp.warmPools, reload, logger }),
    uiRoutes({ config: cfg, gatewayId: id, router, mesh, store, obs, warmPools: acp.warmPools, logger }),
    adminKeyRoutes({ config: cfg, keys, logger }),
    adminRoutes({ config: cfg, gatewayId: id, router, mesh, store, logger }),
    acp.route,
  ];
  const http = new HttpServer({
    host: cfg.gateway.host,
    port: cfg.gateway.port,
    server: https,
    clientTokens: cfg.gateway.auth.tokens,
    modelTokens,
    authenticate: (req, query, allowQueryKey) => keys.authenticateClient(req, query, allowQueryKey),
    v1: { router, logger, maxBodyBytes: cfg.gateway.maxBodyBytes, timeoutMs: r.timeoutMs, keys, meter: exchangeMeter },
    logger,
    routes,
    observer: obs.meter,
    apis: inboundApis({ config: cfg, router, store, logger, keys, localChannel }),
    access: { allowedHosts: cfg.gateway.allowedHosts, allowedOrigins: cfg.gateway.allowedOrigins },
    body: { timeoutMs: cfg.gateway.bodyTimeoutMs, maxBufferedBytes: cfg.gateway.maxBufferedBodyBytes, maxJsonDepth: cfg.gateway.maxJsonDepth },
    upgrades: { '/bridge': (req, socket, head) => mesh.handleUpgrade(req, socket, head), '/acp': acp.upgrade },
    // Ready = at least one model is routable (a local channel, or a peer's shared one).
    ready: () => {
      const models = router.modelNames().length;
      return { ready: models > 0, detail: { models, peers: mesh.peers().length } };
    },
  });
  opened.add('http', () => http.shutdown(0));
  // a listen that fails (the port in use, no permission) throws: startGateway closes what the start opened
  const addr = await http.listen();
  // aborted while it listened (or during a step not raced above): the listener is closed with the rest (startGateway)
  signal?.throwIfAborted();
  const hostForUrl = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `${http.scheme}://${hostForUrl}:${addr.port}`;
  const loopback = addr.address === '0.0.0.0' ? '127.0.0.1' : addr.address === '::' ? '[::1]' : hostForUrl;
  selfUrl = `${http.scheme}://${loopback}:${addr.port}`;
  mesh.start(bridgeCa);
  logger.info('gateway listening', { id, url, channels: cfg.channels.map((c) => c.name), bridges: cfg.gateway.bridges.map((b) => b.name) });

  return {
    id,
    name: cfg.gateway.name,
    config: cfg,
    router,
    mesh,
    store,
    keys,
    port: addr.port,
    host: addr.address,
    url,
    logger,
    obs,
    reload,
    close() {
      closing ??= (async () => {
        // a drain that fails part-way (a store out of reach) still closes every part: nothing is left open
        const deadline = await gracefulStop({ config: cfg, gatewayId: id, http, mesh, acp, store, logger, onDraining: () => obs.drain() }).catch(
          (err: unknown) => {
            logger.error('graceful stop failed part-way; closing what is open', { error: String((err as Error)?.message ?? err) });
            return Date.now();
          },
        );
        await opened.close(deadline);
      })();
      return closing;
    },
  };
}

async function openConfiguredStore(cfg: Config, baseDir: string, logger: Logger): Promise<SessionStore> {
  if (cfg.store.kind === 'redis') return openStore({ kind: 'redis', url: cfg.store.url, prefix: cfg.store.prefix }, logger.child({ part: 'sessions' }));
  // the store checks the path and creates the folders above the file (readySqlitePath), as the key store does
  return openStore({ kind: 'sqlite', path: resolvePath(baseDir, cfg.store.path) });
}
