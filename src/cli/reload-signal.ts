/** SIGHUP = `switchyard config reload`: the outcome goes to stdout (applied) or stderr (refused, every problem). */
import { ConfigError } from '../config/load.js';
import type { Gateway } from '../gateway.js';
import { secrets } from '../util/redact.js';

export async function reloadOnSignal(gw: Gateway): Promise<void> {
  try {
    const r = await gw.reload();
    process.stdout.write(
      `switchyard: SIGHUP: config reloaded (${r.applied.length ? r.applied.join('; ') : 'nothing changed live'})${r.restartRequired.length ? `; needs a restart: ${r.restartRequired.join(', ')}` : ''}\n`,
    );
  } catch (err) {
    // a refusal's problems come scrubbed (src/gateway-reload.ts); any other error is scrubbed here, as a log line would be
    const problems = err instanceof ConfigError ? err.problems : [secrets.scrubError((err as Error)?.message ?? String(err))];
    process.stderr.write(`switchyard: SIGHUP: config not reloaded, the running config is unchanged:\n  ${problems.join('\n  ')}\n`);
  }
}
