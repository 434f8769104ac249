/**
 * A real gateway process: usage records batched for a minute are all written on SIGTERM (none lost, checked
 * in the SQLite file before and after), and the `switchyard keys …` / `switchyard usage …` commands against
 * the restarted process, as tables and --json.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, type GatewayProcess } from '../helpers/env.js';
import { cleanupDirs, startProcess, tmpDir } from '../helpers/env.js';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import { ask, chat, createKey } from './helpers.js';

const ADMIN = 'admin-token-keys-cli-5772';
let up: OpenAiFake;
let dir: string;
let gw: GatewayProcess;
let cfg: Record<string, any>;

beforeAll(async () => {
  up = await startOpenAiUpstream({ reply: 'counted' });
  dir = tmpDir();
  cfg = {
    gateway: { admin: { token: ADMIN }, usage: { flushIntervalMs: 60_000, maxBatch: 10_000 } },
    channels: [
      { name: 'oa', provider: 'openai', baseUrl: up.channel.baseUrl, apiKey: up.channel.apiKey, models: ['gpt-4o-mini'], pricing: { input: 3, output: 15 } },
    ],
  };
  gw = await startProcess(cfg, {}, dir);
});

afterAll(async () => {
  await gw?.stop();
  await up?.close();
  cleanupDirs();
});

const cli = (...args: string[]) => {
  const r = spawnSync(process.execPath, [BIN, ...args, '--url', gw.url, '--token', ADMIN], { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
};

const usageRows = () => {
  const db = new Database(join(dir, 'data', 'switchyard.db'), { readonly: true });
  try {
    return db.prepare('SELECT COUNT(*) AS n, SUM(input_tokens) AS i, SUM(output_tokens) AS o FROM usage_records').get() as {
      n: number;
      i: number | null;
      o: number | null;
    };
  } finally {
    db.close();
  }
};

describe('usage survives SIGTERM; the keys and usage commands', () => {
  it('SIGTERM with 24 records pending writes all of them', async () => {
    const k = await createKey(gw.url, { name: 'batched' }, ADMIN);
    let input = 0;
    let output = 0;
    for (let i = 0; i < 24; i++) {
      const u = { input: 5 + i, output: 1 + (i % 7) };
      input += u.input;
      output += u.output;
      up.enqueue({ usage: u });
      const r = await chat(gw.url, k.secret, ask('gpt-4o-mini', i % 3 === 0 ? { stream: true } : {}));
      expect(r.status).toBe(200);
    }
    expect(usageRows().n).toBe(0); // still batched in memory
    expect(await gw.stop(10_000)).toBe(0);
    expect(usageRows()).toEqual({ n: 24, i: input, o: output });
    gw = await startProcess(cfg, {}, dir);
  });

  // each command is a fresh node process (~1 s each on a loaded 2-core box)
  it('keys create | list | show | disable | enable | rotate, as text and --json', { timeout: 90_000 }, async () => {
    const created = cli(
      'keys',
      'create',
      '--name',
      'cli-app',
      '--owner',
      'ops',
      '--models',
      'gpt-*',
      '--rpm',
      '60',
      '--budget-tokens',
      '100000',
      '--budget-period',
      'day',
      '--expires',
      '30d',
      '--acp',
    );
    expect(created.code, created.err).toBe(0);
    const secret = /\n {2}(sy-\S+)\n/.exec(created.out)?.[1];
    expect(secret).toMatch(/^sy-/);
    expect(created.out).toContain('shown once');
    expect((await chat(gw.url, secret, ask('gpt-4o-mini'))).status).toBe(200);

    const list = cli('keys', 'list');
    expect(list.code).toBe(0);
    expect(list.out.split('\n')[0]).toMatch(/^ID\s+NAME\s+OWNER\s+KEY\s+STATUS\s+MODELS\s+LIMITS\s+BUDGET\s+EXPIRES$/);
    expect(list.out).toMatch(/cli-app\s+ops\s+sy-\S+…\s+active\s+gpt-\*\s+60 req\/min\s+100000 tokens\/day/);
    expect(list.out).not.toContain(secret);
    const json = JSON.parse(cli('keys', 'list', '--json').out);
    expect(json.find((k: any) => k.name === 'cli-app')).toMatchObject({
      owner: 'ops',
      models: ['gpt-*'],
      limits: { requestsPerMin: 60 },
      status: 'active',
      acp: true,
    });

    const show = cli('keys', 'show', 'cli-app');
    expect(show.out).toMatch(/spent\s+\d+ tokens, [\d.]+ cost in \d{4}-\d\d-\d\d/);
    expect(show.out).toMatch(/\nacp\s+yes: may start agent tasks\n/);
    expect(cli('keys', 'disable', 'cli-app').out).toMatch(/^key cli-app \(key_[0-9a-f]+\) disabled\n$/);
    expect((await chat(gw.url, secret, ask('gpt-4o-mini'))).status).toBe(401);
    expect(cli('keys', 'enable', 'cli-app').code).toBe(0);
    const rotated = JSON.parse(cli('keys', 'rotate', 'cli-app', '--json').out);
    expect(rotated.secret).toMatch(/^sy-/);
    expect((await chat(gw.url, secret, ask('gpt-4o-mini'))).status).toBe(401);
    expect((await chat(gw.url, rotated.secret, ask('gpt-4o-mini'))).status).toBe(200);

    const missing = cli('keys', 'show', 'nope');
    expect(missing.code).toBe(1);
    expect(missing.err).toBe(`switchyard: ${gw.url} answered HTTP 404 (not_found): no key with id or name "nope"\n`);
    expect(cli('keys', 'create', '--name', 'x', '--rpm', 'lots').err).toMatch(/--rpm: a whole number/);
  });

  it('keys create: --expires past any date, or --budget-cost 1e999, is a clear error and creates nothing', { timeout: 60_000 }, async () => {
    const far = cli('keys', 'create', '--name', 'far-future', '--expires', '999999999d');
    expect(far.code).toBe(1);
    expect(far.err).toBe('switchyard: --expires: 999999999d is too far ahead; the latest is +275760-09-13\n');
    expect(cli('keys', 'show', 'far-future').code).toBe(1);
    // past year 9999 but still a date: sent as epoch ms, which the API takes
    const late = JSON.parse(cli('keys', 'create', '--name', 'late', '--expires', '9000000d', '--json').out);
    expect(late.key.expiresAt).toMatch(/^\+0\d{5}-/);
    // a cost budget no number holds (1e999 is Infinity, which JSON sends as null) is the CLI's own error
    const endless = cli('keys', 'create', '--name', 'endless', '--budget-cost', '1e999');
    expect(endless.code).toBe(1);
    expect(endless.err).toBe('switchyard: --budget-cost: a positive number\n');
    expect(cli('keys', 'show', 'endless').code).toBe(1);
  });

  it('usage --by key | model | day, --key, --since, as a table and --json', { timeout: 90_000 }, async () => {
    const byKey = cli('usage', '--by', 'key');
    expect(byKey.code, byKey.err).toBe(0);
    expect(byKey.out.split('\n')[0]).toMatch(/^KEY\s+REQUESTS\s+INPUT\s+OUTPUT\s+CACHED\s+COST\s+ESTIMATED$/);
    expect(byKey.out).toMatch(/\nbatched\s+24\s/);
    expect(byKey.out).toMatch(/\ntotal\s+26\s/);
    const j = JSON.parse(cli('usage', '--key', 'batched', '--by', 'model', '--json').out);
    expect(j.rows).toEqual([expect.objectContaining({ group: 'gpt-4o-mini', requests: 24 })]);
    // 3 per million input, 15 per million output
    expect(j.total.cost).toBeCloseTo((j.total.inputTokens * 3 + j.total.outputTokens * 15) / 1e6, 12);
    const day = JSON.parse(cli('usage', '--by', 'day', '--json').out);
    expect(day.rows.map((r: any) => r.group)).toEqual([new Date().toISOString().slice(0, 10)]);
    expect(cli('usage', '--since', '1m', '--json').code).toBe(0);
    expect(JSON.parse(cli('usage', '--since', String(Date.now() + 60_000), '--json').out).rows).toEqual([]);
    expect(cli('usage', '--by', 'colour').err).toMatch(/--by: one of/);
  });
});
