/**
 * One JSON snapshot of the gateway for `switchyard status` and the status page: identity and uptime, the
 * request and error rate of the last minute, peers and links (state, RTT, in-flight, traffic, shares),
 * channels local and shared with health and load, models and where they are served, sessions by status and
 * the turns running now, the ACP warm agent pools (spares ready and booting, back-off, warm vs. cold starts).
 * Built from state the gateway already keeps; no secret and no URL credentials (a bridge's URL is redacted and error
 * texts, a peer's too, are scrubbed, as on /admin).
 */
import type { Config } from '../config/schema.js';
import type { Router } from '../router/router.js';
import type { BridgeMesh } from '../bridge/mesh.js';
import type { SessionStore } from '../sessions/store.js';
import { channelRows, safePeer } from './routes/admin.js';
import { VERSION } from '../version.js';
import type { Observability } from '../obs/index.js';
import type { WarmPoolStatus } from '../acp/runtimes/agent/warm-pool.js';
import type { Logger } from '../util/log.js';
import { fromStore } from './routes/admin-store.js';
import { GatewayError } from '../wire/errors.js';
import { settledWithin } from '../util/settled-within.js';
import { STORE_READ_TIMEOUT_MS } from '../keys/key-cache.js';

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

/**
 * How long a snapshot waits for the session store's read it started: a store that answers is read fresh; one that
 * does not (slow, stalled, failing) is not waited for beyond this, nor read again while that read is under way, so the
 * snapshots (and the /ui/events ticks) keep their pace, with the last values read. Not answering within this is no
 * failure: that is the admin calls' store bound (STORE_READ_TIMEOUT_MS; SessionsState).
 */
export const OVERVIEW_STORE_WAIT_MS = 500;

interface SessionsPart {
  byStatus: Record<string, number>;
  running: Array<{ id: string; target: unknown; turnId: string | null; startedAt: string | null }>;
  /** when it was read (epoch ms) */
  at: number;
}

/**
 * One read of the sessions part: `store`, the store's own calls, settled when the store answered (or failed);
 * `value`, what a snapshot takes from it, bounded and named as every admin store call (fromStore: after
 * STORE_READ_TIMEOUT_MS, SESSION_STORE_UNAVAILABLE, the cause logged).
 */
interface SessionsRead {
  store: Promise<unknown>;
  value: Promise<SessionsPart>;
}

/**
 * What a snapshot got of the sessions part: `part`, the values (fresh, or the last read); `readable`, false while the
 * store cannot be read now; `readingMs`, how long the read under way has been, when the values are not its own (null
 * when they are, or when none is under way).
 *
 * A read the snapshot waited for that answered: fresh, readable. One that failed, or gave no answer within the admin
 * calls' store bound (fromStore's STORE_READ_TIMEOUT_MS: it is given up on): not readable. One still under way within
 * that bound, slower than OVERVIEW_STORE_WAIT_MS (a large store, a busy Redis), has not failed: it is no outage, and
 * changes nothing of what the last read that ended said (readable, unless that one failed: a store that failed stays
 * unreadable until a read answers, however long each retry takes).
 */
interface SessionsState {
  part: SessionsPart | undefined;
  readable: boolean;
  readingMs: number | null;
  /** why it is not readable (null while readable): UnreadableReason */
  reason: string | null;
}

/**
 * Why the sessions part is not readable, in the snapshot's `sessions.unreadableReason`: the store's client is not
 * connected (SessionStore.connectionProblem: said at once, without waiting on a read its client would queue until it
 * reconnects), or the last read failed, or gave no answer within the admin calls' store bound. Names nothing of the
 * store (no address, no error text: those are in the gateway log).
 */
const notConnected = (problem: string) => `not connected: ${problem}`;
const READ_FAILED = 'a read failed';
const NO_ANSWER = `no answer within ${STORE_READ_TIMEOUT_MS / 1000} s`;

/**
 * The sessions part of the snapshots, read from one store: at most one read of it under way, whichever snapshots ask
 * (`/admin/overview`, every `/ui/events` stream), until the store answers it (a read given up on after the bound is
 * still under way: no other is stacked behind it); and the last values read.
 */
class SessionsReader {
  private pending: (SessionsRead & { since: number; settled: boolean }) | undefined;
  private last: SessionsPart | undefined;
  /** the last read that ended (answered, failed or given up on) failed: how (READ_FAILED, NO_ANSWER) */
  private failed: string | undefined;

  /** `connectionProblem`: the store's SessionStore.connectionProblem */
  constructor(
    private readonly read: () => SessionsRead,
    private readonly connectionProblem: () => string | undefined,
  ) {}

  /** Fresh values, or (the store did not answer within OVERVIEW_STORE_WAIT_MS of the read's start, or failed) the last read. */
  async get(): Promise<SessionsState> {
    if (!this.pending) {
      const pending = { ...this.read(), since: Date.now(), settled: false };
      this.pending = pending;
      pending.value.then(
        (v) => {
          this.last = v;
          this.failed = undefined;
        },
        // the store's own calls settle (`done`, below) before `value` does: still under way, it was given up on
        () => void (this.failed = pending.settled ? READ_FAILED : NO_ANSWER),
      );
      const done = () => {
        pending.settled = true;
        if (this.pending === pending) this.pending = undefined;
      };
      pending.store.then(done, done);
    }
    const pending = this.pending;
    const { value: read, since } = pending;
    const readingMs = () => (pending.settled ? null : Date.now() - since);
    // the client knows it is not connected (a connect refused): unreadable now, not "slow" while the read just
    // started waits on its reconnects; that read stays under way, and answers once the client is back
    const unreadable = (): SessionsState => {
      const problem = this.connectionProblem();
      return { part: this.last, readable: false, readingMs: readingMs(), reason: problem ? notConnected(problem) : (this.failed ?? READ_FAILED) };
    };
    if (this.connectionProblem()) return unreadable();
    // still under way and not given up on (fromStore rejects `value` at its bound): slow, not failing
    if (!(await settledWithin(read, Math.max(0, since + OVERVIEW_STORE_WAIT_MS - Date.now()))))
      return this.failed || this.connectionProblem() ? unreadable() : { part: this.last, readable: true, readingMs: readingMs(), reason: null };
    try {
      return { part: await read, readable: true, readingMs: null, reason: null };
    } catch (err) {
      if (!(err instanceof GatewayError) || err.code !== 'SESSION_STORE_UNAVAILABLE') throw err;
      this.failed ??= READ_FAILED;
      return unreadable();
    }
  }
}

const readers = new WeakMap<SessionStore, SessionsReader>();

function sessionsReader(d: OverviewDeps, store: SessionStore): SessionsReader {
  let r = readers.get(store);
  if (!r)
    readers.set(
      store,
      (r = new SessionsReader(
        () => {
          // counted, not read: only the running sessions shown are (the page polls; closed records are kept)
          const reads = Promise.all([store.countByStatus(), store.list({ status: 'running', limit: MAX_RUNNING })]);
          const value = fromStore('session', 'overview', d.logger, () => reads).then(([counts, list]) => {
            const running = list.map((s) => {
              const t = [...s.history].reverse().find((x) => x.status === 'running');
              return { id: s.id, target: s.target, turnId: t?.turnId ?? null, startedAt: t ? new Date(t.startedAt).toISOString() : null };
            });
            return { byStatus: counts, running, at: Date.now() };
          });
          return { store: reads, value };
        },
        () => store.connectionProblem?.(),
      )),
    );
  return r;
}

export async function buildOverview(d: OverviewDeps) {
  const links = new Map(d.mesh.peers().map((l) => [l.peer.id, l]));
  // the links a reload or a newer link let go, counted: `GET /admin/bridges` lists them, the overview (and with it
  // `switchyard status` and /ui's peers) keeps to the current links
  const retiringLinks = d.mesh.retiringSummary();
  const peers = d.mesh.list().map((row) => {
    const l = row.id ? links.get(row.id) : undefined;
    return {
      // its URL redacted and its error text (a peer's own too: a bridge-error, a close reason) scrubbed, as /admin/bridges shows them
      ...safePeer(row),
      rttMs: l ? l.traffic.rttMs : null,
      traffic: l ? { framesIn: l.traffic.framesIn, framesOut: l.traffic.framesOut, bytesIn: l.traffic.bytesIn, bytesOut: l.traffic.bytesOut } : null,
    };
  });
  let sessions: Record<string, number> = { active: 0, running: 0, closed: 0, moved: 0 };
  let running: SessionsPart['running'] = [];
  // false while the session store cannot be read now (down, stalled, a SQLite error: it failed, or gave no answer
  // within STORE_READ_TIMEOUT_MS): the rest of the snapshot is still worth having in an outage, so the sessions part
  // says so, with the last values read (`readAt`), instead of failing or holding the whole answer. A read that is
  // only slow (under way past OVERVIEW_STORE_WAIT_MS, not failed, within that bound) is no outage: the last values,
  // with `readingMs` saying a read is under way and for how long (SessionsState)
  let storeReadable = true;
  let readAt: number | undefined;
  let readingMs: number | null = null;
  let unreadableReason: string | null = null;
  if (d.store) {
    const got = await sessionsReader(d, d.store).get();
    storeReadable = got.readable;
    readingMs = got.readingMs;
    unreadableReason = got.reason;
    if (got.part) ({ byStatus: sessions, running, at: readAt } = got.part);
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
    retiringLinks,
    channels: channelRows(d),
    models: d.router.models().map((m) => ({ id: m.id, servedBy: m.channels })),
    sessions: { byStatus: sessions, running, storeReadable, readAt: readAt === undefined ? null : new Date(readAt).toISOString(), readingMs, unreadableReason },
    warmPools: d.warmPools?.() ?? [],
  };
}

export type Overview = Awaited<ReturnType<typeof buildOverview>>;
