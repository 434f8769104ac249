/**
 * One agent process: spawned as the leader of its own process group (`detached: true`) so that stopping it
 * ends everything it started (MCP servers, shells, language servers) — no orphans. stderr is kept in a small
 * ring buffer for error messages; stdout/stdin belong to the JSON-RPC peer.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { terminateAfterGrace } from '../../../util/terminate.js';

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** set when the process could not be started at all (e.g. ENOENT) */
  error?: Error;
}

export interface AgentProcessOptions {
  command: string;
  args?: string[];
  /** the agent's whole environment (see launch.ts `minimalEnv`); the gateway's own is never passed on */
  env?: Record<string, string>;
  cwd: string;
  /** SIGTERM → SIGKILL grace on stop() */
  stopGraceMs?: number;
  /** how much of the tail of stderr to keep */
  stderrBytes?: number;
}

export const DEFAULT_STOP_GRACE_MS = 2_000;
const DEFAULT_STDERR_BYTES = 8 * 1024;

/** Signal a whole process group, ignoring "no such process". */
export function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** Every agent process still running: the last-resort exit hook SIGKILLs their groups so none outlive us. */
const running = new Set<AgentProcess>();
let exitHookInstalled = false;
function track(p: AgentProcess): void {
  running.add(p);
  void p.exited.then(() => running.delete(p));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const x of running) killGroup(x.pid, 'SIGKILL');
  });
}

export class AgentProcess {
  readonly child: ChildProcessByStdio<Writable, Readable, Readable>;
  /** resolves once when the leader exits (or failed to spawn); never rejects */
  readonly exited: Promise<ExitInfo>;
  /** resolves when the process is running; rejects with the spawn error */
  readonly spawned: Promise<void>;
  private exitInfo: ExitInfo | undefined;
  private stderrTail = Buffer.alloc(0);
  private stopping: Promise<ExitInfo> | undefined;

  constructor(private readonly opts: AgentProcessOptions) {
    const max = opts.stderrBytes ?? DEFAULT_STDERR_BYTES;
    this.child = spawn(opts.command, opts.args ?? [], {
      cwd: opts.cwd,
      env: opts.env ?? {},
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stderr.on('data', (chunk: Buffer) => {
      const joined = Buffer.concat([this.stderrTail, chunk]);
      this.stderrTail = joined.length > max ? joined.subarray(joined.length - max) : joined;
    });
    this.child.stdin.on('error', () => {}); // EPIPE after the agent died: reported through `exited`
    this.exited = new Promise<ExitInfo>((resolve) => {
      this.child.once('exit', (code, signal) => resolve((this.exitInfo = { code, signal })));
      this.child.once('error', (error) => {
        if (this.child.pid === undefined) resolve((this.exitInfo = { code: null, signal: null, error }));
      });
    });
    this.spawned = new Promise<void>((resolve, reject) => {
      this.child.once('spawn', resolve);
      this.child.once('error', reject);
    });
    this.spawned.catch(() => {});
    track(this);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get stdin(): Writable {
    return this.child.stdin;
  }

  get stdout(): Readable {
    return this.child.stdout;
  }

  /** undefined while running */
  get exit(): ExitInfo | undefined {
    return this.exitInfo;
  }

  /** The last few KiB of stderr, trimmed, for error messages. */
  stderr(maxChars = 2_000): string {
    const s = this.stderrTail.toString('utf8').trim();
    return s.length > maxChars ? '…' + s.slice(s.length - maxChars) : s;
  }

  /**
   * SIGTERM to the group, wait up to the grace period for the leader, then SIGKILL the group regardless, so
   * children that ignore SIGTERM (or outlive a leader that already exited) are gone too. Idempotent.
   */
  stop(graceMs = this.opts.stopGraceMs ?? DEFAULT_STOP_GRACE_MS): Promise<ExitInfo> {
    this.stopping ??= (async () => {
      const pid = this.child.pid;
      if (pid === undefined) return this.exited;
      await terminateAfterGrace({ kill: (signal) => killGroup(pid, signal), exited: this.exited, graceMs, sigkill: 'always' });
      this.child.stdout.destroy();
      this.child.stderr.destroy();
      this.child.stdin.destroy();
      return this.exited;
    })();
    return this.stopping;
  }
}

/** "exit code 3" / "signal SIGKILL" / "spawn error ENOENT" */
export function describeExit(e: ExitInfo): string {
  if (e.error) return `could not be started (${(e.error as NodeJS.ErrnoException).code ?? e.error.message})`;
  if (e.signal) return `was killed by ${e.signal}`;
  return `exited with code ${e.code}`;
}
