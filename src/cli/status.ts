/**
 * `switchyard status`: one screen — version, uptime, request rate, peers, channels with health, models,
 * sessions, warm agent pools — from GET /admin/overview. `--json` prints the snapshot as is.
 * `switchyard config reload` asks the running gateway to re-read its file (POST /admin/config/reload).
 */
import type { Command } from 'commander';
import type { Overview } from '../http/overview.js';
import type { ReloadReport } from '../gateway-reload.js';
import { adminCall, CliError, InvalidRemoteConfig, remoteOptions, type RemoteFlags } from './remote.js';
import { ago, out, table } from './table.js';
import { OVERVIEW, RELOAD_REPORT } from './replies.js';

function duration(sec: number): string {
  return ago(new Date(Date.now() - sec * 1000).toISOString());
}

export function renderStatus(o: Overview): string {
  const g = o.gateway;
  const r = o.requests;
  const lines: string[] = [];
  lines.push(`${g.name} (${g.id})  v${g.version}  up ${duration(g.uptimeSec)}${g.draining ? '  DRAINING' : ''}${g.tracing ? '  tracing on' : ''}`);
  lines.push(`requests  ${r.requestsPerSec.toFixed(1)}/s  errors ${r.errorsPerSec.toFixed(1)}/s  in flight ${r.inflight}  waiting ${r.waiting}   (last 10 s)`);
  const s = o.sessions.byStatus;
  // storeReadable absent: a gateway older than the field, whose overview failed whole when its store did; readAt
  // absent or null with it false: nothing was read since the gateway started (or an older gateway). readingMs (absent
  // on older gateways) with it true: the store is slow, not failing: the last values, said to be so
  const counts = `${s.active ?? 0} active, ${s.running ?? 0} running, ${s.closed ?? 0} closed, ${s.moved ?? 0} moved`;
  const reading = typeof o.sessions.readingMs === 'number' ? `a read under way for ${(o.sessions.readingMs / 1000).toFixed(1)}s` : undefined;
  // unreadableReason (absent on older gateways): why, in a few words (not connected: connection refused, no answer
  // within 5 s, a read failed)
  const why = o.sessions.unreadableReason ? `: ${o.sessions.unreadableReason}` : '';
  lines.push(
    o.sessions.storeReadable === false
      ? o.sessions.readAt
        ? `sessions  ${counts} as read ${ago(o.sessions.readAt)} ago: the session store cannot be read now${why} (see the gateway log)`
        : `sessions  unknown: the session store cannot be read now${why} (see the gateway log)`
      : !reading
        ? `sessions  ${counts}`
        : o.sessions.readAt
          ? `sessions  ${counts} as read ${ago(o.sessions.readAt)} ago (the session store is slow: ${reading})`
          : `sessions  not read yet (the session store is slow: ${reading})`,
  );
  lines.push('');
  lines.push('PEERS');
  lines.push(
    o.peers.length === 0
      ? '  (none)\n'
      : table(
          ['PEER', 'DIR', 'STATE', 'RTT', 'IN-FLIGHT', 'THEY SHARE', 'WE SHARE', 'LAST ERROR'],
          o.peers.map((p) => [
            p.name,
            p.direction,
            p.state,
            p.rttMs === null ? '-' : `${p.rttMs}ms`,
            `${p.inflight.out} out/${p.inflight.in} in`,
            p.sharedWithUs.join(',') || '-',
            p.sharedByUs.join(',') || '-',
            p.lastError,
          ]),
        ),
  );
  // links a reload or a newer link let go, still draining or routing until their bridge's new link opens (`bridge list`
  // lists them); older gateways send no retiringLinks
  const held = o.retiringLinks;
  if (held && held.retiring + held.handingOver > 0) {
    lines.push(
      `retiring links  ${held.retiring} draining, ${held.handingOver} handing over, in flight ${held.inflight.out} out/${held.inflight.in} in   (see switchyard bridge list)\n`,
    );
  }
  lines.push('CHANNELS');
  lines.push(
    o.channels.length === 0
      ? '  (none)\n'
      : table(
          ['CHANNEL', 'VIA', 'PROVIDER', 'MODELS', 'LOAD', 'LATENCY', 'HEALTH'],
          o.channels.map((c) => [
            c.channel,
            c.peer ?? 'local',
            c.provider + (c.mock ? ' (mock)' : ''),
            c.models.join(','),
            `${c.inflight}/${c.maxConcurrent}`,
            c.latencyMsEwma ? `${c.latencyMsEwma}ms` : '-',
            c.health.state + (c.health.reason ? ` (${c.health.reason})` : ''),
          ]),
        ),
  );
  // older gateways send no warmPools
  if (o.warmPools?.length) {
    lines.push('WARM AGENTS');
    lines.push(
      table(
        ['AGENT', 'READY', 'BOOTING', 'SESSIONS WARM/COLD', 'FAILED', 'BACK-OFF'],
        o.warmPools.map((w) => [
          w.agentId,
          `${w.ready}/${w.target}`,
          w.booting + (w.claimed ? ` (${w.claimed} claimed)` : ''),
          `${w.taken}/${w.cold}`,
          `${w.failed}` + (w.consecutiveFailures ? ` (${w.consecutiveFailures} in a row)` : ''),
          w.retryAt ? `retry in ${Math.max(0, Math.ceil((Date.parse(w.retryAt) - Date.now()) / 1000))}s` : null,
        ]),
      ),
    );
  }
  if (o.sessions.running.length > 0) {
    lines.push('RUNNING TURNS');
    lines.push(
      table(
        ['SESSION', 'TURN', 'STARTED'],
        o.sessions.running.map((t) => [t.id, t.turnId, t.startedAt ? ago(t.startedAt) + ' ago' : '-']),
      ),
    );
  }
  return lines.join('\n');
}

export function registerStatus(program: Command): void {
  remoteOptions(program.command('status').description('one screen: version, uptime, request rate, peers, channels, health, sessions')).action(
    async (o: RemoteFlags) => {
      const r = await adminCall<Overview>(o, 'GET', '/admin/overview', undefined, {
        reply: OVERVIEW,
      });
      out(o.json ? JSON.stringify(r, null, 2) + '\n' : renderStatus(r));
    },
  );
  const config = program.commands.find((c) => c.name() === 'config') ?? program.command('config').description('configuration tools');
  remoteOptions(
    config.command('reload').description('make the running gateway re-read its config file (invalid: nothing changes, every problem listed)'),
  ).action(async (o: RemoteFlags) => {
    const r = await reloadCall(o);
    if (o.json) return out(JSON.stringify(r, null, 2) + '\n');
    out(
      `reloaded\n${r.applied.length ? r.applied.map((a) => `  applied: ${a}`).join('\n') : '  nothing changed live'}\n${r.restartRequired.map((p) => `  needs a restart: ${p}`).join('\n')}${r.restartRequired.length ? '\n' : ''}`,
    );
  });
}

/**
 * POST /admin/config/reload (a reload may take a while: new channels are built); a refused file's error lists every
 * problem. Without `--url` / `--token` (or their variables) the gateway is found from the config file, which here is
 * the file to be applied, not the one running: an invalid file cannot say where the gateway is (every problem is
 * listed, and the gateway was not asked), and a file that changes `gateway.admin.token` names a token the gateway
 * does not hold yet (its 401 says which token to give).
 */
async function reloadCall(o: RemoteFlags): Promise<ReloadReport> {
  const set = (v: string | undefined) => v !== undefined && v !== '';
  const tokenFromFile = o.token === undefined && !set(process.env.SWITCHYARD_ADMIN_TOKEN);
  let r: ReloadReport;
  try {
    r = await adminCall<ReloadReport>(o, 'POST', '/admin/config/reload', {}, { timeoutMs: 30_000, reply: RELOAD_REPORT });
  } catch (err) {
    if (err instanceof InvalidRemoteConfig) {
      throw new CliError(
        `config not reloaded (the gateway was not asked; its running config is unchanged): the gateway is found from the config file, which is invalid: ${err.problems}\n` +
          '  (give --url and --token, or $SWITCHYARD_URL and $SWITCHYARD_ADMIN_TOKEN, to have the running gateway check it; or send it SIGHUP)',
      );
    }
    if (err instanceof CliError && tokenFromFile && err.status === 401) {
      throw new CliError(
        `${err.message}\n  config not reloaded: the admin token was read from the config file, which may change gateway.admin.token; give the running gateway's token with --token (or $SWITCHYARD_ADMIN_TOKEN), or send it SIGHUP`,
      );
    }
    throw err;
  }
  return r;
}
