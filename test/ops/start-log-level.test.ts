/**
 * Regression: an in-process gateway (`startGateway`, what embedders and the tests start) applies
 * `gateway.log.level` under the same rule as `switchyard gateway` and a reload (docs/operations.md, *Logs*):
 * the file's level unless `--log-level` (`setLogLevel`) or SWITCHYARD_LOG chose one. Only the CLI applied it,
 * before calling startGateway, so an in-process gateway configured at `warn` still wrote its info lines.
 *
 * The level is one threshold per process, and SWITCHYARD_LOG is read when the logger module loads: each case
 * runs in a fresh Node process (with exactly the environment it names) that starts a real gateway from dist/
 * on port 0 with a logger keeping its lines, and reports them and the level in effect. The CLI start, which now
 * leaves the file's level to startGateway, is checked on a real `switchyard gateway` process.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { call, chatBody, cleanupDirs, startProcess, tmpDir, waitFor } from '../helpers/env.js';

const dist = (p: string) => new URL(`../../dist/${p}`, import.meta.url).href;

interface Outcome {
  lines: Array<{ level: string; msg: string }>;
  info: boolean;
  debug: boolean;
}

/** Starts a gateway at `gateway.log.level` = `level` in a fresh process; `before` runs first (an embedder's setLogLevel). */
async function start(level: string | undefined, env: NodeJS.ProcessEnv, before = ''): Promise<Outcome> {
  const dir = tmpDir('sy-start-log-');
  const raw = {
    gateway: { port: 0, ...(level ? { log: { level } } : {}) },
    channels: [{ name: 'm', provider: 'mock', models: ['m1'] }],
    store: { kind: 'sqlite', path: './data/start-log.db' },
  };
  const script = `
    const { startGateway } = await import(${JSON.stringify(dist('gateway.js'))});
    const { validateConfig } = await import(${JSON.stringify(dist('config/load.js'))});
    const { createLogger, enabled, setLogLevel } = await import(${JSON.stringify(dist('util/log.js'))});
    ${before}
    const lines = [];
    const logger = createLogger({}, (l) => lines.push(JSON.parse(l)));
    const gw = await startGateway({ config: validateConfig(${JSON.stringify(raw)}, 'test'), path: undefined, baseDir: ${JSON.stringify(dir)} }, { logger });
    const info = enabled('info');
    const debug = enabled('debug');
    await gw.close();
    // exit once written, as the CLI does after close (a timer of the graceful stop would keep the process up)
    process.stdout.write(JSON.stringify({ lines: lines.map((l) => ({ level: l.level, msg: l.msg })), info, debug }), () => process.exit(0));`;
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'SWITCHYARD_LOG'));
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...clean, ...env },
    timeout: 20_000,
  });
  return JSON.parse(stdout) as Outcome;
}

const listening = (o: Outcome) => o.lines.some((l) => l.msg === 'gateway listening');

let proc: Awaited<ReturnType<typeof startProcess>> | undefined;
afterAll(async () => {
  await proc?.stop();
  cleanupDirs();
});

describe('gateway.log.level at an in-process start', () => {
  it('is the level when neither setLogLevel nor SWITCHYARD_LOG chose one: at "warn" the start writes no info line', async () => {
    const warn = await start('warn', {});
    expect(warn).toMatchObject({ info: false, debug: false });
    expect(listening(warn)).toBe(false);

    const debug = await start('debug', {});
    expect(debug).toMatchObject({ info: true, debug: true });
    expect(listening(debug)).toBe(true);

    // absent: info
    const absent = await start(undefined, {});
    expect(absent).toMatchObject({ info: true, debug: false });
    expect(listening(absent)).toBe(true);
  });

  it('does not override SWITCHYARD_LOG', async () => {
    const o = await start('error', { SWITCHYARD_LOG: 'info' });
    expect(o).toMatchObject({ info: true, debug: false });
    expect(listening(o)).toBe(true);
  });

  it('does not override setLogLevel (what --log-level calls)', async () => {
    const o = await start('error', {}, "setLogLevel('debug');");
    expect(o).toMatchObject({ info: true, debug: true });
    expect(listening(o)).toBe(true);
  });

  it('is the level of `switchyard gateway` too: at "debug" a request writes its debug `route` line', async () => {
    proc = await startProcess(
      { gateway: { id: 'gw_startlog', log: { level: 'debug' } }, channels: [{ name: 'm', provider: 'mock', models: ['m1'] }] },
      { SWITCHYARD_LOG: '' },
    );
    expect((await call(proc, '/v1/chat/completions', { body: chatBody('m1', 'hi') })).status).toBe(200);
    const gw = proc;
    const routeLine = () =>
      gw
        .logs()
        .split('\n')
        .some((l) => l.includes('"level":"debug"') && l.includes('"msg":"route"'));
    await waitFor(routeLine, 'the debug route line');
  });
});
