/**
 * Structured logs: one JSON object per line on stderr, written by pino. Level from `--log-level`, else
 * SWITCHYARD_LOG, else `gateway.log.level` (error|warn|info|debug, default info), one threshold for the
 * whole process (a reload changes it for every logger at once).
 *
 * Line shape (unchanged from before pino): `{"level":"info","t":"<ISO time>",…bindings,…fields,"msg":"…"}`.
 *
 * Secrets: ONE mechanism, the secret scrubber (util/redact.ts), applied to every finished line in the
 * destination, so nothing that reaches the sink escaped it — registered secrets (configured keys and tokens,
 * URL credentials, per-session agent tokens minted at run time) and credential shapes (`Authorization: …`,
 * `Bearer …`, `sk-…`). Field names that always hold a secret (`token`, `apiKey`, …) are blanked before
 * serialising, so a caller's mistake never even reaches the scrubber as a value.
 *
 * Cost: a level check is a number compare; below the threshold nothing is built. pino itself is loaded (it is
 * CommonJS: synchronously) when the first line passes the threshold, and each logger's pino instance is made
 * then: a gateway at `warn` with nothing to say never loads it (idle RSS, docs/benchmarks.md).
 */
import { createRequire } from 'node:module';
import type { DestinationStream, Logger as Pino } from 'pino';
import { secrets } from './redact.js';

export type Level = 'error' | 'warn' | 'info' | 'debug';
const ORDER: Record<Level, number> = { error: 0, warn: 1, info: 2, debug: 3 };
const SECRET_KEYS = new Set(['token', 'apiKey', 'api_key', 'authorization', 'password', 'allowedTokens', 'tokens']);

let threshold = ORDER[(process.env.SWITCHYARD_LOG as Level) ?? 'info'] ?? ORDER.info;
/** the operator chose the level (`--log-level`, SWITCHYARD_LOG): `gateway.log.level` does not change it then */
let chosen = Boolean(process.env.SWITCHYARD_LOG);

/** `--log-level`: the operator's choice, over SWITCHYARD_LOG and `gateway.log.level` (at start and at reloads). */
export function setLogLevel(level: Level): void {
  threshold = ORDER[level];
  chosen = true;
}

/**
 * `gateway.log.level` (absent: `info`), at start and at each reload: the level, unless `--log-level` or
 * SWITCHYARD_LOG chose one, which win. Returns whether it is the level now.
 */
export function setConfiguredLogLevel(level: Level | undefined): boolean {
  if (chosen) return false;
  threshold = ORDER[level ?? 'info'];
  return true;
}

export function enabled(level: Level): boolean {
  return ORDER[level] <= threshold;
}

function redactKeys(fields: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const k of Object.keys(fields)) {
    if (SECRET_KEYS.has(k)) {
      out ??= { ...fields };
      out[k] = '[redacted]';
    }
  }
  return out ?? fields;
}

export interface Logger {
  error(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
  child(bindings: Record<string, unknown>): Logger;
}

/**
 * The `problems` field of the line being written: config problems (`<key path>: <message>`, a refused reload's),
 * scrubbed as problems (SecretScrubber.scrubProblem), so that a key named like a credential keeps the schema's
 * message. pino writes a line to the destination within the call that logs it, so this is that line's.
 */
let lineProblems: readonly string[] | undefined;

/** The one place a line leaves: scrubbed, then handed to the sink. */
function scrubbingDestination(sink: (line: string) => void): DestinationStream {
  return { write: (line: string) => sink(secrets.scrubError(line, lineProblems)) };
}

/** pino, loaded (synchronously: it is CommonJS) at the first line a logger writes */
let pinoModule: typeof import('pino') | undefined;
const loadPino = () => (pinoModule ??= createRequire(import.meta.url)('pino') as typeof import('pino'));

/** A logger whose pino instance (`make`) is built at its first line; children are built from it then. */
function lazy(make: () => Pino): Logger {
  let p: Pino | undefined;
  const get = () => (p ??= make());
  const write = (level: Level, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[level] > threshold) return;
    const l = get();
    if (!fields) return l[level](msg);
    const problems = fields.problems;
    lineProblems = Array.isArray(problems) ? problems.filter((p): p is string => typeof p === 'string') : undefined;
    try {
      l[level](redactKeys(fields), msg);
    } finally {
      lineProblems = undefined;
    }
  };
  return {
    error: (m, f) => write('error', m, f),
    warn: (m, f) => write('warn', m, f),
    info: (m, f) => write('info', m, f),
    debug: (m, f) => write('debug', m, f),
    child: (b) => {
      const bindings = redactKeys(b);
      return lazy(() => get().child(bindings));
    },
  };
}

export function createLogger(bindings: Record<string, unknown> = {}, sink: (line: string) => void = (l) => void process.stderr.write(l)): Logger {
  return lazy(() => {
    const root = loadPino().pino(
      {
        level: 'debug', // the threshold above decides; pino's own level stays open so one setLogLevel covers every child
        base: null,
        messageKey: 'msg',
        timestamp: () => `,"t":"${new Date().toISOString()}"`,
        formatters: { level: (label) => ({ level: label }) },
      },
      scrubbingDestination(sink),
    );
    return Object.keys(bindings).length ? root.child(bindings) : root;
  });
}

export const rootLogger = createLogger();
