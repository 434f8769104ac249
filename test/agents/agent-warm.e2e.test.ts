/**
 * Warm agent processes (`acp.agents[].warm`, issue 15) on a real gateway process with the fake ACP agent:
 *  - a session.start takes a spare spawned before the call (its pid is the spare's), a replacement appears;
 *  - spares start in a private folder with the minimal environment (with `llm`: their own private HOME and a
 *    token the model API accepts, handed to the session and revoked at its close; an unused spare's token is
 *    revoked when the spare stops);
 *  - spares count against acp.maxAgentProcesses and are the first stopped when a session needs a slot;
 *  - reload replacing an entry and gateway stop leave no process behind (checked in /proc);
 *  - a spare that dies while idle is replaced; a command that exits at once is retried with a back-off (shown in
 *    GET /admin/overview → warmPools).
 * A session arriving while the spare still boots: agent-warm-booting.e2e.test.ts.
 */
import { existsSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { adminGet, cleanupDirs, processAlive, startProcess, tmpDir, waitFor } from '../helpers/env.js';
import { parseProm } from '../ops/prom-text.js';
import { agentPids, agentRouting, jsonLines, rpc } from './acp-rpc.js';

const FAKE = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const ACP = 'acp-warm-token-5d7e1a';
type Gw = Awaited<ReturnType<typeof startProcess>>;
let gw: Gw | undefined;

afterEach(async () => {
  await gw?.stop(10_000);
  gw = undefined;
  cleanupDirs();
});

const fake = (id: string, extra: Record<string, unknown> = {}) => ({ id, label: id, command: process.execPath, args: [FAKE], permissions: 'allow', ...extra });

function config(acp: Record<string, unknown>): { channels: Array<Record<string, unknown>>; acp: Record<string, unknown> } {
  return { channels: [{ name: 'mock', provider: 'mock', models: ['mock-1', 'mock-2'] }], acp: { tokens: [ACP], agentIdleTimeoutMs: 0, ...acp } };
}

async function start(acp: Record<string, unknown>): Promise<Gw> {
  gw = await startProcess(config(acp));
  return gw;
}

const call = (method: string, params: Record<string, unknown>) => rpc(gw!.url, ACP, method, params, 30_000);
const startSession = async (sessionId: string, agent: string, taskPrompt = 'hello') =>
  (await call('session.start', { sessionId, taskPrompt, routing: agentRouting(agent) })).result;
const logged = (msg: string) => jsonLines(gw!.logs()).filter((l) => l.msg === msg);
/** pids of spares that reached `initialize` (the "warm agent process ready" log line), oldest first */
const readyPids = (agent?: string) =>
  logged('warm agent process ready')
    .filter((l) => agent === undefined || l.agent === agent)
    .map((l) => l.pid as number);
const environ = (pid: number): Record<string, string> =>
  Object.fromEntries(
    readFileSync(`/proc/${pid}/environ`, 'utf8')
      .split('\0')
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
const ALLOWED = /^(PATH|HOME|USER|LOGNAME|SHELL|TMPDIR|TZ|TERM|LANG|LANGUAGE|LC_[A-Z_]+)$/;

describe('warm agent processes', () => {
  it('session.start takes a spare spawned before the call; a replacement appears; the spare is private and minimal', async () => {
    const g = await start({ maxAgentProcesses: 4, agents: [fake('fake', { warm: 1 })] });
    const [spare] = await waitFor(() => (readyPids('fake').length === 1 ? readyPids('fake') : undefined), 'the first spare', 15_000);
    expect(processAlive(spare!)).toBe(true);
    // its own cwd: a private, empty folder under acp.agentHomeRoot (the session's workspace is not known yet)
    const startDir = readlinkSync(`/proc/${spare}/cwd`);
    expect(path.dirname(startDir)).toBe(path.join(g.dir, 'agent-homes'));
    expect(path.basename(startDir)).toMatch(/^warm-fake-[0-9a-f]{8}$/);
    expect(statSync(startDir).mode & 0o777).toBe(0o700);
    expect(Object.keys(environ(spare!)).filter((k) => !ALLOWED.test(k))).toEqual([]);

    const r = await startSession('w-1', 'fake', 'cwd');
    expect(r).toMatchObject({ success: true });
    // the session's workspace reached the agent through session/new; no process was spawned on the session's path
    expect(r.output).toBe(`cwd ${path.join(g.dir, 'workspaces', 'w-1')} ${startDir}`);
    expect(agentPids(g.logs(), 'w-1')).toEqual([spare]);
    expect(logged('agent session started').find((l) => l.session === 'w-1')).toMatchObject({ warm: true });
    const env = JSON.parse((await call('session.message', { sessionId: 'w-1', taskPrompt: 'printenv' })).result.output) as Record<string, string>;
    expect(Object.keys(env).filter((k) => !ALLOWED.test(k))).toEqual([]);
    expect(env.HOME).toBe(process.env.HOME); // without llm, as for a cold start

    const replacement = await waitFor<number | undefined>(() => readyPids('fake')[1], 'a replacement spare', 15_000);
    expect(replacement).not.toBe(spare);
    expect(processAlive(replacement)).toBe(true);

    // the session owns the spare now: its close stops the process and removes the start folder
    expect((await call('session.close', { sessionId: 'w-1' })).result).toMatchObject({ closed: true });
    await waitFor(() => !processAlive(spare!), 'the closed session’s agent to exit', 10_000);
    await waitFor(() => !existsSync(startDir), 'the start folder to go', 10_000);
    expect((await startSession('w-2', 'fake')).output).toBe('echo: hello');
    expect(agentPids(g.logs(), 'w-2')).toEqual([replacement]);

    // gateway stop: no agent process, no spare, no start folder left
    await waitFor(() => readyPids('fake')[2], 'the third spare', 15_000);
    const all = [...readyPids(), ...agentPids(g.logs())];
    await g.stop(10_000);
    gw = undefined;
    for (const pid of all) expect(processAlive(pid)).toBe(false);
    expect(readdirSync(path.join(g.dir, 'agent-homes')).filter((f) => f.startsWith('warm-'))).toEqual([]);
  }, 90_000);

  it('spares count against acp.maxAgentProcesses and are the first stopped when a session needs a slot', async () => {
    const g = await start({ maxAgentProcesses: 2, agents: [fake('fake', { warm: 2 }), fake('cold')] });
    await waitFor(() => readyPids('fake').length === 2, 'two spares', 15_000);
    const live = () => [...readyPids(), ...agentPids(g.logs())].filter((p, i, a) => a.indexOf(p) === i && processAlive(p));

    // a cold session at the cap: a spare is stopped for it
    expect(await startSession('c-1', 'cold')).toMatchObject({ success: true, output: 'echo: hello' });
    expect(logged('agent session started').find((l) => l.session === 'c-1')).toMatchObject({ warm: false });
    expect(logged('warm agent process stopped').filter((l) => l.reason === 'evicted')).toHaveLength(1);
    await waitFor(() => live().length === 2, 'the evicted spare to exit', 10_000);

    // the other spare is taken; no replacement fits under the cap
    expect(await startSession('c-2', 'fake')).toMatchObject({ success: true });
    expect(readyPids('fake')).toContain(agentPids(g.logs(), 'c-2')[0]);
    const third = await startSession('c-3', 'fake');
    expect(third).toMatchObject({ success: false, errorCode: 'OVERLOADED' });
    expect(live()).toHaveLength(2);
    expect(readyPids('fake')).toHaveLength(2);

    // a slot given back is refilled with a spare, still within the cap
    expect((await call('session.close', { sessionId: 'c-1' })).result).toMatchObject({ closed: true });
    await waitFor(() => readyPids('fake').length === 3, 'a spare in the freed slot', 15_000);
    expect(live()).toHaveLength(2);
  }, 90_000);

  it('a reload that changes the entry replaces its spares; an unchanged entry keeps them; stop leaves no process', async () => {
    const cfg = config({ maxAgentProcesses: 4, agents: [fake('fake', { warm: 1 }), fake('other', { warm: 1 })] });
    const g = await start(cfg.acp);
    await waitFor(() => readyPids('fake').length === 1 && readyPids('other').length === 1, 'both spares', 15_000);
    const [fakeSpare] = readyPids('fake');
    const [otherSpare] = readyPids('other');

    cfg.acp.agents = [fake('fake', { warm: 1, env: { WARM_GEN: '2' } }), fake('other', { warm: 1 })];
    writeFileSync(g.configPath, JSON.stringify({ ...cfg, store: { kind: 'sqlite', path: './data/switchyard.db' }, gateway: { port: 0 } }));
    g.kill('SIGHUP');
    await waitFor(() => !processAlive(fakeSpare!), 'the changed entry’s spare to stop', 15_000);
    const next = await waitFor<number | undefined>(() => readyPids('fake')[1], 'a spare of the new entry', 15_000);
    expect(environ(next).WARM_GEN).toBe('2');
    expect(processAlive(otherSpare!)).toBe(true);
    expect(readyPids('other')).toEqual([otherSpare]);

    await g.stop(10_000);
    gw = undefined;
    for (const pid of [fakeSpare!, otherSpare!, next]) expect(processAlive(pid)).toBe(false);
  }, 90_000);

  it('llm: a spare has its own private HOME and token; taken, they are the session’s and die at its close', async () => {
    const g = await start({
      maxAgentProcesses: 4,
      agents: [fake('hermes', { preset: 'hermes', llm: { model: 'mock-1' }, warm: 1 })],
    });
    const [spare] = await waitFor(() => (readyPids('hermes').length === 1 ? readyPids('hermes') : undefined), 'the spare', 15_000);
    const env = environ(spare!);
    const token = env.OPENAI_API_KEY!;
    expect(token).toMatch(/^sy-agent-/);
    expect(path.dirname(env.HOME!)).toBe(path.join(g.dir, 'agent-homes'));
    expect(statSync(env.HOME!).mode & 0o777).toBe(0o700);
    expect(readlinkSync(`/proc/${spare}/cwd`)).toBe(env.HOME);
    const models = (t: string) => fetch(`${g.url}/v1/models`, { headers: { authorization: `Bearer ${t}` } }).then((r) => r.status);
    expect(await models(token)).toBe(200);

    // the session runs on the spare, on the spare's token, pinned to llm.model
    expect(await startSession('l-1', 'hermes', 'llm hi')).toMatchObject({ success: true, output: 'llm 200 mock-1: [mock mock-1] You said: hi' });
    expect(agentPids(g.logs(), 'l-1')).toEqual([spare]);
    const next = await waitFor<number | undefined>(() => readyPids('hermes')[1], 'a replacement spare', 15_000);
    const nextEnv = environ(next);
    expect(nextEnv.OPENAI_API_KEY).not.toBe(token);
    expect(nextEnv.HOME).not.toBe(env.HOME);

    expect((await call('session.close', { sessionId: 'l-1' })).result).toMatchObject({ closed: true });
    expect(await models(token)).toBe(401);
    await waitFor(() => !existsSync(env.HOME!), 'the session’s private folder to go', 10_000);

    // an unused spare's token and folder die with the spare (here: replaced by a reload)
    expect(await models(nextEnv.OPENAI_API_KEY!)).toBe(200);
    const cfg = config({ maxAgentProcesses: 4, agents: [fake('hermes', { preset: 'hermes', llm: { model: 'mock-1' }, warm: 1, env: { GEN: '2' } })] });
    writeFileSync(g.configPath, JSON.stringify({ ...cfg, store: { kind: 'sqlite', path: './data/switchyard.db' }, gateway: { port: 0 } }));
    g.kill('SIGHUP');
    await waitFor(() => !processAlive(next), 'the old spare to stop', 15_000);
    await waitFor(async () => (await models(nextEnv.OPENAI_API_KEY!)) === 401, 'the unused spare’s token to be revoked', 10_000);
    await waitFor(() => !existsSync(nextEnv.HOME!), 'the unused spare’s folder to go', 10_000);
  }, 90_000);

  it('llm under role routing: a session whose role chose another model takes no spare (its token would pin the wrong model)', async () => {
    const g = await start({
      maxAgentProcesses: 4,
      agents: [fake('hermes', { preset: 'hermes', llm: { model: 'mock-1' }, warm: 1 })],
      roles: { roles: [{ role: 'engineer', models: [{ key: 'two', model: 'mock-2' }], executors: ['hermes'] }] },
    });
    const [spare] = await waitFor(() => (readyPids('hermes').length === 1 ? readyPids('hermes') : undefined), 'the spare', 15_000);
    const r = (
      await call('session.start', { sessionId: 'role-1', taskPrompt: 'llm hi', workingDirectory: 'role-1', routing: { role: 'engineer', roleMode: 'auto' } })
    ).result;
    expect(r).toMatchObject({ success: true, resolvedModelId: 'mock-2', modelBindingVerified: true });
    expect(r.output).toBe('llm 200 mock-2: [mock mock-2] You said: hi');
    const [pid] = agentPids(g.logs(), 'role-1');
    expect(pid).not.toBe(spare);
    expect(logged('agent session started').find((l) => l.session === 'role-1')).toMatchObject({ warm: false });
    expect(processAlive(spare!)).toBe(true); // still waiting for a session on llm.model

    // a session on llm.model takes it
    expect(await startSession('plain-1', 'hermes', 'llm hi')).toMatchObject({ output: 'llm 200 mock-1: [mock mock-1] You said: hi' });
    expect(agentPids(g.logs(), 'plain-1')).toEqual([spare]);
  }, 90_000);

  it('a spare that dies while idle is replaced; a command that exits at once is retried with a back-off, not in a loop', async () => {
    const runs = path.join(tmpDir(), 'runs.txt');
    const t0 = Date.now();
    await start({
      maxAgentProcesses: 4,
      agents: [
        fake('fake', { warm: 1 }),
        { id: 'broken', label: 'Broken', command: 'sh', args: ['-c', `echo run >> '${runs}'; exit 1`], warm: 1, permissions: 'allow' },
      ],
    });
    const [spare] = await waitFor(() => (readyPids('fake').length === 1 ? readyPids('fake') : undefined), 'the spare', 15_000);
    process.kill(spare!, 'SIGKILL');
    const next = await waitFor<number | undefined>(() => readyPids('fake')[1], 'a replacement of the dead spare', 15_000);
    expect(next).not.toBe(spare);
    expect(logged('warm agent process exited while waiting').filter((l) => l.agent === 'fake')).toHaveLength(1);

    // broken: started at once, again after 1 s, again after 2 more: three runs take at least 3 s
    const count = () => (existsSync(runs) ? readFileSync(runs, 'utf8').split('\n').filter(Boolean).length : 0);
    // the command writes its run before it exits, and the gateway logs the failure after the exit: wait for both
    const failures = () => logged('warm agent process failed to start').filter((l) => l.agent === 'broken').length;
    await waitFor(() => count() >= 3 && failures() >= 3, 'three runs of the broken command, each logged', 20_000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(3_000);
    expect(count()).toBe(3);
    expect(failures()).toBe(3);
    // the operator's view (GET /admin/overview → warmPools): three failures in a row, the fourth run 4 s after the third
    const pools = (await adminGet<{ warmPools: Array<Record<string, unknown>> }>(gw!.url, '/admin/overview')).warmPools;
    const broken = pools.find((p) => p.agentId === 'broken')!;
    expect(broken).toMatchObject({ target: 1, ready: 0, booting: 0, claimed: 0, consecutiveFailures: 3, spawned: 3, taken: 0, cold: 0, failed: 3 });
    const third = Date.parse(logged('warm agent process failed to start').filter((l) => l.agent === 'broken')[2].t as string);
    expect(Date.parse(broken.retryAt as string) - third).toBeGreaterThanOrEqual(4_000 - 50);
    expect(Date.parse(broken.retryAt as string) - third).toBeLessThan(4_000 + 1_000);
    const backoff = parseProm(await (await fetch(`${gw!.url}/metrics`)).text()).find(
      (x) => x.name === 'switchyard_acp_warm_backoff_seconds' && x.labels.agent === 'broken',
    )!.value;
    expect(backoff).toBeGreaterThan(0);
    expect(backoff).toBeLessThanOrEqual(4);
    // the killed spare was replaced and is ready; its failure is counted until a spare is taken
    expect(pools.find((p) => p.agentId === 'fake')).toMatchObject({
      target: 1,
      ready: 1,
      booting: 0,
      consecutiveFailures: 1,
      retryAt: null,
      failed: 1,
      taken: 0,
    });

    // a session on it is refused as it always was (the availability probe runs the command too)
    const r = await startSession('b-1', 'broken');
    expect(r).toMatchObject({ success: false, unavailable: true, unavailableCode: 'PROVIDER_UNAVAILABLE' });
    expect(r.unavailableMessage).toContain('agent "broken" exited with code 1');
  }, 90_000);
});
