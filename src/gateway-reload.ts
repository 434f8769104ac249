/**
 * Hot reload (`switchyard config reload`, POST /admin/config/reload, SIGHUP): the new file is validated as
 * a whole; if it is invalid nothing changes and every problem is returned. If it is valid the differences
 * are applied to the running gateway without dropping in-flight requests or streams:
 * - channels added, removed and changed (a removed or replaced channel leaves the routing table at once,
 *   and its upstream pool is closed only after its in-flight requests ended); unchanged channels keep their
 *   health state and statistics;
 * - outbound bridges connected, disconnected, re-dialled when changed (a removed or changed bridge's link takes no
 *   new request and closes once what is in flight on it ended, or when gateway.shutdownGraceMs has passed, the grace
 *   a graceful stop gives; a re-dialled bridge's new requests go to its new link, and until that link is open to the
 *   old one when the bridge keeps its token, `ca` and URL scheme; an unchanged bridge is untouched);
 * - the share lists re-sent to every peer (`bridge-channels`) and enforced on the serving side at once;
 * - tokens (client, admin, metrics, bridge allowedTokens, acp.tokens), log level, shutdown settings; an inbound
 *   bridge link opened with an allowedTokens entry the file removes is closed (4401), as its next handshake would be;
 * - ACP agents and gateway providers added, removed and changed, when the ACP layer supports it (its new runtime
 *   table is built before anything is applied, and swapped in whole by the apply).
 * - the HTTPS certificate and key (`gateway.tls`, other files or the same files rewritten, as a renewal does):
 *   read as at start and, when they differ from those in service, parsed once by putting them into service for
 *   new connections (`setSecureContext`, which refuses an unusable pair and changes nothing then); connections
 *   already open keep the certificate they were made with.
 * Everything else that differs (listen address, TLS turned on or off, store, routing, tracing, limits…) is
 * reported as needing a restart, never silently ignored.
 *
 * The live Config object is shared by reference with the server, admin API, mesh and ACP layer, so
 * applying a section means replacing it in place (arrays spliced, objects assigned).
 */
import type { Config, ChannelConfig, OutboundBridgeConfig } from './config/schema.js';
import { ConfigError, loadConfig, openToNetwork } from './config/load.js';
import type { Router } from './router/router.js';
import type { BridgeMesh } from './bridge/mesh.js';
import type { ChannelProvider } from './providers/provider.js';
import { createSecureContext } from 'node:tls';
import { closeProviders, prepareConfig, tlsProblem, type Prepared } from './gateway-prepare.js';
import { localCandidate } from './router/local-candidate.js';
import { setConfiguredLogLevel, type Logger } from './util/log.js';
import { configScrubber, registerConfigSecrets, scrubConfigProblems } from './config/secrets.js';
import { secrets } from './util/redact.js';
import type { ReloadReport } from './http/routes/ops.js';
import type { AcpRuntimeLists } from './acp/index.js';

export type { ReloadReport };

export interface ReloadTarget {
  /** the running config, mutated in place */
  live: Config;
  /** the file the gateway was started from (undefined: built-in defaults, nothing to reload) */
  path: string | undefined;
  /** the folder relative paths in the file resolve against (its own) */
  baseDir: string;
  router: Router;
  mesh: BridgeMesh;
  /** the local channels' providers, by channel name */
  providers: Map<string, ChannelProvider>;
  logger: Logger;
  /**
   * the ACP layer's runtime table (absent: agent changes need a restart): `prepare` builds it for the new lists,
   * which is all that can throw, and returns the commit that swaps it in and cannot throw (AcpCore.prepare)
   */
  acp?: { prepare(next: AcpRuntimeLists): () => void } | undefined;
  /**
   * the running HTTPS server's certificate and key (absent: the gateway serves HTTP): `serving` is the PEM text
   * in service, `use` parses other text and puts it into service for new connections; it throws when they are
   * not a usable certificate and key, and the pair in service stays
   */
  tls?: { serving(): { cert: string; key: string }; use(pem: { cert: string; key: string }): void } | undefined;
  /**
   * the `ca` text each configured bridge was dialled with, by name (absent: not compared): a bridge whose `ca` file
   * now holds other text (a peer's renewed certificate) is re-dialled with it; the apply keeps it up to date
   */
  bridgeCa?: Map<string, string> | undefined;
}

/** Key paths (prefixes) applied live; any other difference needs a restart. */
const LIVE = [
  'channels',
  'gateway.bridges',
  'gateway.auth.tokens',
  'gateway.admin.token',
  'gateway.metrics.token',
  'gateway.log',
  'gateway.shutdownGraceMs',
  'gateway.shutdown',
  'gateway.bridge.enabled',
  'gateway.bridge.allowedTokens',
  'gateway.bridge.shareChannels',
  'gateway.bridge.shareAgents',
  'gateway.bridge.maxPeers',
  'acp.tokens',
  'acp.allowedOrigins',
];
const ACP_RUNTIMES = ['acp.agents', 'acp.gateways'];

/**
 * A config value as JSON with every object's keys sorted, for comparing an old and a new value. The schema writes
 * its objects' keys in its own order, but a record (a channel's `options`, `headers` and `modelMap`, an agent's
 * `env`) keeps the file's: the same keys and values written in another order are the same setting, and must not
 * make a channel "changed" (a new provider, its health record and statistics lost) or re-dial a bridge.
 */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : x,
  );
}

/** Leaf key paths whose values differ (arrays compared whole, the order of an object's keys aside). */
export function changedPaths(a: unknown, b: unknown, path = ''): string[] {
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    const out: string[] = [];
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) out.push(...changedPaths(a[k], b[k], path ? `${path}.${k}` : k));
    return out;
  }
  return canonicalJson(a) === canonicalJson(b) ? [] : [path];
}

const under = (p: string, prefixes: string[]) => prefixes.some((x) => p === x || p.startsWith(`${x}.`));

function replaceArray<T>(target: T[], next: readonly T[]): void {
  target.splice(0, target.length, ...next);
}

/**
 * Reads and validates the file; throws ConfigError (every problem) when it is invalid, changing nothing. The
 * file is checked as it would run: the fail-closed rule (a non-loopback bind needs client auth) is checked
 * against the running bind and `requireKey` too, which a reload does not change (they need a restart). A file
 * that names a loopback host and no token must not open a gateway still listening on 0.0.0.0.
 */
export function readForReload(path: string | undefined, live?: Config): Config {
  if (!path) throw new ConfigError(['the gateway runs on built-in defaults (no config file): there is nothing to reload'], 'reload');
  let next: Config;
  try {
    next = loadConfig(path).config;
  } catch (err) {
    // A problem may quote a value of the file (a name in a share list), scrubbed of the file's own secrets
    // (configRefusal): one of the running config's, which the process knows, is scrubbed here. Else SIGHUP's stderr
    // line, which writes the problems as they come, showed it (the admin answer and the log scrub their text).
    if (err instanceof ConfigError)
      throw new ConfigError(
        err.problems.map((p) => secrets.scrubProblem(p)),
        path,
      );
    throw err;
  }
  if (live && openToNetwork(live.gateway.host, next.gateway.auth.tokens, live.gateway.auth.requireKey)) {
    throw new ConfigError(
      [
        `gateway.auth.tokens: this gateway listens on ${live.gateway.host}, which is not loopback, so clients must authenticate; keep at least one token (gateway.host and gateway.auth.requireKey change only at a restart)`,
      ],
      path,
    );
  }
  return next;
}

/**
 * Applies a valid file in two steps. First everything that can fail, before anything changes: the file is
 * checked as a start would check it (src/gateway-prepare.ts: the files it names, each read once, and the
 * providers of the channels it adds or changes; one that refuses its options refuses the whole file, and the
 * providers made are closed), and, when `acp.agents` / `acp.gateways` differ, the ACP layer's new runtime table
 * is built (a build that fails refuses the whole file the same way). Then the apply, which only changes in-memory state (the config sections in
 * place, the routing table and the provider map, bridge dialers started with the `ca` text read in the first
 * step, the ACP table built in it swapped in, retired providers closed in the background) and reads no file: nothing in it is expected to throw,
 * so a reload happens whole or not at all. Should a bug make it throw all the same, each channel is left
 * consistent (its provider is stored only once it is routed) and the providers made for the reload that the
 * gateway does not hold are closed, not leaked. A refused file's problems leave scrubbed of its secrets as well
 * as the running config's, without the process learning the refused file's (scrubRefusal).
 */
export async function applyReload(t: ReloadTarget, next: Config): Promise<ReloadReport> {
  let prepared: PreparedReload;
  try {
    prepared = await prepareReload(t, next);
  } catch (err) {
    throw scrubRefusal(err, t, next);
  }
  try {
    return applyPrepared(t, next, prepared);
  } catch (err) {
    await closeProviders([...prepared.providers].filter(([name, p]) => t.providers.get(name) !== p).map(([, p]) => p));
    throw err;
  }
}

function applyPrepared(t: ReloadTarget, next: Config, { providers: made, bridgeCa, acp: commitAcp, tls: pem, tlsServed }: PreparedReload): ReloadReport {
  const live = t.live;
  // secrets first: a new token or key must be scrubbed from the first line that could mention it
  registerConfigSecrets(next);
  const paths = changedPaths(live, next);
  const report: ReloadReport = { applied: [], restartRequired: [] };
  // TLS stays on (the server is HTTPS and the file names a certificate): other files are applied live too
  const tlsLive = t.tls !== undefined && live.gateway.tls !== undefined && pem !== undefined;
  for (const p of paths) if (!under(p, LIVE) && !(t.acp && under(p, ACP_RUNTIMES)) && !(tlsLive && under(p, ['gateway.tls']))) report.restartRequired.push(p);

  // The certificate and key: put into service by the check's last step when their text differed (prepareReload)
  if (tlsServed) report.applied.push('gateway.tls: the certificate and key read now serve new connections');
  if (tlsLive && live.gateway.tls && next.gateway.tls) Object.assign(live.gateway.tls, next.gateway.tls);

  // Channels first, so share lists announced below describe the new set.
  const retired = applyChannels(t, next.channels, made, report);
  replaceArray(live.channels, next.channels);

  // Tokens and small settings, in place (their holders keep references to these arrays/objects).
  const g = live.gateway;
  const n = next.gateway;
  const note = (p: string, what: string) => paths.some((x) => under(x, [p])) && report.applied.push(what);
  replaceArray(g.auth.tokens, n.auth.tokens);
  note('gateway.auth.tokens', 'gateway.auth.tokens replaced');
  g.admin.token = n.admin.token;
  note('gateway.admin.token', 'gateway.admin.token replaced');
  g.metrics.token = n.metrics.token;
  note('gateway.metrics.token', 'gateway.metrics.token replaced');
  g.shutdownGraceMs = n.shutdownGraceMs;
  g.shutdown.drainSessionsTo = n.shutdown.drainSessionsTo;
  note('gateway.shutdown', 'gateway.shutdown updated');
  note('gateway.shutdownGraceMs', `gateway.shutdownGraceMs = ${n.shutdownGraceMs}`);
  if (n.log.level !== g.log.level) {
    g.log.level = n.log.level;
    // the level unless --log-level or SWITCHYARD_LOG chose one (they win, as at start)
    report.applied.push(
      setConfiguredLogLevel(n.log.level)
        ? `log level ${n.log.level ?? 'info'}`
        : `gateway.log.level ${n.log.level ?? 'absent'} (not in effect: --log-level or SWITCHYARD_LOG chose the level)`,
    );
  }
  replaceArray(live.acp.tokens, next.acp.tokens);
  note('acp.tokens', 'acp.tokens replaced');
  replaceArray(live.acp.allowedOrigins, next.acp.allowedOrigins);
  note('acp.allowedOrigins', 'acp.allowedOrigins replaced');

  // Inbound bridge settings: read live by the mesh (upgrade, admission, shares).
  const b = g.bridge;
  b.enabled = n.bridge.enabled;
  b.maxPeers = n.bridge.maxPeers;
  replaceArray(b.allowedTokens, n.bridge.allowedTokens);
  replaceArray(b.shareChannels, n.bridge.shareChannels);
  replaceArray(b.shareAgents, n.bridge.shareAgents);
  for (const k of ['enabled', 'maxPeers', 'allowedTokens', 'shareChannels', 'shareAgents']) note(`gateway.bridge.${k}`, `gateway.bridge.${k} updated`);
  // fail closed: a peer whose token was removed loses its open link too, not only its next handshake; with inbound
  // bridges disabled no token is accepted, so every inbound link closes
  const revoked = b.enabled
    ? t.mesh.revokeTokens(b.allowedTokens).map((name) => `bridge link ${name} closed (its token is no longer in gateway.bridge.allowedTokens)`)
    : t.mesh
        .revokeTokens([], 'inbound bridges disabled')
        .map((name) => `bridge link ${name} closed (inbound bridges are disabled: gateway.bridge.enabled is false)`);
  report.applied.push(...revoked);

  if (commitAcp) {
    replaceArray(live.acp.agents, next.acp.agents);
    replaceArray(live.acp.gateways, next.acp.gateways);
    commitAcp();
    report.applied.push('ACP agents and gateway providers updated');
  }

  applyBridges(t, next.gateway.bridges, bridgeCa, report);
  replaceArray(g.bridges, next.gateway.bridges);
  // Every link gets its (possibly) new share list: enforced on our side now, announced to the peer.
  const announced = t.mesh.reshare();
  if (announced > 0 && paths.some((p) => under(p, ['channels', 'gateway.bridge.shareChannels', 'gateway.bridge.shareAgents', 'gateway.bridges']))) {
    report.applied.push(`share lists re-sent to ${announced} peer(s)`);
  }
  t.logger.info('config reloaded', { applied: report.applied, restartRequired: report.restartRequired });
  void retired;
  return report;
}

/**
 * The problems of a file the check refused (or the error it failed with) as they leave by the admin answer, the
 * CLI, SIGHUP's stderr and the logs: scrubbed by a scrubber that knows the running config's secrets and the refused
 * file's, then by the process-wide one (tokens minted at run time). A message may quote a value of the new file (a
 * provider that refuses an option, an error from a library), and the process-wide registry learns a file's
 * secrets only when it is applied: a refused file's values must not become redaction targets in every later log
 * line, error and stored session.
 */
function scrubRefusal(err: unknown, t: ReloadTarget, next: Config): unknown {
  // a problem's key path is not a credential's name: `…apiKey: Invalid input…` keeps its message (scrubProblem); the
  // one scrub of problems, as `config check` and a start apply it
  if (err instanceof ConfigError) return new ConfigError(scrubConfigProblems(err.problems, t.live, next), t.path ?? 'reload');
  const own = configScrubber(t.live, next);
  const scrub = (text: string) => secrets.scrubError(own.scrubError(text));
  if (err instanceof Error) {
    err.message = scrub(err.message);
    if (err.stack) err.stack = scrub(err.stack);
  }
  return err;
}

/**
 * What the first step made: Prepared, the commit of the ACP layer's new runtime table when it changes, and whether
 * the file's certificate and key were put into service.
 */
interface PreparedReload extends Prepared {
  acp: (() => void) | undefined;
  tlsServed: boolean;
}

/**
 * The providers of the channels the file adds or changes and the text of the files it names, made and read
 * before anything is applied by the one check a start and `config check` run too (src/gateway-prepare.ts): a
 * provider that refuses its channel's options, or a file the config names that cannot be used, makes the file
 * invalid (every problem listed by key path), and the providers made for it are closed. With them, when
 * `acp.agents` / `acp.gateways` differ, the ACP layer's new runtime table (AcpCore.prepare); a build that throws
 * is one more problem of the same ConfigError.
 *
 * The certificate and key (`gateway.tls`) are parsed once. A file valid otherwise has them parsed last: put into
 * service (`setSecureContext`) when the server serves TLS and their text differs from the pair in service, which
 * is the one change this step makes and the last thing it does, so a refused file changes nothing; checked only
 * (a TLS context made and dropped) when the server serves HTTP (turning TLS on needs a restart); not parsed again
 * when they are the pair in service. A file refused for another problem has them parsed by the check, to list
 * their problem too.
 */
async function prepareReload(t: ReloadTarget, next: Config): Promise<PreparedReload> {
  const problems: string[] = [];
  let acp: (() => void) | undefined;
  if (t.acp && changedPaths({ a: t.live.acp.agents, g: t.live.acp.gateways }, { a: next.acp.agents, g: next.acp.gateways }).length > 0) {
    try {
      acp = t.acp.prepare(next.acp);
    } catch (err) {
      problems.push(`acp.agents / acp.gateways: the ACP runtime table cannot be built: ${(err as Error)?.message ?? String(err)}`);
    }
  }
  const before = new Map(t.live.channels.map((c) => [c.name, canonicalJson(c)]));
  const changed = (c: ChannelConfig) => before.get(c.name) !== canonicalJson(c);
  let prepared: Prepared;
  try {
    prepared = await prepareConfig({ config: next, path: t.path, baseDir: t.baseDir }, { channels: changed, tls: problems.length > 0 ? 'server' : 'later' });
  } catch (err) {
    if (problems.length > 0 && err instanceof ConfigError) throw new ConfigError([...err.problems, ...problems], t.path ?? 'reload');
    throw err;
  }
  if (problems.length > 0) {
    await closeProviders(prepared.providers.values());
    throw new ConfigError(problems, t.path ?? 'reload');
  }
  const pem = prepared.tls;
  let tlsServed = false;
  if (pem) {
    const server = t.live.gateway.tls ? t.tls : undefined;
    const inService = server?.serving();
    let problem: string | undefined;
    if (!server) problem = tlsProblem(() => createSecureContext(pem));
    else if (inService?.cert !== pem.cert || inService.key !== pem.key) {
      problem = tlsProblem(() => server.use(pem));
      tlsServed = problem === undefined;
    }
    if (problem) {
      await closeProviders(prepared.providers.values());
      throw new ConfigError([problem], t.path ?? 'reload');
    }
  }
  return { ...prepared, acp, tlsServed };
}

/**
 * Adds, replaces and removes local channels (`made`: the added and changed channels' new providers, from
 * prepareChannels, which alone compares old and new). A removed or replaced channel's provider is closed once
 * its in-flight requests ended (bounded by the routing deadline); the returned promise settles then.
 */
function applyChannels(t: ReloadTarget, next: ChannelConfig[], made: Map<string, ChannelProvider>, report: ReloadReport): Promise<void> {
  const before = new Map(t.live.channels.map((c) => [c.name, c]));
  const after = new Map(next.map((c) => [c.name, c]));
  const retiring: Array<Promise<void>> = [];
  const retire = (p: ChannelProvider | undefined) => {
    if (p) retiring.push(closeWhenIdle(t, p));
  };
  for (const [name] of before) {
    if (after.has(name)) continue;
    t.router.remove(`local/${name}`);
    retire(t.providers.get(name));
    t.providers.delete(name);
    report.applied.push(`channel ${name} removed`);
  }
  // `made` holds exactly the channels the file adds or changes (prepareChannels compared them), in its order
  for (const [name, p] of made) {
    const old = before.get(name);
    const previous = t.providers.get(name);
    // A changed channel starts with a clean health record: its old failures say nothing about the new upstream.
    if (old) t.router.health.forget(`local/${name}`);
    // routed, then stored: the map never holds a provider the routing table does not reach (see applyReload)
    t.router.add(localCandidate(after.get(name)!, p));
    t.providers.set(name, p);
    retire(previous);
    report.applied.push(`channel ${name} ${old ? 'changed' : 'added'}`);
  }
  return Promise.all(retiring).then(() => undefined);
}

/**
 * In-flight requests hold the old provider; its pool closes after they end (or at the request deadline). Its
 * own requests, not the router's count for the channel's id: a removed channel's count leaves the router with
 * it, and a changed channel's is shared with its replacement's traffic.
 */
async function closeWhenIdle(t: ReloadTarget, p: ChannelProvider): Promise<void> {
  await (p.retire ? p.retire(t.live.gateway.routing.timeoutMs) : p.close()).catch(() => undefined);
}

/**
 * Whether a re-dialled bridge keeps the terms its open link was made on: the token we present, the `ca` we trust the
 * peer's certificate with, and TLS or not (the URL's scheme). Only then may that link go on taking new requests
 * until the new one is open (mesh.ts `release`): a rotated token or another trust anchor must not keep serving.
 */
function sameCredentials(a: OutboundBridgeConfig, b: OutboundBridgeConfig): boolean {
  return a.token === b.token && a.ca === b.ca && a.url.split(':', 1)[0] === b.url.split(':', 1)[0];
}

/** `ca`: the `ca` PEM text of the file's bridges, by name, as prepareReload read it */
function applyBridges(t: ReloadTarget, next: OutboundBridgeConfig[], ca: ReadonlyMap<string, string>, report: ReloadReport): void {
  const before = new Map(t.live.gateway.bridges.map((b) => [b.name, b]));
  const after = new Map(next.map((b) => [b.name, b]));
  // The outbound bridges running now: the file's, less those `bridge disconnect` stopped, plus those added at run
  // time (POST /admin/bridges). Only these are released (mesh.release: a dialler of that name, never an inbound link
  // named so). A bridge the file adds under the name of one added at run time replaces it: dialled beside it, the two
  // would replace each other's link at the peer for ever (each redial fails the requests on the other's).
  const running = new Set(
    t.mesh
      .list()
      .filter((r) => r.direction === 'outbound')
      .map((r) => r.name),
  );
  // A removed or changed bridge's link is retired, not closed: what runs on it finishes (up to shutdownGraceMs)
  for (const [name] of before) {
    if (after.has(name)) continue;
    if (running.has(name)) t.mesh.release(name, 'bridge removed (config reload)');
    report.applied.push(`bridge ${name} disconnected`);
  }
  for (const [name, b] of after) {
    const old = before.get(name);
    const sameKeys = old !== undefined && canonicalJson(old) === canonicalJson(b);
    const caChanged = t.bridgeCa !== undefined && t.bridgeCa.get(name) !== ca.get(name);
    if (sameKeys && !caChanged) continue;
    // Make-before-break when the bridge keeps its credentials: its old link routes until the new one is open. A new
    // token, `ca` or URL scheme ends the old terms at once: the old link takes no new request (docs/bridge.md).
    const handOver = old !== undefined && !caChanged && sameCredentials(old, b);
    if (running.has(name)) t.mesh.release(name, 'bridge re-dialled (config reload)', handOver);
    t.mesh.dial(b, ca.get(name));
    const how = sameKeys
      ? 're-dialled (its ca file changed)'
      : old
        ? 're-dialled (changed)'
        : running.has(name)
          ? 're-dialled (replaces the bridge of this name added at run time)'
          : 'connecting';
    report.applied.push(`bridge ${name} ${how}`);
  }
  if (t.bridgeCa) {
    t.bridgeCa.clear();
    for (const [name, text] of ca) t.bridgeCa.set(name, text);
  }
}
