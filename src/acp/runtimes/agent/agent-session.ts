/**
 * One ACP v1 agent session = one agent process. Lifecycle: start() spawns the agent in the session's workspace
 * folder → `initialize` → `session/new`; prompt() runs one `session/prompt` turn and streams its
 * `session/update`s; cancel() sends `session/cancel`; close() (also on idle timeout, turn timeout or crash)
 * ends the agent's whole process group. Failures surface as GatewayErrors naming the agent; nothing here
 * throws outside the returned promises. Given a warm spare (`booted`, warm-pool.ts), start() adopts its process,
 * already past `initialize`, and only opens the ACP session.
 *
 * Over 400 lines: one state machine (start, turn, cancel, close, exit) over shared private state; split, each
 * part would need the others' fields.
 */
import { GatewayError } from '../../../wire/errors.js';
import { rootLogger, type Logger } from '../../../util/log.js';
import { JsonRpcStdioPeer, RpcError, type JsonRpcId } from './jsonrpc-stdio.js';
import { createClientHandlers, type AskPermission, type ClientSide, type PermissionPolicy } from './client-handlers.js';
import { AgentProcess, describeExit, type ExitInfo } from './process.js';
import { resolveSessionFolder } from './workspace.js';
import { minimalEnv } from './env.js';
import type { AgentProcessLimiter, LimitedSession } from './limits.js';
import { MAX_TURN_OUTPUT_CHARS, type PermissionRelay } from '../../runtime.js';
import { VERSION } from '../../../version.js';
import { bindModel, readConfigOptions, type ConfigOption } from './model-binding.js';

export const ACP_PROTOCOL_VERSION = 1;
export const CLIENT_VERSION: string = VERSION;

/** The launch part of an `acp.agents[]` entry (structurally compatible with the config schema). */
export interface AgentSpec {
  id: string;
  label?: string;
  command: string;
  args?: string[];
  env?: Record<string, string>;
  permissions?: PermissionPolicy;
}
export interface AgentInfo {
  name: string;
  title?: string;
  version?: string;
}
export interface InitializeResult {
  protocolVersion: number;
  agentCapabilities?: Record<string, unknown>;
  authMethods?: unknown[];
  agentInfo?: AgentInfo;
}
export type StopReason = 'end_turn' | 'max_tokens' | 'max_turn_requests' | 'refusal' | 'cancelled';
const STOP_REASONS: ReadonlySet<string> = new Set<StopReason>(['end_turn', 'max_tokens', 'max_turn_requests', 'refusal', 'cancelled']);
/** The `update` of a `session/update` notification, as the agent sent it; `sessionUpdate` is the discriminator. */
export interface SessionUpdate {
  sessionUpdate: string;
  [field: string]: unknown;
}
export interface TurnResult {
  stopReason: StopReason;
  text: string;
}

export const DEFAULT_TURN_TIMEOUT_MS = 30 * 60_000;

/** Every session with a live process (for closeAllAgentSessions; process.ts SIGKILLs leftovers at exit). */
const live = new Set<AgentSession>();
const track = (s: AgentSession): void => void live.add(s);

/** Graceful shutdown: close every agent session (SIGTERM, grace, SIGKILL for each process group). */
export async function closeAllAgentSessions(): Promise<void> {
  await Promise.all([...live].map((s) => s.close('shutdown')));
}

export const agentName = (spec: Pick<AgentSpec, 'id'>): string => `agent "${spec.id}"`;

/** `initialize` + version check, shared with the probe. */
export async function initializeAgent(peer: JsonRpcStdioPeer, name: string, timeoutMs: number): Promise<InitializeResult> {
  const res = await peer.request<InitializeResult>(
    'initialize',
    {
      protocolVersion: ACP_PROTOCOL_VERSION,
      clientCapabilities: { fs: { readTextFile: true, writeTextFile: true }, terminal: true },
      clientInfo: { name: 'switchyard', title: 'Switchyard', version: CLIENT_VERSION },
    },
    { timeoutMs },
  );
  if (!res || typeof res.protocolVersion !== 'number') throw new GatewayError('UPSTREAM_BAD_RESPONSE', `${name} answered initialize without a protocolVersion`);
  if (res.protocolVersion !== ACP_PROTOCOL_VERSION) {
    throw new GatewayError('UPSTREAM_BAD_RESPONSE', `${name} speaks ACP protocol version ${res.protocolVersion}; Switchyard speaks ${ACP_PROTOCOL_VERSION}`);
  }
  return res;
}

/**
 * An agent process spawned and past `initialize` before its session existed (a warm spare, warm-pool.ts). A
 * session given one skips the spawn and `initialize`: its start is `session/new` (or `session/load`) only.
 */
export interface BootedAgent {
  readonly proc: AgentProcess;
  readonly peer: JsonRpcStdioPeer;
  readonly init: InitializeResult;
  /** the environment it was started with (terminals it opens start from it) */
  readonly env: Record<string, string>;
  /** the limiter slot it holds: handed over to the session */
  readonly slot: LimitedSession;
  /** called once the session's process is gone: removes what the spare made for itself (its start folder) */
  released(): Promise<void>;
}

export interface AgentSessionOptions {
  agent: AgentSpec;
  workspaceRoot: string;
  /** client hint, resolved under workspaceRoot (see workspace.ts) */
  workingDirectory?: string;
  /** names the folder when there is no hint; usually the gateway's sessionId */
  sessionName: string;
  /** the app's answer to `session/request_permission` when the agent's `permissions` is `ask` (runner's relay) */
  relayPermission?: PermissionRelay;
  askPermission?: AskPermission;
  askTimeoutMs?: number;
  /** initialize + session/new */
  startTimeoutMs?: number;
  /** one session/prompt (default 30 min; 0 = none). On expiry the turn fails and the agent is stopped. */
  turnTimeoutMs?: number;
  /** after session/cancel, how long the agent has to end the turn before it is stopped */
  cancelGraceMs?: number;
  /** close after this long without a turn; 0 = never */
  idleTimeoutMs?: number;
  /** the gateway's cap on live agent processes: a slot is taken before the spawn, given back at close */
  limiter?: AgentProcessLimiter;
  /** a warm spare to use instead of spawning (its process is the session's from now on, and stopped at close) */
  booted?: BootedAgent;
  /** the ACP sessionId an earlier process of this session had: `session/load` it if the agent can */
  resumeSessionId?: string;
  stopGraceMs?: number;
  /** called once when the session ends, with why: closed | idle | exited | timeout | start-failed */
  onClose?: (reason: string) => void;
  log?: Logger;
}

type State = 'new' | 'starting' | 'ready' | 'busy' | 'closed';
/** a turn given up on while the agent may still run it (AgentSession.awaitAbandoned) */
interface Abandoned {
  /** a stray answer arrived (the turn is over if it is the abandoned prompt's) */
  answered(id: JsonRpcId): void;
  /** the session closed: nothing more will come */
  release(): void;
  ended: Promise<void>;
}
interface Turn {
  onUpdate: ((u: SessionUpdate) => void) | undefined;
  text: string;
  cancelled: boolean;
}

export class AgentSession implements LimitedSession {
  private state: State = 'new';
  private proc: AgentProcess | undefined;
  private peer: JsonRpcStdioPeer | undefined;
  private client: ClientSide | undefined;
  private turn: Turn | undefined;
  /** a turn given up on while the agent may still run it (awaitAbandoned) */
  private abandoned: Abandoned | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  private exitError: GatewayError | undefined;
  private readonly name: string;
  private readonly log: Logger;
  acpSessionId = '';
  /** the session config options the agent announced (session/new, session/load, set_config_option) */
  private configOptions: ConfigOption[] = [];
  /** the model this session is bound to (role routing), once the agent read it back */
  private boundModel: string | undefined;
  cwd = '';
  agentInfo: AgentInfo | undefined;
  /** the agent announced `loadSession` in initialize */
  reloadable = false;
  /** the session was restored with `session/load` rather than created */
  loaded = false;
  lastUsed = Date.now();

  constructor(private readonly opts: AgentSessionOptions) {
    this.name = agentName(opts.agent);
    this.log = (opts.log ?? rootLogger).child({ agent: opts.agent.id, session: opts.sessionName });
  }

  get status(): State {
    return this.state;
  }

  get idle(): boolean {
    return this.state === 'ready';
  }

  /** The agent's pid (the process-group id of everything it starts), once started. */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  async start(): Promise<{ acpSessionId: string; cwd: string; agentInfo?: AgentInfo }> {
    if (this.state !== 'new') throw new GatewayError('INTERNAL', `${this.name} session already started`);
    this.state = 'starting';
    const { agent, booted } = this.opts;
    const timeoutMs = this.opts.startTimeoutMs ?? 30_000;
    let hasSlot = false;
    if (booted) {
      // taken over at once, so close() stops it (and gives the slot back) whatever happens next
      this.proc = booted.proc;
      this.peer = booted.peer;
      hasSlot = this.opts.limiter?.replace(booted.slot, this) ?? true;
      track(this);
      void booted.proc.exited.then((info) => this.onExit(info));
    }
    try {
      this.cwd = await resolveSessionFolder(this.opts.workspaceRoot, this.opts.workingDirectory, this.opts.sessionName);
      if (!hasSlot) await this.opts.limiter?.acquire(this, this.name);
      if (this.state !== 'starting') {
        this.opts.limiter?.release(this); // close() ran while we waited for the slot: it could not give it back
        throw new GatewayError('CANCELLED', `${this.name} session was closed while starting`);
      }
      let env: Record<string, string>;
      let peer: JsonRpcStdioPeer;
      let init: InitializeResult | undefined;
      if (booted) {
        env = booted.env;
        peer = booted.peer;
        init = booted.init;
      } else {
        env = { ...minimalEnv(), ...agent.env };
        const proc = (this.proc = new AgentProcess({
          command: agent.command,
          args: agent.args ?? [],
          env,
          cwd: this.cwd,
          stopGraceMs: this.opts.stopGraceMs ?? 2_000,
        }));
        track(this);
        void proc.exited.then((info) => this.onExit(info));
        await proc.spawned.catch((err: NodeJS.ErrnoException) => {
          throw new GatewayError('UPSTREAM_ERROR', `${this.name}: command "${agent.command}" could not be started (${err.code ?? err.message})`);
        });
        peer = this.peer = new JsonRpcStdioPeer(proc.stdout, proc.stdin, { name: this.name, log: this.log });
      }
      this.client = createClientHandlers({
        agentName: this.name,
        workspace: this.cwd,
        permissions: agent.permissions ?? 'ask',
        env,
        turnCancelled: () => this.turn?.cancelled === true,
        ...(this.opts.relayPermission ? { relayPermission: this.opts.relayPermission } : {}),
        ...(this.opts.askPermission ? { askPermission: this.opts.askPermission } : {}),
        ...(this.opts.askTimeoutMs ? { askTimeoutMs: this.opts.askTimeoutMs } : {}),
      });
      for (const [method, h] of Object.entries(this.client.handlers)) peer.onRequest(method, h);
      peer.onNotification('session/update', (p) => this.onUpdate(p));
      peer.onStrayAnswer((id) => this.abandoned?.answered(id));
      // an agent that does not read what it is sent is stopped: the peer already failed what was in flight
      peer.onStalled((err) => {
        this.exitError ??= err;
        void this.close('not-reading');
      });

      init ??= await initializeAgent(peer, this.name, timeoutMs);
      this.agentInfo = init.agentInfo;
      this.reloadable = init.agentCapabilities?.loadSession === true;
      const resume = this.opts.resumeSessionId;
      if (resume && this.reloadable) {
        // the conversation an earlier process of this session kept (its updates replay outside any turn: ignored)
        try {
          const loaded = await peer.request('session/load', { sessionId: resume, cwd: this.cwd, mcpServers: [] }, { timeoutMs });
          this.configOptions = readConfigOptions(loaded);
          this.acpSessionId = resume;
          this.loaded = true;
        } catch (err) {
          if (peer.closed) throw err;
          this.log.warn('session/load failed; starting a new agent session', {
            error: String(err),
            ...(err instanceof RpcError && err.data !== undefined ? { data: err.data } : {}),
          });
        }
      }
      if (!this.loaded) {
        const res = await peer.request<{ sessionId?: unknown }>('session/new', { cwd: this.cwd, mcpServers: [] }, { timeoutMs });
        if (typeof res?.sessionId !== 'string' || res.sessionId === '')
          throw new GatewayError('UPSTREAM_BAD_RESPONSE', `${this.name} answered session/new without a sessionId`);
        this.acpSessionId = res.sessionId;
        this.configOptions = readConfigOptions(res);
      }
      this.state = 'ready';
      this.lastUsed = Date.now();
      this.armIdle();
      this.log.info('agent session started', { pid: this.proc?.pid, agentInfo: init.agentInfo, loaded: this.loaded, warm: booted !== undefined });
      return { acpSessionId: this.acpSessionId, cwd: this.cwd, ...(init.agentInfo ? { agentInfo: init.agentInfo } : {}) };
    } catch (err) {
      const e = await this.settleError(err, 'while starting');
      await this.close('start-failed');
      throw e;
    }
  }

  /**
   * Binds the session to `model` through the agent's model config option (model-binding.ts): resolves once the
   * agent reads it back; throws MODEL_NOT_ADVERTISED / MODEL_BINDING_UNVERIFIED otherwise. Idempotent.
   */
  async bindModel(model: string): Promise<void> {
    if (this.boundModel === model) return;
    const peer = this.peer;
    if (this.state !== 'ready' || !peer) throw this.exitError ?? new GatewayError('UPSTREAM_ERROR', `${this.name} session is not ready`);
    await bindModel(this.name, this.configOptions, model, async (configId, value) => {
      const res = await peer.request(
        'session/set_config_option',
        { sessionId: this.acpSessionId, configId, value },
        { timeoutMs: this.opts.startTimeoutMs ?? 30_000 },
      );
      this.configOptions = readConfigOptions(res);
      return res;
    });
    this.boundModel = model;
  }

  /** Resolves once no turn given up on is still ending (see awaitAbandoned); the session may be closed then. */
  async settled(): Promise<void> {
    if (this.abandoned) await this.abandoned.ended;
  }

  /** Runs one turn. Updates reach `onUpdate` in the order the agent sent them, before this resolves. */
  async prompt(text: string, onUpdate?: (update: SessionUpdate) => void): Promise<TurnResult> {
    // a turn given up on while the agent still ran it: its late updates must not become this turn's
    await this.settled();
    if (this.state === 'busy') throw new GatewayError('INVALID_REQUEST', `${this.name} is already running a turn in this session`);
    if (this.state !== 'ready' || !this.peer)
      throw this.exitError ?? new GatewayError('UPSTREAM_ERROR', `${this.name} session is ${this.state === 'closed' ? 'closed' : 'not started'}`);
    clearTimeout(this.idleTimer);
    this.state = 'busy';
    const turn: Turn = (this.turn = { onUpdate, text: '', cancelled: false });
    const turnTimeoutMs = this.opts.turnTimeoutMs ?? DEFAULT_TURN_TIMEOUT_MS;
    let promptId: JsonRpcId | undefined;
    let answered = false;
    try {
      const res = await this.peer.request<{ stopReason?: StopReason }>(
        'session/prompt',
        {
          sessionId: this.acpSessionId,
          prompt: [{ type: 'text', text }],
        },
        { timeoutMs: turnTimeoutMs, onId: (id) => (promptId = id) },
      );
      answered = true;
      // cancel wins even if the agent raced it with another stop reason
      if (turn.cancelled) return { stopReason: 'cancelled', text: turn.text };
      if (typeof res?.stopReason !== 'string') throw new GatewayError('UPSTREAM_BAD_RESPONSE', `${this.name} answered session/prompt without a stopReason`);
      // a stop reason ACP v1 does not define is not passed to the app (which knows those five): the turn ended
      if (!STOP_REASONS.has(res.stopReason)) {
        this.log.warn('agent sent an unknown stopReason: taken as end_turn', { stopReason: res.stopReason.slice(0, 64) });
        return { stopReason: 'end_turn', text: turn.text };
      }
      return { stopReason: res.stopReason, text: turn.text };
    } catch (err) {
      if (turn.cancelled) return { stopReason: 'cancelled', text: turn.text };
      const e = await this.settleError(err, 'during the turn');
      if (e.code === 'UPSTREAM_TIMEOUT') {
        // a hung agent cannot be trusted with another turn
        const msg = `${this.name} did not finish the turn within ${turnTimeoutMs} ms; the agent was stopped`;
        void this.close('timeout');
        throw new GatewayError('UPSTREAM_TIMEOUT', msg, { details: { agentId: this.opts.agent.id } });
      }
      if (this.state === 'busy') {
        // the request failed here (garbage on stdout) while the agent may still run the turn: it is told to stop,
        // and the next turn waits for its answer to this prompt (or, past the grace, for its process to stop)
        this.peer?.notify('session/cancel', { sessionId: this.acpSessionId });
        // (an answer, even an error or a malformed one, means that turn is over)
        if (promptId !== undefined && !answered && !(err instanceof RpcError)) this.abandoned = this.awaitAbandoned(promptId);
      }
      throw e;
    } finally {
      this.turn = undefined;
      this.lastUsed = Date.now();
      if (this.state === 'busy') {
        this.state = 'ready';
        this.armIdle();
      }
    }
  }

  /**
   * A turn given up on here while the agent may still run it: `ended` resolves when the agent answers that
   * session/prompt (its updates are over), or after the cancel grace, with the agent stopped (the next turn
   * then starts a new process).
   */
  private awaitAbandoned(promptId: JsonRpcId): Abandoned {
    let done!: () => void;
    const ended = new Promise<void>((resolve) => (done = resolve));
    const timer = setTimeout(() => {
      this.log.warn('agent did not end a turn given up on; stopping it');
      void this.close('abandoned-turn').then(finish);
    }, this.opts.cancelGraceMs ?? 10_000);
    timer.unref();
    const finish = () => {
      clearTimeout(timer);
      if (this.abandoned === entry) this.abandoned = undefined;
      done();
    };
    const entry: Abandoned = { answered: (id) => id === promptId && finish(), release: finish, ended };
    return entry;
  }

  /** ACP `session/cancel`: the running turn resolves with stopReason "cancelled". Returns whether one was running. */
  cancel(): boolean {
    const turn = this.turn;
    if (!turn || this.state !== 'busy' || turn.cancelled) return false;
    turn.cancelled = true;
    this.peer?.notify('session/cancel', { sessionId: this.acpSessionId });
    this.client?.cancelPendingPermissions();
    setTimeout(() => {
      if (this.turn === turn) {
        this.log.warn('agent ignored session/cancel; stopping it');
        void this.close('cancel-timeout');
      }
    }, this.opts.cancelGraceMs ?? 10_000).unref();
    return true;
  }

  /** Ends the agent's process group (children included). Idempotent. */
  close(reason = 'closed'): Promise<void> {
    this.closing ??= (async () => {
      const { booted } = this.opts;
      if (booted && !this.proc) {
        // closed before start(): the taken spare is still ours to stop
        this.proc = booted.proc;
        this.opts.limiter?.replace(booted.slot, this);
      }
      this.state = 'closed';
      clearTimeout(this.idleTimer);
      this.abandoned?.release(); // no process, no late updates: the next turn starts a new one
      this.peer?.close(this.exitError ?? new GatewayError('CANCELLED', `${this.name} session was closed${reason === 'closed' ? '' : ` (${reason})`}`));
      this.client?.dispose();
      await this.proc?.stop();
      await this.opts.booted?.released().catch((err: unknown) => this.log.warn('warm spare cleanup failed', { error: String(err) }));
      this.opts.limiter?.release(this);
      live.delete(this);
      this.log.info('agent session closed', { reason });
      try {
        this.opts.onClose?.(reason);
      } catch (err) {
        this.log.warn('onClose callback failed', { error: String(err) });
      }
    })();
    return this.closing;
  }

  private armIdle(): void {
    const ms = this.opts.idleTimeoutMs ?? 0;
    clearTimeout(this.idleTimer);
    if (ms > 0) this.idleTimer = setTimeout(() => this.state === 'ready' && void this.close('idle'), ms).unref();
  }

  private onUpdate(params: unknown): void {
    const p = params as { sessionId?: unknown; update?: SessionUpdate } | undefined;
    const turn = this.turn;
    if (!p || p.sessionId !== this.acpSessionId || !p.update || typeof p.update.sessionUpdate !== 'string') return;
    if (!turn) return this.log.debug('session/update outside a turn', { sessionUpdate: p.update.sessionUpdate });
    const content = p.update.content as { type?: string; text?: unknown } | undefined;
    // bounded as the turn runner bounds the turn (it stops the turn past it): what comes after is not kept
    if (
      p.update.sessionUpdate === 'agent_message_chunk' &&
      content?.type === 'text' &&
      typeof content.text === 'string' &&
      turn.text.length < MAX_TURN_OUTPUT_CHARS
    )
      turn.text += content.text;
    try {
      turn.onUpdate?.(p.update);
    } catch (err) {
      this.log.warn('onUpdate listener failed', { error: String(err) });
    }
  }

  private onExit(info: ExitInfo): void {
    if (this.closing || info.error) return;
    // the agent's stderr stays in the log (scrubbed there): it may hold secrets and paths; the client gets the exit
    const stderr = this.proc?.stderr(2_000);
    this.exitError = new GatewayError('UPSTREAM_ERROR', `${this.name} ${describeExit(info)} unexpectedly (its stderr is in the gateway log)`, {
      details: { agentId: this.opts.agent.id, exitCode: info.code, signal: info.signal },
    });
    this.log.warn('agent process exited', { code: info.code, signal: info.signal, ...(stderr ? { stderr } : {}) });
    void this.close('exited'); // also reaps anything left in its process group
  }

  /** stdout may close a moment before the exit is reported: wait briefly so the error can name the exit code */
  private async settleError(err: unknown, when: string): Promise<GatewayError> {
    if (this.peer?.closed && this.proc && !this.proc.exit && !this.closing) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.proc.exited, new Promise((r) => (timer = setTimeout(r, 500)))]);
      clearTimeout(timer);
    }
    return this.toError(err, when);
  }

  private toError(err: unknown, when: string): GatewayError {
    if (this.exitError) return this.exitError;
    if (err instanceof GatewayError) return err;
    if (err instanceof RpcError) {
      if (err.code === -32000)
        return new GatewayError('UPSTREAM_ERROR', `${this.name} requires authentication; log in with the agent's own CLI first (${err.message})`);
      return new GatewayError('UPSTREAM_ERROR', `${this.name} failed ${when}: ${err.message} (JSON-RPC ${err.code})`, { details: { rpcCode: err.code } });
    }
    this.log.error('unexpected agent session error', { error: String(err) });
    return new GatewayError('INTERNAL', `${this.name} failed ${when}`, { cause: err });
  }
}
