/** `switchyard gateway [--config F]`: run a gateway until SIGTERM/SIGINT, then shut down gracefully. */
import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { startGateway, type Gateway } from '../gateway.js';
import { setLogLevel, type Level } from '../util/log.js';
import { releaseYoungGeneration } from '../util/young-generation.js';
import { takeStopSignals } from '../util/early-signals.js';
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
      // SIGTERM/SIGINT are handled before the start: one that comes while the gateway starts (a service
      // manager stopping a unit that is still starting, a start held by a store that does not answer) aborts the start,
      // which closes what it had opened (no listener is left), and the process exits 0. Before, it took the signal's
      // default action (exit by the signal, 143 for SIGTERM) with the start's parts as they were.
      const starting = new AbortController();
      let stopping: string | undefined;
      const gracefully = (g: Gateway, signal: string) => {
        process.stdout.write(`switchyard: ${signal} received, finishing in-flight requests (up to ${g.config.gateway.shutdownGraceMs} ms)\n`);
        void g.close().then(() => {
          process.stdout.write('switchyard: stopped\n');
          process.exit(0);
        });
      };
      const stop = (signal: string) => {
        if (stopping) {
          process.stderr.write(`switchyard: second ${signal}, exiting now\n`);
          process.exit(1);
        }
        stopping = signal;
        if (gw) return gracefully(gw, signal);
        process.stdout.write(`switchyard: ${signal} received while starting, closing what the start opened\n`);
        starting.abort();
      };
      // with those that came while the CLI loaded (bin/switchyard holds them)
      takeStopSignals(stop);
      try {
        gw = await startGateway(loaded, { signal: starting.signal });
      } catch (err) {
        if (starting.signal.aborted) {
          // the start closed what it had opened before it rejected
          process.stdout.write('switchyard: stopped\n');
          process.exit(0);
        }
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'EADDRINUSE') throw new CliError(`port ${loaded.config.gateway.port} on ${loaded.config.gateway.host} is already in use`);
        if (e.code === 'EACCES') throw new CliError(`not allowed to listen on ${loaded.config.gateway.host}:${loaded.config.gateway.port}`);
        if (e.code === 'ENOENT') throw new CliError(`file not found: ${e.path ?? e.message}`);
        throw err;
      }
      // the signal came as the start ended (too late to abort it): the started gateway stops gracefully, and never
      // says it listens
      if (stopping) return gracefully(gw, stopping);
      releaseYoungGeneration();
      const started = gw;
      process.stdout.write(
        `switchyard gateway "${started.name}" (${started.id}) listening on ${started.url}${loaded.path ? '' : ' (no config file: built-in defaults, mock channel)'}\n`,
      );
      if (hupWhileStarting) void reloadOnSignal(started);
    });
}
