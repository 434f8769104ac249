/**
 * Link retirement: make-before-break for the links that stop being their peer's (a config reload re-dials or removes
 * a bridge, or a newer link from the same peer replaces one). A retired link finishes what runs on it, then closes;
 * a link handed over to a re-dialled bridge keeps routing until the bridge's new link opens, then retires.
 *
 * The mesh owns the set of current links and calls this with the links it lets go (`retire`, `release`) and the
 * links that open (`opened`); it reads back the links still held here (`held`) for its idle check, its close and
 * `GET /admin/bridges`. What this needs of the mesh is RetirementHost, so nothing here imports mesh.ts.
 */
import type { BridgeLimits } from '../config/schema.js';
import type { Logger } from '../util/log.js';
import { CLOSE } from '../wire/bridge-frames.js';
import type { BridgeLink } from './link.js';

export interface RetirementHost {
  readonly logger: Logger;
  /** gateway.bridge.limits (handshakeTimeoutMs bounds a hand-over and the wait to tell the peer) */
  readonly limits: BridgeLimits;
  /** gateway.shutdownGraceMs from the live config: how long a retired link's requests may still run */
  graceMs(): number;
  /** takes `link` out of the mesh and the routing table, when it is still its peer's link */
  unlink(link: BridgeLink): void;
  /** the dialler of bridge `name` gave up (failed, stopped) or is gone: a link handed over to it waits no longer */
  dialGaveUp(name: string): boolean;
}

/**
 * A link held here, as `GET /admin/bridges` shows it: `retiring` takes no new request and closes once what runs on
 * it is done; `handing-over` still routes, until the new link of its bridge (`bridge`) opens. `since`: when it became
 * so. `reason`: the close reason it will close with (that of the reload, or `replaced by a newer link`).
 */
export interface HeldLink {
  link: BridgeLink;
  state: 'retiring' | 'handing-over';
  reason: string;
  since: Date;
}

export class LinkRetirement {
  /** links that are no longer their peer's (replaced, or their bridge re-dialled or removed by a reload), finishing what runs on them */
  private readonly retiring = new Map<BridgeLink, { reason: string; since: Date }>();
  /**
   * the open link of each bridge a reload re-dialled with the same credentials, by bridge name: it stays the peer's
   * link, in the routing table, until the bridge's new link opens (`opened`)
   */
  private readonly handedOver = new Map<string, { link: BridgeLink; reason: string; since: Date }>();

  constructor(private readonly host: RetirementHost) {}

  /** the link handed over to bridge `name`'s new dial, while it routes */
  handedOverTo(name: string): BridgeLink | undefined {
    return this.handedOver.get(name)?.link;
  }

  /** every link held here (retiring, then handing over), oldest first within each */
  held(): HeldLink[] {
    const out: HeldLink[] = [];
    for (const [link, r] of this.retiring) out.push({ link, state: 'retiring', reason: r.reason, since: r.since });
    for (const h of this.handedOver.values()) out.push({ link: h.link, state: 'handing-over', reason: h.reason, since: h.since });
    return out;
  }

  /** the retiring links (a handed-over link is still its peer's: the mesh holds it among its links) */
  retiringLinks(): BridgeLink[] {
    return [...this.retiring.keys()];
  }

  /**
   * A link that stops being its peer's without cutting what runs on it: it leaves the routing table (when it is still
   * the peer's link) and the peer is told we share nothing on it, so neither side sends it a new request; it closes
   * with `code` and `reason` once no request runs on it either way, or when gateway.shutdownGraceMs (the grace a
   * graceful stop gives) has passed, which fails what still runs then as any close does.
   *
   * `after`: the link that replaces it. The peer is then told only once it has read `after`'s handshake (a pong on
   * `after`), or when `after` closes, or after gateway.bridge.limits.handshakeTimeoutMs: told first, it would have no
   * route to our channels until then. The link does not close before the peer was told.
   *
   * A hung peer (a ping of ours unanswered for one heartbeat interval; a ping is sent now to ask) gets no grace: the
   * link closes then (HEARTBEAT_TIMEOUT), and what waited on it fails as on any close, PEER_UNAVAILABLE, which the
   * router retries on the peer's new link when nothing reached the client yet. A link still in service waits
   * deadPeerMisses intervals instead: with no other link to the peer, a slow one is worth keeping.
   */
  retire(link: BridgeLink, code: number, reason: string, after?: BridgeLink): void {
    if (!link.open || this.retiring.has(link)) return;
    this.host.unlink(link);
    this.retiring.set(link, { reason, since: new Date() });
    link.probe();
    let told = false;
    const tell = (): void => {
      if (told) return;
      told = true;
      link.reshare([], [], false);
    };
    if (after) after.afterPeerRead(tell);
    else tell();
    this.host.logger.info('bridge link draining', { peer: link.peer.id, name: link.name, reason, inflight: { out: link.inflightOut, in: link.inflightIn } });
    const now = Date.now();
    const deadline = now + this.host.graceMs();
    const tellBy = now + this.host.limits.handshakeTimeoutMs;
    const hungAfter = link.limits.heartbeatIntervalMs;
    const finish = (hung: boolean): void => {
      if (!this.retiring.delete(link)) return;
      clearInterval(timer);
      if (!hung) return link.close(code, reason);
      this.host.logger.warn('retired bridge link answers no ping: closing it', {
        peer: link.peer.id,
        name: link.name,
        inflight: { out: link.inflightOut, in: link.inflightIn },
      });
      link.close(CLOSE.HEARTBEAT_TIMEOUT, 'heartbeat timeout (retired link)');
    };
    const check = (): void => {
      if (!this.retiring.has(link)) return;
      if (!told && (Date.now() >= tellBy || (after !== undefined && !after.open))) tell();
      // the verdict after the socket's waiting frames are read, as the heartbeat's: never our own stall
      if (link.unresponsive(hungAfter)) return void setImmediate(() => link.unresponsive(hungAfter) && finish(true));
      if (link.open && (!told || link.inflightIn + link.inflightOut > 0) && Date.now() < deadline) return;
      finish(false);
    };
    const timer = setInterval(check, 25);
    timer.unref();
    check();
  }

  /**
   * Make-before-break for a bridge re-dialled with other settings: its open `link` stays the peer's link, in the
   * routing table, until the bridge's new link opens (`opened` then retires it). Bounded: when the new dialler gives
   * up or is gone, when gateway.bridge.limits.handshakeTimeoutMs has passed without the new link, or when the peer
   * answers no ping for one heartbeat interval (a ping is sent now to ask), the link is retired at once.
   */
  private handOver(name: string, link: BridgeLink, reason: string): void {
    this.handedOver.set(name, { link, reason, since: new Date() });
    link.probe();
    const until = Date.now() + this.host.limits.handshakeTimeoutMs;
    const hungAfter = link.limits.heartbeatIntervalMs;
    const timer = setInterval(() => {
      if (this.handedOverTo(name) !== link || !link.open) {
        if (this.handedOverTo(name) === link) this.handedOver.delete(name);
        return clearInterval(timer);
      }
      if (!this.host.dialGaveUp(name) && Date.now() < until && !link.unresponsive(hungAfter)) return;
      clearInterval(timer);
      this.handedOver.delete(name);
      this.retire(link, CLOSE.NORMAL, reason);
    }, 25);
    timer.unref();
  }

  /**
   * Bridge `name`'s dialler is gone (removed or re-dialled by a reload), leaving `link`, its link if any: that link,
   * or the one handed over at an earlier re-dial whose new link never opened, is handed over (`handOver`: routes
   * until the next dial of `name` opens) or retired at once; any other such link is retired.
   */
  release(name: string, link: BridgeLink | undefined, reason: string, handOver: boolean): void {
    // a bridge re-dialled twice before its new link opened: the link handed over the first time still routes
    const prev = this.handedOverTo(name);
    this.handedOver.delete(name);
    const current = link?.open ? link : prev?.open ? prev : undefined;
    if (prev !== undefined && prev !== current) this.retire(prev, CLOSE.NORMAL, reason);
    if (current === undefined) return;
    if (handOver) this.handOver(name, current, reason);
    else this.retire(current, CLOSE.NORMAL, reason);
  }

  /**
   * `link` opened and is registered. When it is the new link of a bridge our reload re-dialled, the link handed over
   * to it (`release`) routed the peer's channels until now and is retired (make-before-break), whichever gateway the
   * new link reached.
   */
  opened(link: BridgeLink): void {
    if (link.role !== 'initiator') return;
    const prev = this.handedOverTo(link.name);
    if (prev === undefined || prev === link) return;
    this.handedOver.delete(link.name);
    this.retire(prev, CLOSE.NORMAL, 'bridge re-dialled (config reload)', link);
  }
}
