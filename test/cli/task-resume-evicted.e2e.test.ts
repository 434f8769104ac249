/**
 * Regression: the CLI's resume (src/cli/acp-client/resume.ts) ends with the turn's result from
 * `xworkmate.tasks.get`. When the gateway no longer holds the turn's snapshot in memory (evicted: the newest
 * finished ones are kept within eight times `acp.maxStreamBacklogBytes`) it answers from the store, with no
 * `result`, and the resume builds one from the snapshot's fields; it dropped `outputTruncated` / `outputChars`,
 * so an output cut to the result's bound came back as if it were whole (in `switchyard task --json` too).
 *
 * A real gateway process with the fake ACP agent and the smallest stream bound (64 KiB: results of 4096
 * characters, snapshots within 512 KiB); the CLI's own client and resume read it.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcpClient, type SessionUpdate } from '../../src/cli/acp-client/client.js';
import { resumeTurn } from '../../src/cli/acp-client/resume.js';
import { acpRpc, cleanupDirs, startProcess } from '../helpers/env.js';

const TOKEN = 'task-resume-evicted-token-3e71';
const FAKE = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const BACKLOG = 64 * 1024;
const RESULT_CHARS = BACKLOG / 16;
/** the long turn: 2 deltas of 5000 characters, cut to RESULT_CHARS in its result */
const LONG = 'flood 2 5000';
let gw: Awaited<ReturnType<typeof startProcess>>;

beforeAll(async () => {
  gw = await startProcess({
    gateway: { id: 'gw_task_evicted' },
    acp: {
      tokens: [TOKEN],
      maxStreamBacklogBytes: BACKLOG,
      agents: [{ id: 'fake', label: 'Fake', command: process.execPath, args: [FAKE], permissions: 'allow' }],
    },
  });
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  cleanupDirs();
});

const rpc = async (method: string, params: Record<string, unknown>) => (await acpRpc(gw.url, TOKEN, method, params)).result as Record<string, any>;

describe('switchyard task: the resume of a turn the gateway answers from its store', () => {
  it('keeps outputTruncated and outputChars: a cut output is not shown as whole', async () => {
    const long = await rpc('session.start', { sessionId: 'long', taskPrompt: LONG, executionTarget: 'agent', provider: 'fake' });
    expect(long).toMatchObject({ status: 'completed', outputTruncated: true, outputChars: 10_000 });

    // other turns (each snapshot near the largest) until the long one's snapshot left memory: tasks.get answers
    // it from the store, without `result`
    const evicted = async () => !('result' in (await rpc('xworkmate.tasks.get', { sessionId: 'long', runId: long.runId })));
    expect(await evicted()).toBe(false);
    await rpc('session.start', { sessionId: 'filler', taskPrompt: LONG, executionTarget: 'agent', provider: 'fake' });
    let turns = 1;
    while (!(await evicted())) {
      expect(turns, 'the snapshot budget should drop the oldest within 100 turns').toBeLessThan(100);
      expect(await rpc('session.message', { sessionId: 'filler', taskPrompt: LONG })).toMatchObject({ status: 'completed' });
      turns++;
    }
    const stored = await rpc('xworkmate.tasks.get', { sessionId: 'long', runId: long.runId });
    expect(stored).toMatchObject({ status: 'completed', outputTruncated: true, outputChars: 10_000 });

    // the CLI's resume from the start of the turn's updates: every delta, then the result from the store's snapshot
    const client = new AcpClient({ baseUrl: gw.url, token: TOKEN, allowLocal: true });
    const deltas: string[] = [];
    const r = await resumeTurn(client, {
      sessionId: 'long',
      runId: long.runId,
      afterSeq: 0,
      onUpdate: (u: SessionUpdate) => void ((u.type === 'delta' || u.event === 'delta') && deltas.push(u.delta ?? u.text ?? '')),
      notice: () => undefined,
    });
    expect(deltas.join('')).toBe('a'.repeat(5000) + 'b'.repeat(5000));
    expect(r).toMatchObject({ success: true, status: 'completed', sessionId: 'long', runId: long.runId, outputTruncated: true, outputChars: 10_000 });
    expect(r.output).toBe('a'.repeat(RESULT_CHARS));
  }, 120_000);
});
