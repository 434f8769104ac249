/**
 * The client side of ACP v1: the requests an agent may send us. fs/* and terminal/* are served only inside the
 * session's workspace folder; session/request_permission follows the agent's `permissions` setting.
 * Wire shapes follow the ACP v1 schema (ReadTextFileRequest, CreateTerminalRequest, RequestPermissionRequest…).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { GatewayError } from '../../../wire/errors.js';
import { RpcError, type RequestHandler } from './jsonrpc-stdio.js';
import { minimalEnv } from './env.js';
import { killGroup } from './process.js';
import type { PermissionRelay } from '../../runtime.js';
import { resolveInside } from './workspace.js';

export type PermissionPolicy = 'allow' | 'deny' | 'ask';
export type PermissionOptionKind = 'allow_once' | 'allow_always' | 'reject_once' | 'reject_always';
export interface PermissionOption {
  optionId: string;
  name: string;
  kind: PermissionOptionKind;
}
export interface PermissionRequest {
  sessionId: string;
  toolCall: Record<string, unknown>;
  options: PermissionOption[];
}
export type PermissionOutcome = { outcome: 'selected'; optionId: string } | { outcome: 'cancelled' };
/** Asks a human (or policy engine). Resolve with an `optionId` from `req.options`, or undefined to refuse. */
export type AskPermission = (req: PermissionRequest, signal: AbortSignal) => Promise<string | undefined>;

export interface ClientHandlerOptions {
  /** e.g. `agent "codex"`, for messages */
  agentName: string;
  /** real path of the session folder: the confinement root */
  workspace: string;
  permissions: PermissionPolicy;
  /** the agent's own environment: terminals start with it (plus the request's `env`), never the gateway's */
  env?: Record<string, string>;
  /** `permissions: "ask"`: the app is asked through the relay (permissions.ts) first; the local hook only without one */
  relayPermission?: PermissionRelay;
  askPermission?: AskPermission;
  /** how long `askPermission` may take before the request is rejected */
  askTimeoutMs?: number;
  /** largest file fs/read_text_file will read */
  maxReadBytes?: number;
  /** default and maximum terminal output kept per terminal */
  maxTerminalOutputBytes?: number;
  /** true once the running turn was cancelled: later permission requests are answered `cancelled` at once */
  turnCancelled?: () => boolean;
  /** terminals alive at once (released ones do not count) */
  maxTerminals?: number;
}

interface Terminal {
  child: ChildProcess;
  output: Buffer;
  truncated: boolean;
  limit: number;
  exitStatus: { exitCode: number | null; signal: string | null } | undefined;
  exited: Promise<{ exitCode: number | null; signal: string | null }>;
}

export interface ClientSide {
  handlers: Record<string, RequestHandler>;
  /** answer every pending permission request with `cancelled` (ACP: required after session/cancel) */
  cancelPendingPermissions(): void;
  /** kill every terminal this session created */
  dispose(): void;
}

const ALLOW: PermissionOptionKind[] = ['allow_once', 'allow_always'];
const REJECT: PermissionOptionKind[] = ['reject_once', 'reject_always'];

function obj(params: unknown): Record<string, unknown> {
  if (!params || typeof params !== 'object' || Array.isArray(params)) throw new RpcError(-32602, 'params must be an object');
  return params as Record<string, unknown>;
}
function str(p: Record<string, unknown>, key: string): string {
  const v = p[key];
  if (typeof v !== 'string' || v.length === 0) throw new RpcError(-32602, `${key} must be a non-empty string`);
  return v;
}
function optInt(p: Record<string, unknown>, key: string): number | undefined {
  const v = p[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new RpcError(-32602, `${key} must be a non-negative integer`);
  return v;
}

/** Keep the last `limit` bytes, cut at a UTF-8 character boundary (ACP: truncate from the beginning). */
export function keepTail(buf: Buffer, limit: number): Buffer {
  if (buf.length <= limit) return buf;
  let start = buf.length - limit;
  while (start < buf.length && ((buf[start] ?? 0) & 0xc0) === 0x80) start++;
  return buf.subarray(start);
}

export function createClientHandlers(opts: ClientHandlerOptions): ClientSide {
  const terminals = new Map<string, Terminal>();
  const pendingAsks = new Set<AbortController>();
  let terminalSeq = 0;
  const maxOut = opts.maxTerminalOutputBytes ?? 1024 * 1024;

  const inside = async (p: string, param: string): Promise<string> => {
    try {
      return await resolveInside(opts.workspace, p, param);
    } catch (err) {
      if (err instanceof GatewayError) throw new RpcError(-32602, err.message);
      throw err;
    }
  };
  const terminal = (params: unknown): [Terminal, string] => {
    const id = str(obj(params), 'terminalId');
    const t = terminals.get(id);
    if (!t) throw new RpcError(-32002, `unknown terminal: ${id}`);
    return [t, id];
  };

  const decide = async (params: unknown, signal: AbortSignal): Promise<PermissionOutcome> => {
    const req = obj(params) as unknown as PermissionRequest;
    // only options that can be selected: an answer always names one the agent offered, as a string
    const options = (Array.isArray(req.options) ? req.options : []).filter((o) => isOption(o));
    const pick = (kinds: PermissionOptionKind[]): PermissionOutcome => {
      const o = options.find((x) => kinds.includes(x?.kind));
      return o ? { outcome: 'selected', optionId: o.optionId } : { outcome: 'cancelled' };
    };
    if (opts.turnCancelled?.()) return { outcome: 'cancelled' };
    if (opts.permissions === 'allow') return pick(ALLOW);
    if (opts.permissions === 'ask' && opts.relayPermission) {
      const toolCall = req.toolCall && typeof req.toolCall === 'object' && !Array.isArray(req.toolCall) ? req.toolCall : {};
      const offered = options;
      const ac = new AbortController();
      pendingAsks.add(ac);
      const onOuterAbort = (): void => ac.abort();
      signal.addEventListener('abort', onOuterAbort, { once: true });
      try {
        const out = await opts.relayPermission({ toolCall, options: offered }, ac.signal);
        return out.outcome === 'selected' && offered.some((o) => o.optionId === out.optionId) ? out : { outcome: 'cancelled' };
      } finally {
        signal.removeEventListener('abort', onOuterAbort);
        pendingAsks.delete(ac);
      }
    }
    if (opts.permissions === 'deny' || !opts.askPermission) return pick(REJECT);
    const ac = new AbortController();
    pendingAsks.add(ac);
    const onOuterAbort = (): void => ac.abort();
    signal.addEventListener('abort', onOuterAbort, { once: true });
    const timer = setTimeout(() => ac.abort('timeout'), opts.askTimeoutMs ?? 60_000);
    try {
      const aborted = new Promise<'aborted'>((r) => ac.signal.addEventListener('abort', () => r('aborted'), { once: true }));
      const answer = await Promise.race([opts.askPermission({ ...req, options }, ac.signal).catch(() => undefined), aborted]);
      if (answer === 'aborted') return ac.signal.reason === 'timeout' ? pick(REJECT) : { outcome: 'cancelled' };
      if (answer !== undefined && options.some((o) => o.optionId === answer)) return { outcome: 'selected', optionId: answer };
      return pick(REJECT);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onOuterAbort);
      pendingAsks.delete(ac);
    }
  };

  const handlers: Record<string, RequestHandler> = {
    'session/request_permission': async (params, ctx) => ({ outcome: await decide(params, ctx.signal) }),

    'fs/read_text_file': async (params) => {
      const p = obj(params);
      const file = await inside(str(p, 'path'), 'path');
      const line = optInt(p, 'line');
      const limit = optInt(p, 'limit');
      const fh = await openRegular(file, constants.O_RDONLY, p.path as string, true);
      let content: string;
      try {
        const size = (await fh.stat()).size;
        if (size > (opts.maxReadBytes ?? 8 * 1024 * 1024)) throw new RpcError(-32602, `file too large to read: ${p.path as string} (${size} bytes)`);
        content = await fh.readFile('utf8');
      } finally {
        await fh.close();
      }
      if (line === undefined && limit === undefined) return { content };
      const lines = content.split('\n');
      const from = Math.max(1, line ?? 1) - 1;
      return { content: lines.slice(from, limit === undefined ? undefined : from + limit).join('\n') };
    },

    'fs/write_text_file': async (params) => {
      const p = obj(params);
      const file = await inside(str(p, 'path'), 'path');
      if (typeof p.content !== 'string') throw new RpcError(-32602, 'content must be a string');
      await mkdir(path.dirname(file), { recursive: true });
      const fh = await openRegular(file, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, p.path as string, false);
      try {
        await fh.writeFile(p.content, 'utf8');
      } finally {
        await fh.close();
      }
      return {};
    },

    'terminal/create': async (params) => {
      const p = obj(params);
      const command = str(p, 'command');
      if (terminals.size >= (opts.maxTerminals ?? 16)) throw new RpcError(-32603, `too many terminals (limit ${opts.maxTerminals ?? 16}); release some first`);
      const args = Array.isArray(p.args) ? p.args.map(String) : [];
      const cwd = p.cwd === undefined || p.cwd === null ? opts.workspace : await inside(str(p, 'cwd'), 'cwd');
      const env: Record<string, string> = {};
      for (const e of Array.isArray(p.env) ? (p.env as Array<{ name?: unknown; value?: unknown }>) : []) {
        if (typeof e?.name === 'string' && typeof e.value === 'string') env[e.name] = e.value;
      }
      const limit = Math.min(optInt(p, 'outputByteLimit') ?? maxOut, maxOut);
      const child = spawn(command, args, { cwd, env: { ...(opts.env ?? minimalEnv()), ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', (err) => reject(new RpcError(-32603, `could not start "${command}": ${(err as NodeJS.ErrnoException).code ?? err.message}`)));
      });
      let settleExit!: (s: { exitCode: number | null; signal: string | null }) => void;
      const t: Terminal = {
        child,
        output: Buffer.alloc(0),
        truncated: false,
        limit,
        exitStatus: undefined,
        exited: new Promise((resolve) => (settleExit = resolve)),
      };
      const onData = (chunk: Buffer): void => {
        const joined = Buffer.concat([t.output, chunk]);
        t.output = keepTail(joined, t.limit);
        if (t.output.length < joined.length) t.truncated = true;
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      // 'close' waits for the pipes to drain; a background grandchild holding them open must not block the exit
      const done = (code: number | null, signal: string | null): void => settleExit((t.exitStatus ??= { exitCode: code, signal }));
      child.once('close', done);
      child.once('exit', (code, signal) => setTimeout(() => done(code, signal), 200).unref());
      const terminalId = `term_${++terminalSeq}`;
      terminals.set(terminalId, t);
      return { terminalId };
    },

    'terminal/output': async (params) => {
      const [t] = terminal(params);
      return { output: t.output.toString('utf8'), truncated: t.truncated, ...(t.exitStatus ? { exitStatus: t.exitStatus } : {}) };
    },

    'terminal/wait_for_exit': async (params, ctx) => {
      const [t] = terminal(params);
      const aborted = new Promise<never>((_, reject) =>
        ctx.signal.addEventListener('abort', () => reject(new RpcError(-32800, 'request cancelled')), { once: true }),
      );
      return Promise.race([t.exited, aborted]);
    },

    'terminal/kill': async (params) => {
      const [t] = terminal(params);
      killGroup(t.child.pid, 'SIGKILL');
      return {};
    },

    'terminal/release': async (params) => {
      const [t, id] = terminal(params);
      killGroup(t.child.pid, 'SIGKILL');
      terminals.delete(id);
      return {};
    },
  };

  return {
    handlers,
    cancelPendingPermissions: () => {
      for (const ac of pendingAsks) ac.abort('cancelled');
    },
    // the group, not only its leader: a command that exited may have left children in it (`sleep 99 &`)
    dispose: () => {
      for (const t of terminals.values()) killGroup(t.child.pid, 'SIGKILL');
      terminals.clear();
    },
  };
}

/**
 * Opens a regular file an agent named (already resolved inside its workspace) without ever waiting on what is
 * not one: O_NONBLOCK (a FIFO with no reader fails at once instead of holding one of libuv's four threads
 * for good, and with it every later fs call of the gateway), O_NOFOLLOW (a symlink put in the last component
 * after the path was resolved is not followed), then fstat on the opened file: not a regular file, refused.
 * `missingIsNotFound`: a read of an absent file is -32002 (ACP's "not found"), as before.
 */
async function openRegular(file: string, flags: number, shown: string, missingIsNotFound: boolean): Promise<FileHandle> {
  let fh: FileHandle;
  try {
    fh = await open(file, flags | constants.O_NONBLOCK | constants.O_NOFOLLOW, 0o644);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && missingIsNotFound) throw new RpcError(-32002, `file not found: ${shown}`);
    throw new RpcError(-32602, `cannot open ${shown}: ${code === 'ENXIO' || code === 'ELOOP' ? 'not a regular file' : (code ?? 'error')}`);
  }
  if (!(await fh.stat()).isFile()) {
    await fh.close();
    throw new RpcError(missingIsNotFound ? -32002 : -32602, `not a regular file: ${shown}`);
  }
  return fh;
}

/** A permission option the agent can be answered with: an object with a non-empty string `optionId`. */
function isOption(o: unknown): o is PermissionRequest['options'][number] {
  return typeof o === 'object' && o !== null && typeof (o as { optionId?: unknown }).optionId === 'string' && (o as { optionId: string }).optionId !== '';
}
