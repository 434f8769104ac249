/**
 * Whether the configured store can be opened where it says, checked without opening, creating or changing
 * anything (the config check: a start, a reload and `switchyard config check`, src/gateway-prepare.ts), and, for
 * SQLite, by each store that opens a database file before it creates anything (readySqlitePath).
 *
 * SQLite (`store.path`): the gateway creates the missing folders above the file and then the file itself, and
 * SQLite writes its `-wal` and `-shm` files beside it. So the path must not be a directory or anything but a
 * regular file when it exists, and the nearest folder that exists (its own, or the one the start creates the
 * rest under) must be a directory the gateway can write in, on a real file system: never a proc or sysfs one
 * (/proc, /sys), where a file cannot be kept and where Node's recursive mkdir never returns (it loops on
 * ENOENT under /proc).
 *
 * Redis (`store.url`): a URL the client can parse, with a host and at most a database number as its path. It
 * is not dialled: whether the server answers shows when the gateway starts.
 */
import { accessSync, constants, mkdirSync, statSync, statfsSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';

/** Linux file system magic numbers (statfs(2)) of the pseudo file systems no database can live on. */
const PSEUDO_FS: ReadonlyMap<number, string> = new Map([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
]);

const statOrCode = (p: string): Stats | string => {
  try {
    return statSync(p);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
};

const accessCode = (p: string, mode: number): string | undefined => {
  try {
    accessSync(p, mode);
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
};

/** The file system's magic number (undefined where statfs cannot tell: no pseudo file system is assumed). */
const fsType = (p: string): number | undefined => {
  try {
    return Number(statfsSync(p).type);
  } catch {
    return undefined;
  }
};

/** Why the SQLite store cannot be at `path` (absolute), or undefined when a start can open it there. */
export function sqlitePathProblem(path: string): string | undefined {
  let dir = dirname(path);
  const self = statOrCode(path);
  if (typeof self !== 'string') {
    if (self.isDirectory()) return `${path} is a directory; name a database file in it (e.g. ${join(path, 'switchyard.db')})`;
    if (!self.isFile()) return `${path} is not a regular file (a device, pipe or socket cannot hold a database)`;
  } else if (self !== 'ENOENT' && self !== 'ENOTDIR') {
    return `cannot use ${path}: ${self}`;
  }
  // the nearest folder above that exists: the start creates the rest of the path under it
  for (;;) {
    const s = statOrCode(dir);
    if (typeof s !== 'string') {
      if (!s.isDirectory()) return `${dir} is not a directory, so ${path} cannot be created`;
      break;
    }
    if ((s !== 'ENOENT' && s !== 'ENOTDIR') || dirname(dir) === dir) return `cannot use ${dir}: ${s}`;
    dir = dirname(dir);
  }
  const fs = PSEUDO_FS.get(fsType(dir) ?? -1);
  if (fs) return `${path} is on a ${fs} file system (${fs === 'proc' ? '/proc' : '/sys'}), where no database can be kept`;
  const dirDenied = accessCode(dir, constants.W_OK | constants.X_OK);
  if (dirDenied) {
    const what =
      typeof self !== 'string'
        ? "SQLite creates the database's journal files"
        : dir === dirname(path)
          ? 'the database must be created'
          : `${dirname(path)} must be created`;
    return `cannot write in ${dir} (${dirDenied}), where ${what}`;
  }
  if (typeof self !== 'string') {
    const denied = accessCode(path, constants.R_OK | constants.W_OK);
    if (denied) return `cannot read and write ${path} (${denied})`;
  }
  return undefined;
}

/**
 * Readies `path` (absolute) for the SQLite database a store opens there: refuses it with sqlitePathProblem's
 * reason when no database can be kept there, else creates the missing folders above it. Every store that opens a
 * SQLite file (the session store, the key store) runs it itself, so whoever makes one gets the check a start
 * runs on `store.path` (src/gateway-prepare.ts), not a recursive mkdir that never returns under /proc or SQLite's
 * bare "unable to open database file".
 */
export function readySqlitePath(path: string): void {
  const problem = sqlitePathProblem(path);
  if (problem) throw new Error(`cannot open a SQLite database at ${path}: ${problem}`);
  mkdirSync(dirname(path), { recursive: true });
}

/** Why the Redis store's `url` cannot be used (the message never quotes it: it may hold a password). */
export function redisUrlProblem(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'not a valid URL (redis://[user:password@]host[:port][/db])';
  }
  if (!u.hostname) return 'names no host (redis://[user:password@]host[:port][/db])';
  if (!/^(\/\d*)?$/.test(u.pathname)) return 'the path must be a database number (redis://host:port/0)';
  return undefined;
}
