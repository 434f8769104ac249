import { mkdir, mkdtemp, readdir, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  AgentSession,
  closeAllAgentSessions,
  type AgentSessionOptions,
  type AgentSpec,
  type SessionUpdate,
} from '../../src/acp/runtimes/agent/agent-session.js';
import { clearProbeCache, probeAgent } from '../../src/acp/runtimes/agent/probe.js';
import { createAgentRuntime } from '../../src/acp/runtimes/agent/runtime.js';
import { createLogger } from '../../src/util/log.js';
import { GatewayError } from '../../src/wire/errors.js';
import { processAlive, within } from '../helpers/env.js';

const FAKE = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const silent = createLogger({}, () => {});
let root: string;
let outside: string;
const open: AgentSession[] = [];

beforeAll(async () => {
  const base = await realpath(await mkdtemp(path.join(tmpdir(), 'sy-acp-')));
  root = path.join(base, 'workspaces');
  outside = path.join(base, 'outside');
  await mkdir(outside, { recursive: true });
  await writeFile(path.join(outside, 'secret.txt'), 'do not read');
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});
afterAll(() => rm(path.dirname(root), { recursive: true, force: true }));

const fake = (over: Partial<AgentSpec> = {}): AgentSpec => ({ id: 'fake', command: process.execPath, args: [FAKE], permissions: 'allow', ...over });
let n = 0;
function session(agent: AgentSpec = fake(), opts: Partial<AgentSessionOptions> = {}): AgentSession {
  const s = new AgentSession({ agent, workspaceRoot: root, sessionName: `s${++n}`, log: silent, stopGraceMs: 500, ...opts });
  open.push(s);
  return s;
}
async function started(agent?: AgentSpec, opts?: Partial<AgentSessionOptions>): Promise<AgentSession> {
  const s = session(agent, opts);
  await s.start();
  return s;
}

const alive = processAlive;
/** waits until `n` agents are held at initialize (FAKE_ACP_INIT_HOLD); their pids */
async function waitHeld(held: () => Promise<number[]>, n: number): Promise<number[]> {
  for (let i = 0; i < 400; i++) {
    const pids = await held();
    if (pids.length >= n) return pids;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${n} agents were not held at initialize within 10 s`);
}

async function until(pred: () => boolean, ms = 3_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pred()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return pred();
}

describe('AgentSession: turns', () => {
  it('initializes, opens a session in its workspace folder and streams a turn in order', async () => {
    const s = session();
    const info = await s.start();
    expect(info).toMatchObject({ acpSessionId: 'fake-session-1', agentInfo: { name: 'fake-acp-agent', version: '1.0.0' } });
    expect(path.dirname(info.cwd)).toBe(root);
    const updates: SessionUpdate[] = [];
    const res = await s.prompt('hello there agent', (u) => updates.push(u));
    expect(res).toEqual({ stopReason: 'end_turn', text: 'echo: hello there agent' });
    expect(updates.length).toBeGreaterThanOrEqual(3);
    expect(updates.every((u) => u.sessionUpdate === 'agent_message_chunk')).toBe(true);
    expect(updates.map((u) => (u.content as { text: string }).text).join('')).toBe(res.text);
    expect((await s.prompt('cwd')).text).toBe(`cwd ${info.cwd} ${info.cwd}`);
    expect(s.status).toBe('ready');
  });

  it('passes per-agent env on top of the gateway environment', async () => {
    const s = await started(fake({ env: { OPENAI_BASE_URL: 'http://127.0.0.1:1/v1' } }));
    expect((await s.prompt('env OPENAI_BASE_URL')).text).toBe('env OPENAI_BASE_URL=http://127.0.0.1:1/v1');
    expect((await s.prompt('env PATH')).text).toBe(`env PATH=${process.env.PATH}`);
  });

  it('forwards tool calls and plans as the agent sent them', async () => {
    const s = await started();
    const updates: SessionUpdate[] = [];
    await s.prompt('tool', (u) => updates.push(u));
    await s.prompt('plan', (u) => updates.push(u));
    expect(updates.map((u) => u.sessionUpdate)).toEqual([
      'tool_call',
      'tool_call_update',
      'tool_call_update',
      'agent_message_chunk',
      'plan',
      'agent_message_chunk',
    ]);
    expect(updates[0]).toMatchObject({ toolCallId: 'call_1', title: 'Reading notes.md', kind: 'read', status: 'pending' });
    expect(updates[2]).toMatchObject({
      toolCallId: 'call_1',
      status: 'completed',
      content: [{ type: 'content', content: { type: 'text', text: 'read 3 lines' } }],
    });
    expect((updates[4]?.entries as unknown[]).length).toBe(3);
  });

  it('refuses a second concurrent turn on the same session', async () => {
    const s = await started();
    const first = s.prompt('slow');
    await expect(s.prompt('again')).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    s.cancel();
    await expect(first).resolves.toMatchObject({ stopReason: 'cancelled' });
  });
});

describe('AgentSession: permissions', () => {
  it('allow picks allow_once, deny picks reject_once', async () => {
    expect((await (await started(fake({ permissions: 'allow' }))).prompt('permission')).text).toBe('permission: opt-allow');
    expect((await (await started(fake({ permissions: 'deny' }))).prompt('permission')).text).toBe('permission: opt-reject');
  });

  it('ask delegates to askPermission, and rejects without an answer', async () => {
    const asked: unknown[] = [];
    const s = await started(fake({ permissions: 'ask' }), { askPermission: async (req) => (asked.push(req), 'opt-always') });
    expect((await s.prompt('permission')).text).toBe('permission: opt-always');
    expect(asked[0]).toMatchObject({ sessionId: 'fake-session-1', toolCall: { title: 'Write config.json' }, options: [{ optionId: 'opt-allow' }, {}, {}, {}] });
    expect((await (await started(fake({ permissions: 'ask' }))).prompt('permission')).text).toBe('permission: opt-reject');
    const slow = await started(fake({ permissions: 'ask' }), { askPermission: () => new Promise(() => {}), askTimeoutMs: 200 });
    expect((await slow.prompt('permission')).text).toBe('permission: opt-reject');
    const bogus = await started(fake({ permissions: 'ask' }), { askPermission: async () => 'not-an-option' });
    expect((await bogus.prompt('permission')).text).toBe('permission: opt-reject');
  });

  it('cancel answers a pending permission request with cancelled and ends the turn cancelled', async () => {
    let signalled = false;
    let asked = false;
    const s = await started(fake({ permissions: 'ask' }), {
      askPermission: (_req, signal) => (
        (asked = true),
        new Promise((resolve) =>
          signal.addEventListener('abort', () => {
            signalled = true;
            resolve(undefined);
          }),
        )
      ),
    });
    const turn = s.prompt('permission');
    expect(await until(() => asked), 'the permission request is pending').toBe(true);
    expect(s.cancel()).toBe(true);
    await expect(turn).resolves.toMatchObject({ stopReason: 'cancelled' });
    expect(signalled).toBe(true);
  });
});

describe('AgentSession: fs and terminal confinement', () => {
  it('reads and writes inside the workspace', async () => {
    const s = await started();
    expect((await s.prompt('write notes/a.txt hello world')).text).toBe('write ok');
    expect(await readFile(path.join(s.cwd, 'notes', 'a.txt'), 'utf8')).toBe('hello world');
    expect((await s.prompt('read notes/a.txt')).text).toBe('read ok: hello world');
    await writeFile(path.join(s.cwd, 'lines.txt'), 'l1\nl2\nl3\nl4');
    expect((await s.prompt('read lines.txt 2 2')).text).toBe('read ok: l2\nl3');
    expect((await s.prompt('read missing.txt')).text).toMatch(/^read error: file not found/);
  });

  it('rejects traversal, absolute paths outside and symlink escapes', async () => {
    const s = await started();
    expect((await s.prompt('read ../../outside/secret.txt')).text).toMatch(/^read error: path ".*" is outside the session workspace$/);
    expect((await s.prompt(`read ${path.join(outside, 'secret.txt')}`)).text).toMatch(/outside the session workspace/);
    expect((await s.prompt('write ../escape.txt pwned')).text).toMatch(/^write error: .*outside the session workspace/);
    await symlink(path.join(outside, 'secret.txt'), path.join(s.cwd, 'link.txt'));
    await symlink(outside, path.join(s.cwd, 'linkdir'));
    expect((await s.prompt('read link.txt')).text).toMatch(/^read error: .*outside the session workspace/);
    expect((await s.prompt('write linkdir/new.txt pwned')).text).toMatch(/^write error: .*outside the session workspace/);
    expect(await readFile(path.join(outside, 'secret.txt'), 'utf8')).toBe('do not read');
  });

  it('runs terminal commands in the workspace with the agent-supplied env', async () => {
    const s = await started();
    const res = await s.prompt(`terminal ${process.execPath} -e process.stdout.write(process.env.FAKE_TERM+":"+process.cwd())`);
    expect(res.text).toBe(`terminal 0: yes:${s.cwd}`);
    expect((await s.prompt('terminal /definitely/not/a/command')).text).toMatch(/^terminal error: could not start/);
  });
});

describe('AgentSession: cancel, crashes, garbage, hangs, shutdown', () => {
  it('cancel → session/cancel → stopReason cancelled, and the session keeps working', async () => {
    const s = await started();
    const updates: SessionUpdate[] = [];
    const turn = s.prompt('slow', (u) => updates.push(u));
    await until(() => updates.length >= 2);
    expect(s.cancel()).toBe(true);
    expect(s.cancel()).toBe(false);
    const res = await turn;
    expect(res.stopReason).toBe('cancelled');
    expect(res.text).toMatch(/^tick 0 tick 1 /);
    expect(s.cancel()).toBe(false);
    expect((await s.prompt('after')).text).toBe('echo: after');
  });

  it('a crash mid-turn fails the turn with the exit code (its stderr only in the log); a new session still works', async () => {
    const lines: string[] = [];
    const s = await started(undefined, { log: createLogger({}, (l) => lines.push(l)) });
    const err = (await s.prompt('crash').catch((e: unknown) => e)) as GatewayError;
    expect(err).toBeInstanceOf(GatewayError);
    expect(err.code).toBe('UPSTREAM_ERROR');
    // the client gets the exit, never the agent's stderr (issue 10: it may print secrets); the log keeps it
    expect(err.message).toBe('agent "fake" exited with code 3 unexpectedly (its stderr is in the gateway log)');
    expect(lines.some((l) => l.includes('agent process exited') && l.includes('fake agent: simulated crash'))).toBe(true);
    expect(s.status).toBe('closed');
    await expect(s.prompt('again')).rejects.toThrow('exited with code 3');
    const next = await started();
    expect((await next.prompt('still here?')).text).toBe('echo: still here?');
  });

  it('garbage on stdout fails the turn with a clear error naming the agent', async () => {
    const s = await started();
    const err = (await s.prompt('garbage').catch((e: unknown) => e)) as GatewayError;
    expect(err.code).toBe('UPSTREAM_BAD_RESPONSE');
    expect(err.message).toBe('agent "fake" wrote non-JSON-RPC output on stdout (not JSON: "this is not json-rpc at all")');
    // at once: the next turn waits for the agent to end the one given up on (its echo is not this turn's)
    expect((await s.prompt('recovered')).text).toBe('echo: recovered');
  });

  it('a turn given up on (garbage) that the agent keeps running: the next turn waits for its end and gets none of its output', async () => {
    const s = await started();
    const pid = s.pid;
    await expect(s.prompt('garbage-stale')).rejects.toMatchObject({ code: 'UPSTREAM_BAD_RESPONSE' });
    const seen: string[] = [];
    // a long echo (5 ms a word): sent at once, it would overlap the agent's late chunks (20 ms apart)
    const next = Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ');
    const r = await s.prompt(next, (u) => seen.push(JSON.stringify(u)));
    expect(r).toEqual({ stopReason: 'end_turn', text: `echo: ${next}` });
    expect(seen.join('')).not.toContain('stale');
    expect(s.pid).toBe(pid); // the agent ended it when told: the same process goes on
  });

  it('one that the agent never ends: past the cancel grace the agent is stopped, and nothing of it reaches the next turn', async () => {
    const s = await started(fake(), { cancelGraceMs: 300 });
    const pid = s.pid!;
    await expect(s.prompt('garbage-deaf')).rejects.toMatchObject({ code: 'UPSTREAM_BAD_RESPONSE' });
    const seen: string[] = [];
    await expect(s.prompt('next please', (u) => seen.push(JSON.stringify(u)))).rejects.toMatchObject({ code: 'UPSTREAM_ERROR' });
    expect(seen).toEqual([]);
    expect(s.status).toBe('closed');
    expect(await until(() => !alive(pid))).toBe(true);
  });

  it('behind the runtime, the turn after one the agent never ends runs on a new process, without the old output', async () => {
    const lines: string[] = [];
    const rt = createAgentRuntime(
      { agent: fake(), workspaceRoot: root, cancelGraceMs: 300, log: createLogger({}, (l) => lines.push(l)) },
      {
        sessionId: `rt${++n}`,
        threadId: 't',
        target: { executionTarget: 'agent', providerId: 'fake', gatewayProviderId: '', model: '' },
        workingDirectory: undefined,
      },
    );
    try {
      const turn = (text: string, seen: string[] = []) =>
        rt.prompt({ turnId: `turn-${text}`, text, history: [] }, (u) => seen.push(JSON.stringify(u)), new AbortController().signal);
      await expect(turn('garbage-deaf')).rejects.toMatchObject({ code: 'UPSTREAM_BAD_RESPONSE' });
      // a turn cancelled while it waits for that one to end is over at once, and starts nothing
      const ac = new AbortController();
      const waiting = rt.prompt({ turnId: 'turn-cancelled', text: 'never sent', history: [] }, () => undefined, ac.signal);
      ac.abort();
      expect(await waiting).toEqual({ output: '', stopReason: 'cancelled' });
      const stopping = () => lines.some((l) => l.includes('agent did not end a turn given up on'));
      expect(stopping()).toBe(false); // it did not wait out the grace
      const seen: string[] = [];
      const r = await turn('after the deaf one', seen);
      expect(r).toMatchObject({ output: 'echo: after the deaf one', stopReason: 'end_turn' });
      expect(seen.join('')).not.toContain('stale');
      expect(stopping()).toBe(true); // this one waited, and the deaf agent was stopped
    } finally {
      await rt.close();
    }
  });

  it('behind the runtime, a cancel during start-up ends the turn at once; the next turn runs on that same process', async () => {
    const hold = await mkdtemp(path.join(tmpdir(), 'sy-rt-hold-'));
    const held = async () => (await readdir(hold)).filter((f) => f.startsWith('held-')).map((f) => Number(f.slice(5)));
    const rt = createAgentRuntime(
      { agent: fake({ env: { FAKE_ACP_INIT_HOLD: hold } }), workspaceRoot: root, log: silent },
      {
        sessionId: `rt${++n}`,
        threadId: 't',
        target: { executionTarget: 'agent', providerId: 'fake', gatewayProviderId: '', model: '' },
        workingDirectory: undefined,
      },
    );
    try {
      const ac = new AbortController();
      const cancelled = rt.prompt({ turnId: 'turn-1', text: 'never sent', history: [] }, () => undefined, ac.signal);
      const [pid] = await waitHeld(held, 1);
      ac.abort();
      // the agent is still held at initialize (start-up may take up to its 30 s timeout)
      expect(await within(cancelled, 5_000, 'the cancelled turn to end')).toEqual({ output: '', stopReason: 'cancelled' });
      expect(alive(pid!)).toBe(true);
      await writeFile(path.join(hold, `release-${pid}`), '');
      const r = await rt.prompt({ turnId: 'turn-2', text: 'after the cancel', history: [] }, () => undefined, new AbortController().signal);
      expect(r).toMatchObject({ output: 'echo: after the cancel', stopReason: 'end_turn' });
      expect(await held()).toEqual([pid]);
    } finally {
      await rt.close();
      await rm(hold, { recursive: true, force: true });
    }
  });

  it('garbage before initialize fails start() and stops the agent', async () => {
    const s = session(fake({ env: { FAKE_ACP_MODE: 'garbage-before-init' } }));
    await expect(s.start()).rejects.toMatchObject({ code: 'UPSTREAM_BAD_RESPONSE', message: expect.stringContaining('Welcome to FakeAgent!') });
    expect(s.status).toBe('closed');
    expect(await until(() => !alive(s.pid!))).toBe(true);
  });

  it('a hung turn times out, and the agent is stopped', async () => {
    const s = await started(fake(), { turnTimeoutMs: 300 });
    const pid = s.pid!;
    await expect(s.prompt('hang')).rejects.toMatchObject({
      code: 'UPSTREAM_TIMEOUT',
      message: 'agent "fake" did not finish the turn within 300 ms; the agent was stopped',
    });
    expect(await until(() => !alive(pid))).toBe(true);
    expect(s.status).toBe('closed');
  });

  it('close() ends the agent and the processes it started (no orphans)', async () => {
    const s = await started();
    const m = /^child (\d+)$/.exec((await s.prompt('spawn-child')).text);
    const agentPid = s.pid!;
    const childPid = Number(m?.[1]);
    expect(alive(agentPid) && alive(childPid)).toBe(true);
    await s.close();
    expect(await until(() => !alive(agentPid) && !alive(childPid), 3_000)).toBe(true);
    await expect(s.prompt('x')).rejects.toThrow('session is closed');
  });

  it('close() during a turn fails that turn clearly', async () => {
    const s = await started();
    let updates = 0;
    const turn = s.prompt('slow', () => void updates++).catch((e: unknown) => e);
    expect(await until(() => updates > 0), 'the turn is streaming').toBe(true);
    await s.close();
    expect(await turn).toMatchObject({ code: 'CANCELLED', message: 'agent "fake" session was closed' });
  });

  it('closeAllAgentSessions() stops every live agent (gateway shutdown)', async () => {
    const a = await started();
    const b = await started();
    await closeAllAgentSessions();
    expect([a.status, b.status]).toEqual(['closed', 'closed']);
    expect(alive(a.pid!) || alive(b.pid!)).toBe(false);
  });

  it('closes itself after the idle timeout', async () => {
    const reasons: string[] = [];
    const s = await started(fake(), { idleTimeoutMs: 300, onClose: (r) => reasons.push(r) });
    await s.prompt('keep alive');
    const pid = s.pid!;
    expect(await until(() => reasons.length > 0, 3_000)).toBe(true); // onClose fires once the process is gone
    expect(reasons).toEqual(['idle']);
    expect(s.status).toBe('closed');
    expect(alive(pid)).toBe(false);
  });

  it('start failures are clear: missing command, wrong protocol, auth required, silence', async () => {
    await expect(session(fake({ command: '/no/such/agent-binary' })).start()).rejects.toMatchObject({
      code: 'UPSTREAM_ERROR',
      message: 'agent "fake": command "/no/such/agent-binary" could not be started (ENOENT)',
    });
    await expect(session(fake({ env: { FAKE_ACP_PROTOCOL: '2' } })).start()).rejects.toMatchObject({
      code: 'UPSTREAM_BAD_RESPONSE',
      message: 'agent "fake" speaks ACP protocol version 2; Switchyard speaks 1',
    });
    await expect(session(fake({ env: { FAKE_ACP_MODE: 'auth-required' } })).start()).rejects.toThrow('agent "fake" requires authentication');
    const silentAgent = session(fake({ env: { FAKE_ACP_MODE: 'silent' } }), { startTimeoutMs: 300 });
    await expect(silentAgent.start()).rejects.toMatchObject({ code: 'UPSTREAM_TIMEOUT', message: 'agent "fake" did not answer initialize within 300 ms' });
    expect(await until(() => !alive(silentAgent.pid!))).toBe(true);
  });
});

describe('probeAgent', () => {
  beforeAll(() => clearProbeCache());

  it('is ok when the command answers initialize, and caches the result', async () => {
    const r = await probeAgent(fake(), 5_000, { log: silent });
    expect(r).toEqual({ ok: true, protocolVersion: 1, agentInfo: { name: 'fake-acp-agent', title: 'Fake ACP Agent', version: '1.0.0' } });
    const t = Date.now();
    expect(await probeAgent(fake(), 5_000, { log: silent })).toBe(r);
    expect(Date.now() - t).toBeLessThan(50);
  });

  it('past its TTL serves the last answer at once while one new probe runs: an agent slow to initialize is never waited for again', async () => {
    const hold = await mkdtemp(path.join(tmpdir(), 'sy-probe-hold-'));
    const held = async () => (await readdir(hold)).filter((f) => f.startsWith('held-')).map((f) => Number(f.slice(5)));
    const spec = fake({ env: { FAKE_ACP_INIT_HOLD: hold } });
    try {
      const first = probeAgent(spec, 10_000, { log: silent, cacheTtlMs: 0 });
      const [pid1] = await waitHeld(held, 1);
      await writeFile(path.join(hold, `release-${pid1}`), '');
      const r1 = await first;
      expect(r1).toMatchObject({ ok: true });
      // past the TTL (0): the last answer, while a new probe starts and is held at initialize
      expect(await probeAgent(spec, 10_000, { log: silent, cacheTtlMs: 0 })).toBe(r1);
      const pids = await waitHeld(held, 2);
      const pid2 = pids.find((p) => p !== pid1)!;
      expect(processAlive(pid2)).toBe(true); // the answer above did not wait for it
      // while that probe runs, callers get the last answer and no other probe starts
      expect(await probeAgent(spec, 10_000, { log: silent, cacheTtlMs: 0 })).toBe(r1);
      expect(await held()).toHaveLength(2);
      // once it answers, its result is the cached one
      await writeFile(path.join(hold, `release-${pid2}`), '');
      let next: unknown = r1;
      for (let i = 0; i < 200 && next === r1; i++) {
        next = await probeAgent(spec, 10_000, { log: silent, cacheTtlMs: 60_000 });
        if (next === r1) await new Promise((r) => setTimeout(r, 25));
      }
      expect(next).not.toBe(r1);
      expect(next).toMatchObject({ ok: true });
      expect(await held()).toHaveLength(2);
    } finally {
      await rm(hold, { recursive: true, force: true });
    }
  });

  it('reports a command that is not found', async () => {
    expect(await probeAgent(fake({ command: 'switchyard-no-such-agent' }), 1_000, { log: silent })).toEqual({
      ok: false,
      reason: 'command "switchyard-no-such-agent" not found on PATH',
    });
    expect(await probeAgent(fake({ command: './nope/agent' }), 1_000, { log: silent })).toEqual({ ok: false, reason: 'command "./nope/agent" not found' });
  });

  it('reports a command that does not speak ACP', async () => {
    const chatty = await probeAgent(fake({ args: ['-e', 'console.log("Hello! I am not an ACP agent"); setInterval(() => {}, 1000)'] }), 2_000, { log: silent });
    expect(chatty).toMatchObject({ ok: false, reason: expect.stringMatching(/did not answer ACP initialize: .*non-JSON-RPC output.*Hello! I am not/) });
    const quiet = await probeAgent(fake({ args: ['-e', 'setInterval(() => {}, 1000)'] }), 300, { log: silent });
    expect(quiet).toEqual({ ok: false, reason: 'agent "fake" did not answer ACP initialize: agent "fake" did not answer initialize within 300 ms' });
    const lines: string[] = [];
    const quits = await probeAgent(fake({ args: ['-e', 'console.error("bad flag"); process.exit(2)'] }), 2_000, {
      log: createLogger({}, (l) => lines.push(l)),
    });
    // the reason is shown to clients: the exit, not the stderr (which goes to the log)
    expect(quits).toMatchObject({ ok: false, reason: 'agent "fake" exited with code 2 before answering initialize (its stderr is in the gateway log)' });
    expect(lines.some((l) => l.includes('agent probe failed') && l.includes('bad flag'))).toBe(true);
  });
});
