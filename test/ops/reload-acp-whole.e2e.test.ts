/**
 * Regression: a reload is whole or nothing when the ACP part fails (docs/operations.md, "Hot reload"). The
 * reload applied channels, tokens and bridges first and rebuilt the ACP runtime table last, so a table that
 * could not be built left the gateway half on the new file (new channels and tokens, old agents) and the
 * reload answered with an internal error. The table is now built before anything is applied, and a build that
 * fails refuses the file like any other problem: CONFIG_INVALID, "the running config is unchanged".
 *
 * A real gateway process with the fake ACP agent (spawned for real). No valid file can make the build throw,
 * so the process runs with a test seam (test/fakes/acp-build-fault.mjs, a module hook loaded by NODE_OPTIONS)
 * that makes it throw for an agent whose id starts with `fault-`. The file that adds one also changes the
 * channels, the client tokens and the agents; afterwards the old channel, token and agent all still serve,
 * through the admin API, `switchyard config reload` and SIGHUP alike. The same file without that agent is
 * then applied whole.
 *
 * Regression too: the refusal quoted the build error's message scrubbed only of the running config's secrets
 * (the refused file's are never registered), so a message that quoted a secret of the new file (here the seam
 * quotes the `fault-` agent's env value) reached the admin answer, the CLI and stderr as it was.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { adminGet, call, chatBody, cleanupDirs, startProcess, waitFor } from '../helpers/env.js';
import { runCli } from './cli-run.js';

const FAKE = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const SEAM = fileURLToPath(new URL('../fakes/acp-build-fault.mjs', import.meta.url));
const ADMIN = 'whole-admin-token-7c1e';
const ACP = 'whole-acp-token-2b8d';
const OLD = 'whole-client-old-4f0a';
const NEW = 'whole-client-new-9d3c';
/** a secret of the refused file only (the env of its `fault-` agent), which the injected build error quotes */
const FAULT_KEY = 'whole-fault-agent-key-6e2f1a';

const agent = (id: string) => ({
  id,
  label: id,
  command: process.execPath,
  args: [FAKE],
  permissions: 'allow',
  ...(id.startsWith('fault-') ? { env: { FAULT_API_KEY: FAULT_KEY } } : {}),
});
const config = (o: { tokens: string[]; channel: { name: string; model: string }; agents: string[] }) => ({
  gateway: { id: 'gw_whole', port: 0, admin: { token: ADMIN }, auth: { tokens: o.tokens } },
  channels: [{ name: o.channel.name, provider: 'mock', models: [o.channel.model], options: { reply: `from ${o.channel.name}` } }],
  acp: { tokens: [ACP], agents: o.agents.map(agent) },
  store: { kind: 'sqlite', path: './data/whole.db' },
});
const OLD_CONFIG = config({ tokens: [OLD], channel: { name: 'old-ch', model: 'old-model' }, agents: ['fake'] });
const newConfig = (agents: string[]) => config({ tokens: [NEW], channel: { name: 'new-ch', model: 'new-model' }, agents });

let g: GatewayProcess & { configPath: string };
beforeAll(async () => {
  g = await startProcess(OLD_CONFIG, { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${SEAM}`.trim() });
}, 30_000);
afterAll(async () => {
  await g?.stop();
  cleanupDirs();
});

const chat = async (model: string, token: string) => {
  const r = await call(g, '/v1/chat/completions', { body: chatBody(model, 'hi'), headers: { authorization: `Bearer ${token}` } });
  return r.status === 200 ? (r.json.choices[0].message.content as string) : r.status;
};
async function acpCall(method: string, params: object): Promise<any> {
  const res = await fetch(`${g.url}/acp/rpc`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ACP}`, 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  return ((await res.json()) as { result: any }).result;
}
const agentIds = async () => ((await acpCall('acp.capabilities', {})).providerCatalog as Array<{ providerId: string }>).map((p) => p.providerId);
let turns = 0;
const turnOn = async (provider: string) => {
  const sessionId = `s-whole-${++turns}`;
  return acpCall('session.start', { sessionId, taskPrompt: `hello from ${sessionId}`, executionTarget: 'agent', provider });
};
const channels = async () => ((await adminGet(g.url, '/admin/channels', ADMIN)).channels as Array<{ channel: string }>).map((c) => c.channel);

/** the gateway serves exactly what OLD_CONFIG names: its channel and token, its one agent */
async function expectOld(): Promise<void> {
  expect([await chat('old-model', OLD), await chat('old-model', NEW), await chat('new-model', OLD)]).toEqual(['from old-ch', 401, 404]);
  expect(await channels()).toEqual(['old-ch']);
  expect(await agentIds()).toEqual(['fake']);
  expect(await turnOn('fake')).toMatchObject({ status: 'completed', output: expect.stringContaining('hello from') });
  expect(await turnOn('fake-2')).toMatchObject({ success: false });
}

describe('a reload whose ACP runtime table cannot be built', () => {
  it('changes nothing (channels, tokens, agents) and says so, by the admin API, the CLI and SIGHUP', async () => {
    await expectOld();
    writeFileSync(g.configPath, JSON.stringify(newConfig(['fake', 'fake-2', 'fault-agent'])));
    // the build error quotes the new file's agent env value: scrubbed, although the file was never applied
    const problem =
      /^acp\.agents \/ acp\.gateways: the ACP runtime table cannot be built: acp\.agents "fault-agent": injected build fault \(test\); env FAULT_API_KEY=\[REDACTED\]$/;

    const res = await fetch(`${g.url}/admin/config/reload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: '{}',
    });
    const text = await res.text();
    expect(text).not.toContain(FAULT_KEY);
    const body = JSON.parse(text) as { error: { code: string; message: string; details: { problems: string[] } } };
    expect(res.status).toBe(500);
    expect(body.error.code).toBe('config_invalid');
    expect(body.error.message).toContain('config not reloaded, the running config is unchanged');
    expect(body.error.details.problems).toEqual([expect.stringMatching(problem)]);
    await expectOld();

    const cli = await runCli(['config', 'reload', '--url', g.url, '--token', ADMIN]);
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toContain('acp.agents "fault-agent": injected build fault (test); env FAULT_API_KEY=[REDACTED]');
    expect(cli.stdout + cli.stderr).not.toContain(FAULT_KEY);
    await expectOld();

    const before = g.logs().length;
    g.kill('SIGHUP');
    await waitFor(() => g.logs().slice(before).includes('SIGHUP: config not reloaded, the running config is unchanged'), 'the SIGHUP refusal on stderr');
    expect(g.logs().slice(before)).toContain('acp.agents "fault-agent": injected build fault (test); env FAULT_API_KEY=[REDACTED]');
    expect(g.logs()).not.toContain(FAULT_KEY);
    await expectOld();

    // scrubbed without the process learning it: the refused file's value is no secret of the running gateway, and
    // a model named like it is quoted back as given (an error body passes the process-wide scrubber)
    const unknown = await call(g, '/v1/chat/completions', { body: chatBody(FAULT_KEY, 'hi'), headers: { authorization: `Bearer ${OLD}` } });
    expect(unknown.status).toBe(404);
    expect(unknown.json.error.message).toContain(`model "${FAULT_KEY}" is not served here`);
  });

  it('the same file without the entry that cannot be built is applied whole', async () => {
    writeFileSync(g.configPath, JSON.stringify(newConfig(['fake', 'fake-2'])));
    const res = await fetch(`${g.url}/admin/config/reload`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
    expect(res.status).toBe(200);
    const report = (await res.json()) as { applied: string[]; restartRequired: string[] };
    expect(report.applied).toEqual(
      expect.arrayContaining(['channel old-ch removed', 'channel new-ch added', 'gateway.auth.tokens replaced', 'ACP agents and gateway providers updated']),
    );
    expect(report.restartRequired).toEqual([]);
    expect([await chat('new-model', NEW), await chat('new-model', OLD)]).toEqual(['from new-ch', 401]);
    expect(await channels()).toEqual(['new-ch']);
    expect(await agentIds()).toEqual(['fake', 'fake-2']);
    expect(await turnOn('fake-2')).toMatchObject({ status: 'completed', output: expect.stringContaining('hello from') });
  });
});
