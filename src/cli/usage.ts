/** `switchyard usage [--key K] [--by model|key|peer|day|channel] [--since 24h]` over the admin API. */
import type { Command } from 'commander';
import type { UsageRow } from '../usage/record.js';
import { adminCall, CliError, remoteOptions, type RemoteFlags } from './remote.js';
import { out, table } from './table.js';
import { USAGE } from './replies.js';

const BY = ['model', 'key', 'peer', 'day', 'channel'];

const cost = (c: number) => (c === 0 ? '0' : Number(c.toFixed(6)).toString());

/** a row as the admin API answers it: a gateway older than `estimated` sends none (shown as `-`) */
type Row = Omit<UsageRow, 'estimated'> & { estimated?: number };

export function registerUsage(program: Command): void {
  remoteOptions(
    program
      .command('usage')
      .description('tokens and cost of completed requests, grouped')
      .option('--key <key>', 'only this key (id or name)')
      .option('--by <group>', BY.join(' | '), 'model')
      .option('--since <when>', 'ISO date, epoch ms, or a duration back from now (24h, 7d, 30m)'),
  ).action(async (o: RemoteFlags & { key?: string; by: string; since?: string }) => {
    if (!BY.includes(o.by)) throw new CliError(`--by: one of ${BY.join(', ')}`);
    const q = new URLSearchParams({ by: o.by });
    if (o.key) q.set('key', o.key);
    if (o.since) q.set('since', o.since);
    const r = await adminCall<{ by: string; since: string | null; rows: Row[]; total: Row }>(o, 'GET', `/admin/usage?${q.toString()}`, undefined, {
      reply: USAGE,
      fields: { by: '--by', key: '--key', since: '--since' },
    });
    if (o.json) return out(JSON.stringify(r, null, 2) + '\n');
    if (r.rows.length === 0) return out(`no usage${r.since ? ` since ${r.since}` : ''}\n`);
    // ESTIMATED: the requests among REQUESTS charged Switchyard's estimate, not the upstream's count (docs/keys.md)
    const line = (x: Row) => [x.group, x.requests, x.inputTokens, x.outputTokens, x.cachedTokens, cost(x.cost), x.estimated ?? '-'];
    out(table([o.by.toUpperCase(), 'REQUESTS', 'INPUT', 'OUTPUT', 'CACHED', 'COST', 'ESTIMATED'], [...r.rows.map(line), line(r.total)]));
  });
}
