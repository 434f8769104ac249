/**
 * A link's liveness and load reports: a bridge-ping every heartbeatIntervalMs, the link closed when the peer
 * stayed silent for deadPeerMisses intervals or left a ping of ours unanswered that long, and bridge-load reports
 * of the channels we share — on change at most every LOAD_REPORT_MIN_INTERVAL_MS, and with each pong (`force`).
 * Every ping of ours leaves here, so the pongs can be counted: a peer answers each ping at once and in order
 * (docs/bridge-protocol.md), so the n-th pong tells us the peer has read every frame we sent before the n-th ping
 * (`afterPeerRead`).
 */
import { CLOSE, LOAD_REPORT_MIN_INTERVAL_MS } from '../wire/bridge-frames.js';
import type { LinkContext, PeerLoad } from './link-types.js';

const MAX_WAITING_PONGS = 1024;

export class Heartbeat {
  private lastSeen = Date.now();
  private readonly interval: NodeJS.Timeout;
  private loadTimer: NodeJS.Timeout | undefined;
  private lastLoadSent = 0;
  private pingsSent = 0;
  private pongsReceived = 0;
  /** `afterPeerRead` callbacks, in the order of their pings: each runs once the pong to its ping is in */
  private readonly afterPongs: Array<{ ping: number; fn: () => void }> = [];
  /**
   * our pings the peer has not answered yet, oldest first: each one's number, when it left, and `stalledMs` then
   * (`unansweredMs`). At most MAX_WAITING_PONGS: past it a ping's time is not kept (`pong`)
   */
  private readonly unanswered: Array<{ ping: number; at: number; stalled: number }> = [];
  /** when the last tick ran */
  private lastTick = Date.now();
  /** how late the ticks ran, in all: time this process did not run (a stall), which no ping's wait counts */
  private stalledMs = 0;

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
    this.afterPongs.length = 0;
    this.unanswered.length = 0;
  }

  /** Sends a bridge-ping (ours are counted: `afterPeerRead`, `unansweredMs`). */
  ping(): void {
    const at = Date.now();
    if (!this.l.send({ type: 'bridge-ping', ts: at })) return;
    this.pingsSent++;
    // (a ping an unasked pong already answered waits for nothing)
    if (this.pingsSent > this.pongsReceived && this.unanswered.length < MAX_WAITING_PONGS) {
      this.unanswered.push({ ping: this.pingsSent, at, stalled: this.stalledMs });
    }
  }

  /** A bridge-pong: the peer has read everything we sent before the ping it answers. */
  pong(): void {
    this.pongsReceived++;
    const w = this.unanswered;
    while (w.length > 0 && w[0]!.ping <= this.pongsReceived) w.shift();
    // a ping whose time was not kept (past the bound) waits from a later ping's time, or from now when no kept
    // one is left: later than it left, so such a peer is given more time, never less
    if (w.length === 0 && this.pongsReceived < this.pingsSent) w.push({ ping: this.pongsReceived + 1, at: Date.now(), stalled: this.stalledMs });
    const q = this.afterPongs;
    while (q.length > 0 && q[0]!.ping <= this.pongsReceived) q.shift()!.fn();
  }

  /**
   * Sends a bridge-ping and calls `fn` once the peer has answered it: by then the peer has read every frame we
   * sent before it. A link that ends first never calls it. A peer that answers no ping never does either, and a
   * pong it sends unasked makes a later `fn` run early: what waits on it must hold up either way.
   */
  afterPeerRead(fn: () => void): void {
    if (!this.l.open) return;
    this.ping();
    // a peer that answers no ping would make this grow with every pause: past the bound the oldest wait is
    // dropped (its stream keeps the limit it had, and its share of the unconfirmed budget, until it resumes or ends)
    if (this.afterPongs.length >= MAX_WAITING_PONGS) this.afterPongs.shift();
    this.afterPongs.push({ ping: this.pingsSent, fn });
  }

  private tick(): void {
    const now = Date.now();
    this.stalledMs += Math.max(0, now - this.lastTick - this.l.limits.heartbeatIntervalMs);
    this.lastTick = now;
    // Timers run before the event loop reads the sockets: after a stall of this process (a long synchronous task,
    // a GC pause, a throttled CPU) the peer's frames may be waiting unread. The verdict is taken after they are
    // read (setImmediate runs after the poll phase), so only the peer's silence closes the link, never our own.
    // A pong may wait behind more than one turn's reads: a ping's wait leaves out how late the ticks ran.
    if (this.silent() || this.pingUnanswered()) setImmediate(() => this.verdict());
    else this.ping();
  }

  private get deadAfterMs(): number {
    return this.l.limits.heartbeatIntervalMs * this.l.limits.deadPeerMisses;
  }

  private silent(): boolean {
    return Date.now() - this.lastSeen > this.deadAfterMs;
  }

  /**
   * How long the oldest ping of ours has waited for its pong, less the time this process stalled meanwhile
   * (how late the ticks ran): a pong may wait unread behind more than one read's worth of the peer's frames,
   * which the event loop reads only over several turns after a stall.
   */
  private unansweredMs(): number {
    const w = this.unanswered[0];
    return w === undefined ? 0 : Date.now() - w.at - (this.stalledMs - w.stalled);
  }

  /**
   * A peer that goes on sending but answers no ping is not silent, yet it breaks what the pongs are for (a
   * pause's confirmation: `afterPeerRead`), and a pong that waits behind what we sent is a link as slow as a
   * silent one: the same time closes it.
   */
  private pingUnanswered(): boolean {
    return this.unansweredMs() > this.deadAfterMs;
  }

  private verdict(): void {
    if (!this.l.open) return;
    if (this.silent()) {
      this.l.logger.warn('peer silent: closing link', { peer: this.l.peer.id, silentMs: Date.now() - this.lastSeen });
      return this.close(CLOSE.HEARTBEAT_TIMEOUT, 'heartbeat timeout');
    }
    if (this.pingUnanswered()) {
      const unansweredPings = this.pingsSent - this.pongsReceived;
      this.l.logger.warn('peer answers no ping: closing link', { peer: this.l.peer.id, unansweredMs: this.unansweredMs(), unansweredPings });
      return this.close(CLOSE.HEARTBEAT_TIMEOUT, 'heartbeat timeout: pings unanswered');
    }
    this.ping();
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
