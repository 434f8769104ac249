/**
 * The cap on live agent processes (`acp.maxAgentProcesses`), over every session of one gateway.
 *
 * A session takes a slot before it spawns its process and gives it back when the process is gone. At the cap,
 * the least recently used session that is idle (no turn running) and whose agent can reload its conversation
 * (`session/load`, so stopping it loses nothing: its next turn starts a new process that loads the session)
 * is stopped to make room. If there is none, the start is refused with OVERLOADED and a message that names
 * the limit — never a silent wait, never a process past the cap.
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

  constructor(readonly max: number) {}

  get live(): number {
    return this.holders.size;
  }

  /** Takes a slot for `s`, stopping an idle reloadable session if needed; throws OVERLOADED when none is free. */
  async acquire(s: LimitedSession, agentName: string): Promise<void> {
    if (this.holders.has(s)) return;
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
    this.holders.add(s);
  }

  release(s: LimitedSession): void {
    this.holders.delete(s);
  }
}
