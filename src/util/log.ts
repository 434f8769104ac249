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
 * Cost: a level check is a number compare; below the threshold nothing is built.
 */
import { pino, type DestinationStream, type Logger as Pino } from 'pino';
import { secrets } from './redact.js';

export type Level = 'error' | 'warn' | 'info' | 'debug';
const ORDER: Record<Level, number> = { error: 0, warn: 1, info: 2, debug: 3 };
const SECRET_KEYS = new Set(['token', 'apiKey', 'api_key', 'authorization', 'password', 'allowedTokens', 'tokens']);

let threshold = ORDER[(process.env.SWITCHYARD_LOG as Level) ?? 'info'] ?? ORDER.info;

export function setLogLevel(level: Level): void {
  threshold = ORDER[level];
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

/** The one place a line leaves: scrubbed, then handed to the sink. */
function scrubbingDestination(sink: (line: string) => void): DestinationStream {
  return { write: (line: string) => sink(secrets.scrubError(line)) };
}

function wrap(p: Pino): Logger {
  const write = (level: Level, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[level] > threshold) return;
    if (fields) p[level](redactKeys(fields), msg);
    else p[level](msg);
  };
  return {
    error: (m, f) => write('error', m, f),
    warn: (m, f) => write('warn', m, f),
    info: (m, f) => write('info', m, f),
    debug: (m, f) => write('debug', m, f),
    child: (b) => wrap(p.child(redactKeys(b))),
  };
}

export function createLogger(bindings: Record<string, unknown> = {}, sink: (line: string) => void = (l) => void process.stderr.write(l)): Logger {
  const root = pino(
    {
      level: 'debug', // the threshold above decides; pino's own level stays open so one setLogLevel covers every child
      base: null,
      messageKey: 'msg',
      timestamp: () => `,"t":"${new Date().toISOString()}"`,
      formatters: { level: (label) => ({ level: label }) },
    },
    scrubbingDestination(sink),
  );
  return wrap(Object.keys(bindings).length ? root.child(bindings) : root);
}

export const rootLogger = createLogger();
