/**
 * Caps on /bridge sockets that have not authenticated yet: in total and per remote address, apart from
 * maxPeers (which counts only authenticated links). A socket takes a slot when its upgrade is accepted and
 * gives it back when it authenticates or closes, whichever comes first. Over a cap, the upgrade is answered
 * with a plain HTTP status before any WebSocket exists: 503 (total) or 429 (this address).
 */
export class PreAuthSlots {
  private total = 0;
  private readonly byIp = new Map<string, number>();

  constructor(private readonly caps: () => { maxUnauthenticated: number; maxUnauthenticatedPerIp: number }) {}

  /** A release function when a slot was free, else the HTTP status to refuse with. */
  take(ip: string): { release: () => void } | { status: 429 | 503 } {
    const c = this.caps();
    if (this.total >= c.maxUnauthenticated) return { status: 503 };
    const n = this.byIp.get(ip) ?? 0;
    if (n >= c.maxUnauthenticatedPerIp) return { status: 429 };
    this.total++;
    this.byIp.set(ip, n + 1);
    let held = true;
    return {
      release: () => {
        if (!held) return;
        held = false;
        this.total--;
        const left = (this.byIp.get(ip) ?? 1) - 1;
        if (left <= 0) this.byIp.delete(ip);
        else this.byIp.set(ip, left);
      },
    };
  }

  get count(): number {
    return this.total;
  }
}
