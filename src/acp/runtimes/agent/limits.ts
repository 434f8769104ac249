/**
 * The cap on live agent processes (`acp.maxAgentProcesses`), over every session of one gateway.
 *
 * A session takes a slot before it spawns its process and gives it back when the process is gone. At the cap,
 * the least recently used session that is idle (no turn running) and whose agent can reload its conversation
 * (`session/load`, so stopping it loses nothing: its next turn starts a new process that loads the session)
 * is stopped to make room. If there is none, the start is refused with OVERLOADED and a message that names
 * the limit — never a silent wait, never a process past the cap.
 *
 * Warm spares (warm-pool.ts) hold slots too, but only free ones (`tryAcquire`: never by eviction, never while a
 * session waits for a slot); they count as idle, reloadable and least recently used, so a session at the cap
 * stops a spare before any session's process. `replace` hands a taken spare's slot to its session.
 */
import { GatewayError } from '../../../wire/errors.js';

/** What the limiter needs of a session (AgentSession implements it). */
export interface LimitedSession {
  /** true while the process is up and no turn runs */
  readonly idle: boolean;
  /** the agent announced `loadSession`: the session survives a restart of its process */
  readonly reloadable: boolean;
  /** ms timestamp of the last turn's end (or the start) */
  readonly lastUsed: number;
  close(reason: string): Promise<void>;
}

export class AgentProcessLimiter {
  private readonly holders = new Set<LimitedSession>();
  /** acquires in progress: a spare must not take the slot an eviction just freed for a session */
  private waiting = 0;
  private readonly freed = new Set<() => void>();

  constructor(readonly max: number) {}

  get live(): number {
    return this.holders.size;
  }

  /** Takes a slot for `s`, stopping an idle reloadable session if needed; throws OVERLOADED when none is free. */
  async acquire(s: LimitedSession, agentName: string): Promise<void> {
    if (this.holders.has(s)) return;
    this.waiting++;
    try {
      await this.makeRoom(agentName);
    } finally {
      this.waiting--;
    }
    this.holders.add(s);
  }

  private async makeRoom(agentName: string): Promise<void> {
    while (this.holders.size >= this.max) {
      const victim = [...this.holders].filter((h) => h.idle && h.reloadable).sort((a, b) => a.lastUsed - b.lastUsed)[0];
      if (!victim) {
        throw new GatewayError(
          'OVERLOADED',
          `${agentName} was not started: ${this.holders.size} agent processes are running, the limit (acp.maxAgentProcesses) is ${this.max}; close a session or retry later`,
          { retryAfterSec: 5, details: { maxAgentProcesses: this.max } },
        );
      }
      this.holders.delete(victim); // taken now, so two acquires never pick the same victim
      await victim.close('evicted');
    }
  }

  /** Takes a free slot for a warm spare; false at the cap or while a session waits for one (no eviction). */
  tryAcquire(s: LimitedSession): boolean {
    if (this.holders.has(s)) return true;
    if (this.waiting > 0 || this.holders.size >= this.max) return false;
    this.holders.add(s);
    return true;
  }

  /** Moves `from`'s slot to `to` (a taken warm spare → its session); false if `from` held none. */
  replace(from: LimitedSession, to: LimitedSession): boolean {
    if (!this.holders.delete(from)) return false;
    this.holders.add(to);
    return true;
  }

  release(s: LimitedSession): void {
    if (!this.holders.delete(s)) return;
    // deferred: listeners (warm pools refilling) run after the releaser and any acquire it unblocks
    if (this.freed.size > 0) setImmediate(() => this.freed.forEach((f) => f()));
  }

  /** `f` runs after a slot is given back; returns the unsubscribe. */
  onFree(f: () => void): () => void {
    this.freed.add(f);
    return () => this.freed.delete(f);
  }
}
