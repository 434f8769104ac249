/**
 * Installs the real agents for the end-to-end agent tests, pinned, into cache folders OUTSIDE the repo:
 * `${SWITCHYARD_TEST_CACHE:-${XDG_CACHE_HOME:-~/.cache}/switchyard-test}/<name>-<version>`. They are not project
 * dependencies: `npm install --no-save --ignore-scripts --prefix <tmp> <package>@<version>`, then the folder is
 * renamed into place (a half-finished install is never mistaken for a good one) and reused by later runs.
 *
 * Install scripts are never run. What each agent needs instead:
 * - codex: `@zed-industries/codex-acp` — its bin is a node launcher that runs the binary of the platform
 *   package (`@zed-industries/codex-acp-linux-x64`, an optionalDependency);
 * - claude: `@zed-industries/claude-agent-acp` — plain JS (the Claude Agent SDK is a dependency);
 * - gemini: `@google/gemini-cli` — a JS bundle (`gemini --acp`);
 * - opencode: `opencode-ai` — the binary of the platform package (`opencode-linux-x64`, …-baseline, …-musl),
 *   the first one whose `--version` prints the pinned version (the package's own postinstall would link it,
 *   running `opencode --version` under the real HOME).
 *
 * `agentsBinDir()` puts one link per agent, named as its preset's command (`codex-acp`, `claude-agent-acp`,
 * `gemini`, `opencode`), into one folder: a gateway with that folder first on its PATH launches the agents
 * from `preset` alone. Bounded: each setup gives up after `timeoutMs` with an error that says what failed.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, symlink, unlink } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';

export type AgentName = 'codex' | 'claude' | 'gemini' | 'opencode';

interface AgentPackage {
  pkg: string;
  /** `npm view <pkg> version`, verified to install and answer ACP initialize on 2026-11-29 */
  version: string;
  /** the preset's default command: the name of the link in agentsBinDir() */
  command: string;
}

export const AGENT_PACKAGES: Readonly<Record<AgentName, AgentPackage>> = {
  codex: { pkg: '@zed-industries/codex-acp', version: '0.16.0', command: 'codex-acp' },
  claude: { pkg: '@zed-industries/claude-agent-acp', version: '0.23.1', command: 'claude-agent-acp' },
  gemini: { pkg: '@google/gemini-cli', version: '0.61.0', command: 'gemini' },
  opencode: { pkg: 'opencode-ai', version: '1.18.33', command: 'opencode' },
};

export interface AgentInstall {
  name: AgentName;
  /** absolute path of the agent's executable */
  bin: string;
  version: string;
  /** the cache folder */
  dir: string;
  /** false when a cached install was reused */
  installed: boolean;
  ms: number;
}

export function cacheRoot(): string {
  return process.env.SWITCHYARD_TEST_CACHE || path.join(process.env.XDG_CACHE_HOME || path.join(homedir(), '.cache'), 'switchyard-test');
}

export function agentCacheDir(name: AgentName, version = AGENT_PACKAGES[name].version): string {
  return path.join(cacheRoot(), `${name}-${version}`);
}

/** HOME and the XDG folders inside `home`. */
export function isolatedHomeEnv(home: string): Record<string, string> {
  return {
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, '.config'),
    XDG_DATA_HOME: path.join(home, '.local', 'share'),
    XDG_CACHE_HOME: path.join(home, '.cache'),
    XDG_STATE_HOME: path.join(home, '.local', 'state'),
  };
}

function opencodeCandidates(dir: string): string[] {
  const nm = path.join(dir, 'node_modules');
  const os = process.platform === 'win32' ? 'windows' : process.platform;
  const exe = process.platform === 'win32' ? 'opencode.exe' : 'opencode';
  const base = `opencode-${os}-${process.arch}`;
  // the plain build needs AVX2; -baseline does not; -musl for Alpine; the launcher exists only where scripts ran
  return [...[base, `${base}-baseline`, `${base}-musl`, `${base}-baseline-musl`].map((p) => path.join(nm, p, 'bin', exe)), path.join(nm, '.bin', exe)];
}

/** Runs `<bin> --version` in a throw-away HOME; resolves to the printed version or an error text. */
async function versionOf(bin: string, timeoutMs: number): Promise<{ ok: true; version: string } | { ok: false; error: string }> {
  const home = await mkdtemp(path.join(tmpdir(), 'sy-agent-version-'));
  try {
    return await new Promise((resolve) => {
      const env = { PATH: process.env.PATH ?? '', ...isolatedHomeEnv(home), OPENCODE_DISABLE_AUTOUPDATE: 'true' };
      execFile(bin, ['--version'], { env, timeout: Math.max(1_000, timeoutMs), killSignal: 'SIGKILL', cwd: home }, (err, stdout, stderr) => {
        if (err) resolve({ ok: false, error: `${err.message.split('\n')[0]}${stderr ? `; stderr: ${stderr.trim().slice(-500)}` : ''}` });
        else resolve({ ok: true, version: stdout.trim() });
      });
    });
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

/** The working executable of `name` in `dir`, or the reasons none was found. */
async function findWorking(name: AgentName, dir: string, deadline: number): Promise<{ bin?: string; problems: string[] }> {
  const { pkg, version, command } = AGENT_PACKAGES[name];
  const problems: string[] = [];
  if (name === 'opencode') {
    for (const bin of opencodeCandidates(dir)) {
      if (!existsSync(bin)) continue;
      const left = deadline - Date.now();
      if (left <= 0) return { problems: [...problems, 'out of time'] };
      const r = await versionOf(bin, Math.min(60_000, left));
      if (r.ok && r.version === version) return { bin, problems };
      problems.push(`${bin}: ${r.ok ? `--version printed "${r.version.slice(0, 200)}", expected "${version}"` : r.error}`);
    }
    if (problems.length === 0) problems.push(`no opencode binary found: ${opencodeCandidates(dir).join(', ')}`);
    return { problems };
  }
  // JS launchers: the package at the pinned version, and its bin link (npm links bins without running scripts)
  const manifest = path.join(dir, 'node_modules', ...pkg.split('/'), 'package.json');
  try {
    const got = (JSON.parse(readFileSync(manifest, 'utf8')) as { version?: string }).version;
    if (got !== version) return { problems: [`${manifest}: version ${got}, expected ${version}`] };
  } catch (err) {
    return { problems: [`${manifest}: ${(err as Error).message}`] };
  }
  const bin = path.join(dir, 'node_modules', '.bin', command);
  if (!existsSync(bin)) return { problems: [`${bin} is missing`] };
  if (name === 'codex') {
    const native = path.join(dir, 'node_modules', '@zed-industries', `codex-acp-${process.platform}-${process.arch}`, 'bin', 'codex-acp');
    if (!existsSync(native)) return { problems: [`the platform binary ${native} is missing`] };
  }
  return { bin, problems };
}

/** npm's own per-script config that must not leak into the nested install (e.g. `npm test` exports prefix=/usr). */
const NPM_ENV_DROP =
  /^npm_config_(prefix|local_prefix|global|global_prefix|location|omit|include|dry_run|save|save_.*|package_lock|package_lock_only|workspace|workspaces|include_workspace_root|ignore_scripts)$/i;

function runNpm(args: string[], cwd: string, timeoutMs: number): Promise<void> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!NPM_ENV_DROP.test(k)) env[k] = v;
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  return new Promise((resolve, reject) => {
    let out = '';
    const child = spawn(npm, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], shell: process.platform === 'win32' });
    const keep = (b: Buffer) => {
      out += b.toString();
      if (out.length > 64_000) out = out.slice(-32_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`could not run "${npm}": ${err.message}`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else
        reject(
          new Error(
            `"${npm} ${args.join(' ')}" ${signal === 'SIGKILL' ? `was stopped after ${timeoutMs} ms` : `failed (${signal ?? `exit code ${code}`})`}\n${out.trim().slice(-3_000)}`,
          ),
        );
    });
  });
}

/**
 * Returns a working install of `name` at its pinned version, installing it into the cache folder first if
 * needed. Throws (the test then FAILS, it is never skipped) when it cannot be installed or does not run.
 */
export async function ensureAgent(name: AgentName, opts: { timeoutMs?: number } = {}): Promise<AgentInstall> {
  const { pkg, version } = AGENT_PACKAGES[name];
  const started = Date.now();
  const deadline = started + (opts.timeoutMs ?? 5 * 60_000);
  const dir = agentCacheDir(name);
  const fail = (what: string, details: string[] = []) =>
    new Error(`${pkg}@${version} setup failed: ${what}${details.length ? `\n  ${details.join('\n  ')}` : ''}`);

  if (existsSync(dir)) {
    const cached = await findWorking(name, dir, deadline);
    if (cached.bin) return { name, bin: cached.bin, version, dir, installed: false, ms: Date.now() - started };
  }
  await mkdir(path.dirname(dir), { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  await mkdir(tmp, { recursive: true });
  try {
    const args = [
      'install',
      '--no-save',
      '--no-package-lock',
      '--no-audit',
      '--no-fund',
      '--ignore-scripts',
      '--include=optional',
      '--prefix',
      tmp,
      `${pkg}@${version}`,
    ];
    try {
      await runNpm(args, tmp, Math.max(1_000, deadline - Date.now()));
    } catch (err) {
      throw fail(`npm install into ${tmp}`, [(err as Error).message]);
    }
    const fresh = await findWorking(name, tmp, deadline);
    if (!fresh.bin) throw fail(`installed, but it does not run here (platform ${process.platform}-${process.arch})`, fresh.problems);
    // move into place; a stale or broken folder is replaced, a concurrent winner is kept
    await rm(dir, { recursive: true, force: true });
    try {
      await rename(tmp, dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    }
    const final = await findWorking(name, dir, deadline + 60_000);
    if (!final.bin) throw fail(`the cached install in ${dir} does not run after moving it into place`, final.problems);
    return { name, bin: final.bin, version, dir, installed: true, ms: Date.now() - started };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** A folder with one link per installed agent, named as its preset's default command. */
export async function agentsBinDir(installs: AgentInstall[]): Promise<string> {
  const dir = path.join(cacheRoot(), 'agents-bin');
  await mkdir(dir, { recursive: true });
  for (const i of installs) {
    const link = path.join(dir, AGENT_PACKAGES[i.name].command);
    await unlink(link).catch(() => undefined);
    await symlink(i.bin, link).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err; // a concurrent run made the same link
    });
  }
  return dir;
}
