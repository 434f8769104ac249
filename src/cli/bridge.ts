/** `switchyard bridge list | connect | disconnect | channels` over the admin API. */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { PeerRow } from '../bridge/mesh.js';
import type { SharedChannel } from '../wire/bridge-frames.js';
import { adminCall, CliError, named, remoteOptions, type RemoteFlags } from './remote.js';
import { ago, out, table } from './table.js';
import { CHANNELS, DISCONNECTED, PEER, PEERS, SHARED_CHANNELS } from './replies.js';
import { secrets } from '../util/redact.js';

export function renderPeers(peers: PeerRow[]): string {
  if (peers.length === 0) return 'no bridges\n';
  return table(
    ['NAME', 'ID', 'DIR', 'STATE', 'PROTO', 'SINCE', 'THEY SHARE', 'WE SHARE', 'IN-FLIGHT', 'HEALTH', 'LAST ERROR'],
    peers.map((p) => [
      p.name,
      p.id,
      p.direction,
      // a link a reload or a newer link let go (retiring, or still routing until its bridge's new link opens): a row of
      // its own, with the reason it closes for and how long it has been so; absent from older gateways' rows
      p.retiring ? `${p.state} ${ago(p.retiring.since)} (${p.retiring.reason})` : p.state,
      p.protocol ?? '-',
      ago(p.since),
      p.sharedWithUs.join(',') || '-',
      p.sharedByUs.join(',') || '-',
      `${p.inflight.out}→ ${p.inflight.in}←`,
      Object.values(p.health).every((h) => h === 'healthy')
        ? p.state === 'open'
          ? 'ok'
          : '-'
        : Object.entries(p.health)
            .filter(([, h]) => h !== 'healthy')
            .map(([c, h]) => `${c}:${h}`)
            .join(','),
      p.lastError,
    ]),
  );
}

export function registerBridge(program: Command): void {
  const bridge = program.command('bridge').description('gateway-to-gateway bridges');

  remoteOptions(
    bridge
      .command('list')
      .description('every peer, and every link still draining: name, id, direction, state, protocol version, shared channels, in-flight, last error'),
  ).action(async (o: RemoteFlags) => {
    const r = await adminCall<{ peers: PeerRow[] }>(o, 'GET', '/admin/bridges', undefined, { reply: PEERS });
    out(o.json ? JSON.stringify(r.peers, null, 2) + '\n' : renderPeers(r.peers));
  });

  remoteOptions(
    bridge
      .command('connect')
      .description('dial a peer now, without a restart')
      .requiredOption('--peer-url <url>', 'the peer bridge URL, e.g. wss://gpu-box:18789/bridge')
      .requiredOption('--peer-token <token>', "a token in the peer's gateway.bridge.allowedTokens")
      .option('--name <name>', 'name for this bridge (default: the host)')
      .option('--share <channels>', 'comma-separated channels to share with the peer (default: the whitelist); "none" for none')
      .option('--ca <file>', "trust this CA or the peer's self-signed certificate (PEM) for wss://"),
  ).action(async (o: RemoteFlags & { peerUrl: string; peerToken: string; name?: string; share?: string; ca?: string }) => {
    const share =
      o.share === undefined
        ? undefined
        : o.share === 'none'
          ? false
          : o.share
              .split(',')
              .map((s) => s.trim())
              .filter(Boolean);
    // the gateway's answer may name the peer's token (a refusal quoting it): never printed
    secrets.register(o.peerToken);
    let ca: string | undefined;
    if (o.ca) {
      try {
        ca = readFileSync(o.ca, 'utf8');
      } catch (err) {
        throw new CliError(`--ca: cannot read ${o.ca} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
      }
    }
    const r = await adminCall<{ peer: PeerRow }>(
      o,
      'POST',
      '/admin/bridges',
      { url: o.peerUrl, token: o.peerToken, name: o.name, share, ca },
      // the body's `url` and `token` are the peer's, given with --peer-url and --peer-token (--url is the gateway's)
      { reply: PEER, fields: { url: '--peer-url', token: '--peer-token', name: '--name', share: '--share', ca: '--ca' } },
    );
    out(o.json ? JSON.stringify(r.peer, null, 2) + '\n' : `bridge "${r.peer.name}" added (${r.peer.state}); see \`switchyard bridge list\`\n`);
  });

  remoteOptions(
    bridge.command('disconnect').description('close a bridge (and stop re-dialling it)').argument('<name|id>', 'the bridge', named('<name|id>')),
  ).action(async (target: string, o: RemoteFlags) => {
    const r = await adminCall<{ disconnected: string }>(o, 'DELETE', `/admin/bridges/${encodeURIComponent(target)}`, undefined, {
      reply: DISCONNECTED,
    });
    out(o.json ? JSON.stringify(r) + '\n' : `disconnected ${r.disconnected}\n`);
  });

  remoteOptions(bridge.command('channels').description('what every peer shares with us, and what we share with it')).action(async (o: RemoteFlags) => {
    const r = await adminCall<{ peers: Array<{ peer: string; id: string; direction: string; theyShare: SharedChannel[]; weShare: SharedChannel[] }> }>(
      o,
      'GET',
      '/admin/bridges/channels',
      undefined,
      { reply: SHARED_CHANNELS },
    );
    if (o.json) return out(JSON.stringify(r.peers, null, 2) + '\n');
    const rows: Array<Array<string>> = [];
    for (const p of r.peers) {
      for (const c of p.theyShare) rows.push([p.peer, p.id, 'peer → us', c.name, c.provider, c.models.join(',')]);
      for (const c of p.weShare) rows.push([p.peer, p.id, 'us → peer', c.name, c.provider, c.models.join(',')]);
    }
    out(rows.length ? table(['PEER', 'ID', 'WAY', 'CHANNEL', 'PROVIDER', 'MODELS'], rows) : 'no channels shared either way\n');
  });

  remoteOptions(
    program.command('channels').description('channels known to the gateway').command('list').description('local and peer channels with load'),
  ).action(async (o: RemoteFlags) => {
    const r = await adminCall<{
      channels: Array<{
        id: string;
        channel: string;
        provider: string;
        peer: string | null;
        mock: boolean;
        models: string[];
        inflight: number;
        maxConcurrent: number;
        latencyMsEwma: number;
        health: { state: string; ejectedUntil: number; reason: string | null };
        /** absent from a gateway before skippedModels */
        skippedModels?: Array<{ model: string; until: number }>;
      }>;
    }>(o, 'GET', '/admin/channels', undefined, { reply: CHANNELS });
    if (o.json) return out(JSON.stringify(r.channels, null, 2) + '\n');
    const health = (h: { state: string; ejectedUntil: number; reason: string | null }) =>
      h.state === 'healthy'
        ? 'healthy'
        : `${h.state}${h.ejectedUntil > Date.now() ? ` ${Math.ceil((h.ejectedUntil - Date.now()) / 1000)}s` : ''}${h.reason ? ` (${h.reason})` : ''}`;
    // a model the upstream answered it does not have is marked, with the time until it is asked again
    const models = (names: string[], skipped: Array<{ model: string; until: number }>) =>
      names
        .map((m) => {
          const s = skipped.find((x) => x.model === m);
          return s ? `${m} (missing, ${Math.max(1, Math.ceil((s.until - Date.now()) / 1000))}s)` : m;
        })
        .join(',');
    out(
      table(
        ['CHANNEL', 'PROVIDER', 'VIA', 'MODELS', 'IN-FLIGHT', 'LATENCY', 'HEALTH'],
        r.channels.map((c) => [
          c.channel,
          c.provider + (c.mock ? ' (mock)' : ''),
          c.peer ?? 'local',
          models(c.models, c.skippedModels ?? []),
          `${c.inflight}/${c.maxConcurrent}`,
          c.latencyMsEwma ? `${c.latencyMsEwma}ms` : '-',
          health(c.health),
        ]),
      ),
    );
  });
  // `switchyard status` lives in status.ts (one screen of everything).
}

export { CliError };
