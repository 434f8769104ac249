/**
 * `switchyard task` (the real binary) against a real gateway process whose stream it reads too slowly: the gateway
 * cuts it with CLIENT_TOO_SLOW past `acp.maxStreamBacklogBytes`; the CLI resumes from the update log after the
 * `lastSeq` the cut named, says so on stderr, prints every update once and ends with the turn's result (exit 0).
 * Before the fix it gave up at the cut: exit 1 with the CLIENT_TOO_SLOW message, the rest of the turn unseen.
 *
 * Slow for real: the CLI process is stopped (SIGSTOP) while the turn floods it, so it reads nothing and the
 * gateway's writes pile up in its socket; it is let go (SIGCONT) once the gateway cut it and the turn ended. The
 * agent holds its start (FAKE_ACP_INIT_HOLD) until the CLI is stopped, so the flood never starts early.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acpRpc, BIN, cleanupDirs, startProcess, tmpDir, waitFor } from '../helpers/env.js';
import { parseProm, value } from '../ops/prom-text.js';

const TOKEN = 'task-resume-acp-token-6620';
const FAKE = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const CLEAN_ENV = { SWITCHYARD_URL: '', SWITCHYARD_ACP_TOKEN: '', SWITCHYARD_ADMIN_TOKEN: '', SWITCHYARD_CONFIG: '' };
/** 400 chunks of 16 KiB: about 40 MB of SSE, far past the bound and what the sockets' buffers take */
const N = 400;
const SIZE = 16 * 1024;
const hold = tmpDir('sy-task-resume-');
let gw: Awaited<ReturnType<typeof startProcess>>;

beforeAll(async () => {
  gw = await startProcess({
    gateway: { id: 'gw_task_resume' },
    acp: {
      tokens: [TOKEN],
      maxStreamBacklogBytes: 65536,
      agents: [{ id: 'fake', label: 'Fake', command: process.execPath, args: [FAKE], permissions: 'allow', env: { FAKE_ACP_INIT_HOLD: hold } }],
    },
  });
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  cleanupDirs();
});

const cutCount = async () => value(parseProm(await (await fetch(`${gw.url}/metrics`)).text()), 'switchyard_acp_streams_cut_total', { transport: 'sse' }) ?? 0;

describe('switchyard task: a stream cut for a slow client', () => {
  it('resumes from the update log after lastSeq, says so on stderr, and shows the whole turn once', async () => {
    const proc = spawn(
      process.execPath,
      [BIN, 'task', 'run', '--url', gw.url, '--token', TOKEN, '--local', '--provider', 'fake', '--session', 'slow-cli', `flood ${N} ${SIZE}`],
      {
        env: { ...process.env, ...CLEAN_ENV },
        cwd: gw.dir,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (b: Buffer) => void (stdout += b.toString()));
    proc.stderr.on('data', (b: Buffer) => void (stderr += b.toString()));
    const exited = new Promise<number | null>((r) => proc.once('close', (code) => r(code)));
    try {
      // the turn is in once its agent is held at its start (a held file names the process's folder: the session's);
      // any other agent process (the gateway's availability probe) is let go at once
      const release = (f: string) => writeFileSync(join(hold, f.replace('held-', 'release-')), '');
      const mine = await waitFor(
        () => {
          for (const f of readdirSync(hold).filter((x) => x.startsWith('held-'))) {
            if (readFileSync(join(hold, f), 'utf8').endsWith('slow-cli')) return f;
            release(f);
          }
          return undefined;
        },
        'the session’s agent held at its start',
        30_000,
      );
      proc.kill('SIGSTOP');
      release(mine);
      await waitFor(async () => (await cutCount()) >= 1, 'the gateway to cut the stopped client', 60_000);
      await waitFor(
        async () => (await acpRpc(gw.url, TOKEN, 'xworkmate.tasks.get', { sessionId: 'slow-cli' })).result?.status === 'completed',
        'the turn to end',
        60_000,
      );
    } finally {
      proc.kill('SIGCONT');
    }
    const code = await exited;
    expect(stderr).toMatch(/CLIENT_TOO_SLOW\); resuming from the update log after seq \d+ \(resume 1 of 3\)/);
    expect(code, stderr).toBe(0);
    const expected = Array.from({ length: N }, (_, i) => String.fromCharCode(97 + (i % 26)).repeat(SIZE)).join('');
    // every delta once, in order, between the start line and the result line
    const text = stdout.slice(stdout.indexOf('\n', stdout.indexOf('[started] turn')) + 1, stdout.lastIndexOf('\n[done] '));
    expect(text.length).toBe(expected.length);
    expect(text === expected).toBe(true);
    expect(stdout).toMatch(/\n\[done\] status=completed stopReason=end_turn session=slow-cli via=agent:fake\n$/);
  }, 120_000);
});
