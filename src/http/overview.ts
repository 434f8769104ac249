/**
 * One JSON snapshot of the gateway for `switchyard status` and the status page: identity and uptime, the
 * request and error rate of the last minute, peers and links (state, RTT, in-flight, traffic, shares),
 * channels local and shared with health and load, models and where they are served, sessions by status and
 * the turns running now, the ACP warm agent pools (spares ready and booting, back-off, warm vs. cold starts).
 * Built from state the gateway already keeps; no secret and no URL credentials (error texts, a peer's too, are
 * scrubbed as on /admin).
 */
import type { Config } from '../config/schema.js';
import type { Router } from '../router/router.js';
import type { BridgeMesh } from '../bridge/mesh.js';
import type { SessionStore } from '../sessions/store.js';
import { channelRows } from './routes/admin.js';
import { VERSION } from '../version.js';
import type { Observability } from '../obs/index.js';
import type { WarmPoolStatus } from '../acp/runtimes/agent/warm-pool.js';
import { secrets } from '../util/redact.js';
import type { Logger } from '../util/log.js';
import { fromStore } from './routes/admin-store.js';
import { GatewayError } from '../wire/errors.js';

export interface OverviewDeps {
  config: Config;
  gatewayId: string;
  router: Router;
  mesh: BridgeMesh;
  store?: SessionStore | undefined;
  obs: Observability;
  /** the ACP warm agent pools (src/acp/runtimes/agent/warm-pool.ts); none when absent */
  warmPools?: () => WarmPoolStatus[];
  /** where a session store that cannot be read is logged */
  logger: Logger;
}

const MAX_RUNNING = 50;

/** Strips userinfo and query from a URL before it is shown. */
function safeUrl(url: string | null): string | null {
  if (!url) return url;
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return null;
  }
}

export async function buildOverview(d: OverviewDeps) {
  const links = new Map(d.mesh.peers().map((l) => [l.peer.id, l]));
  const peers = d.mesh.list().map((row) => {
    const l = row.id ? links.get(row.id) : undefined;
    return {
      ...row,
      url: safeUrl(row.url),
      // a peer's error text is the peer's to write (a bridge-error, a close reason): scrubbed as on /admin/bridges
      lastError: row.lastError === null ? null : secrets.scrubError(row.lastError),
      rttMs: l ? l.traffic.rttMs : null,
      traffic: l ? { framesIn: l.traffic.framesIn, framesOut: l.traffic.framesOut, bytesIn: l.traffic.bytesIn, bytesOut: l.traffic.bytesOut } : null,
    };
  });
  let sessions: Record<string, number> = { active: 0, running: 0, closed: 0, moved: 0 };
  const running: Array<{ id: string; target: unknown; turnId: string | null; startedAt: string | null }> = [];
  // false while the session store cannot be read (down, stalled, a SQLite error): the rest of the snapshot is still
  // worth having in an outage, so the sessions part says so instead of failing the whole answer
  let storeReadable = true;
  if (d.store) {
    const store = d.store;
    try {
      // counted, not read: only the running sessions shown are (the page polls; closed records are kept)
      const [counts, list] = await fromStore('session', 'overview', d.logger, () =>
        Promise.all([store.countByStatus(), store.list({ status: 'running', limit: MAX_RUNNING })]),
      );
      sessions = counts;
      for (const s of list) {
        const t = [...s.history].reverse().find((x) => x.status === 'running');
        running.push({ id: s.id, target: s.target, turnId: t?.turnId ?? null, startedAt: t ? new Date(t.startedAt).toISOString() : null });
      }
    } catch (err) {
      if (!(err instanceof GatewayError) || err.code !== 'SESSION_STORE_UNAVAILABLE') throw err;
      storeReadable = false;
    }
  }
  const { requestsPerSec, errorsPerSec } = d.obs.rates.rate(10);
  return {
    gateway: {
      id: d.gatewayId,
      name: d.config.gateway.name,
      version: VERSION,
      uptimeSec: Math.round((Date.now() - d.obs.startedAt) / 1000),
      draining: d.obs.draining,
      tracing: d.obs.tracer !== undefined,
    },
    requests: { inflight: d.obs.metrics.inflight, waiting: d.obs.metrics.waiting, requestsPerSec, errorsPerSec, series: d.obs.rates.series() },
    peers,
    channels: channelRows(d),
    models: d.router.models().map((m) => ({ id: m.id, servedBy: m.channels })),
    sessions: { byStatus: sessions, running, storeReadable },
    warmPools: d.warmPools?.() ?? [],
  };
}

export type Overview = Awaited<ReturnType<typeof buildOverview>>;
