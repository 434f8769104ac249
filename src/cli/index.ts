/**
 * The CLI: one command group per file, all calling the same functions the server and tests use.
 *
 * `switchyard gateway` is the long-lived process, so it imports only its own command module; every other
 * invocation (and `--help`, `help <cmd>`, an unknown command) registers them all, for help and suggestions.
 * Command modules are imported here, not statically, so the gateway's idle RSS does not carry the client
 * commands (docs/benchmarks.md, "Idle memory").
 */
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config/load.js';
import { CliError } from './remote.js';
import { VERSION } from '../version.js';
import { printable } from './table.js';
import { secrets } from '../util/redact.js';

type Register = (program: Command) => void;

async function allCommands(): Promise<Register[]> {
  const [gateway, config, bridge, sessions, status, keys, usage, demo, task] = await Promise.all([
    import('./gateway.js'),
    import('./config.js'),
    import('./bridge.js'),
    import('./sessions.js'),
    import('./status.js'),
    import('./keys.js'),
    import('./usage.js'),
    import('./demo.js'),
    import('./task.js'),
  ]);
  // order matters: status.ts adds `config reload` to the group config.ts created
  return [
    gateway.registerGateway,
    config.registerConfig,
    bridge.registerBridge,
    sessions.registerSessions,
    status.registerStatus,
    keys.registerKeys,
    usage.registerUsage,
    demo.registerDemo,
    task.registerTask,
  ];
}

export async function main(argv: string[]): Promise<void> {
  const program = new Command('switchyard')
    .description('Self-hosted AI gateway: OpenAI-compatible /v1 over channels, bridged gateways, /acp/rpc agent tasks')
    .version(VERSION)
    .exitOverride()
    .showHelpAfterError();
  // `switchyard … | head`: a reader that closed the pipe wants no more, which is no failure to print a stack trace
  // for (Node ignores SIGPIPE, so the write fails with EPIPE instead). Not for `gateway`: a long-lived process
  // does not stop because whatever read its stdout did.
  if (argv[2] !== 'gateway') {
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(0);
      throw err;
    });
  }
  const commands = argv[2] === 'gateway' ? [(await import('./gateway.js')).registerGateway] : await allCommands();
  for (const register of commands) register(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode);
    // every error leaves through the scrubber: the secrets of a config a command loaded are registered with it
    // (config check, a start), and the problems of a file that is not loaded come scrubbed of its own (configRefusal)
    const say = (message: string) => process.stderr.write(`switchyard: ${printable(secrets.scrub(message))}\n`);
    // a config's problems (config check, a start) by the strict rules of a problem, as a reload's (scrubConfigProblems:
    // configRefusal applied them where the problems were made; the schema's and the file's own are scrubbed here)
    if (err instanceof ConfigError) {
      say(
        new ConfigError(
          err.problems.map((p) => secrets.scrubProblem(p)),
          err.source,
        ).message,
      );
      process.exit(2);
    }
    // the CLI's own lines (an API's answer in them is scrubbed as error text where it is read: remote.ts)
    if (err instanceof CliError) {
      say(err.message);
      process.exit(1);
    }
    // anything else (a provider's or a library's error in a start) is error text: credential shapes are cut too
    say(secrets.scrubError((err as Error)?.message ?? String(err)));
    process.exit(1);
  }
}
