/**
 * A link's liveness and load reports: a bridge-ping every heartbeatIntervalMs, the link closed when the peer
 * stayed silent for deadPeerMisses intervals or left a ping of ours unanswered that long, and bridge-load reports
 * of the channels we share — on change, and after each pong we send, at most every LOAD_REPORT_MIN_INTERVAL_MS.
 * Every ping of ours leaves here with a `ts` no other ping of the link has, so each pong is matched to the ping it
 * echoes: a peer answers each ping at once and in order (docs/bridge-protocol.md), so the pong to a ping tells us
 * the peer has read every frame we sent before it (`afterPeerRead`). A pong that echoes no ping of ours waiting
 * answers nothing. The `ts` is our clock, which a peer could guess without reading our frames: on a link negotiated at
 * 1.2 or later each ping also carries a random `nonce`, and only a pong that echoes it with the `ts` answers the ping.
 */
import { randomBytes } from 'node:crypto';
import { CLOSE, LOAD_REPORT_MIN_INTERVAL_MS, echoesPingNonce } from '../wire/bridge-frames.js';
import type { LinkContext, PeerLoad } from './link-types.js';

const MAX_WAITING_PONGS = 1024;

/** A ping of ours the peer has not answered yet. */
interface WaitingPing {
  /** the `ts` it carried, unique on the link: its pong must echo it */
  ts: number;
  /** the `nonce` it carried (links at 1.2 or later): its pong must echo it too */
  nonce?: string;
  /** when the wait for its pong began (`unansweredMs`) */
  at: number;
  /** `stalledMs` then */
  stalled: number;
  /** `afterPeerRead` callbacks, run once the pong to this ping (or to a later one) is in */
  fns?: Array<() => void>;
}

export class Heartbeat {
  private lastSeen = Date.now();
  private readonly interval: NodeJS.Timeout;
  private loadTimer: NodeJS.Timeout | undefined;
  private lastLoadSent = 0;
  /** the `ts` of our last ping: each ping's is above it, so a pong names one ping */
  private lastPingTs = 0;
  /**
   * our pings the peer has not answered yet, oldest first. At most MAX_WAITING_PONGS: past it the oldest is
   * dropped (`ping`), its wait carried by the next
   */
  private readonly unanswered: WaitingPing[] = [];
  /** whether our pings carry a `nonce` the peer must echo (the link's version is 1.2 or later) */
  private readonly nonces: boolean;
  /** when the last tick ran */
  private lastTick = Date.now();
  /** how late the ticks ran, in all: time this process did not run (a stall), which no ping's wait counts */
  private stalledMs = 0;

  constructor(
    private readonly l: LinkContext,
    private readonly close: (code: number, reason: string) => void,
  ) {
    this.nonces = echoesPingNonce(l.peer.version);
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
    this.unanswered.length = 0;
  }

  /**
   * Sends a bridge-ping and returns its wait (undefined when it was not sent). Its `ts` is our clock, raised above
   * the last ping's when two leave in one millisecond: a pong echoes it, and so names the one ping it answers. On a
   * 1.2 link it carries a nonce of 128 random bits too, which only a peer that read the ping can echo.
   */
  ping(): WaitingPing | undefined {
    const at = Date.now();
    const ts = Math.max(at, this.lastPingTs + 1);
    const nonce = this.nonces ? randomBytes(16).toString('base64url') : undefined;
    if (!this.l.send(nonce === undefined ? { type: 'bridge-ping', ts } : { type: 'bridge-ping', ts, nonce })) return undefined;
    this.lastPingTs = ts;
    const w = this.unanswered;
    // a peer that answers no ping would make this grow with every pause: past the bound the oldest wait is dropped
    // (a pong to it then answers nothing, and its callbacks never run: its stream keeps the limit it had, and its
    // share of the unconfirmed budget, until it resumes or ends); the next one waits from its time, so the peer is
    // given no more time for it
    if (w.length >= MAX_WAITING_PONGS) {
      const dropped = w.shift()!;
      const next = w[0];
      if (next) {
        next.at = dropped.at;
        next.stalled = dropped.stalled;
      }
    }
    const waiting: WaitingPing = { ts, at, stalled: this.stalledMs };
    if (nonce !== undefined) waiting.nonce = nonce;
    w.push(waiting);
    return waiting;
  }

  /**
   * A bridge-pong. One that echoes the `ts` of a ping of ours still waiting (and its `nonce`, when the ping had one)
   * answers it, and every ping before it (the peer answers in order, so it has read everything we sent before that
   * ping): their waits end and their `afterPeerRead` callbacks run. One that echoes no such ping (unasked, repeated,
   * made up, or a guessed `ts` without the nonce) answers nothing: it is counted, the first one logged, and
   * otherwise ignored. Returns the answered ping's round trip, in ms.
   */
  pong(ts: number, nonce?: string): number | undefined {
    const w = this.unanswered;
    const i = w.findIndex((p) => p.ts === ts && (p.nonce === undefined || p.nonce === nonce));
    if (i < 0) {
      if (this.l.traffic.unmatchedPongs++ === 0) this.l.logger.warn('peer sent a pong that answers no ping of ours: ignored', { peer: this.l.peer.id });
      return undefined;
    }
    const answered = w.splice(0, i + 1);
    const rtt = Math.max(0, Date.now() - answered[i]!.ts);
    for (const p of answered) for (const fn of p.fns ?? []) fn();
    return rtt;
  }

  /**
   * Sends a bridge-ping and calls `fn` once the peer has answered it: by then the peer has read every frame we
   * sent before it. A link that ends first never calls it, nor does a peer that answers no ping; only a pong
   * echoing this ping's `ts` and nonce (or a later ping's) does.
   */
  afterPeerRead(fn: () => void): void {
    if (!this.l.open) return;
    const p = this.ping();
    if (p) (p.fns ??= []).push(fn);
  }

  /**
   * Whether the oldest ping of ours has waited longer than `ms` for its pong (less the time this process stalled
   * meanwhile, as the dead-peer rule counts it): a retired link that has a replacement is given one heartbeat
   * interval, not deadPeerMisses of them (retiring.ts `retire`). Taken after the socket's waiting frames are read
   * (setImmediate), as the heartbeat's own verdict is.
   */
  overdue(ms: number): boolean {
    return this.unansweredMs() > ms;
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
      const unansweredPings = this.unanswered.length;
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
