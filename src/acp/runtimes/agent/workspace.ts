/**
 * Workspace confinement. Each agent session gets one folder under `acp.workspaceRoot`; every path the agent
 * names in fs/* and terminal/* is resolved with `resolveInside`, which follows symlinks (realpath of the deepest
 * existing ancestor) so a link pointing outside cannot be used to escape. All errors are GatewayErrors with
 * code INVALID_REQUEST and a message that names the offending path, never the server's directory layout.
 */
import { mkdirSync, realpathSync } from 'node:fs';
import { lstat, mkdir, realpath } from 'node:fs/promises';
import path from 'node:path';
import { GatewayError } from '../../../wire/errors.js';
import { safeFolderName } from '../../working-directory.js';

function reject(message: string, param?: string): never {
  throw new GatewayError('INVALID_REQUEST', message, param ? { param } : {});
}

/** true if `p` is `root` or below it (both absolute, normalised) */
export function isInside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..' + path.sep) && rel !== '..' && !path.isAbsolute(rel));
}

export { safeFolderName };

/**
 * The session's folder: `hint` (a `workingDirectory` from the client) resolved under `workspaceRoot`, or
 * `fallbackName` when there is no hint. Relative hints may not contain `..`; absolute hints are accepted only
 * if they already lie inside the root. The folder is created; its real path is returned.
 */
export async function resolveSessionFolder(workspaceRoot: string, hint: string | undefined, fallbackName: string): Promise<string> {
  const root = path.resolve(workspaceRoot);
  const h = hint?.trim() ?? '';
  if (h.includes('\0')) reject('workingDirectory contains a NUL byte', 'workingDirectory');
  // the common case, a folder right under the root (no hint, or a hint that is one plain name)
  const name = h === '' || h === '.' ? safeFolderName(fallbackName) : !path.isAbsolute(h) && !/[\\/]/.test(h) && h !== '..' ? h : undefined;
  const direct = name === undefined ? undefined : await directFolder(root, name);
  if (direct !== undefined) return direct;
  await mkdir(root, { recursive: true });
  const realRoot = await realpath(root);
  let rel: string;
  if (h === '') rel = safeFolderName(fallbackName);
  else if (path.isAbsolute(h)) {
    const abs = path.resolve(h);
    const base = isInside(realRoot, abs)
      ? realRoot
      : isInside(root, abs)
        ? root
        : reject(`workingDirectory "${h}" is outside the workspace root`, 'workingDirectory');
    rel = path.relative(base, abs);
  } else {
    if (h.split(/[\\/]+/).includes('..')) reject(`workingDirectory "${h}" must not contain ".."`, 'workingDirectory');
    rel = path.normalize(h);
  }
  // the root itself is shared by all sessions: a hint that names it gets the per-session folder instead
  if (rel === '' || rel === '.') rel = safeFolderName(fallbackName);
  const target = await resolveInside(realRoot, path.join(realRoot, rel), 'workingDirectory');
  await mkdir(target, { recursive: true });
  const real = await realpath(target);
  if (!isInside(realRoot, real)) reject(`workingDirectory "${h}" is outside the workspace root`, 'workingDirectory');
  return real;
}

/**
 * `name`'s folder right under the root, made if missing, when nothing on the way is unusual: the path every
 * session without a nested hint takes. Only the final component is created, in the root's real folder, and the
 * result must be exactly that folder (no link): a missing root, a link, a file of that name or any error is left
 * to the general walk, whose checks decide. undefined: not taken.
 *
 * Its three calls are synchronous: each is one system call on a local folder (a few µs), while the promise form
 * costs a hop through libuv's thread pool and back through the event loop each (0.7–1.1 ms for the three, measured
 * on the `/acp/rpc` row's session.start, where they sat on the way to the agent's first prompt). The session
 * store (better-sqlite3) already writes synchronously on this path; a workspace root on a slow network file
 * system would stall the process here as it would there (docs/acp.md, `acp.workspaceRoot`).
 */
async function directFolder(root: string, name: string): Promise<string | undefined> {
  try {
    const realRoot = realpathSync.native(root);
    const target = path.join(realRoot, name);
    mkdirSync(target, { recursive: true });
    return realpathSync.native(target) === target && path.dirname(target) === realRoot ? target : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Resolves `requested` (absolute, or relative to `root`) to a real path inside `root`, or throws. The deepest
 * existing ancestor is realpath'd and the missing tail appended, so both existing symlinks and symlinked parent
 * folders are followed; a dangling symlink on the way is rejected (writing through it could land outside).
 */
export async function resolveInside(root: string, requested: string, param = 'path'): Promise<string> {
  if (typeof requested !== 'string' || requested.length === 0) reject(`${param} is required`, param);
  if (requested.includes('\0')) reject(`${param} contains a NUL byte`, param);
  const realRoot = await realpath(root);
  const lexical = path.resolve(realRoot, requested);
  // errors name the path as seen from the workspace root, never the server's absolute layout
  const shown = isInside(realRoot, lexical)
    ? path.relative(realRoot, lexical) || '.'
    : isInside(path.resolve(root), lexical)
      ? path.relative(path.resolve(root), lexical) || '.'
      : requested;
  const outside = (): never => reject(`${param} "${shown}" is outside the session workspace`, param);
  if (!isInside(realRoot, lexical) && !isInside(path.resolve(root), lexical)) outside();

  const tail: string[] = [];
  let cur = lexical;
  for (;;) {
    try {
      const real = await realpath(cur);
      const full = tail.length ? path.join(real, ...tail.reverse()) : real;
      if (!isInside(realRoot, full)) outside();
      return full;
    } catch (err) {
      if (err instanceof GatewayError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
      // exists but cannot be resolved → a dangling symlink
      if (
        await lstat(cur).then(
          (s) => s.isSymbolicLink(),
          () => false,
        )
      )
        reject(`${param} "${shown}" goes through a dangling symlink`, param);
      const parent = path.dirname(cur);
      if (parent === cur) outside();
      tail.push(path.basename(cur));
      cur = parent;
    }
  }
}
