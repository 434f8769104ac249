/** Shared test helpers: temp dirs, config files, in-process and child-process gateways, bounded waits. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig } from '../../src/config/load.js';
import { startGateway, type Gateway } from '../../src/gateway.js';
import { createLogger, type Logger } from '../../src/util/log.js';
import { spawnGateway, type GatewayProcess } from '../../src/cli/processes.js';

const dirs: string[] = [];

export function tmpDir(prefix = 'sy-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

export function cleanupDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** A logger that keeps lines in memory (and lets tests assert that no secret was logged). */
export function memoryLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: createLogger({}, (l) => void lines.push(l)), lines };
}

/** Starts a gateway in this process from a raw config object (port 0 unless set). */
export async function startInProcess(raw: Record<string, any>, logger?: Logger): Promise<Gateway> {
  const dir = tmpDir();
  const cfg = structuredClone(raw);
  cfg.gateway ??= {};
  cfg.gateway.port ??= 0;
  cfg.store ??= { kind: 'sqlite', path: join(dir, 'data', 'switchyard.db') };
  return startGateway({ config: validateConfig(cfg, 'test'), path: undefined, baseDir: dir }, { logger: logger ?? memoryLogger().logger });
}

/** Writes a JSON config file and starts a real gateway process on it. */
export async function startProcess(raw: Record<string, any>, env: NodeJS.ProcessEnv = {}, dir = tmpDir()): Promise<GatewayProcess & { dir: string; configPath: string }> {
  const cfg = structuredClone(raw);
  cfg.gateway ??= {};
  cfg.gateway.port ??= 0;
  cfg.store ??= { kind: 'sqlite', path: './data/switchyard.db' };
  const configPath = join(dir, `${cfg.gateway.id ?? 'gw'}-${Math.random().toString(36).slice(2, 8)}.json5`);
  writeFileSync(configPath, JSON.stringify(cfg, null, 2));
  const p = await spawnGateway(configPath, { SWITCHYARD_LOG: 'info', ...env });
  return Object.assign(p, { dir, configPath });
}

export async function waitFor<T>(fn: () => T | Promise<T>, what: string, timeoutMs = 10_000, everyMs = 50): Promise<NonNullable<T>> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < until) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
}

export const wsUrl = (httpUrl: string) => httpUrl.replace(/^http/, 'ws') + '/bridge';

export async function adminGet<T = any>(baseUrl: string, path: string, token?: string): Promise<T> {
  const res = await fetch(baseUrl + path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

export async function writeFileIn(dir: string, name: string, text: string): Promise<string> {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

/** A port that was free a moment ago (for a gateway that must come back on the same port). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A process is alive when it exists and is not a zombie (PID 1 in some containers does not reap). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
