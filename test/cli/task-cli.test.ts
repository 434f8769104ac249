/**
 * The `switchyard task` CLI end to end: the real binary (bin/switchyard, built) against a real gateway process
 * serving /acp/rpc with a `channels` gateway provider over a slow mock channel and a fake ACP agent. Covers the
 * providers table, live streaming, continuation, cancel (command and Ctrl-C), close, the continuation error,
 * unavailable providers, and the app-side routing rules (refused bases, managed vs local mode).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TurnPrinter, failureReason, renderProviders } from '../../src/cli/task.js';
import { cleanupDirs, startProcess, waitFor, writeFileIn, BIN } from '../helpers/env.js';

const TOKEN = 'task-cli-acp-token-4b2e';
const FAKE_AGENT = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
let gw: Awaited<ReturnType<typeof startProcess>>;

const CLEAN_ENV = { SWITCHYARD_URL: '', SWITCHYARD_ACP_TOKEN: '', SWITCHYARD_ADMIN_TOKEN: '', SWITCHYARD_CONFIG: '' };
const STACK = /\bat \S+:\d+/;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...CLEAN_ENV, ...env }, timeout: 20_000, cwd: gw.dir }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, signal: (err as { signal?: NodeJS.Signals } | null)?.signal ?? null, stdout, stderr });
    });
  });
}

/** A CLI process whose stdout is watched as it arrives (with arrival times), for streaming and Ctrl-C tests. */
function live(args: string[], env: NodeJS.ProcessEnv = {}) {
  const proc = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...CLEAN_ENV, ...env }, cwd: gw.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks: Array<{ at: number; text: string }> = [];
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (b: Buffer) => {
    chunks.push({ at: Date.now(), text: b.toString() });
    stdout += b.toString();
  });
  proc.stderr.on('data', (b: Buffer) => void (stderr += b.toString()));
  const killer = setTimeout(() => proc.kill('SIGKILL'), 25_000);
  const done = new Promise<Run>((resolve) =>
    proc.once('close', (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, stdout, stderr });
    }),
  );
  return { proc, chunks, stdout: () => stdout, stderr: () => stderr, done };
}

const remote = () => ['--url', gw.url, '--token', TOKEN, '--local'];
const words = (n: number, w = 'word') => Array.from({ length: n }, (_, i) => `${w}${i}`).join(' ');
const lines = (s: string) => s.trimEnd().split('\n');

beforeAll(async () => {
  gw = await startProcess({
    gateway: { id: 'gw_task_cli' },
    channels: [{ name: 'mock-1', provider: 'mock', models: ['mock-1'], options: { chunkDelayMs: 50 } }],
    acp: {
      tokens: [TOKEN],
      agents: [
        { id: 'fake', label: 'Fake Agent', command: process.execPath, args: [FAKE_AGENT], permissions: 'allow' },
        { id: 'ghost', label: 'Ghost Agent', command: 'switchyard-test-no-such-agent-command' },
      ],
      gateways: [{ id: 'switchyard', label: 'Switchyard', kind: 'channels', model: 'mock-1' }],
    },
  });
});

afterAll(async () => {
  await gw?.stop();
  cleanupDirs();
});

describe('switchyard task providers', { timeout: 90_000 }, () => {
  it('prints agents and gateway providers with availability', async () => {
    const r = await cli(['task', 'providers', ...remote()]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const [header, ...rows] = lines(r.stdout);
    expect(header).toMatch(/^ID\s+LABEL\s+TARGET\s+ENABLED\s+UNAVAILABLE REASON$/);
    expect(rows).toHaveLength(3);
    expect(rows[0]).toMatch(/^fake\s+Fake Agent\s+agent\s+yes\s+-$/);
    expect(rows[1]).toMatch(/^ghost\s+Ghost Agent\s+agent\s+no\s+\S.*$/);
    expect(rows[2]).toMatch(/^switchyard\s+Switchyard\s+gateway\s+yes\s+-$/);
  });

  it('--json gives the catalog as the gateway reports it', async () => {
    const r = await cli(['task', 'providers', ...remote(), '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.availableExecutionTargets).toEqual(['agent', 'gateway']);
    expect(j.providerCatalog.map((p: any) => [p.providerId, p.enabled])).toEqual([
      ['fake', true],
      ['ghost', false],
    ]);
    expect(typeof j.providerCatalog[1].unavailableReason).toBe('string');
    expect(j.gatewayProviders).toEqual([{ providerId: 'switchyard', label: 'Switchyard', targets: ['gateway'], enabled: true }]);
  });
});

describe('switchyard task run / message', { timeout: 90_000 }, () => {
  it('streams the reply live, then one final line; exit 0', async () => {
    const prompt = words(12);
    const p = live(['task', 'run', ...remote(), '--gateway', 'switchyard', prompt]);
    const r = await p.done;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = lines(r.stdout);
    expect(out[0]).toMatch(/^\[session\] task-[0-9a-f]{12} \(new\)$/);
    const sessionId = /task-[0-9a-f]{12}/.exec(out[0]!)![0];
    expect(out[1]).toMatch(/^\[started\] turn \S+$/);
    expect(out[2]).toBe(`[mock mock-1] You said: ${prompt}`);
    expect(out[3]).toBe(`[done] status=completed stopReason=end_turn session=${sessionId} via=gateway:switchyard model=mock-1`);
    expect(out).toHaveLength(4);
    // live: the text came in several writes spread over time (50 ms per mock chunk), before the final line
    const textWrites = p.chunks.filter((c) => /word\d/.test(c.text));
    expect(textWrites.length).toBeGreaterThan(2);
    const doneAt = p.chunks.find((c) => c.text.includes('[done]'))!.at;
    expect(doneAt - textWrites[0]!.at).toBeGreaterThan(200);
  });

  it('auto routing (no --provider/--gateway) and --json: NDJSON updates then the result', async () => {
    const r = await cli(['task', 'run', ...remote(), '--session', 'cli-json-1', '--json', 'hello json']);
    expect(r.code).toBe(0);
    const msgs = lines(r.stdout).map((l) => JSON.parse(l));
    const updates = msgs.slice(0, -1);
    expect(updates.length).toBeGreaterThan(1);
    for (const u of updates) {
      expect(u.method).toBe('session.update');
      expect(u.params).toMatchObject({ sessionId: 'cli-json-1', threadId: 'cli-json-1' });
      expect(typeof u.params.turnId).toBe('string');
    }
    const seqs = updates.map((u: any) => u.params.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    // auto picks the first enabled agent: the fake agent echoes
    expect(msgs.at(-1).result).toMatchObject({ status: 'completed', sessionId: 'cli-json-1', output: 'echo: hello json', resolvedProviderId: 'fake' });
  });

  it('message continues the session (same session id, a new turn; unquoted words joined)', async () => {
    const first = await cli(['task', 'run', ...remote(), '--gateway', 'switchyard', '--session', 'cli-cont-1', 'first turn']);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^\[session\] cli-cont-1\n/);
    // unquoted words are one prompt
    const second = await cli(['task', 'message', ...remote(), '--session', 'cli-cont-1', 'second', 'turn']);
    expect(second.stderr).toBe('');
    expect(second.code).toBe(0);
    expect(second.stdout).toContain('[mock mock-1] You said: second turn');
    expect(lines(second.stdout).at(-1)).toBe('[done] status=completed stopReason=end_turn session=cli-cont-1 via=gateway:switchyard model=mock-1');
    const turns = [first, second].map((r) => /\[started\] turn (\S+)/.exec(r.stdout)![1]);
    expect(turns[0]).not.toBe(turns[1]);
  });

  it('agent tool calls and plans are one-line events between the text', async () => {
    const tool = await cli(['task', 'run', ...remote(), '--provider', 'fake', '--session', 'cli-tool-1', 'tool']);
    expect(tool.code).toBe(0);
    expect(lines(tool.stdout)).toEqual([
      '[session] cli-tool-1',
      expect.stringMatching(/^\[started\] turn \S+$/),
      '[tool] Reading notes.md (pending)',
      '[tool] Reading notes.md → in_progress',
      '[tool] Reading notes.md → completed',
      'tool done',
      '[done] status=completed stopReason=end_turn session=cli-tool-1 via=agent:fake',
    ]);
    const plan = await cli(['task', 'message', ...remote(), '--session', 'cli-tool-1', 'plan']);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toContain('[plan] look around [completed] · make a change [in_progress] · run the tests [pending]\nplanned\n[done] status=completed');
    await cli(['task', 'close', ...remote(), '--session', 'cli-tool-1']);
  });

  it('an unavailable provider: final line, the reason on stderr in one line, exit 1', async () => {
    const r = await cli(['task', 'run', ...remote(), '--provider', 'ghost', '--session', 'cli-ghost', 'hi']);
    expect(r.code).toBe(1);
    expect(lines(r.stdout).at(-1)).toMatch(/^\[done\] status=unavailable stopReason=- session=cli-ghost via=agent:ghost$/);
    expect(r.stderr).toMatch(/^switchyard: task unavailable: PROVIDER_UNAVAILABLE: \S.*\n$/);
    const g = await cli(['task', 'run', ...remote(), '--gateway', 'nope', 'hi']);
    expect(g.code).toBe(1);
    expect(g.stderr).toMatch(/^switchyard: task unavailable: GATEWAY_PROVIDER_UNAVAILABLE: \S.*\n$/);
  });

  it('--provider with --gateway, or an empty prompt, is refused before sending', async () => {
    const both = await cli(['task', 'run', ...remote(), '--provider', 'fake', '--gateway', 'switchyard', 'x']);
    expect(both.code).toBe(1);
    expect(both.stderr).toBe('switchyard: use --provider (an agent) or --gateway (a gateway provider), not both\n');
    const empty = await cli(['task', 'run', ...remote(), '  ']);
    expect(empty.code).toBe(1);
    expect(empty.stderr).toBe('switchyard: the prompt is empty\n');
  });
});

describe('switchyard task cancel / close / Ctrl-C', { timeout: 90_000 }, () => {
  it('task cancel ends a running turn as cancelled; the run exits 1 with the reason', async () => {
    const p = live(['task', 'run', ...remote(), '--gateway', 'switchyard', '--session', 'cli-cancel-1', words(200)]);
    await waitFor(() => p.stdout().includes('You said'), 'text streaming', 10_000);
    const c = await cli(['task', 'cancel', ...remote(), '--session', 'cli-cancel-1']);
    expect(c.code).toBe(0);
    expect(c.stdout).toBe('cancel sent to session cli-cancel-1; its running turn ends as cancelled\n');
    const r = await p.done;
    expect(r.code).toBe(1);
    expect(lines(r.stdout).at(-1)).toBe('[done] status=cancelled stopReason=cancelled session=cli-cancel-1 via=gateway:switchyard model=mock-1');
    expect(r.stdout).not.toContain('word199');
    expect(r.stderr).toBe('switchyard: task cancelled\n');
    const again = await cli(['task', 'cancel', ...remote(), '--session', 'cli-cancel-1', '--json']);
    expect(JSON.parse(again.stdout)).toEqual({ accepted: true, cancelled: false, runCancelled: false });
  });

  it('Ctrl-C sends session.cancel once and waits for the cancelled result', async () => {
    const p = live(['task', 'run', ...remote(), '--gateway', 'switchyard', '--session', 'cli-sigint-1', words(200)]);
    await waitFor(() => p.stdout().includes('You said'), 'text streaming', 10_000);
    p.proc.kill('SIGINT');
    const r = await p.done;
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/\n\[cancel\] sending session\.cancel for cli-sigint-1 \(Ctrl-C again to exit now\)\n/);
    expect(lines(r.stdout).at(-1)).toBe('[done] status=cancelled stopReason=cancelled session=cli-sigint-1 via=gateway:switchyard model=mock-1');
    expect(r.stderr).toBe('switchyard: task cancelled\n');
  });

  it('a second Ctrl-C exits at once (130) even if the turn does not end', async () => {
    // The fake agent's "hang" turn ignores session/cancel. Wait until the turn runs INSIDE the agent (the
    // "running" status, printed by --json): a cancel that arrives while the agent is still starting ends the
    // turn at once, which is right, but is not what this test is about.
    // So the session is warmed first (its agent process is up), then the hanging turn is sent to it.
    expect((await cli(['task', 'run', ...remote(), '--provider', 'fake', '--session', 'cli-sigint-2', 'warm up'])).code).toBe(0);
    const p = live(['task', 'message', ...remote(), '--json', '--session', 'cli-sigint-2', 'hang']);
    await waitFor(() => p.stdout().includes('"event":"running"'), 'turn running in the agent', 15_000);
    p.proc.kill('SIGINT');
    await waitFor(() => p.stderr().includes('[cancel]'), 'cancel notice', 5_000);
    const t0 = Date.now();
    p.proc.kill('SIGINT');
    const r = await p.done;
    // "at once" = without waiting out the first Ctrl-C's 15 s cancel window (bound kept below it, with room for a loaded CI box)
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(r.code).toBe(130);
    expect(r.stderr).toContain('switchyard: interrupted');
    const closed = await cli(['task', 'close', ...remote(), '--session', 'cli-sigint-2']);
    expect(closed.stdout).toBe('session cli-sigint-2 closed\n');
  });

  it('close, then message: the continuation error in one line, exit 1', async () => {
    expect((await cli(['task', 'run', ...remote(), '--gateway', 'switchyard', '--session', 'cli-close-1', 'hi'])).code).toBe(0);
    const c = await cli(['task', 'close', ...remote(), '--session', 'cli-close-1']);
    expect(c.code).toBe(0);
    expect(c.stdout).toBe('session cli-close-1 closed\n');
    const m = await cli(['task', 'message', ...remote(), '--session', 'cli-close-1', 'are you there?']);
    expect(m.code).toBe(1);
    expect(m.stdout).toBe('');
    expect(m.stderr).toMatch(/^switchyard: .*cli-close-1.* \(SESSION_CONTINUATION_UNAVAILABLE\)\n$/);
    expect(m.stderr).not.toMatch(STACK);
    const unknown = await cli(['task', 'message', ...remote(), '--session', 'cli-never-started', 'hi']);
    expect(unknown.stderr).toMatch(/^switchyard: .* \(SESSION_CONTINUATION_UNAVAILABLE\)\n$/);
    const again = await cli(['task', 'close', ...remote(), '--session', 'cli-close-1', '--json']);
    expect(JSON.parse(again.stdout)).toEqual({ accepted: true, closed: false });
  });
});

describe('switchyard task: base URL rules and remote errors', { timeout: 90_000 }, () => {
  it.each([
    ['/acp-server/codex', /refusing ACP base http:\/\/127\.0\.0\.1:\d+\/acp-server\/codex\/acp\/rpc: paths under \/acp-server\/ are provider-direct routes/],
    ['/acp-server', /paths under \/acp-server\/ are provider-direct routes/],
    [
      '/gateway/openclaw',
      /refusing ACP base http:\/\/127\.0\.0\.1:\d+\/gateway\/openclaw\/acp\/rpc: paths under \/gateway\/ \(e\.g\. \/gateway\/openclaw\) are not ACP endpoints/,
    ],
    ['/gateway', /paths under \/gateway\//],
  ])('a %s base is refused, even with --local', async (path, msg) => {
    const r = await cli(['task', 'providers', '--url', gw.url + path, '--token', TOKEN, '--local']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(msg);
    expect(lines(r.stderr)).toHaveLength(1);
  });

  it('a loopback --url is refused in managed mode (without --local), before anything is sent', async () => {
    const r = await cli(['task', 'run', '--url', gw.url, '--token', TOKEN, '--session', 'cli-managed', 'hi']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      /^switchyard: refusing ACP base http:\/\/127\.0\.0\.1:\d+\/acp\/rpc: 127\.0\.0\.1 is a loopback\/LAN address, which managed mode never calls; opt in to local use \(--local\)/,
    );
    expect(lines(r.stderr)).toHaveLength(1);
    // nothing ran: the session does not exist on the gateway
    const m = await cli(['task', 'message', ...remote(), '--session', 'cli-managed', 'hi']);
    expect(m.stderr).toMatch(/SESSION_CONTINUATION_UNAVAILABLE/);
  });

  it('$SWITCHYARD_URL counts as an explicit base (needs --local); a LAN --url too', async () => {
    const env = { SWITCHYARD_URL: gw.url, SWITCHYARD_ACP_TOKEN: TOKEN };
    const refused = await cli(['task', 'providers'], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/loopback\/LAN address/);
    const ok = await cli(['task', 'providers', '--local'], env);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^ID\s+LABEL/);
    const lan = await cli(['task', 'providers', '--url', 'http://192.168.1.20:18789/acp', '--token', TOKEN]);
    expect(lan.stderr).toMatch(/^switchyard: refusing ACP base http:\/\/192\.168\.1\.20:18789\/acp\/rpc: 192\.168\.1\.20 is a loopback\/LAN address/);
  });

  it('a base from the config file implies local use (host, port and ACP token from the config)', async () => {
    const port = new URL(gw.url).port;
    const cfg = await writeFileIn(
      gw.dir,
      'task-cli-client.json5',
      JSON.stringify({ gateway: { host: '127.0.0.1', port: Number(port) }, acp: { tokens: [TOKEN] } }),
    );
    const r = await cli(['task', 'providers', '--config', cfg]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/switchyard\s+Switchyard\s+gateway\s+yes/);
  });

  it('a wrong ACP token is one line naming where to set it, exit 1, no stack', async () => {
    const r = await cli(['task', 'providers', '--url', gw.url, '--token', 'wrong-token', '--local']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^switchyard: ACP token rejected by http:\/\/127\.0\.0\.1:\d+: .+ \(use --token, \$SWITCHYARD_ACP_TOKEN or acp\.tokens in the config\)\n$/,
    );
    expect(r.stderr).not.toMatch(STACK);
    expect(r.stderr).not.toContain('wrong-token');
  });

  it('a gateway that is down is one line, exit 1', async () => {
    const r = await cli(['task', 'run', '--url', 'http://127.0.0.1:9', '--token', TOKEN, '--local', 'hi']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('switchyard: cannot reach the gateway at http://127.0.0.1:9 (ECONNREFUSED); is it running?\n');
  });
});

describe('TurnPrinter (rendering, in process)', () => {
  const upd = (seq: number, f: Record<string, unknown>) => ({ method: 'session.update', params: { sessionId: 's', threadId: 's', turnId: 't1', seq, ...f } });
  const render = (verbose: boolean, ...ns: Array<{ method: string; params: Record<string, unknown> }>) => {
    let text = '';
    const p = new TurnPrinter((s) => void (text += s), verbose);
    for (const n of ns) p.notification(n);
    return { p, text: () => text };
  };

  it('an event after text mid-line starts on a new line; consecutive deltas are joined', () => {
    const { text } = render(
      false,
      upd(1, { type: 'delta', event: 'delta', delta: 'Hel' }),
      upd(2, { type: 'delta', event: 'delta', text: 'lo' }),
      upd(3, { type: 'step', event: 'tool_call', structuredEvent: { sessionUpdate: 'tool_call', toolCallId: 'c9', kind: 'execute', status: 'pending' } }),
      upd(4, { type: 'step', event: 'tool_call', structuredEvent: { sessionUpdate: 'tool_call_update', toolCallId: 'c9', status: 'failed' } }),
      upd(5, { type: 'delta', event: 'delta', delta: 'done\n' }),
      upd(6, { type: 'status', event: 'queued' }),
    );
    expect(text()).toBe('Hello\n[tool] execute (pending)\n[tool] execute → failed\ndone\n[queued] waiting for the previous turn of this session\n');
  });

  it('keepalives, running and agent chatter only with --verbose; terminal statuses never (the final line says it)', () => {
    const ns = [
      { method: 'xworkmate.bridge.keepalive', params: { intervalMs: 20000 } },
      upd(1, { type: 'status', event: 'running' }),
      upd(2, {
        type: 'step',
        event: 'running',
        structuredEvent: { sessionUpdate: 'agent_thought_chunk', content: { type: 'text', text: 'hmm\nlet me think' } },
      }),
      upd(3, { type: 'status', event: 'completed', text: 'the whole output' }),
    ];
    expect(render(false, ...ns).text()).toBe('');
    expect(render(true, ...ns).text()).toBe('[keepalive]\n[running]\n[agent_thought_chunk] hmm let me think\n');
  });

  it('the final line; the output is shown when no delta carried it', () => {
    const { p, text } = render(false);
    p.result(
      {
        success: true,
        status: 'completed',
        output: 'all at once',
        stopReason: 'end_turn',
        resolvedExecutionTarget: 'single-agent',
        resolvedProviderId: 'codex',
        resolvedModel: '',
      },
      's',
    );
    expect(text()).toBe('all at once\n[done] status=completed stopReason=end_turn session=s via=agent:codex\n');
  });

  it('failure reasons are one line', () => {
    expect(failureReason({ success: false, status: 'failed', error: 'provider returned no\ndisplayable output' })).toBe(
      'task failed: provider returned no displayable output',
    );
    expect(
      failureReason({ success: false, status: 'unavailable', unavailableCode: 'PROVIDER_UNAVAILABLE', unavailableMessage: 'agent "x" is not configured' }),
    ).toBe('task unavailable: PROVIDER_UNAVAILABLE: agent "x" is not configured');
    expect(failureReason({ success: false, status: 'cancelled' })).toBe('task cancelled');
  });

  it('an empty catalog says so', () => {
    expect(renderProviders([], [])).toBe('no providers (acp.agents and acp.gateways are empty)\n');
  });
});
