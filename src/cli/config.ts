/** `switchyard config check [--config F]`: validate without starting. */
import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { registerConfigSecrets } from '../config/secrets.js';
import { secrets } from '../util/redact.js';
import { closeProviders, prepareConfig } from '../gateway-prepare.js';

export function registerConfig(program: Command): void {
  const cfg = program.command('config').description('configuration tools');
  cfg
    .command('check')
    .description('validate a config file and print a summary (exit 2 with every problem listed when invalid)')
    .option('-c, --config <file>', 'config file (JSON5)')
    .action(async (opts: { config?: string }) => {
      const loaded = loadConfig(opts.config);
      // as a start does: an error that quotes one of the file's secrets is printed scrubbed (cli/index.ts)
      registerConfigSecrets(loaded.config);
      // what a start checks beyond the schema (files, the channels' providers); the providers made are closed
      await closeProviders((await prepareConfig(loaded)).providers.values());
      const { config, path } = loaded;
      const c = config.gateway;
      // the summary quotes names, scrubbed like the errors (a key given as a channel's name is not printed)
      process.stdout.write(
        secrets.scrub(
          `ok: ${path ?? 'no config file (built-in defaults)'}\n` +
            `  gateway   ${c.name} on ${c.tls ? 'https' : 'http'}://${c.host}:${c.port}${c.auth.tokens.length ? ' (client auth on)' : ' (client auth off: loopback only)'}\n` +
            `  channels  ${config.channels.map((ch) => `${ch.name}(${ch.provider})`).join(', ') || '(none)'}\n` +
            `  bridges   out: ${c.bridges.map((b) => b.name).join(', ') || '(none)'}; in: ${c.bridge.enabled ? `enabled, max ${c.bridge.maxPeers} peers, sharing ${c.bridge.shareChannels.join(', ') || 'nothing'}` : 'disabled'}\n` +
            `  store     ${config.store.kind}\n`,
        ),
      );
    });
}
