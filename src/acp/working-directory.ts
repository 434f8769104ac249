/**
 * `workingDirectory` is a hint resolved under `acp.workspaceRoot`, never a raw server path
 * (../shared/spec/acp-rpc.md). The app always sends its own local folder (`/Users/me/project`), so:
 *
 * - a relative hint (`projects/app`) names that folder under the root; `..` segments and NUL are refused;
 * - an absolute client path (POSIX `/…`, Windows `C:\…` or `\\server\…`, or `~/…`) is mapped to
 *   `clients/<last segment>-<12 hex of sha256(path)>` under the root: stable for the same client path (a later
 *   `session.message` lands in the same folder), never used raw, never refused for being absolute;
 * - no hint: the session's own folder (its id, made safe).
 *
 * Symlinks are confined where the folder is created (runtimes/agent/workspace.ts). The folder relative to the
 * root is echoed to the client as `remoteWorkingDirectory` with `remoteWorkspaceRefKind: "remotePath"`.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { invalidParams, optString } from './params.js';

const MAX_WORKDIR_CHARS = 1024;
/** NAME_MAX of Linux filesystems (ext4, xfs, btrfs): one folder name, in bytes */
const MAX_SEGMENT_BYTES = 255;
export const REMOTE_WORKSPACE_REF_KIND = 'remotePath';

/** A session id or path segment as one safe folder name. */
export function safeFolderName(label: string): string {
  const s = label
    .replace(/[^A-Za-z0-9_.-]+/g, '_')
    .replace(/^\.+/, '_')
    .slice(0, 100);
  return s.length > 0 ? s : 'session';
}

const isAbsoluteClientPath = (v: string): boolean => v.startsWith('/') || v.startsWith('\\') || /^[A-Za-z]:/.test(v) || v.startsWith('~');

/** The folder for an absolute client path: stable, under `clients/`, named after its last segment. */
export function mapClientPath(clientPath: string): string {
  const segments = clientPath.split(/[\\/]+/).filter((x) => x !== '' && x !== '~' && !/^[A-Za-z]:$/.test(x));
  const last = segments[segments.length - 1] ?? 'root';
  const hash = createHash('sha256').update(clientPath).digest('hex').slice(0, 12);
  return `clients/${safeFolderName(last).slice(0, 60)}-${hash}`;
}

/** The validated hint as a folder relative to the workspace root, or undefined when none was given. */
export function workingDirectory(p: Record<string, unknown>): string | undefined {
  const v = optString(p, 'workingDirectory', MAX_WORKDIR_CHARS);
  if (v === undefined) return undefined;
  if (v.includes('\0')) throw invalidParams('workingDirectory', 'workingDirectory contains a NUL byte');
  const t = v.trim();
  if (t.split(/[\\/]+/).includes('..')) throw invalidParams('workingDirectory', 'workingDirectory must not contain ".."');
  if (isAbsoluteClientPath(t)) return mapClientPath(t.replace(/[\\/]+$/, '') || t);
  // a folder name the filesystem cannot hold is the client's mistake, not the agent's failure to start
  if (t.split(/[\\/]+/).some((seg) => Buffer.byteLength(seg) > MAX_SEGMENT_BYTES))
    throw invalidParams('workingDirectory', `workingDirectory has a folder name longer than ${MAX_SEGMENT_BYTES} bytes`);
  const rel = path.posix.normalize(t.replace(/\\/g, '/')).replace(/\/+$/, '');
  return rel === '.' || rel === '' ? undefined : rel;
}

/** What the client is told: the session's folder relative to the root. */
export function remoteWorkingDirectory(folder: string | undefined, sessionId: string): string {
  return folder ?? safeFolderName(sessionId);
}
