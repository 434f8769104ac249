/**
 * A config file that is the JSON5 value `null` (what `jq` prints for a key that is not there, rendered into the
 * file) is refused: the root must be an object. It was read as `{}`, the built-in defaults without the mock
 * channel, so a reload of it was applied: every channel removed, and the client and admin tokens dropped, which
 * left a loopback gateway open. Real process and real file; `config check` refuses it too.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { cleanupDirs, startProcess } from '../helpers/env.js';
import { runCli } from './cli-run.js';

const CLIENT = 'null-file-client-token-5e2a';
const ADMIN = 'null-file-admin-token-8b4d';
let gw: GatewayProcess & { configPath: string };

beforeAll(async () => {
  gw = await startProcess({
    gateway: { id: 'gw_null', auth: { tokens: [CLIENT] }, admin: { token: ADMIN } },
    channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
  });
});

afterAll(async () => {
  await gw?.stop();
  cleanupDirs();
});

const chat = (token?: string) =>
  fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ model: 'mock-1', messages: [{ role: 'user', content: 'hi' }] }),
  });

describe('a config file that is null', () => {
  it('is refused by a reload, which changes nothing, and by config check', async () => {
    writeFileSync(gw.configPath, 'null\n');
    const res = await fetch(`${gw.url}/admin/config/reload`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
    const body = (await res.json()) as { error: { code: string; details: { problems: string[] } } };
    expect(res.status).toBe(500);
    expect(body.error.code).toBe('config_invalid');
    expect(body.error.details.problems).toEqual(['(root): Invalid input: expected object, received null']);
    // the running config stands: the channel serves, and only with the client token
    expect((await chat()).status).toBe(401);
    expect((await chat(CLIENT)).status).toBe(200);

    const check = await runCli(['config', 'check', '--config', gw.configPath]);
    expect(check.code).toBe(2);
    expect(check.stderr).toContain('(root): Invalid input: expected object, received null');
  });
});
