/**
 * Structured logs: one JSON object per line on stderr. Level from SWITCHYARD_LOG (error|warn|info|debug,
 * default info). Callers never pass secrets; `redactKeys` is a second line of defence for known field names,
 * and every line goes through the secret scrubber (util/redact.ts: registered secrets and credential shapes).
 */
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

export function createLogger(bindings: Record<string, unknown> = {}, sink: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const write = (level: Level, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[level] > threshold) return;
    const rec = { t: new Date().toISOString(), level, msg, ...bindings, ...(fields ? redactKeys(fields) : {}) };
    sink(secrets.scrubError(JSON.stringify(rec)) + '\n');
  };
  return {
    error: (m, f) => write('error', m, f),
    warn: (m, f) => write('warn', m, f),
    info: (m, f) => write('info', m, f),
    debug: (m, f) => write('debug', m, f),
    child: (b) => createLogger({ ...bindings, ...b }, sink),
  };
}

export const rootLogger = createLogger();
