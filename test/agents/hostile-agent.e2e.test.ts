/**
 * An agent that misbehaves on purpose (the fake ACP agent's hostile turns), behind a real gateway's /acp/rpc:
 * the gateway stays up and responsive, bounds what the agent can make it hold, and ends what belongs to a turn
 * with the turn. Found by fuzzing; each case failed before its fix.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { cleanupDirs, memoryLogger, processAlive, startInProcess, tmpDir, waitFor } from '../helpers/env.js';
import { agentRouting, rpc } from './acp-rpc.js';

const FAKE = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const TOKEN = 'acp-hostile-token-77a1';
const root = tmpDir();
const mem = memoryLogger();
let gw: Gateway;

beforeAll(async () => {
  gw = await startInProcess(
    {
      channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
      acp: {
        tokens: [TOKEN],
        workspaceRoot: root,
        permissionTimeoutMs: 30_000,
        agents: [
          { id: 'ask', label: 'Asks', command: process.execPath, args: [FAKE], permissions: 'ask' },
          { id: 'allow', label: 'Allowed', command: process.execPath, args: [FAKE], permissions: 'allow' },
        ],
      },
    },
    mem.logger,
  );
});
afterAll(async () => {
  await gw?.close();
  cleanupDirs();
});

const call = (method: string, params: Record<string, unknown>) => rpc(gw.url, TOKEN, method, params, 60_000);
const start = (sessionId: string, agent: string, taskPrompt: string) => call('session.start', { sessionId, taskPrompt, routing: agentRouting(agent) });
const stillServes = async (id: string) => expect((await start(id, 'allow', 'hello')).result).toMatchObject({ success: true, output: 'echo: hello' });

describe('a hostile agent', () => {
  it('a permission request nested 5,000 deep is refused as garbage; the gateway stays up past the prompt timeout', async () => {
    const r = await start('deep-1', 'ask', 'deepperm 5000');
    expect(r.result.success).toBe(false);
    expect(mem.lines.some((l) => l.includes('nested deeper than 1024 levels'))).toBe(true);
    await stillServes('deep-after');
  }, 60_000);

  it('at most 16 prompts are open per session; the rest are answered cancelled at once', async () => {
    const turn = start('flood-1', 'ask', 'permflood 40');
    const open = async () => ((await call('xworkmate.permissions.list', { sessionId: 'flood-1' })).result?.items ?? []).length as number;
    await waitFor(async () => (await open()) === 16, '16 open prompts', 20_000);
    await waitFor(() => mem.lines.filter((l) => l.includes('agent permission request refused')).length === 24, 'the other 24 refused');
    expect(await open()).toBe(16);
    await call('session.cancel', { sessionId: 'flood-1' });
    expect((await turn).result).toBeDefined();
    await stillServes('flood-after');
  }, 60_000);

  it('a prompt the agent leaves open when its turn ends is denied then, not answerable later', async () => {
    expect((await start('leave-1', 'ask', 'permleave')).result).toMatchObject({ success: true, output: 'left a prompt open' });
    // the agent was answered `cancelled` when the turn ended (before, the prompt stayed open for 10 minutes)
    const marker = join(root, 'leave-1', '.permleave');
    await waitFor(() => existsSync(marker), "the agent's answer");
    expect(JSON.parse(readFileSync(marker, 'utf8'))).toEqual({ outcome: 'cancelled' });
    // and the app is no longer shown it (its removal from the record is written right after)
    await waitFor(async () => (await call('xworkmate.permissions.list', { sessionId: 'leave-1' })).result.items.length === 0, 'the prompt gone from the list');
  }, 60_000);

  it("a turn's output is bounded: past 16 MiB the turn fails and the agent is stopped", async () => {
    const r = await start('big-1', 'allow', 'bigout 20');
    expect(r.result).toMatchObject({ success: false, status: 'failed', errorCode: 'UPSTREAM_BAD_RESPONSE' });
    expect(r.result.error).toMatch(/output passed 16777216 characters/);
    await stillServes('big-after');
  }, 60_000);

  it('an agent that asks for files and does not read the answers is stopped past 64 MiB unread, not held in memory', async () => {
    // before, every answer waited in the agent's stdin buffer, without bound: the turn hung with 96 MiB held for it
    // (and more for each request the agent sent) until its 30-minute timeout
    expect((await start('unread-1', 'allow', 'write seed.txt x')).result.output).toBe('write ok');
    writeFileSync(join(root, 'unread-1', 'big.txt'), 'b'.repeat(4 * 1024 * 1024));
    const r = await call('session.message', { sessionId: 'unread-1', taskPrompt: 'readflood big.txt 24' });
    expect(r.result).toMatchObject({ success: false, status: 'failed', errorCode: 'UPSTREAM_ERROR' });
    expect(r.result.error).toMatch(/does not read what it is sent: \d+ bytes wait unread on its stdin \(the limit is 67108864\)/);
    expect(mem.lines.some((l) => l.includes('agent does not read its stdin: closing'))).toBe(true);
    await stillServes('unread-after');
  }, 60_000);

  it('a write to a FIFO in its folder is refused at once, and no later session waits behind it', async () => {
    expect((await start('fifo-1', 'allow', 'write seed.txt x')).result.output).toBe('write ok');
    execFileSync('mkfifo', [join(root, 'fifo-1', 'p')]);
    for (let i = 0; i < 5; i++) {
      const r = await call('session.message', { sessionId: 'fifo-1', taskPrompt: 'write p hello' });
      expect(r.result.output).toMatch(/^write error: .*not a regular file/);
    }
    const read = await call('session.message', { sessionId: 'fifo-1', taskPrompt: 'read p' });
    expect(read.result.output).toMatch(/^read error: /);
    await stillServes('fifo-after');
  }, 60_000);

  it("a terminal's background children are killed with it when it is released, though the command itself exited", async () => {
    expect((await start('term-1', 'allow', 'write bg.sh sleep 1002 & echo $!')).result.output).toBe('write ok');
    const r = await call('session.message', { sessionId: 'term-1', taskPrompt: 'terminal sh bg.sh' });
    const pid = Number(/terminal 0: (\d+)/.exec(r.result.output)?.[1]);
    expect(pid).toBeGreaterThan(0);
    // the agent released the terminal at the end of its turn: the group went with it
    await waitFor(() => !processAlive(pid), 'the background sleep to be gone');
    await call('session.close', { sessionId: 'term-1' });
  }, 60_000);

  it('a stop reason ACP does not define reaches the app as end_turn, one it does as it is', async () => {
    expect((await start('stop-1', 'allow', 'stopreason pwned<script>')).result).toMatchObject({ success: true, stopReason: 'end_turn', output: 'stopped' });
    expect((await call('session.message', { sessionId: 'stop-1', taskPrompt: 'stopreason max_tokens' })).result).toMatchObject({ stopReason: 'max_tokens' });
  }, 60_000);
});
