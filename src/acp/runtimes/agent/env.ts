/**
 * The minimal environment every agent starts from (issue 10: agents must never read the gateway's secrets):
 * from the gateway's own environment only PATH, HOME, USER/LOGNAME, SHELL, TMPDIR, TZ, TERM, LANG/LANGUAGE
 * and LC_*. What else an agent gets (preset switches, the `llm` wiring, the entry's `env`) is laid over it by
 * launch.ts; terminals the agent opens start from the agent's environment.
 */
const PASS_THROUGH = ['PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'TMPDIR', 'TZ', 'TERM', 'LANG', 'LANGUAGE'];

/** The part of `source` (default: the gateway's environment) every agent may see. */
export function minimalEnv(source: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of PASS_THROUGH) if (typeof source[k] === 'string') env[k] = source[k];
  for (const [k, v] of Object.entries(source)) if (k.startsWith('LC_') && typeof v === 'string') env[k] = v;
  return env;
}
