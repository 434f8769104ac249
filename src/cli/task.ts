/**
 * `switchyard task providers | run | message | cancel | close`: agent tasks through a gateway's `/acp/rpc`,
 * with the app's side of the seed's routing rules (src/cli/acp-client/base-url.ts).
 *
 * Local vs managed: a base URL taken from the config file (or the built-in default) is this user's own
 * gateway, so local use is implied and a loopback/LAN address is fine. A base given explicitly (`--url` or
 * $SWITCHYARD_URL) is treated as a managed bridge: a loopback/LAN host there needs `--local`. `/acp-server/`
 * and `/gateway/` bases are refused either way.
 *
 * Output of a turn: text deltas as they arrive; tool calls, plans and status changes as one-line `[event] …`
 * lines; then one final line `[done] status=… stopReason=… session=…`. Exit 0 on completed, 1 otherwise (the
 * reason on stderr, one line). Ctrl-C sends `session.cancel` once and waits for the cancelled result; a second
 * Ctrl-C exits at once (130). A stream the gateway cuts because this client read too slowly (CLIENT_TOO_SLOW) is
 * resumed from the session's update log where it stopped, a bounded number of times, saying so on stderr
 * (acp-client/resume.ts).
 */
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { AcpBaseUrlError } from './acp-client/base-url.js';
import {
  AcpClient,
  AcpRpcError,
  AcpTransportError,
  KEEPALIVE_METHOD,
  type AcpNotification,
  type ProviderEntry,
  type SessionParams,
  type SessionUpdate,
  type TaskResult,
} from './acp-client/client.js';
import { cutAt, resumeTurn } from './acp-client/resume.js';
import { CliError, resolveRemote, warnCleartext, type RemoteFlags } from './remote.js';
import { table } from './table.js';

export interface TaskFlags extends RemoteFlags {
  local?: boolean;
  verbose?: boolean;
}

/** How long a Ctrl-C'd turn may take to come back as cancelled before the CLI gives up waiting. */
export const CANCEL_WAIT_MS = 15_000;

const remoteOptions = (c: Command) =>
  c
    .option('-c, --config <file>', 'find the gateway (host, port, ACP token) from this config')
    .option('--url <url>', 'gateway base URL, normalised to …/acp/rpc (else $SWITCHYARD_URL, else the config)')
    .option('--token <token>', 'ACP token (else $SWITCHYARD_ACP_TOKEN, else acp.tokens[0] of the config)')
    .option('--local', 'local use: allow a loopback/LAN --url or $SWITCHYARD_URL (implied for a base from the config)')
    .option('--json', 'machine-readable output');

const out = (s: string): void => void process.stdout.write(s);
const oneLine = (s: string): string => s.replace(/\s*\n\s*/g, ' ').trim();

/** The client for these flags; the routing rules are enforced here, before anything is sent. */
export function clientFor(o: TaskFlags): AcpClient {
  const explicit = o.url || process.env.SWITCHYARD_URL || undefined;
  // resolveRemote takes $SWITCHYARD_URL itself, so that a refusal of it names the variable, not --url
  const { url, token } = resolveRemote({ ...o, url: o.url || undefined }, 'acp');
  let client: AcpClient;
  try {
    client = new AcpClient({ baseUrl: url, token, allowLocal: o.local === true || explicit === undefined, idPrefix: 'cli' });
  } catch (err) {
    if (err instanceof AcpBaseUrlError) throw new CliError(err.message);
    throw err;
  }
  if (token !== undefined) warnCleartext(url, 'acp');
  return client;
}

/** Client errors as one CLI line (no stack). */
export function cliError(err: unknown, client: AcpClient): unknown {
  if (err instanceof AcpRpcError) {
    if (err.httpStatus === 401)
      return new CliError(
        `ACP token rejected by ${client.endpoint.origin}: ${oneLine(err.message)} (use --token, $SWITCHYARD_ACP_TOKEN or acp.tokens in the config)`,
      );
    return new CliError(`${oneLine(err.message)}${err.dataCode ? ` (${err.dataCode})` : ''}`);
  }
  if (err instanceof AcpTransportError) {
    if (err.reason === 'unreachable')
      return new CliError(`cannot reach the gateway at ${client.endpoint.origin} (${err.causeCode ?? err.message}); is it running?`);
    if (err.reason === 'http' && err.httpStatus === 404)
      return new CliError(`${client.endpoint.href} answered HTTP 404; is /acp/rpc enabled on this gateway (acp.enabled)?`);
    return new CliError(oneLine(err.message));
  }
  return err;
}

async function withClient<T>(o: TaskFlags, fn: (c: AcpClient) => Promise<T>): Promise<T> {
  const c = clientFor(o);
  try {
    return await fn(c);
  } catch (err) {
    throw cliError(err, c);
  }
}

export function renderProviders(agents: ProviderEntry[], gateways: ProviderEntry[]): string {
  const rows = [...agents.map((p) => ({ p, kind: 'agent' })), ...gateways.map((p) => ({ p, kind: 'gateway' }))];
  if (rows.length === 0) return 'no providers (acp.agents and acp.gateways are empty)\n';
  return table(
    ['ID', 'LABEL', 'TARGET', 'ENABLED', 'UNAVAILABLE REASON'],
    rows.map(({ p, kind }) => [
      p.providerId,
      p.label,
      (p.targets ?? []).join(',') || kind,
      p.enabled ? 'yes' : 'no',
      p.enabled ? '' : oneLine(p.unavailableReason ?? 'unavailable'),
    ]),
  );
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

function describeTool(s: Record<string, unknown>, titles: Map<string, string>): string {
  const id = str(s.toolCallId);
  const given = str(s.title) ?? str(s.kind);
  if (id && given) titles.set(id, given);
  const name = str(s.title) ?? (id ? titles.get(id) : undefined) ?? given ?? id ?? 'tool';
  const status = str(s.status);
  const update = s.sessionUpdate === 'tool_call_update';
  return `${oneLine(name)}${status ? (update ? ` → ${status}` : ` (${status})`) : ''}`;
}

function describePlan(s: Record<string, unknown>): string {
  const entries = Array.isArray(s.entries) ? (s.entries as Array<Record<string, unknown>>) : [];
  if (entries.length === 0) return '(empty)';
  return entries.map((e) => `${oneLine(str(e.content) ?? '?')}${str(e.status) ? ` [${String(e.status)}]` : ''}`).join(' · ');
}

/**
 * One turn's notifications → terminal text. Deltas are written as they come; every other event is a whole
 * line of its own (a newline is inserted first when a delta left the cursor mid-line).
 */
export class TurnPrinter {
  private midLine = false;
  /** tool call names (title, else kind) by id: updates usually carry only the id */
  private readonly toolTitles = new Map<string, string>();
  /** text deltas written so far (to know whether the final output still has to be shown) */
  shownText = 0;

  constructor(
    private readonly write: (s: string) => void,
    private readonly verbose = false,
  ) {}

  /** Ends a line left open by a delta (before an error message, say). */
  endLine(): void {
    if (this.midLine) this.write('\n');
    this.midLine = false;
  }

  line(s: string): void {
    this.write(`${this.midLine ? '\n' : ''}${s}\n`);
    this.midLine = false;
  }

  text(s: string): void {
    if (!s) return;
    this.write(s);
    this.shownText += s.length;
    this.midLine = !s.endsWith('\n');
  }

  notification(n: AcpNotification): void {
    if (n.method === KEEPALIVE_METHOD) {
      if (this.verbose) this.line('[keepalive]');
      return;
    }
    if (n.method !== 'session.update') {
      if (this.verbose) this.line(`[${n.method}]`);
      return;
    }
    const u = n.params as SessionUpdate;
    const s = (u.structuredEvent && typeof u.structuredEvent === 'object' ? u.structuredEvent : {}) as Record<string, unknown>;
    if (u.type === 'delta' || u.event === 'delta') return this.text(str(u.delta) ?? str(u.text) ?? '');
    switch (u.event) {
      case 'tool_call':
        return this.line(`[tool] ${describeTool({ title: u.text, ...s }, this.toolTitles)}`);
      case 'plan':
        return this.line(`[plan] ${describePlan(s)}`);
      case 'queued':
        return this.line('[queued] waiting for the previous turn of this session');
      case 'started':
        return this.line(`[started] turn ${u.turnId}`);
      case 'completed':
      case 'failed':
      case 'cancelled':
        return; // the final line says it
      default: {
        if (!this.verbose) return; // `running` and agent chatter (thoughts, command lists)
        const kind = str(s.sessionUpdate) ?? u.event;
        const content = s.content as { text?: unknown } | undefined;
        const text = str(u.text) ?? str(content?.text);
        return this.line(`[${kind}]${text ? ` ${oneLine(text).slice(0, 200)}` : ''}`);
      }
    }
  }

  /** The final line; the turn's output too when no delta showed it. */
  result(r: TaskResult, sessionId: string): void {
    if (this.shownText === 0 && str(r.output)) this.text(r.output!);
    const via =
      r.resolvedExecutionTarget === 'gateway'
        ? str(r.resolvedGatewayProviderId)
          ? `gateway:${r.resolvedGatewayProviderId}`
          : undefined
        : str(r.resolvedProviderId)
          ? `agent:${r.resolvedProviderId}`
          : undefined;
    const fields = [`status=${r.status}`, `stopReason=${str(r.stopReason) ?? '-'}`, `session=${r.sessionId ?? sessionId}`];
    if (via) fields.push(`via=${via}`);
    if (str(r.resolvedModel)) fields.push(`model=${r.resolvedModel}`);
    this.line(`[done] ${fields.join(' ')}`);
  }
}

/**
 * What text mode says (stderr, one line) when the turn's result cut its output (`outputTruncated`, `outputChars`
 * the whole length): how much of it the terminal showed (`shown`: its characters written, streamed or from the
 * result), or, when the stream showed it whole, that only the result holds less. Undefined when nothing was cut.
 */
export function truncationNotice(r: TaskResult, shown: number): string | undefined {
  if (r.outputTruncated !== true) return undefined;
  const whole = typeof r.outputChars === 'number' ? r.outputChars : undefined;
  const kept = typeof r.output === 'string' ? r.output.length : 0;
  if (whole === undefined) return `output truncated: ${shown} characters shown`;
  if (shown < whole) return `output truncated: ${shown} of ${whole} characters shown`;
  return `output truncated in the result: ${kept} of ${whole} characters (the streamed text above is whole)`;
}

/** Why a turn did not complete, for stderr (one line). */
export function failureReason(r: TaskResult): string {
  if (r.status === 'unavailable')
    return `task unavailable: ${[str(r.unavailableCode), str(r.unavailableMessage) ?? str(r.summary)].filter(Boolean).join(': ') || 'unavailable'}`;
  if (r.status === 'cancelled') return `task cancelled${str(r.error) ? `: ${oneLine(r.error!)}` : ''}`;
  return `task ${r.status}: ${oneLine(str(r.error) ?? str(r.summary) ?? 'no reason given')}`;
}

/**
 * Runs one streamed turn (`session.start` or `session.message`) and prints it. First Ctrl-C: `session.cancel`
 * once, then wait (bounded) for the cancelled result; second Ctrl-C: exit 130.
 */
async function runTurn(c: AcpClient, o: TaskFlags, method: 'start' | 'message', params: SessionParams): Promise<void> {
  const printer = new TurnPrinter(out, o.verbose === true);
  const abort = new AbortController();
  let interrupts = 0;
  let giveUp: NodeJS.Timeout | undefined;
  const onSigint = () => {
    interrupts++;
    if (interrupts > 1) {
      process.stderr.write('\nswitchyard: interrupted\n');
      process.exit(130);
    }
    const notice = `[cancel] sending session.cancel for ${params.sessionId} (Ctrl-C again to exit now)`;
    if (o.json) process.stderr.write(notice + '\n');
    else printer.line(notice);
    void c.cancel(params.sessionId, { timeoutMs: 10_000 }).catch((err: unknown) => {
      process.stderr.write(`switchyard: ${(cliError(err, c) as Error).message}\n`);
    });
    giveUp = setTimeout(() => abort.abort(), CANCEL_WAIT_MS);
    giveUp.unref();
  };
  process.on('SIGINT', onSigint);
  // where a cut stream resumes: the last update of this session received, and its run
  let lastSeq: number | undefined;
  let runId: string | undefined;
  const show = (n: AcpNotification) => {
    if (n.method === 'session.update' && n.params.sessionId === params.sessionId) {
      if (typeof n.params.seq === 'number') lastSeq = n.params.seq;
      if (typeof n.params.runId === 'string') runId = n.params.runId;
    }
    if (o.json) out(JSON.stringify({ method: n.method, params: n.params }) + '\n');
    else printer.notification(n);
  };
  let r: TaskResult;
  try {
    const call = method === 'start' ? c.start.bind(c) : c.message.bind(c);
    try {
      r = await call(params, { signal: abort.signal, onNotification: show });
    } catch (err) {
      const after = cutAt(err, lastSeq);
      if (after === undefined) throw err;
      // the text goes on where the stream stopped (the notice is on stderr)
      r = await resumeTurn(c, {
        sessionId: params.sessionId,
        runId,
        afterSeq: after,
        onUpdate: (u) => show({ method: 'session.update', params: u }),
        notice: (line) => process.stderr.write(`switchyard: ${line}\n`),
        signal: abort.signal,
      });
    }
  } catch (err) {
    if (err instanceof AcpTransportError && err.reason === 'aborted' && interrupts > 0) {
      throw new CliError(`cancel sent, but the gateway did not confirm within ${CANCEL_WAIT_MS / 1000} s; check with the session id ${params.sessionId}`);
    }
    printer.endLine();
    throw cliError(err, c);
  } finally {
    // The handler stays until the command exits: a second Ctrl-C means "exit now" even when the turn has
    // just settled (otherwise Node's default action would kill the process without the 130 exit code).
    if (giveUp) clearTimeout(giveUp);
  }
  if (o.json) out(JSON.stringify({ result: r }) + '\n');
  else {
    printer.result(r, params.sessionId);
    // --json has outputTruncated / outputChars in the result; text mode says it
    const cut = truncationNotice(r, printer.shownText);
    if (cut) process.stderr.write(`switchyard: ${cut}\n`);
  }
  if (r.status !== 'completed') throw new CliError(failureReason(r));
}

const newSessionId = () => `task-${randomBytes(6).toString('hex')}`;

export function registerTask(program: Command): void {
  const task = program.command('task').description('agent tasks through the gateway’s /acp/rpc');

  remoteOptions(task.command('providers').description('agents and gateway providers (acp.capabilities): id, label, target, availability')).action(
    async (o: TaskFlags) => {
      const caps = await withClient(o, (c) => c.capabilities());
      const agents = caps.providerCatalog ?? [];
      const gateways = caps.gatewayProviders ?? [];
      if (o.json)
        return out(
          JSON.stringify({ providerCatalog: agents, gatewayProviders: gateways, availableExecutionTargets: caps.availableExecutionTargets ?? [] }, null, 2) +
            '\n',
        );
      out(renderProviders(agents, gateways));
    },
  );

  remoteOptions(
    task
      .command('run')
      .description('start a session and run its first turn, streaming updates live')
      .argument('<prompt...>', 'the task (several words are joined with spaces)')
      .option('--provider <id>', 'run on this agent (providerCatalog); default: the gateway’s routing (auto)')
      .option('--gateway <id>', 'run on this gateway provider (gatewayProviders)')
      .option('--model <model>', 'ask for this model')
      .option('--session <id>', 'session id (default: generated and printed); an existing one starts afresh')
      .option('--cwd <hint>', 'working-folder hint, relative, under the gateway’s acp.workspaceRoot')
      .option('--verbose', 'also show keepalives and agent chatter (thoughts, command lists)'),
  ).action(async (words: string[], o: TaskFlags & { provider?: string; gateway?: string; model?: string; session?: string; cwd?: string }) => {
    const prompt = words.join(' ');
    if (o.provider && o.gateway) throw new CliError('use --provider (an agent) or --gateway (a gateway provider), not both');
    if (prompt.trim() === '') throw new CliError('the prompt is empty');
    const sessionId = o.session ?? newSessionId();
    const params: SessionParams = { sessionId, taskPrompt: prompt };
    if (o.provider)
      Object.assign(params, {
        provider: o.provider,
        requestedExecutionTarget: 'agent',
        routing: { routingMode: 'explicit', explicitExecutionTarget: 'agent', explicitProviderId: o.provider },
      });
    else if (o.gateway)
      Object.assign(params, {
        gatewayProviderId: o.gateway,
        requestedExecutionTarget: 'gateway',
        routing: { routingMode: 'explicit', explicitExecutionTarget: 'gateway', preferredGatewayProviderId: o.gateway },
      });
    else params.routing = { routingMode: 'auto' };
    if (o.model) params.model = o.model;
    if (o.cwd) params.workingDirectory = o.cwd;
    const c = clientFor(o);
    if (!o.json) out(`[session] ${sessionId}${o.session ? '' : ' (new)'}\n`);
    await runTurn(c, o, 'start', params);
  });

  remoteOptions(
    task
      .command('message')
      .description('the next turn of an open session, streaming updates live')
      .argument('<prompt...>', 'the message (several words are joined with spaces)')
      .requiredOption('--session <id>', 'the session to continue')
      .option('--verbose', 'also show keepalives and agent chatter'),
  ).action(async (words: string[], o: TaskFlags & { session: string }) => {
    const prompt = words.join(' ');
    if (prompt.trim() === '') throw new CliError('the prompt is empty');
    await runTurn(clientFor(o), o, 'message', { sessionId: o.session, taskPrompt: prompt });
  });

  remoteOptions(task.command('cancel').description('cancel the running turn of a session').requiredOption('--session <id>', 'the session')).action(
    async (o: TaskFlags & { session: string }) => {
      const r = await withClient(o, (c) => c.cancel(o.session));
      out(
        o.json
          ? JSON.stringify(r) + '\n'
          : r.cancelled
            ? `cancel sent to session ${o.session}; its running turn ends as cancelled\n`
            : `session ${o.session} had no running turn\n`,
      );
    },
  );

  remoteOptions(
    task.command('close').description('end a session (its agent process stops); it cannot be continued').requiredOption('--session <id>', 'the session'),
  ).action(async (o: TaskFlags & { session: string }) => {
    const r = await withClient(o, (c) => c.close(o.session));
    out(o.json ? JSON.stringify(r) + '\n' : r.closed ? `session ${o.session} closed\n` : `session ${o.session} was not open\n`);
  });
}
