/** `switchyard keys create | list | show | disable | enable | rotate` over the admin API. */
import type { Command } from 'commander';
import { EXPIRES_FORMS, expiryFromText, type KeySummary } from '../keys/model.js';
import { adminCall, CliError, named, remoteOptions, type RemoteFlags } from './remote.js';
import { out, outShowing, table } from './table.js';
import { decimalInt } from '../util/decimal.js';
import { KEY, KEY_SECRET, KEYS } from './replies.js';

function limitsText(k: KeySummary): string {
  const l = k.limits;
  const parts = [
    l.requestsPerMin && `${l.requestsPerMin} req/min`,
    l.tokensPerMin && `${l.tokensPerMin} tok/min`,
    l.concurrent && `${l.concurrent} at once`,
  ].filter(Boolean);
  return parts.join(', ');
}

function budgetText(k: KeySummary): string {
  const b = k.budget;
  if (!b) return '';
  return [b.tokens !== undefined && `${b.tokens} tokens`, b.cost !== undefined && `${b.cost} cost`].filter(Boolean).join(' + ') + `/${b.period}`;
}

function render(list: KeySummary[]): string {
  if (list.length === 0) return 'no keys\n';
  return table(
    ['ID', 'NAME', 'OWNER', 'KEY', 'STATUS', 'MODELS', 'LIMITS', 'BUDGET', 'EXPIRES'],
    list.map((k) => [k.id, k.name, k.owner, k.hint, k.status, k.models.join(','), limitsText(k), budgetText(k), k.expiresAt]),
  );
}

/**
 * Decimal digits only: Number() also took `0x10` (16), `1e3` (1000) and `1e30`, the last sent on to be refused by
 * the API under its own field name (`limits.requestsPerMin: Too big …`), not the flag's.
 */
const int = (flag: string) => (v: string) => {
  const n = decimalInt(v.trim());
  if (!Number.isSafeInteger(n) || n < 1) throw new CliError(`${flag}: a whole number from 1 to ${Number.MAX_SAFE_INTEGER}, in decimal digits`);
  return n;
};

/**
 * `30d`, `12h`, `90m` (from now), or one of the API's text forms (EXPIRES_FORMS: an ISO date, its UTC midnight, or
 * an ISO date-time with its zone) → epoch ms; any other form is refused naming the flag and the forms (`Dec 25 2027`
 * was read by Date.parse in this machine's time zone, and the API refuses it). A date past year 9999 has no ISO form
 * the API takes. A time not
 * after now (`2020-01-01`, `0d`, today's date: its UTC midnight) is refused, as the API refuses it: it created a key
 * born expired (a date before 1970 came back under the API's field name, `expiresAt: Too small …`).
 */
function expiry(v: string): number {
  const rel = /^(\d+)([mhd])$/.exec(v);
  let t: number;
  if (!rel) {
    const at = expiryFromText(v);
    if (at === undefined)
      throw new CliError(`--expires: ${JSON.stringify(v)} is not a time it takes: give a duration from now (30d, 12h, 90m) or ${EXPIRES_FORMS}`);
    t = at;
  } else {
    t = Date.now() + Number(rel[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as 'm' | 'h' | 'd'];
    // a time a Date can hold (±8.64e15 ms, about 273,000 years from now)
    if (Number.isNaN(new Date(t).getTime())) throw new CliError(`--expires: ${v} is too far ahead; the latest is +275760-09-13`);
  }
  if (t <= Date.now()) throw new CliError(`--expires: ${v} is not in the future; give a later date or a duration such as 30d, 12h`);
  return t;
}

interface CreateFlags extends RemoteFlags {
  name: string;
  owner?: string;
  models?: string;
  expires?: string;
  rpm?: number;
  tpm?: number;
  concurrent?: number;
  budgetTokens?: number;
  budgetCost?: string;
  budgetPeriod: 'day' | 'month';
  acp?: boolean;
}

/** what each of create's flags is in the API's body: a refusal of the field names the flag */
const CREATE_FIELDS = {
  name: '--name',
  owner: '--owner',
  models: '--models',
  expiresAt: '--expires',
  'limits.requestsPerMin': '--rpm',
  'limits.tokensPerMin': '--tpm',
  'limits.concurrent': '--concurrent',
  'budget.tokens': '--budget-tokens',
  'budget.cost': '--budget-cost',
  'budget.period': '--budget-period',
  acp: '--acp',
};

function showSecret(o: RemoteFlags, r: { key: KeySummary; secret: string }, verb: string): void {
  if (o.json) return outShowing(JSON.stringify(r, null, 2) + '\n', r.secret);
  outShowing(
    `${verb} key ${r.key.name} (${r.key.id})\n\n  ${r.secret}\n\nThis secret is shown once: store it now. Clients send it as Authorization: Bearer <secret>.\n`,
    r.secret,
  );
}

/**
 * Every key, one page (`GET /admin/keys`, the gateway's default size) after another, each from the last one's cursor:
 * the pages are by name, so a key created, disabled or rotated meanwhile neither shows twice nor hides another.
 */
async function allKeys(o: RemoteFlags): Promise<KeySummary[]> {
  const list: KeySummary[] = [];
  for (let after: string | undefined; ;) {
    const path = `/admin/keys${after === undefined ? '' : `?after=${encodeURIComponent(after)}`}`;
    const r = await adminCall<{ keys: KeySummary[]; more?: boolean; next?: string }>(o, 'GET', path, undefined, { reply: KEYS });
    list.push(...r.keys);
    // an older gateway sends no `more`: its one answer held every key
    if (r.more !== true) return list;
    // a reply that would have the CLI ask for the same page again, for ever
    if (r.next === undefined || r.next === after) throw new CliError(`unexpected reply from ${path}: more keys, and no new cursor to read them from (next)`);
    after = r.next;
  }
}

export function registerKeys(program: Command): void {
  const keys = program.command('keys').description('virtual keys: per-app or per-user secrets with model lists, limits and budgets');

  remoteOptions(
    keys
      .command('create')
      .description('create a key; its secret is printed once')
      .requiredOption('--name <name>', 'unique name')
      .option('--owner <label>', 'who holds it (an app, a person, a team)')
      .option('--models <globs>', 'comma-separated model globs it may use (default *)')
      .option('--expires <when>', 'a duration (30d, 12h, 90m), an ISO date (UTC midnight) or an ISO date-time with Z or an offset')
      .option('--rpm <n>', 'requests per minute', int('--rpm'))
      .option('--tpm <n>', 'tokens per minute', int('--tpm'))
      .option('--concurrent <n>', 'requests in flight at once', int('--concurrent'))
      .option('--budget-tokens <n>', 'tokens per budget period', int('--budget-tokens'))
      .option('--budget-cost <amount>', "cost per budget period (in the channels' pricing unit)")
      .option('--budget-period <p>', 'day | month', 'month')
      .option('--acp', "may also start agent tasks on /acp/rpc and /acp; their sessions' model traffic is billed to the key"),
  ).action(async (o: CreateFlags) => {
    if (o.budgetPeriod !== 'day' && o.budgetPeriod !== 'month') throw new CliError('--budget-period: day or month');
    // decimal only, as the whole-number flags: Number() read `0x10` as 16 and `1e999` as Infinity (sent as JSON null)
    const cost = o.budgetCost === undefined ? undefined : /^(\d+(\.\d*)?|\.\d+)$/.test(o.budgetCost.trim()) ? Number(o.budgetCost) : NaN;
    if (cost !== undefined && !(cost > 0 && Number.isFinite(cost))) throw new CliError('--budget-cost: a positive number');
    const body = {
      name: o.name,
      ...(o.owner ? { owner: o.owner } : {}),
      ...(o.models
        ? {
            models: o.models
              .split(',')
              .map((s) => s.trim())
              .filter(Boolean),
          }
        : {}),
      ...(o.expires ? { expiresAt: expiry(o.expires) } : {}),
      limits: { requestsPerMin: o.rpm, tokensPerMin: o.tpm, concurrent: o.concurrent },
      ...(o.budgetTokens !== undefined || cost !== undefined ? { budget: { period: o.budgetPeriod, tokens: o.budgetTokens, cost } } : {}),
      ...(o.acp ? { acp: true } : {}),
    };
    showSecret(o, await adminCall(o, 'POST', '/admin/keys', body, { reply: KEY_SECRET, fields: CREATE_FIELDS }), 'created');
  });

  remoteOptions(keys.command('list').description('every key, by name (never the secrets)')).action(async (o: RemoteFlags) => {
    const list = await allKeys(o);
    out(o.json ? JSON.stringify(list, null, 2) + '\n' : render(list));
  });

  remoteOptions(keys.command('show').description('one key, with its budget spend this period').argument('<key>', 'id or name', named('<key>'))).action(
    async (id: string, o: RemoteFlags) => {
      const r = await adminCall<{ key: KeySummary & { spent: { period: string; tokens: number; cost: number } | null } }>(
        o,
        'GET',
        `/admin/keys/${encodeURIComponent(id)}`,
        undefined,
        { reply: KEY },
      );
      if (o.json) return out(JSON.stringify(r.key, null, 2) + '\n');
      const k = r.key;
      const rows: Array<[string, string]> = [
        ['id', k.id],
        ['name', k.name],
        ['owner', k.owner],
        ['key', k.hint],
        ['status', k.status],
        ['models', k.models.join(', ')],
        ['limits', limitsText(k) || 'none'],
        ['budget', budgetText(k) || 'none'],
        ['acp', k.acp ? 'yes: may start agent tasks' : 'no'],
        ['spent', k.spent ? `${k.spent.tokens} tokens, ${Number(k.spent.cost.toFixed(6))} cost in ${k.spent.period}` : '-'],
        ['expires', k.expiresAt ?? 'never'],
        ['created', k.createdAt],
        ['rotated', k.rotatedAt ?? '-'],
      ];
      out(rows.map(([a, b]) => `${a.padEnd(8)} ${b}`).join('\n') + '\n');
    },
  );

  for (const [verb, done] of [
    ['disable', 'disabled'],
    ['enable', 'enabled'],
  ] as const) {
    remoteOptions(
      keys.command(verb).description(`${verb} a key (every instance within gateway.keys.refreshMs)`).argument('<key>', 'id or name', named('<key>')),
    ).action(async (id: string, o: RemoteFlags) => {
      const r = await adminCall<{ key: KeySummary }>(o, 'POST', `/admin/keys/${encodeURIComponent(id)}/${verb}`, undefined, { reply: KEY });
      out(o.json ? JSON.stringify(r.key, null, 2) + '\n' : `key ${r.key.name} (${r.key.id}) ${done}\n`);
    });
  }

  remoteOptions(
    keys
      .command('rotate')
      .description('new secret for a key (same id, limits and usage); the old one stops working')
      .argument('<key>', 'id or name', named('<key>')),
  ).action(async (id: string, o: RemoteFlags) => {
    showSecret(o, await adminCall(o, 'POST', `/admin/keys/${encodeURIComponent(id)}/rotate`, undefined, { reply: KEY_SECRET }), 'rotated');
  });
}
