/**
 * Installs the real OpenCode CLI (npm `opencode-ai`, pinned) for the end-to-end agent test, into a cache folder
 * OUTSIDE the repo: `${SWITCHYARD_TEST_CACHE:-${XDG_CACHE_HOME:-~/.cache}/switchyard-test}/opencode-<version>`.
 * It is not a project dependency: `npm install --no-save --prefix <tmp> opencode-ai@<version>`, then the folder is
 * renamed into place (so a half-finished install is never mistaken for a good one), and reused by later runs.
 *
 * The binary comes from the platform optionalDependency (`opencode-linux-x64`, …-baseline, …-musl): the first
 * one whose `<bin> --version` prints the pinned version. Install scripts are not run (`--ignore-scripts`): the
 * package's postinstall would only link that same binary to `node_modules/.bin/opencode`, and it checks it with
 * `opencode --version` under the real HOME, which creates ~/.config/opencode, ~/.local/share/opencode, … Our
 * own `--version` checks run with HOME/XDG_* in a throw-away folder.
 *
 * Bounded: the whole setup gives up after `timeoutMs` (default 5 min) with an error that says what failed.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';

/** `npm view opencode-ai version` on 2026-11-21. */
export const OPENCODE_VERSION = '1.18.33';

export interface OpencodeInstall {
  /** absolute path of a working `opencode` binary */
  bin: string;
  version: string;
  /** the cache folder (its node_modules holds opencode-ai and the platform package) */
  dir: string;
  /** false when a cached install was reused */
  installed: boolean;
  ms: number;
}

export function opencodeCacheDir(version = OPENCODE_VERSION): string {
  const root = process.env.SWITCHYARD_TEST_CACHE || path.join(process.env.XDG_CACHE_HOME || path.join(homedir(), '.cache'), 'switchyard-test');
  return path.join(root, `opencode-${version}`);
}

/** HOME and the XDG folders inside `home`: OpenCode writes config, data, cache and state there, nowhere else. */
export function isolatedHomeEnv(home: string): Record<string, string> {
  return {
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, '.config'),
    XDG_DATA_HOME: path.join(home, '.local', 'share'),
    XDG_CACHE_HOME: path.join(home, '.cache'),
    XDG_STATE_HOME: path.join(home, '.local', 'state'),
  };
}

function candidates(dir: string): string[] {
  const nm = path.join(dir, 'node_modules');
  const os = process.platform === 'win32' ? 'windows' : process.platform;
  const exe = process.platform === 'win32' ? 'opencode.exe' : 'opencode';
  const base = `opencode-${os}-${process.arch}`;
  // The platform packages first (the plain build needs AVX2; -baseline does not; -musl for Alpine); the launcher
  // last — it exists only where install scripts ran.
  return [
    ...[base, `${base}-baseline`, `${base}-musl`, `${base}-baseline-musl`].map((p) => path.join(nm, p, 'bin', exe)),
    path.join(nm, '.bin', exe),
  ];
}

/** Runs `<bin> --version` in a throw-away HOME; resolves to the printed version or an error text. */
async function versionOf(bin: string, timeoutMs: number): Promise<{ ok: true; version: string } | { ok: false; error: string }> {
  const home = await mkdtemp(path.join(tmpdir(), 'sy-opencode-version-'));
  try {
    return await new Promise((resolve) => {
      execFile(bin, ['--version'], { env: { ...process.env, ...isolatedHomeEnv(home), OPENCODE_DISABLE_AUTOUPDATE: 'true' }, timeout: Math.max(1_000, timeoutMs), killSignal: 'SIGKILL', cwd: home }, (err, stdout, stderr) => {
        if (err) resolve({ ok: false, error: `${err.message.split('\n')[0]}${stderr ? `; stderr: ${stderr.trim().slice(-500)}` : ''}` });
        else resolve({ ok: true, version: stdout.trim() });
      });
    });
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

/** The first candidate binary in `dir` that runs and reports `version`, with the reasons the others were refused. */
async function findWorking(dir: string, version: string, deadline: number): Promise<{ bin?: string; problems: string[] }> {
  const problems: string[] = [];
  for (const bin of candidates(dir)) {
    if (!existsSync(bin)) continue;
    const left = deadline - Date.now();
    if (left <= 0) {
      problems.push('out of time');
      break;
    }
    const r = await versionOf(bin, Math.min(60_000, left));
    if (r.ok && r.version === version) return { bin, problems };
    problems.push(`${bin}: ${r.ok ? `--version printed "${r.version.slice(0, 200)}", expected "${version}"` : r.error}`);
  }
  return { problems };
}

/** npm's own per-script config that must not leak into the nested install (e.g. `npm test` exports prefix=/usr). */
const NPM_ENV_DROP = /^npm_config_(prefix|local_prefix|global|global_prefix|location|omit|include|dry_run|save|save_.*|package_lock|package_lock_only|workspace|workspaces|include_workspace_root|ignore_scripts)$/i;

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
      else reject(new Error(`"${npm} ${args.join(' ')}" ${signal === 'SIGKILL' ? `was stopped after ${timeoutMs} ms` : `failed (${signal ?? `exit code ${code}`})`}\n${out.trim().slice(-3_000)}`));
    });
  });
}

/**
 * Returns a working `opencode` binary of `version`, installing it into the cache folder first if needed.
 * Throws (the test then FAILS, it is never skipped) when it cannot be installed or does not run.
 */
export async function ensureOpencode(opts: { version?: string; timeoutMs?: number } = {}): Promise<OpencodeInstall> {
  const version = opts.version ?? OPENCODE_VERSION;
  const started = Date.now();
  const deadline = started + (opts.timeoutMs ?? 5 * 60_000);
  const dir = opencodeCacheDir(version);
  const fail = (what: string, details: string[] = []) =>
    new Error(`opencode-ai@${version} setup failed: ${what}${details.length ? `\n  ${details.join('\n  ')}` : ''}`);

  if (existsSync(dir)) {
    const cached = await findWorking(dir, version, deadline);
    if (cached.bin) return { bin: cached.bin, version, dir, installed: false, ms: Date.now() - started };
  }

  await mkdir(path.dirname(dir), { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  await mkdir(tmp, { recursive: true });
  try {
    // --ignore-scripts: opencode-ai's postinstall runs `opencode --version` with the real HOME (which creates
    // ~/.config/opencode, ~/.local/share/opencode, …); the binary is taken from the platform package instead.
    const args = ['install', '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--ignore-scripts', '--include=optional', '--prefix', tmp, `opencode-ai@${version}`];
    try {
      await runNpm(args, tmp, Math.max(1_000, deadline - Date.now()));
    } catch (err) {
      throw fail(`npm install into ${tmp}`, [(err as Error).message]);
    }
    const fresh = await findWorking(tmp, version, deadline);
    if (!fresh.bin) {
      throw fail(`installed, but no opencode binary runs (platform ${process.platform}-${process.arch})`, fresh.problems.length ? fresh.problems : ['no candidate binary found: ' + candidates(tmp).join(', ')]);
    }
    // Move into place; a stale or broken folder is replaced, a concurrent winner is kept.
    await rm(dir, { recursive: true, force: true });
    try {
      await rename(tmp, dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    }
    const final = await findWorking(dir, version, deadline + 60_000);
    if (!final.bin) throw fail(`the cached install in ${dir} does not run after moving it into place`, final.problems);
    return { bin: final.bin, version, dir, installed: true, ms: Date.now() - started };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
