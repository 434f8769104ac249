/**
 * Logs with real processes at debug level: every kind of secret is fed through every path that logs, and
 * the output of both gateways (and of the CLI) is grepped for it. The paths: config errors (config check,
 * start, reload), upstream errors (an upstream echoing the key and the request headers, across the bridge),
 * bridge auth failures (a wrong token), ACP agent output (an agent printing its key on stdout and stderr),
 * client and admin tokens on requests. Each path is first shown to have logged (so the grep can fail), and
 * one request id appears on both gateways it crossed.
 */
import { fileURLToPath } from 'node:url';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { cleanupDirs, startProcess, tmpDir, waitFor, wsUrl } from '../helpers/env.js';
import { startEchoingUpstream, type EchoingUpstream } from '../security/fakes/echoing-upstream.js';
import { runCli } from './cli-run.js';

const S = {
  upstreamKey: 'sk-upstream-key-4f8e2a9c1b7d3e6f0a5c',
  client: 'client-token-93b1c7e5a2d4f608',
  admin: 'admin-token-5e2c8a1f7b3d9046',
  bridge: 'bridge-token-1a7f3c9e5b2d8064',
  wrongBridge: 'wrong-bridge-token-8d3b6f1a9c4e2057',
  acp: 'acp-token-7c4e1a9f3b6d2058',
  agentKey: 'agent-provider-key-2b9e6c3f8a1d4075',
  metrics: 'metrics-token-6f1d8b3e9a2c5047',
  configKey: 'sk-config-secret-0e7a3c9f1b5d8264',
  urlSecret: 'url-password-3c8f1a6e9b2d5047',
};
const LEAKY_AGENT = fileURLToPath(new URL('../fakes/leaky-agent.mjs', import.meta.url));
let up: EchoingUpstream;
let a: GatewayProcess & { configPath: string };
let b: GatewayProcess;
const outputs: string[] = [];

const logsOf = () => [a.logs(), b.logs(), ...outputs].join('\n');
const lines = (g: GatewayProcess) =>
  g
    .logs()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

beforeAll(async () => {
  up = await startEchoingUpstream();
  const debug = { SWITCHYARD_LOG: 'debug' };
  b = await startProcess(
    {
      gateway: {
        id: 'gw_lb',
        name: 'datacenter',
        admin: { token: S.admin },
        metrics: { token: S.metrics },
        bridge: { enabled: true, allowedTokens: [S.bridge], shareChannels: ['echo'] },
      },
      channels: [{ name: 'echo', provider: 'openai', baseUrl: up.baseUrl, apiKey: S.upstreamKey, models: ['echo-model'] }],
      acp: {
        tokens: [S.acp],
        agents: [{ id: 'leaky', label: 'Leaky', command: process.execPath, args: [LEAKY_AGENT], env: { AGENT_API_KEY: S.agentKey }, permissions: 'allow' }],
      },
    },
    debug,
  );
  a = await startProcess(
    {
      gateway: {
        id: 'gw_la',
        name: 'office',
        auth: { tokens: [S.client] },
        admin: { token: S.admin },
        routing: { retries: 0 },
        bridges: [
          { name: 'datacenter', url: wsUrl(b.url), token: S.bridge, shareChannels: false, reconnectInterval: 200 },
          { name: 'wrong', url: wsUrl(b.url), token: S.wrongBridge, shareChannels: false, reconnectInterval: 200 },
        ],
      },
      channels: [{ name: 'local', provider: 'mock', models: ['mock-1'] }],
    },
    debug,
  );
  await waitFor(async () => {
    const r = await fetch(`${a.url}/admin/bridges`, { headers: { authorization: `Bearer ${S.admin}` } });
    const peers = ((await r.json()) as { peers: Array<{ name: string; state: string }> }).peers;
    return peers.find((p) => p.name === 'datacenter')?.state === 'open' && peers.find((p) => p.name === 'wrong')?.state === 'failed';
  }, 'the good bridge open and the wrong one refused');
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await up?.close();
  cleanupDirs();
});

async function chat(content: string, requestId: string): Promise<Response> {
  return fetch(`${a.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${S.client}`, 'x-request-id': requestId },
    body: JSON.stringify({ model: 'echo-model', messages: [{ role: 'user', content }] }),
  });
}

describe('secrets never reach the logs', () => {
  it('upstream errors that echo the key and the headers, across the bridge', async () => {
    for (const [kind, id] of [
      ['please-401', 'req-leak-401'],
      ['please-500', 'req-leak-500'],
    ] as const) {
      const r = await chat(`${kind} with ${S.client}`, id);
      expect(r.status).toBeGreaterThanOrEqual(400);
      outputs.push(await r.text());
    }
    // the paths logged: A's failed attempt (with the upstream's message), B's failed serve
    await waitFor(
      () => lines(a).some((l) => l.msg === 'attempt failed' && l.requestId === 'req-leak-401' && String(l.message).includes('[REDACTED]')),
      "A's attempt failed line",
    );
    await waitFor(() => lines(b).some((l) => l.msg === 'serving a peer request failed' && l.requestId === 'req-leak-500'), "B's serving failed line");
  });

  it('one request id on every gateway the request crossed', async () => {
    const r = await chat('hello', 'req-mesh-7');
    expect(r.status).toBe(200);
    await waitFor(() => lines(a).some((l) => l.msg === 'route' && l.requestId === 'req-mesh-7'), "A's route line");
    await waitFor(() => lines(b).some((l) => l.msg === 'served a peer request' && l.requestId === 'req-mesh-7'), "B's served line with A's id");
  });

  it('bridge auth failures', async () => {
    expect(lines(b).some((l) => l.msg === 'bridge handshake refused')).toBe(true);
    expect(lines(a).some((l) => typeof l.msg === 'string' && l.msg.startsWith('bridge not retrying'))).toBe(true);
  });

  it('an ACP agent that prints its key on stdout and stderr', async () => {
    const res = await fetch(`${b.url}/acp/rpc`, {
      method: 'POST',
      headers: { authorization: `Bearer ${S.acp}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'session.start',
        params: { sessionId: 's-leaky', taskPrompt: 'go', routing: { explicitExecutionTarget: 'agent', explicitProviderId: 'leaky' } },
      }),
    });
    const body = await res.text();
    outputs.push(body);
    expect(body).toContain('[REDACTED]'); // the stderr tail reached the client, scrubbed
    await waitFor(
      () => lines(b).some((l) => l.msg === 'non-JSON-RPC output on stdout' && String(l.sample).includes('[REDACTED]')),
      "B's line with the agent's stdout",
    );
  });

  it('config errors: check, start and reload', async () => {
    const dir = tmpDir('sy-badcfg-');
    const bad = join(dir, 'bad.json5');
    writeFileSync(
      bad,
      JSON.stringify({
        gateway: {
          host: '0.0.0.0',
          admin: { token: S.admin },
          bridges: [{ name: 'x', url: `https://user:${S.urlSecret}@peer.example/bridge`, token: S.bridge }],
        },
        channels: [{ name: 'c', provider: 'openai', baseUrl: `not a url ${S.configKey}`, apiKey: S.configKey, models: [] }],
        bogus: S.configKey,
      }),
    );
    const check = await runCli(['config', 'check', '-c', bad]);
    expect(check.code).toBe(2);
    expect(check.stderr).toMatch(/channels\.0\.baseUrl/);
    outputs.push(check.stdout, check.stderr);
    const start = await runCli(['gateway', '-c', bad]);
    expect(start.code).toBe(2);
    outputs.push(start.stdout, start.stderr);
    // the same file as a reload of A: refused, the problems reported on stderr and by the API
    writeFileSync(a.configPath, await import('node:fs').then((fs) => fs.readFileSync(bad, 'utf8')));
    a.kill('SIGHUP');
    await waitFor(() => a.logs().includes('SIGHUP: config not reloaded'), 'the refused reload');
    const r = await fetch(`${a.url}/admin/config/reload`, { method: 'POST', headers: { authorization: `Bearer ${S.admin}` } });
    expect(r.status).toBe(500);
    outputs.push(await r.text());
  });

  it('and the grep: no secret anywhere in the output of either gateway, the CLI or the answers', async () => {
    // the metrics and admin endpoints were used with their tokens too
    outputs.push(await (await fetch(`${b.url}/metrics`, { headers: { authorization: `Bearer ${S.metrics}` } })).text());
    outputs.push(await (await fetch(`${a.url}/admin/overview`, { headers: { authorization: `Bearer ${S.admin}` } })).text());
    const all = logsOf();
    expect(all.length).toBeGreaterThan(5_000);
    for (const [name, secret] of Object.entries(S)) {
      const at = all.indexOf(secret);
      expect(at === -1, `${name} leaked: …${all.slice(Math.max(0, at - 300), at + 60)}…`).toBe(true);
    }
  });
});
