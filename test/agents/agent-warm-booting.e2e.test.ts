/**
 * A session that arrives while its agent's warm spare is still booting (`acp.agents[].warm`, warm-pool.ts), on a
 * real gateway process with the fake ACP agent. The fake's FAKE_ACP_INIT_HOLD holds each process's answer to
 * `initialize` until the test releases that pid, so "still booting" is a state the test controls, not a race:
 *  - the session claims the booting spare and waits for it; released, the spare serves the session (its pid,
 *    `warm: true`), and no other process is started for it;
 *  - a claimed spare that dies before `initialize` leaves the session to start its own process (`warm: false`);
 *  - `GET /admin/overview` → `warmPools` (and `switchyard status`, and the `switchyard_acp_warm_*` series on
 *    /metrics) show booting → claimed → taken → ready, the warm/cold counters and the failure; gateway stop
 *    leaves no process and no start folder.
 * Processes other than spares (the availability probe, a session's own process) are released as soon as they
 * are seen; a spare is told apart by its start folder (`/proc/<pid>/cwd` = agent-homes/warm-<agent>-…).
 */
import { existsSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { adminGet, cleanupDirs, processAlive, startProcess, tmpDir, waitFor } from '../helpers/env.js';
import { runCli } from '../ops/cli-run.js';
import { parseProm } from '../ops/prom-text.js';
import { agentPids, agentRouting, jsonLines, rpc } from './acp-rpc.js';
import type { WarmPoolStatus } from '../../src/acp/runtimes/agent/warm-pool.js';

const FAKE = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const ACP = 'acp-warm-booting-token-8c1f0b';
type Gw = Awaited<ReturnType<typeof startProcess>>;
let gw: Gw | undefined;
let releaser: NodeJS.Timeout | undefined;

afterEach(async () => {
  clearInterval(releaser);
  await gw?.stop(10_000);
  gw = undefined;
  cleanupDirs();
});

/** one row of `/admin/overview` → `warmPools` */
type PoolView = WarmPoolStatus;

/** A gateway whose `fake` agent keeps one spare, every process of it held at `initialize` until released. */
async function start() {
  const hold = tmpDir('sy-hold-');
  const agent = { id: 'fake', label: 'fake', command: process.execPath, args: [FAKE], permissions: 'allow', warm: 1, env: { FAKE_ACP_INIT_HOLD: hold } };
  const g = (gw = await startProcess({
    channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
    acp: { tokens: [ACP], agentIdleTimeoutMs: 0, maxAgentProcesses: 4, agents: [agent] },
  }));
  /** pids of the fake's processes that reached `initialize`, in no particular order */
  const held = () =>
    readdirSync(hold)
      .filter((f) => f.startsWith('held-'))
      .map((f) => Number(f.slice('held-'.length)));
  const released = new Set<number>();
  const release = (pid: number) => {
    released.add(pid);
    writeFileSync(path.join(hold, `release-${pid}`), '');
  };
  const isSpare = (pid: number) => {
    try {
      return (
        path.dirname(readlinkSync(`/proc/${pid}/cwd`)) === path.join(g.dir, 'agent-homes') &&
        path.basename(readlinkSync(`/proc/${pid}/cwd`)).startsWith('warm-fake-')
      );
    } catch {
      return false; // gone
    }
  };
  // the probe and a session's own process start at once; spares wait for the test
  releaser = setInterval(() => {
    for (const pid of held()) if (!released.has(pid) && !isSpare(pid)) release(pid);
  }, 20);
  /** a spare held at `initialize` and not yet released */
  const heldSpare = () => waitFor(() => held().find((p) => !released.has(p) && isSpare(p)), 'a spare held at initialize', 15_000);
  const pool = async () => (await adminGet<{ warmPools: PoolView[] }>(g.url, '/admin/overview')).warmPools.find((w) => w.agentId === 'fake')!;
  const poolWhen = (ok: (p: PoolView) => boolean, what: string) =>
    waitFor(
      async () => {
        const p = await pool();
        return ok(p) ? p : undefined;
      },
      what,
      15_000,
    );
  /** the pool's series on GET /metrics (loopback, no token), keyed by name plus the `state`/`start` label */
  const scrape = async () => {
    const text = await (await fetch(`${g.url}/metrics`)).text();
    const out: Record<string, number> = {};
    for (const x of parseProm(text))
      if (x.name.startsWith('switchyard_acp_warm_') && x.labels.agent === 'fake')
        out[[x.name, x.labels.state ?? x.labels.start].filter(Boolean).join(':')] = x.value;
    return out;
  };
  return { g, held, release, isSpare, heldSpare, pool, poolWhen, scrape };
}

const series = (o: { ready: number; booting: number; warm: number; cold: number; failures: number }) => ({
  'switchyard_acp_warm_spares:ready': o.ready,
  'switchyard_acp_warm_spares:booting': o.booting,
  switchyard_acp_warm_target: 1,
  'switchyard_acp_warm_starts_total:warm': o.warm,
  'switchyard_acp_warm_starts_total:cold': o.cold,
  switchyard_acp_warm_failures_total: o.failures,
  switchyard_acp_warm_backoff_seconds: 0,
});

const call = (method: string, params: Record<string, unknown>) => rpc(gw!.url, ACP, method, params, 30_000);
const startSession = async (sessionId: string, taskPrompt = 'hello') =>
  (await call('session.start', { sessionId, taskPrompt, routing: agentRouting('fake') })).result;
const logged = (msg: string) => jsonLines(gw!.logs()).filter((l) => l.msg === msg);

describe('a session arriving while the warm spare is still booting', () => {
  it('claims the booting spare, waits for it and runs on it; the view shows booting → claimed → taken → ready', async () => {
    const { g, held, release, isSpare, heldSpare, pool, poolWhen, scrape } = await start();
    const spare = await heldSpare();
    expect(await pool()).toEqual({
      agentId: 'fake',
      target: 1,
      ready: 0,
      booting: 1,
      claimed: 0,
      consecutiveFailures: 0,
      retryAt: null,
      spawned: 1,
      taken: 0,
      cold: 0,
      failed: 0,
    });

    const pending = startSession('b-1');
    await poolWhen((p) => p.claimed === 1, 'the session to claim the booting spare');
    // waiting for the spare: no process of its own, no second spare (the claimed one is still the pool's one)
    expect(agentPids(g.logs(), 'b-1')).toEqual([]);
    expect(held().filter(isSpare)).toEqual([spare]);
    expect(await pool()).toMatchObject({ ready: 0, booting: 1, claimed: 1, spawned: 1, taken: 0, cold: 0 });
    expect(await scrape()).toEqual(series({ ready: 0, booting: 1, warm: 0, cold: 0, failures: 0 }));

    release(spare);
    expect(await pending).toMatchObject({ success: true, output: 'echo: hello' });
    expect(agentPids(g.logs(), 'b-1')).toEqual([spare]);
    expect(logged('agent session started').find((l) => l.session === 'b-1')).toMatchObject({ warm: true, pid: spare });
    expect(logged('warm agent process taken')).toEqual([expect.objectContaining({ agent: 'fake', session: 'b-1', pid: spare })]);

    // the replacement boots (held like every spare), then is ready
    const next = await heldSpare();
    expect(next).not.toBe(spare);
    expect(await pool()).toMatchObject({ ready: 0, booting: 1, claimed: 0, spawned: 2, taken: 1, cold: 0, failed: 0 });
    release(next);
    expect(await poolWhen((p) => p.ready === 1, 'the replacement to be ready')).toMatchObject({ booting: 0, claimed: 0, taken: 1, cold: 0 });
    expect(await scrape()).toEqual(series({ ready: 1, booting: 0, warm: 1, cold: 0, failures: 0 }));

    // the same view on one screen
    const cli = await runCli(['status', '--url', g.url]);
    expect(cli.code).toBe(0);
    expect(cli.stdout).toContain('WARM AGENTS');
    expect(cli.stdout).toMatch(/\nfake\s+1\/1\s+0\s+1\/0\s+0\s+-\n/);

    // a ready spare is taken as before: ready → taken
    expect(await startSession('b-2')).toMatchObject({ success: true, output: 'echo: hello' });
    expect(agentPids(g.logs(), 'b-2')).toEqual([next]);
    expect(await poolWhen((p) => p.taken === 2, 'the second take')).toMatchObject({ cold: 0, failed: 0 });
    release(await heldSpare()); // the third spare

    // gateway stop: every process of the agent (spares, probes, sessions') is gone, and so are start folders
    await poolWhen((p) => p.ready === 1, 'the third spare to be ready');
    const all = [...new Set([...held(), ...agentPids(g.logs())])];
    expect(all.length).toBeGreaterThanOrEqual(3);
    await g.stop(10_000);
    gw = undefined;
    for (const pid of all) expect(processAlive(pid)).toBe(false);
    expect(readdirSync(path.join(g.dir, 'agent-homes')).filter((f) => f.startsWith('warm-'))).toEqual([]);
  }, 90_000);

  it('a claimed spare that dies before initialize: the session starts its own process; the view counts it cold and failed', async () => {
    const { g, held, release, heldSpare, pool, poolWhen, scrape } = await start();
    const spare = await heldSpare();
    const startDir = readlinkSync(`/proc/${spare}/cwd`);

    const pending = startSession('d-1');
    await poolWhen((p) => p.claimed === 1, 'the session to claim the booting spare');
    process.kill(spare, 'SIGKILL');

    expect(await pending).toMatchObject({ success: true, output: 'echo: hello' });
    const [own] = agentPids(g.logs(), 'd-1');
    expect(own).toBeDefined();
    expect(own).not.toBe(spare);
    expect(logged('agent session started').find((l) => l.session === 'd-1')).toMatchObject({ warm: false, pid: own });
    expect(logged('warm agent process taken')).toEqual([]);
    expect(logged('warm agent process failed to start').filter((l) => l.agent === 'fake')).toHaveLength(1);
    // the session's process runs in the session's workspace, not in the dead spare's folder (which is removed)
    expect(readlinkSync(`/proc/${own}/cwd`)).toBe(path.join(g.dir, 'workspaces', 'd-1'));
    await waitFor(() => !existsSync(startDir), 'the dead spare’s start folder to go', 10_000);
    expect(processAlive(spare)).toBe(false);
    expect(await pool()).toMatchObject({ claimed: 0, taken: 0, cold: 1, failed: 1, consecutiveFailures: 1 });
    const after = await scrape();
    expect(after).toMatchObject({
      'switchyard_acp_warm_starts_total:warm': 0,
      'switchyard_acp_warm_starts_total:cold': 1,
      switchyard_acp_warm_failures_total: 1,
    });

    // after the back-off the pool boots another spare; the failure streak stays until a spare is taken
    const next = await heldSpare();
    expect(await poolWhen((p) => p.booting === 1, 'the next spare booting')).toMatchObject({
      ready: 0,
      spawned: 2,
      failed: 1,
      consecutiveFailures: 1,
      retryAt: null,
    });
    release(next);
    await poolWhen((p) => p.ready === 1, 'the next spare to be ready');
    expect(await startSession('d-2')).toMatchObject({ success: true });
    expect(agentPids(g.logs(), 'd-2')).toEqual([next]);
    expect(await pool()).toMatchObject({ taken: 1, cold: 1, failed: 1, consecutiveFailures: 0 });

    const all = [...new Set([...held(), ...agentPids(g.logs())])];
    await g.stop(10_000);
    gw = undefined;
    for (const pid of all) expect(processAlive(pid)).toBe(false);
    expect(readdirSync(path.join(g.dir, 'agent-homes')).filter((f) => f.startsWith('warm-'))).toEqual([]);
  }, 90_000);
});
