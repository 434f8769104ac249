/** `switchyard gateway [--config F]`: run a gateway until SIGTERM/SIGINT, then shut down gracefully. */
import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { startGateway, type Gateway } from '../gateway.js';
import { setLogLevel, type Level } from '../util/log.js';
import { releaseYoungGeneration } from '../util/young-generation.js';
import { CliError } from './remote.js';
import { reloadOnSignal } from './reload-signal.js';

export function registerGateway(program: Command): void {
  program
    .command('gateway')
    .description('run a gateway (no config file: 127.0.0.1:18789 with one mock channel)')
    .option('-c, --config <file>', 'config file (JSON5); else $SWITCHYARD_CONFIG, else ./switchyard.json5')
    .option('--log-level <level>', 'error | warn | info | debug')
    .action(async (opts: { config?: string; logLevel?: string }) => {
      if (opts.logLevel) {
        if (!['error', 'warn', 'info', 'debug'].includes(opts.logLevel)) throw new CliError(`--log-level: expected error, warn, info or debug`);
        setLogLevel(opts.logLevel as Level);
      }
      // --log-level, else SWITCHYARD_LOG, else gateway.log.level: startGateway applies the file's (as a reload does)
      const loaded = loadConfig(opts.config);
      // a SIGHUP while the gateway starts (a `systemctl reload` just after the start) would take the signal's default
      // action and end the process: it is held, and the reload runs once the gateway listens (the file may have
      // changed since it was read)
      let gw: Gateway | undefined;
      let hupWhileStarting = false;
      process.on('SIGHUP', () => {
        if (gw) void reloadOnSignal(gw);
        else hupWhileStarting = true;
      });
      try {
        gw = await startGateway(loaded);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'EADDRINUSE') throw new CliError(`port ${loaded.config.gateway.port} on ${loaded.config.gateway.host} is already in use`);
        if (e.code === 'EACCES') throw new CliError(`not allowed to listen on ${loaded.config.gateway.host}:${loaded.config.gateway.port}`);
        if (e.code === 'ENOENT') throw new CliError(`file not found: ${e.path ?? e.message}`);
        throw err;
      }
      releaseYoungGeneration();
      const started = gw;
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) {
          process.stderr.write(`switchyard: second ${signal}, exiting now\n`);
          process.exit(1);
        }
        stopping = true;
        process.stdout.write(`switchyard: ${signal} received, finishing in-flight requests (up to ${started.config.gateway.shutdownGraceMs} ms)\n`);
        void started.close().then(() => {
          process.stdout.write('switchyard: stopped\n');
          process.exit(0);
        });
      };
      // the stop's handlers before the line that says the gateway listens: whoever acts on that line (a supervisor, a
      // test) gets the graceful stop (before them, a signal takes its default action: a start is stopped at once)
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
      process.stdout.write(
        `switchyard gateway "${started.name}" (${started.id}) listening on ${started.url}${loaded.path ? '' : ' (no config file: built-in defaults, mock channel)'}\n`,
      );
      if (hupWhileStarting) void reloadOnSignal(started);
    });
}
