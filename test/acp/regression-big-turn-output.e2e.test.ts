/**
 * A turn whose agent writes 12 MiB (`bigout 12`: twelve 1 MiB chunks), against a real gateway process:
 *
 * - Memory: the gateway's peak RSS stays within a bound. Before the fix each 1 MiB chunk was serialised for the
 *   update log and again, whole envelope, for every stream; the result envelope carried the output twice (and was
 *   serialised twice more on its way out); the session record stored the output twice (as `output` and as an
 *   assistant message, which agent sessions never read) and was parsed and rewritten whole at each change. The
 *   gateway's peak RSS was 375–485 MB for a plain-JSON call (/proc/<pid>/status VmHWM; docs/operations.md).
 * - The result is bounded (acp-rpc spec: the result carries the final text): its `output` is cut to a sixteenth of
 *   `acp.maxStreamBacklogBytes` with `outputTruncated: true` and `outputChars`, so the final envelope fits within the
 *   stream bound; the whole output is in the turn's updates, read from the update log page by page. Before, the
 *   final envelope was 24 MiB: larger than the 8 MiB bound, no client could get it within it.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acpRpc, cleanupDirs, startProcess, type GatewayProcess } from '../helpers/env.js';

type Json = any;

const FAKE = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const ACP = 'big-turn-acp-token-7310';
const MIB = 1024 * 1024;
/**
 * The gateway's `acp.maxStreamBacklogBytes`. Not the 8 MiB default: the streamed test's 12 MiB of output is ~72 MiB
 * of SSE (each update carries its text as `delta` and `text`, its params as `params` and `payload`), and on a
 * loaded CI machine a client reading it as fast as it can fell 8 MiB behind and was cut (as it should be). At
 * 20 MiB a reading client stays under the bound, and the final envelope the code before the fix sent (24 MiB,
 * the output twice) is still over it.
 */
const BOUND = 20 * MIB;
const N = 768;
const SIZE = 16 * 1024;
/** what `flood N SIZE` writes: the i-th chunk all one letter, a–z in turn */
const expected = Array.from({ length: N }, (_, i) => String.fromCharCode(97 + (i % 26)).repeat(SIZE)).join('');
const routing = { routingMode: 'explicit', explicitExecutionTarget: 'agent', explicitProviderId: 'fake' };

let gw: GatewayProcess;

beforeAll(async () => {
  gw = await startProcess({
    gateway: { id: 'gw_big_turn' },
    acp: {
      tokens: [ACP],
      maxStreamBacklogBytes: BOUND,
      agents: [{ id: 'fake', label: 'Fake', command: process.execPath, args: [FAKE], permissions: 'allow' }],
    },
  });
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  cleanupDirs();
});

/** the gateway process's resident set now and at its peak, MiB (Linux /proc) */
function rss(): { now: number; peak: number } {
  const s = readFileSync(`/proc/${gw.proc.pid}/status`, 'utf8');
  const kib = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1]);
  return { now: kib('VmRSS') / 1024, peak: kib('VmHWM') / 1024 };
}

describe('a turn that outputs 12 MiB', () => {
  it('holds the gateway’s peak RSS to less than 22 MiB per MiB of output, and its result is bounded and says so', async () => {
    // the agent process and the session first: what is measured is the turn
    const warm = await acpRpc(gw.url, ACP, 'session.start', { sessionId: 'big', taskPrompt: 'hello', routing });
    expect(warm.result).toMatchObject({ success: true });
    const before = rss();
    const r = await acpRpc(gw.url, ACP, 'session.message', { sessionId: 'big', taskPrompt: 'bigout 12' });
    const after = rss();
    // measured on a 2-core machine, six runs each: 305–415 MiB above the idle gateway (~71 MiB) before the fix,
    // 185–230 MiB after
    expect(after.peak - before.now, `peak ${after.peak.toFixed(0)} MiB, idle ${before.now.toFixed(0)} MiB`).toBeLessThan(265);

    expect(r.result).toMatchObject({ success: true, status: 'completed', outputTruncated: true, outputChars: 12 * MIB });
    expect(r.result.output).toBe('m'.repeat(BOUND / 16));
    expect(r.result.summary).toBe('m'.repeat(279) + '…');
    // tasks.get says the same (from memory now, from the store after a restart)
    const snap = (await acpRpc(gw.url, ACP, 'xworkmate.tasks.get', { sessionId: 'big' })).result;
    expect(snap).toMatchObject({ status: 'completed', outputTruncated: true, outputChars: 12 * MIB, progress: { outputChars: 12 * MIB } });
    expect(snap.output).toHaveLength(BOUND / 16);
  }, 120_000);

  it('streamed: the final envelope fits within acp.maxStreamBacklogBytes; the whole output comes from the update log, a page at a time', async () => {
    // 12 MiB again, in 768 chunks of 16 KiB (a reading client stays under the bound before the result)
    const res = await fetch(`${gw.url}/acp/rpc`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ACP}`, 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 'big-2', method: 'session.message', params: { sessionId: 'big', taskPrompt: `flood ${N} ${SIZE}` } }),
    });
    const messages = (await res.text()).split('\n\n').filter((b) => b.startsWith('data: '));
    expect(messages.at(-1)).toBe('data: [DONE]');
    const final = messages.at(-2)!;
    expect(Buffer.byteLength(final)).toBeLessThan(BOUND);
    const env = JSON.parse(final.slice(6));
    expect(env).toMatchObject({ id: 'big-2', ok: true, result: { status: 'completed', outputTruncated: true, outputChars: 12 * MIB } });
    expect(env.result.output).toBe(expected.slice(0, BOUND / 16));
    const updates: Json[] = messages.slice(0, -2).map((m) => JSON.parse(m.slice(6)).params);
    const first = updates.find((u) => u.runId === env.result.runId && u.type === 'status').seq as number;

    let text = '';
    let after = first - 1;
    for (;;) {
      const page = (await acpRpc(gw.url, ACP, 'xworkmate.tasks.get', { sessionId: 'big', afterSeq: after, limit: 100 })).result;
      for (const u of page.updates) if (u.type === 'delta' && u.runId === env.result.runId) text += u.delta;
      if (page.updates.length === 0 || page.updates.at(-1).seq >= page.lastSeq) break;
      after = page.updates.at(-1).seq;
    }
    expect(text.length).toBe(12 * MIB);
    expect(text === expected).toBe(true);
  }, 120_000);
});
