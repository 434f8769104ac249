/**
 * A link's liveness and load reports: a bridge-ping every heartbeatIntervalMs, the link closed when the peer
 * stayed silent for deadPeerMisses intervals, and bridge-load reports of the channels we share — on change at
 * most every LOAD_REPORT_MIN_INTERVAL_MS, and with each pong (`force`).
 */
import { CLOSE, LOAD_REPORT_MIN_INTERVAL_MS } from '../wire/bridge-frames.js';
import type { LinkContext, PeerLoad } from './link-types.js';

export class Heartbeat {
  private lastSeen = Date.now();
  private readonly interval: NodeJS.Timeout;
  private loadTimer: NodeJS.Timeout | undefined;
  private lastLoadSent = 0;

  constructor(
    private readonly l: LinkContext,
    private readonly close: (code: number, reason: string) => void,
  ) {
    this.interval = setInterval(() => this.tick(), l.limits.heartbeatIntervalMs);
    this.interval.unref();
  }

  /** any frame from the peer counts as a sign of life */
  seen(): void {
    this.lastSeen = Date.now();
  }

  stop(): void {
    clearInterval(this.interval);
    clearTimeout(this.loadTimer);
  }

  private tick(): void {
    // Timers run before the event loop reads the sockets: after a stall of this process (a long synchronous task,
    // a GC pause, a throttled CPU) the peer's frames may be waiting unread. The verdict is taken after they are
    // read (setImmediate runs after the poll phase), so only the peer's silence closes the link, never our own.
    if (this.silent()) setImmediate(() => this.verdict());
    else this.l.send({ type: 'bridge-ping', ts: Date.now() });
  }

  private silent(): boolean {
    return Date.now() - this.lastSeen > this.l.limits.heartbeatIntervalMs * this.l.limits.deadPeerMisses;
  }

  private verdict(): void {
    if (!this.l.open) return;
    if (!this.silent()) return void this.l.send({ type: 'bridge-ping', ts: Date.now() });
    this.l.logger.warn('peer silent: closing link', { peer: this.l.peer.id, silentMs: Date.now() - this.lastSeen });
    this.close(CLOSE.HEARTBEAT_TIMEOUT, 'heartbeat timeout');
  }

  sendLoad(force: boolean): void {
    if (!this.l.open) return;
    const now = Date.now();
    const due = this.lastLoadSent + LOAD_REPORT_MIN_INTERVAL_MS - now;
    if (!force && due > 0) {
      this.loadTimer ??= setTimeout(() => {
        this.loadTimer = undefined;
        this.sendLoad(true);
      }, due);
      return;
    }
    this.lastLoadSent = now;
    const { router } = this.l;
    const channels: PeerLoad['channels'] = {};
    let inflight = 0;
    for (const name of this.l.ourShare) {
      const c = router.get(`local/${name}`);
      if (!c) continue;
      const n = router.inflightOf(c.id);
      inflight += n;
      channels[name] = {
        inflight: n,
        queued: 0,
        maxConcurrent: c.load().maxConcurrent,
        latencyMsEwma: Math.round(router.latencyOf(c.id)),
        healthy: router.health.eligible(c.id),
      };
    }
    this.l.send({ type: 'bridge-load', channels, inflight });
  }
}
