/**
 * The logger loads pino at the first line that passes the threshold, not before: a process at `warn` that has
 * nothing to say never loads it (idle RSS). Each run is a fresh Node process, so the module cache is its own.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const LOG = new URL('../../dist/util/log.js', import.meta.url).href;

function run(script: string): string {
  const body = `
    import { createRequire } from 'node:module';
    const req = createRequire(import.meta.url);
    const pinoLoaded = () => Object.keys(req.cache).some((k) => k.includes('/node_modules/pino/'));
    const { createLogger, rootLogger, setLogLevel } = await import(${JSON.stringify(LOG)});
    ${script}`;
  return execFileSync(process.execPath, ['--input-type=module', '-e', body], {
    encoding: 'utf8',
    env: { ...process.env, SWITCHYARD_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

describe('the lazy logger', () => {
  it('does not load pino for lines below the threshold, and loads it at the first line that passes', () => {
    const stdout = run(`
      const lines = [];
      const log = createLogger({ gw: 'g' }, (l) => lines.push(l)).child({ part: 'acp' });
      log.info('below warn', { n: 1 });
      log.debug('below warn too');
      rootLogger.info('and the root logger');
      console.log(JSON.stringify({ before: pinoLoaded(), lines: lines.length }));
      log.warn('now it is written', { n: 2, token: 'sk-should-be-blanked' });
      console.log(JSON.stringify({ after: pinoLoaded(), line: JSON.parse(lines[0]) }));
      setLogLevel('debug');
      log.child({ sub: 1 }).debug('a child made before the load writes too');
      console.log(JSON.stringify({ count: lines.length, last: JSON.parse(lines[1]) }));
    `);
    const [before, after, more] = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(before).toEqual({ before: false, lines: 0 });
    expect(after.after).toBe(true);
    expect(after.line).toMatchObject({ level: 'warn', gw: 'g', part: 'acp', n: 2, token: '[redacted]', msg: 'now it is written' });
    expect(typeof after.line.t).toBe('string');
    expect(more.count).toBe(2);
    expect(more.last).toMatchObject({ level: 'debug', gw: 'g', part: 'acp', sub: 1, msg: 'a child made before the load writes too' });
  });
});
