/** `switchyard sessions list | show | transfer | drain` over the admin API. */
import type { Command } from 'commander';
import type { sessionSummary } from '../http/routes/admin.js';
import type { Session } from '../sessions/model.js';
import { ADMIN_TRANSFER_BOUND_MS } from '../http/routes/admin-store.js';
import { ADMIN_LIST_DEFAULT, ADMIN_LIST_MAX } from '../http/routes/admin-page.js';
import { adminCall, CliError, named, remoteOptions, type RemoteFlags } from './remote.js';
import { ago, out, table } from './table.js';
import { GATEWAY_STATUS, PEERS, SESSION, SESSIONS, TRANSFERRED } from './replies.js';

type Summary = ReturnType<typeof sessionSummary>;

function render(list: Summary[]): string {
  if (list.length === 0) return 'no sessions\n';
  return table(
    ['ID', 'KIND', 'STATUS', 'OWNER', 'TARGET', 'TURNS', 'UPDATED', 'NOTE'],
    list.map((s) => [
      s.id,
      s.kind,
      s.status,
      s.status === 'moved' ? `→ ${s.movedTo}` : s.owner,
      s.target.executionTarget === 'agent' ? `agent:${s.target.providerId}` : `gateway:${s.target.gatewayProviderId}`,
      s.turns,
      `${ago(s.updatedAt)} ago`,
      s.transfer,
    ]),
  );
}

/**
 * The gateway answers a transfer within ADMIN_TRANSFER_BOUND_MS (up to 30 s waiting for a running turn and offering
 * the session, or a store that stopped answering): with the admin calls' 10 s the CLI gave up on a transfer still
 * waiting for its turn, said it failed, and the session moved anyway a moment later.
 */
const TRANSFER_REPLY_MS = ADMIN_TRANSFER_BOUND_MS + 5000;

type Page = { sessions: Summary[]; more?: boolean; next?: string };

/**
 * `GET /admin/sessions`: the most recently updated `limit` (the gateway's default when absent), past the cursor
 * `after` (a previous page's `next`), whether there are more, and where they start.
 */
function listSessions(o: RemoteFlags, status: string | undefined, limit: string | number | undefined, after?: string): Promise<Page> {
  const q = new URLSearchParams();
  if (status !== undefined) q.set('status', status);
  if (limit !== undefined) q.set('limit', String(limit));
  if (after !== undefined) q.set('after', after);
  const qs = q.toString();
  return adminCall<Page>(o, 'GET', `/admin/sessions${qs ? `?${qs}` : ''}`, undefined, {
    reply: SESSIONS,
    fields: { status: '--status', limit: '--limit', after: '--after' },
  });
}

/** `sessions list --all` reads at most this many sessions, then says where the rest start (`--after`) */
export const LIST_ALL_MAX = 100_000;

/**
 * `--all`: page after page from `after`, each from the last one's cursor, until the last page or LIST_ALL_MAX sessions
 * (then `next` says where to go on). Each session is shown once: a session updated while the pages are read moves to
 * the front of the order, where the pages read were, and is not listed again, unless its update was stamped earlier
 * than the cursor (a gateway whose clock is behind its peer's, on a shared store): that second listing is dropped
 * (docs/operations.md#paged-lists).
 */
async function allSessions(o: RemoteFlags, status: string | undefined, limit: string | undefined, after: string | undefined): Promise<Page> {
  const seen = new Set<string>();
  const sessions: Summary[] = [];
  for (let cursor = after; ;) {
    const r = await listSessions(o, status, limit, cursor);
    for (const s of r.sessions) {
      if (seen.has(s.id)) continue;
      seen.add(s.id);
      sessions.push(s);
    }
    // an older gateway answers `more` with no cursor: the one page it gave, said as it always was
    if (r.more !== true || r.next === undefined) return { sessions, more: r.more };
    // a reply that would have the CLI ask for the same page again, for ever
    if (r.next === cursor) throw new CliError('unexpected reply from /admin/sessions: more sessions, and the same cursor again (next)');
    if (sessions.length >= LIST_ALL_MAX) return { sessions, more: true, next: r.next };
    cursor = r.next;
  }
}

async function transferOne(o: RemoteFlags, id: string, to: string, whenRunning: 'wait' | 'refuse'): Promise<{ to: { id: string; name: string } }> {
  return adminCall(
    o,
    'POST',
    `/admin/sessions/${encodeURIComponent(id)}/transfer`,
    { to, whenRunning },
    { timeoutMs: TRANSFER_REPLY_MS, reply: TRANSFERRED, fields: { to: '--to' } },
  );
}

/** the admin API said the session store cannot be used now: a drain stops there (every other session would wait as long) */
const storeDown = (err: unknown): err is CliError => err instanceof CliError && err.code === 'session_store_unavailable';

export function registerSessions(program: Command): void {
  const sessions = program.command('sessions').description('durable sessions: list, inspect, move to a peer, drain');

  remoteOptions(
    sessions
      .command('list')
      .description('sessions stored on this gateway, the most recently updated first')
      .option('--status <s>', 'active | running | closed | moved')
      .option('--limit <n>', `how many a page (1-${ADMIN_LIST_MAX}; default ${ADMIN_LIST_DEFAULT})`)
      .option('--after <cursor>', 'the page after the one that printed this cursor', (v: string) => {
        // an empty one (an unset shell variable) would list the first page again
        if (v === '') throw new CliError('--after is empty: give the cursor a list printed');
        return v;
      })
      .option('--all', `every page, one after another (at most ${LIST_ALL_MAX} sessions)`),
  ).action(async (o: RemoteFlags & { status?: string; limit?: string; after?: string; all?: boolean }) => {
    const r = o.all ? await allSessions(o, o.status, o.limit, o.after) : await listSessions(o, o.status, o.limit, o.after);
    // an older gateway sends no `next`: it has no cursor to offer
    const next = r.more === true ? r.next : undefined;
    if (o.json) {
      out(JSON.stringify(r.sessions, null, 2) + '\n');
      // stdout stays the array alone
      if (next !== undefined) process.stderr.write(`switchyard: more sessions: --after ${next}${o.all ? ' (with --all: the rest)' : ''}\n`);
      return;
    }
    out(render(r.sessions));
    if (next !== undefined)
      out(
        o.all ? `(the first ${r.sessions.length}; the rest: --all --after ${next})\n` : `(more: the next page with --after ${next}, every page with --all)\n`,
      );
    else if (r.more === true) out(`(the ${r.sessions.length} most recently updated; more with --limit up to ${ADMIN_LIST_MAX}, or --status)\n`);
  });

  remoteOptions(sessions.command('show').description('one session with its history').argument('<id>', 'the session', named('<id>'))).action(
    async (id: string, o: RemoteFlags) => {
      const r = await adminCall<{ session: Session }>(o, 'GET', `/admin/sessions/${encodeURIComponent(id)}`, undefined, { reply: SESSION });
      if (o.json) return out(JSON.stringify(r.session, null, 2) + '\n');
      const s = r.session;
      out(`${s.id}  ${s.kind}  ${s.status}${s.movedTo ? ` → ${s.movedTo}` : ''}  owner ${s.ownerGatewayId}  v${s.version}\n`);
      for (const t of s.history) {
        // a failed turn: its catalogue code (docs/errors.md) beside its text; a gateway older than `errorCode` sends the text only
        const failure = [t.errorCode, t.error].filter(Boolean).join(': ');
        out(
          `  ${t.turnId}  ${t.status}  ${JSON.stringify(String(t.prompt).slice(0, 60))} → ${JSON.stringify(String(t.output).slice(0, 60))}${failure ? `  (${failure})` : ''}\n`,
        );
      }
    },
  );

  remoteOptions(
    sessions
      .command('transfer')
      .description('move one session to a peer (it stays here if the peer refuses or the link drops)')
      .argument('<id>', 'the session', named('<id>'))
      .requiredOption('--to <peer>', 'peer name or gateway id', named('--to'))
      .option('--no-wait', 'refuse instead of waiting when a turn is running'),
  ).action(async (id: string, o: RemoteFlags & { to: string; wait: boolean }) => {
    const r = await transferOne(o, id, o.to, o.wait ? 'wait' : 'refuse');
    out(o.json ? JSON.stringify(r) + '\n' : `session ${id} moved to ${r.to.name} (${r.to.id})\n`);
  });

  remoteOptions(
    sessions
      .command('drain')
      .description('move every open session to a peer, one progress line each, then a summary')
      .requiredOption('--to <peer>', 'peer name or gateway id', named('--to')),
  ).action(async (o: RemoteFlags & { to: string }) => {
    const status = await adminCall<{ id: string }>(o, 'GET', '/admin/status', undefined, { reply: GATEWAY_STATUS });
    // a peer that is not connected is said at once, not only when there is a session to move
    const { peers } = await adminCall<{ peers: Array<{ id: string | null; name: string; state: string }> }>(o, 'GET', '/admin/bridges', undefined, {
      reply: PEERS,
    });
    if (!peers.some((p) => p.state === 'open' && (p.id === o.to || p.name === o.to))) throw new CliError(`no connected peer named or with id "${o.to}"`);
    const results: Array<{ id: string; ok: boolean; reason?: string }> = [];
    const tried = new Set<string>();
    // set when the session store cannot be used (a list or a transfer answered session_store_unavailable): the drain
    // stops, says so and exits 1, instead of trying every other session against it
    let stopped = false;
    // Two passes: sessions opened while the first pass ran are moved too. Each pass pages through the open sessions
    // of each status with the list's cursor (`after`), a page of the gateway's default size a call, moving each page's
    // before it reads the next. Before the cursor a pass listed the first page again and stopped once that page held
    // only sessions it had tried: sessions that stayed (a refused transfer) filled it, and those past it were never
    // tried. A session updated while a pass pages moves ahead of the cursor (docs/operations.md#paged-lists): the next
    // pass finds it.
    // A gateway of a version before the cursor answers `more` with no `next`: its pass is cut, and passes go on while
    // each finds sessions not tried yet (the moved ones leave its first page), as the drain did before the cursor.
    passes: for (let pass = 0, cut = false; pass < 2 || cut; pass++) {
      cut = false;
      let found = 0;
      for (const st of ['active', 'running']) {
        for (let after: string | undefined, more = true; more;) {
          let page: Page;
          try {
            page = await listSessions(o, st, undefined, after);
          } catch (err) {
            if (!storeDown(err) || (pass === 0 && after === undefined && st === 'active')) throw err;
            stopped = true;
            break passes;
          }
          cut ||= page.more === true && page.next === undefined;
          // a cursor that names the page just read would page for ever
          more = page.more === true && page.next !== undefined && page.next !== after;
          after = page.next;
          for (const s of page.sessions.filter((x) => x.owner === status.id && !tried.has(x.id))) {
            tried.add(s.id);
            found++;
            try {
              const r = await transferOne(o, s.id, o.to, 'wait');
              results.push({ id: s.id, ok: true });
              if (!o.json) out(`[${results.length}] ${s.id} → ${r.to.name}: moved\n`);
            } catch (err) {
              // the gateway's own words: who answered and how is the same for every session of the drain
              const reason = err instanceof CliError ? (err.said ?? err.message) : String(err);
              results.push({ id: s.id, ok: false, reason });
              if (!o.json) out(`[${results.length}] ${s.id}: stayed here (${reason})\n`);
              if (storeDown(err)) {
                stopped = true;
                break passes;
              }
            }
          }
        }
      }
      if (found === 0 && pass >= 1) break;
    }
    const moved = results.filter((r) => r.ok).length;
    const failed = results.length - moved;
    if (o.json) out(JSON.stringify({ moved, failed, ...(stopped ? { stopped: 'session_store_unavailable' } : {}), results }, null, 2) + '\n');
    else if (!stopped) out(`drained: ${moved} moved, ${failed} stayed${failed === 0 ? '; no open session left here: the gateway is ready to stop' : ''}\n`);
    if (stopped)
      throw new CliError(
        `the session store cannot be reached now: drain stopped after ${moved} moved, ${failed} stayed; ` +
          'check with `switchyard sessions list` once it answers, and run the drain again',
        'session_store_unavailable',
      );
    if (failed > 0) process.exitCode = 1;
  });
}
