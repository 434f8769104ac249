/**
 * The Portkey AI Gateway reference (docs/benchmarks.md). It is installed by the bench into a scratch folder
 * OUTSIDE the repo — never a dependency of the project — with `@hono/node-server` pinned to 1.13.8 through an
 * npm `overrides` entry (its streaming path breaks with newer versions: "TypeError: immutable"), started as a
 * real process with `--port=N --headless`, and routed to the mock upstream by headers.
 *
 * The same scratch folder holds autocannon when wrk is not installed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { join, relative, resolve, isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stopChild } from './mock-upstream.js';

export const PORTKEY_VERSION = '1.15.2';
export const HONO_NODE_SERVER_PIN = '1.13.8';
const INSTALL_TIMEOUT_MS = 240_000;

const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));

/** `$SWITCHYARD_BENCH_SCRATCH`, else `$XDG_CACHE_HOME/switchyard-bench`, else `~/.cache/switchyard-bench`. */
export function scratchDir(): string {
  const dir = resolve(process.env.SWITCHYARD_BENCH_SCRATCH ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'switchyard-bench'));
  const rel = relative(REPO_ROOT, dir);
  if (rel === '' || (!rel.startsWith('..') && !isAbsolute(rel))) throw new Error(`bench scratch folder ${dir} is inside the repo; it must be outside`);
  return dir;
}

function installedVersion(dir: string, pkg: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(join(dir, 'node_modules', pkg, 'package.json'), 'utf8')) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

function npmInstall(dir: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const child = spawn(npm, ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--omit=dev', '--loglevel=error'], {
      cwd: dir,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-2000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), INSTALL_TIMEOUT_MS);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`npm could not run: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolvePromise();
      const lines = stderr
        .split('\n')
        .map((l) => l.replace(/^npm (error|ERR!)\s*/i, '').trim())
        .filter((l) => l && !/^npm warn/i.test(l));
      const why = lines.find((l) => /request to .* failed|^code E|ENOTFOUND|ECONNREFUSED|ETIMEDOUT|E404|EACCES/.test(l)) ?? lines[0] ?? 'no output';
      reject(new Error(signal ? `npm install timed out after ${INSTALL_TIMEOUT_MS / 1000} s` : `npm install failed (exit ${code}): ${why}`));
    });
  });
}

/**
 * Makes sure `pkg@version` is installed in the scratch folder (one npm project, whose package.json keeps
 * the `@hono/node-server` override); returns the folder.
 */
export async function ensureScratchPackage(pkg: string, version: string, log: (s: string) => void): Promise<string> {
  const dir = scratchDir();
  if (installedVersion(dir, pkg) === version) return dir;
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'package.json');
  const manifest: { dependencies?: Record<string, string>; overrides?: Record<string, string> } = existsSync(file)
    ? (JSON.parse(readFileSync(file, 'utf8')) as { dependencies?: Record<string, string>; overrides?: Record<string, string> })
    : ({ name: 'switchyard-bench-scratch', private: true, description: 'benchmark references for Switchyard; safe to delete' } as Record<string, unknown>);
  manifest.dependencies = { ...(manifest.dependencies ?? {}), [pkg]: version };
  manifest.overrides = { ...(manifest.overrides ?? {}), '@hono/node-server': HONO_NODE_SERVER_PIN };
  writeFileSync(file, JSON.stringify(manifest, null, 2) + '\n');
  log(`installing ${pkg}@${version} into ${dir} …\n`);
  await npmInstall(dir);
  const got = installedVersion(dir, pkg);
  if (got !== version) throw new Error(`${pkg}@${version} not found in ${dir} after npm install`);
  return dir;
}

export function portkeyInstalled(): boolean {
  try {
    const dir = scratchDir();
    return installedVersion(dir, '@portkey-ai/gateway') === PORTKEY_VERSION && installedVersion(dir, '@hono/node-server') === HONO_NODE_SERVER_PIN;
  } catch {
    return false;
  }
}

export interface PortkeyProcess {
  /** http://127.0.0.1:PORT */
  url: string;
  pid: number;
  version: string;
  /** headers that route a request to an OpenAI-compatible upstream at `upstreamBaseUrl` */
  routeHeaders(upstreamBaseUrl: string): Record<string, string>;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolvePort(port));
    });
  });
}

async function waitListening(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`Portkey exited with ${child.exitCode ?? child.signalCode} before listening`);
    try {
      await fetch(url, { signal: AbortSignal.timeout(1000) });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`Portkey did not listen within ${timeoutMs} ms`);
}

/** Installs (when needed) and starts Portkey. Throws with a one-line reason when it cannot. */
export async function startPortkey(log: (s: string) => void): Promise<PortkeyProcess> {
  const dir = await ensureScratchPackage('@portkey-ai/gateway', PORTKEY_VERSION, log);
  const hono = installedVersion(dir, '@hono/node-server');
  if (hono !== HONO_NODE_SERVER_PIN) throw new Error(`@hono/node-server is ${hono ?? 'missing'} in ${dir}, expected the ${HONO_NODE_SERVER_PIN} override`);
  const entry = join(dir, 'node_modules', '@portkey-ai', 'gateway', 'build', 'start-server.js');
  const port = await freePort();
  const child = spawn(process.execPath, [entry, `--port=${port}`, '--headless'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4000)));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitListening(url, child, 20_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}${stderr ? `: ${stderr.trim().split('\n').slice(-2).join(' ')}` : ''}`, { cause: err });
  }
  return {
    url,
    pid: child.pid!,
    version: PORTKEY_VERSION,
    routeHeaders: (upstreamBaseUrl) => ({ 'x-portkey-provider': 'openai', 'x-portkey-custom-host': upstreamBaseUrl }),
    stop: () => stopChild(child, exited),
  };
}
