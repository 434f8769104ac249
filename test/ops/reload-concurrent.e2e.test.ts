import { writeFileSync, renameSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { reloadOnSignal } from '../../src/cli/reload-signal.js';
import { loadConfig } from '../../src/config/load.js';
import { startGateway, type Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/util/log.js';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { cleanupDirs, startProcess, tmpDir, waitFor } from '../helpers/env.js';

/**
 * The check every reload runs (src/gateway-prepare.ts), as it is, except that a reload the test holds (`hold.next`,
 * taken by the first check after it is set) returns only once the test releases it: a channel build that takes time.
 * Every check notes the channel key of the file it checks in `hold.events`, where the gateway's log lines go too.
 */
const hold = vi.hoisted(() => ({
  next: undefined as { entered: () => void; released: Promise<void> } | undefined,
  events: [] as string[],
}));
vi.mock('../../src/gateway-prepare.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/gateway-prepare.js')>();
  return {
    ...real,
    prepareConfig: async (...args: Parameters<typeof real.prepareConfig>) => {
      const held = hold.next;
      hold.next = undefined;
      hold.events.push(`check ${args[0].config.channels.map((c) => ('apiKey' in c ? c.apiKey : '')).join(',')}`);
      const prepared = await real.prepareConfig(...args);
      if (held) {
        held.entered();
        await held.released;
      }
      return prepared;
    },
  };
});

let upstream: http.Server;
let upstreamUrl = '';

const config = (key: string, extra: Record<string, unknown> = {}) => ({
  gateway: { id: 'gw_concurrent', ...extra },
  channels: [{ name: 'oa', provider: 'openai', baseUrl: upstreamUrl, apiKey: key, models: ['gpt-x'] }],
  store: { kind: 'sqlite', path: './data/c.db' },
});

/** the key the channel `oa` is served with now (the upstream answers with the Authorization header it got) */
async function keyInService(url: string): Promise<string> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-x', messages: [{ role: 'user', content: 'hi' }] }),
  });
  return ((await res.json()) as any).choices[0].message.content;
}

/** replaced whole (write then rename), as an editor or a deploy does: every reload reads a complete file */
function replaceFile(path: string, raw: unknown): void {
  writeFileSync(`${path}.tmp`, JSON.stringify(raw));
  renameSync(`${path}.tmp`, path);
}

beforeAll(async () => {
  // answers with the Authorization header it got, so the key in service is seen
  upstream = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          id: 'x',
          object: 'chat.completion',
          model: 'gpt-x',
          choices: [{ index: 0, message: { role: 'assistant', content: String(req.headers.authorization) }, finish_reason: 'stop' }],
        }),
      );
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/v1`;
});

afterAll(async () => {
  await new Promise<void>((r) => upstream.close(() => r()));
  cleanupDirs();
});

describe('concurrent reloads', () => {
  let gw: GatewayProcess & { configPath: string };
  beforeAll(async () => {
    gw = await startProcess(config('sk-concurrent-first-key-000001'));
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('apply one changed file once, by admin calls and SIGHUPs at once', { timeout: 30_000 }, async () => {
    replaceFile(gw.configPath, config('sk-concurrent-second-key-00002'));
    const calls = Array.from({ length: 12 }, () =>
      fetch(`${gw.url}/admin/config/reload`, { method: 'POST' }).then(async (r) => ({ status: r.status, body: (await r.json()) as any })),
    );
    for (let i = 0; i < 6; i++) gw.kill('SIGHUP');
    const answers = await Promise.all(calls);
    for (const a of answers) expect(a.status).toBe(200);
    // every reload, whoever asked, is logged with what it applied (SIGHUPs may coalesce: at least one is delivered)
    const reloads = () =>
      gw
        .logs()
        .split('\n')
        .filter((l) => l.includes('"msg":"config reloaded"'))
        .map((l) => JSON.parse(l) as { applied: string[] });
    await waitFor(() => reloads().length > answers.length, 'the admin calls and at least one SIGHUP reloaded');
    expect(gw.logs()).not.toMatch(/config not reloaded/);
    const changed = reloads().filter((r) => r.applied.includes('channel oa changed'));
    expect(changed).toHaveLength(1);
    expect(answers.filter((a) => (a.body.applied as string[]).includes('channel oa changed')).length).toBeLessThanOrEqual(1);

    expect(await keyInService(gw.url)).toBe('Bearer sk-concurrent-second-key-00002');
  });
});

describe('overlapping reloads', () => {
  let gw: Gateway;
  let configPath = '';
  const lines = hold.events;
  beforeAll(async () => {
    const dir = tmpDir();
    configPath = join(dir, 'overlap.json5');
    writeFileSync(configPath, JSON.stringify(config('sk-overlap-initial-key-000000', { port: 0 })));
    // the log lines, the SIGHUP report and the checks go to one list, in the order they were written
    gw = await startGateway(loadConfig(configPath), { logger: createLogger({}, (l) => void lines.push(l)) });
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('run one after the other: a SIGHUP during an admin reload whose check takes time reads its file once that reload is applied', async () => {
    const fileA = config('sk-overlap-file-a-key-0000001', { port: 0, shutdownGraceMs: 1111 });
    const fileB = config('sk-overlap-file-b-key-0000002', { port: 0, shutdownGraceMs: 2222 });
    let release!: () => void;
    const entered = new Promise<void>((resolve) => {
      hold.next = { entered: resolve, released: new Promise<void>((r) => (release = r)) };
    });
    lines.length = 0;

    // the admin reload of file A: read, its channel built, and held there
    replaceFile(configPath, fileA);
    const first = fetch(`${gw.url}/admin/config/reload`, { method: 'POST' }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));
    await entered;

    // file B, then a SIGHUP while A's reload is held: the handler `switchyard gateway` installs, on a real signal
    replaceFile(configPath, fileB);
    const write = process.stdout.write.bind(process.stdout);
    const stdout = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: any, ...rest: any[]) => {
      if (String(chunk).startsWith('switchyard: SIGHUP')) return lines.push(String(chunk)) > 0;
      return write(chunk, ...rest);
    });
    try {
      const asked = new Promise<{ reloaded: Promise<void> }>((resolve) => process.once('SIGHUP', () => resolve({ reloaded: reloadOnSignal(gw) })));
      process.kill(process.pid, 'SIGHUP');
      const { reloaded: second } = await asked; // the SIGHUP reload has been asked for
      release();
      const answer = await first;
      await second;

      // each reload applied one whole file, in the order asked: A over the initial file, then B over A
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({ applied: ['channel oa changed', 'gateway.shutdownGraceMs = 1111'], restartRequired: [] });
      // B was read and checked only once A's reload was applied and reported, and nothing was refused
      const seen = lines
        .filter((l) => l.startsWith('check ') || l.includes('config reloaded') || l.includes('config not reloaded'))
        .map((l) => (l.startsWith('{') ? (JSON.parse(l) as { msg: string; applied?: string[] }) : l));
      expect(seen).toEqual([
        'check sk-overlap-file-a-key-0000001',
        expect.objectContaining({ msg: 'config reloaded', applied: ['channel oa changed', 'gateway.shutdownGraceMs = 1111'] }),
        'check sk-overlap-file-b-key-0000002',
        expect.objectContaining({ msg: 'config reloaded', applied: ['channel oa changed', 'gateway.shutdownGraceMs = 2222'] }),
        'switchyard: SIGHUP: config reloaded (channel oa changed; gateway.shutdownGraceMs = 2222)\n',
      ]);

      // the last file is the one in service, whole
      expect(gw.config.gateway.shutdownGraceMs).toBe(2222);
      expect(await keyInService(gw.url)).toBe('Bearer sk-overlap-file-b-key-0000002');
    } finally {
      stdout.mockRestore();
      release();
    }
  });
});
