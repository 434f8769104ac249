/**
 * Availability probe for `acp.capabilities`: is the command there, and does it answer ACP `initialize`?
 * The probe process is stopped right after. Results are cached per launch spec for `cacheTtlMs` (concurrent
 * probes of the same spec share one run), so listing capabilities never spawns a process per request; past the
 * TTL the last answer is served while one new probe runs (only a spec's first probe is waited for). At most
 * MAX_CONCURRENT_PROBES probe processes run at once (a catalog of heavy agents would otherwise start them all
 * together and each would miss its initialize deadline); the deadline counts from a probe's own start.
 */
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import path from 'node:path';
import { GatewayError } from '../../../wire/errors.js';
import { rootLogger, type Logger } from '../../../util/log.js';
import { JsonRpcStdioPeer } from './jsonrpc-stdio.js';
import { agentName, initializeAgent, type AgentInfo, type AgentSpec } from './agent-session.js';
import { AgentProcess, describeExit } from './process.js';
import { minimalEnv } from './env.js';

export type ProbeResult = { ok: true; agentInfo?: AgentInfo; protocolVersion: number } | { ok: false; reason: string };

export interface ProbeOptions {
  cwd?: string;
  cacheTtlMs?: number;
  log?: Logger;
}

export const DEFAULT_PROBE_TTL_MS = 60_000;
interface CacheEntry {
  /** when `result` was asked for (a first probe) or came (a refresh) */
  at: number;
  result: Promise<ProbeResult>;
  /** the settled answer, served past the TTL while `refreshing` */
  last?: ProbeResult;
  refreshing?: boolean;
}
const cache = new Map<string, CacheEntry>();
export const MAX_CONCURRENT_PROBES = 2;
let running = 0;
const waiting: Array<() => void> = [];

async function inSlot<T>(fn: () => Promise<T>): Promise<T> {
  if (running >= MAX_CONCURRENT_PROBES) await new Promise<void>((r) => waiting.push(r));
  running++;
  try {
    return await fn();
  } finally {
    running--;
    waiting.shift()?.();
  }
}

export function clearProbeCache(): void {
  cache.clear();
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

/** The command's path if it exists (contains a slash) or is found on PATH; undefined otherwise. */
export async function findCommand(command: string, envPath = process.env.PATH ?? '', cwd = process.cwd()): Promise<string | undefined> {
  if (command.includes('/')) {
    const file = path.resolve(cwd, command);
    return (await isExecutable(file)) ? file : undefined;
  }
  for (const dir of envPath.split(path.delimiter)) {
    if (!dir) continue;
    const file = path.join(dir, command);
    if (await isExecutable(file)) return file;
  }
  return undefined;
}

export function probeAgent(cfg: AgentSpec, timeoutMs = 10_000, opts: ProbeOptions = {}): Promise<ProbeResult> {
  const key = JSON.stringify([cfg.command, cfg.args ?? [], cfg.env ?? {}, opts.cwd ?? '']);
  const ttl = opts.cacheTtlMs ?? DEFAULT_PROBE_TTL_MS;
  const hit = cache.get(key);
  if (hit && Date.now() - hit.at < ttl) return hit.result;
  // Past the TTL, the last answer stands while a new probe runs: an agent that hangs at initialize would otherwise
  // put its whole probe deadline into every session.start's path (the catalog waits for every probe) once per TTL
  if (hit?.last) {
    if (!hit.refreshing) {
      hit.refreshing = true;
      void inSlot(() => runProbe(cfg, timeoutMs, opts)).then((r) => cache.set(key, { at: Date.now(), result: Promise.resolve(r), last: r }));
    }
    return Promise.resolve(hit.last);
  }
  const entry: CacheEntry = { at: Date.now(), result: inSlot(() => runProbe(cfg, timeoutMs, opts)) };
  cache.set(key, entry);
  void entry.result.then((r) => (entry.last = r));
  return entry.result;
}

async function runProbe(cfg: AgentSpec, timeoutMs: number, opts: ProbeOptions): Promise<ProbeResult> {
  const cwd = opts.cwd ?? process.cwd();
  const name = agentName(cfg);
  if (!(await findCommand(cfg.command, cfg.env?.PATH ?? process.env.PATH, cwd))) {
    return { ok: false, reason: `command "${cfg.command}" not found${cfg.command.includes('/') ? '' : ' on PATH'}` };
  }
  const log = opts.log ?? rootLogger;
  const proc = new AgentProcess({ command: cfg.command, args: cfg.args ?? [], env: { ...minimalEnv(), ...cfg.env }, cwd, stopGraceMs: 500 });
  try {
    await proc.spawned;
    const peer = new JsonRpcStdioPeer(proc.stdout, proc.stdin, { name, log });
    void proc.exited.then((e) => peer.close(new GatewayError('UPSTREAM_ERROR', `${name} exited (code ${e.code ?? e.signal})`)));
    const init = await initializeAgent(peer, name, timeoutMs);
    return { ok: true, protocolVersion: init.protocolVersion, ...(init.agentInfo ? { agentInfo: init.agentInfo } : {}) };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const exit = proc.exit;
    // stderr goes to the log only (it may hold secrets or paths); the reason is shown to clients
    const stderr = proc.stderr(2_000);
    let reason: string;
    if (e.code === 'ENOENT' || e.code === 'EACCES') reason = `command "${cfg.command}" could not be started (${e.code})`;
    else if (exit && !exit.error) reason = `${name} ${describeExit(exit)} before answering initialize (its stderr is in the gateway log)`;
    else reason = `${name} did not answer ACP initialize: ${e.message}`;
    log.warn('agent probe failed', { agent: cfg.id, reason, ...(stderr ? { stderr } : {}) });
    return { ok: false, reason };
  } finally {
    await proc.stop();
  }
}
