/** The CLI: one command group per file, all calling the same functions the server and tests use. */
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config/load.js';
import { CliError } from './remote.js';
import { registerGateway } from './gateway.js';
import { registerConfig } from './config.js';
import { registerBridge } from './bridge.js';
import { registerDemo } from './demo.js';
import { registerTask } from './task.js';
import { registerSessions } from './sessions.js';
import { registerStatus } from './status.js';
import { registerKeys } from './keys.js';
import { registerUsage } from './usage.js';
import { VERSION } from '../version.js';

export async function main(argv: string[]): Promise<void> {
  const program = new Command('switchyard')
    .description('Self-hosted AI gateway: OpenAI-compatible /v1 over channels, bridged gateways, /acp/rpc agent tasks')
    .version(VERSION)
    .exitOverride()
    .showHelpAfterError();
  registerGateway(program);
  registerConfig(program);
  registerBridge(program);
  registerSessions(program);
  registerStatus(program);
  registerKeys(program);
  registerUsage(program);
  registerDemo(program);
  registerTask(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode);
    if (err instanceof CliError || err instanceof ConfigError) {
      process.stderr.write(`switchyard: ${err.message}\n`);
      process.exit(err instanceof ConfigError ? 2 : 1);
    }
    process.stderr.write(`switchyard: ${(err as Error)?.message ?? String(err)}\n`);
    process.exit(1);
  }
}
