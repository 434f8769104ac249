/**
 * Regression: `switchyard task` in text mode never said that a turn's output was cut in its result
 * (`outputTruncated`, `outputChars`: only `--json` showed them). It now says so on stderr, one line: how much of
 * the output the terminal showed, or, when the stream showed it whole, that the result holds less.
 *
 * The real binary against a real gateway process with the fake ACP agent and the smallest stream bound (64 KiB:
 * results of 4096 characters); the turn is 2 deltas of 5000 characters.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { truncationNotice } from '../../src/cli/task.js';
import { BIN, cleanupDirs, startProcess } from '../helpers/env.js';

const TOKEN = 'task-output-truncated-token-91c4';
const FAKE = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const CLEAN_ENV = { SWITCHYARD_URL: '', SWITCHYARD_ACP_TOKEN: '', SWITCHYARD_ADMIN_TOKEN: '', SWITCHYARD_CONFIG: '' };
let gw: Awaited<ReturnType<typeof startProcess>>;

beforeAll(async () => {
  gw = await startProcess({
    gateway: { id: 'gw_task_truncated' },
    acp: {
      tokens: [TOKEN],
      maxStreamBacklogBytes: 64 * 1024,
      agents: [{ id: 'fake', label: 'Fake', command: process.execPath, args: [FAKE], permissions: 'allow' }],
    },
  });
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  cleanupDirs();
});

function task(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, 'task', ...args, '--url', gw.url, '--token', TOKEN, '--local'],
      { env: { ...process.env, ...CLEAN_ENV }, timeout: 30_000, cwd: gw.dir, maxBuffer: 1 << 24 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('switchyard task: an output cut in the result', () => {
  it('text mode says so on stderr, one line; --json carries it in the result as before', async () => {
    const run = await task(['run', '--provider', 'fake', '--session', 'cut-text', 'flood 2 5000']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('a'.repeat(5000) + 'b'.repeat(5000));
    expect(run.stderr).toBe('switchyard: output truncated in the result: 4096 of 10000 characters (the streamed text above is whole)\n');

    const json = await task(['run', '--json', '--provider', 'fake', '--session', 'cut-json', 'flood 2 5000']);
    expect(json.code, json.stderr).toBe(0);
    const result = JSON.parse(json.stdout.trim().split('\n').pop()!).result;
    expect(result).toMatchObject({ status: 'completed', outputTruncated: true, outputChars: 10_000 });
    expect(json.stderr).toBe('');

    // a turn that fits says nothing
    const small = await task(['run', '--provider', 'fake', '--session', 'whole', 'hello']);
    expect(small.code, small.stderr).toBe(0);
    expect(small.stderr).toBe('');
  }, 60_000);

  it('says how much the terminal showed when it showed less than the whole', () => {
    const r = { success: true, status: 'completed', output: 'a'.repeat(4096), outputTruncated: true, outputChars: 10_000 };
    expect(truncationNotice(r, 4096)).toBe('output truncated: 4096 of 10000 characters shown');
    expect(truncationNotice({ ...r, outputTruncated: undefined, outputChars: undefined }, 4096)).toBeUndefined();
  });
});
