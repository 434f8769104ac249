/**
 * End to end with a REAL agent: `opencode acp` (npm `opencode-ai`, pinned in ./agents-setup.ts and installed
 * into a cache folder outside the repo) is started by a real gateway process through `/acp/rpc`, and uses that
 * same gateway's `/v1` (a mock channel serving `mock-1`) as its only model provider.
 *
 * What proves the path client → /acp/rpc → opencode → /v1 → mock channel:
 *  - the turn's output is the mock's reply to this run's prompt (`[mock mock-1] You said: <prompt with nonce>`);
 *  - the gateway's own debug log shows the `/v1` chat requests routed to and completed by `local/mock`;
 *  - `/v1` requires a bearer token that only opencode's config knows (so no other client could have made them).
 *
 * OpenCode runs with HOME / XDG_* inside a temp folder (nothing touches the real home), autoupdate, model-list
 * fetch, default plugins, LSP downloads and sharing off, and its tools disabled (`tools: {"*": false}`), so the
 * mock answers with text instead of calling opencode's first tool (`bash`) with `{input}`. It needs no network
 * beyond loopback (verified in a network namespace with only `lo`).
 *
 * If opencode cannot be installed or does not run, the test FAILS (it is never skipped).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminGet, cleanupDirs, startProcess, tmpDir, waitFor, freePort, processAlive } from '../helpers/env.js';
import { ensureAgent, isolatedHomeEnv, type AgentInstall } from './agents-setup.js';

const ACP_TOKEN = 'acp-e2e-opencode-token';
const V1_TOKEN = 'v1-e2e-opencode-token';
const MODEL = 'mock-1';
const TURN_TIMEOUT_MS = 150_000;

type Json = any;
type Gw = Awaited<ReturnType<typeof startProcess>>;

/** Real-home folders opencode would create if it escaped the temp HOME. */
const REAL_HOME_DIRS = ['.config/opencode', '.local/share/opencode', '.cache/opencode', '.local/state/opencode'].map((p) => path.join(homedir(), p));
const absentBefore = REAL_HOME_DIRS.filter((p) => !existsSync(p));

let oc: AgentInstall;
let gw: Gw | undefined;
let agentHome: string;
const timings: Record<string, number> = {};

/** A port that was free a moment ago (the agent's env must name the gateway's port before the gateway starts). */

function gatewayConfig(port: number, bin: string, dir: string) {
  const baseURL = `http://127.0.0.1:${port}/v1`;
  // OpenCode's inline config (merged over its other config sources): one OpenAI-compatible provider = this gateway.
  const opencodeConfig = {
    $schema: 'https://opencode.ai/config.json',
    provider: {
      switchyard: {
        npm: '@ai-sdk/openai-compatible',
        name: 'Switchyard',
        options: { baseURL, apiKey: '{env:SWITCHYARD_API_KEY}' },
        models: { [MODEL]: { name: 'Switchyard mock' } },
      },
    },
    enabled_providers: ['switchyard'],
    model: `switchyard/${MODEL}`,
    small_model: `switchyard/${MODEL}`, // session titles; otherwise opencode picks a small model of another provider
    tools: { '*': false }, // no tools in the request: the mock answers with text
    autoupdate: false,
    share: 'disabled',
  };
  return {
    gateway: { port, auth: { tokens: [V1_TOKEN] } },
    channels: [{ name: 'mock', provider: 'mock', models: [MODEL] }],
    acp: {
      tokens: [ACP_TOKEN],
      workspaceRoot: path.join(dir, 'workspaces'),
      agents: [
        {
          id: 'opencode',
          label: 'OpenCode',
          command: bin,
          args: ['acp'],
          permissions: 'allow',
          env: {
            ...isolatedHomeEnv(agentHome),
            SWITCHYARD_API_KEY: V1_TOKEN,
            OPENCODE_CONFIG_CONTENT: JSON.stringify(opencodeConfig),
            OPENCODE_DISABLE_AUTOUPDATE: 'true',
            OPENCODE_DISABLE_MODELS_FETCH: 'true',
            OPENCODE_DISABLE_DEFAULT_PLUGINS: 'true',
            OPENCODE_DISABLE_LSP_DOWNLOAD: 'true',
            OPENCODE_DISABLE_SHARE: 'true',
            OPENCODE_DISABLE_PROJECT_CONFIG: 'true',
            OPENCODE_DISABLE_CLAUDE_CODE: 'true',
          },
        },
      ],
    },
  };
}

/** Starts the gateway on a port picked first; retries with another port if that one was taken meanwhile. */
async function startGatewayWithAgent(bin: string): Promise<Gw> {
  let last: unknown;
  for (let attempt = 1; attempt <= 3; attempt++) {
    const dir = realpathSync(tmpDir('sy-opencode-gw-'));
    const port = await freePort();
    try {
      return await startProcess(gatewayConfig(port, bin, dir), { SWITCHYARD_LOG: 'debug' }, dir);
    } catch (err) {
      last = err;
      if (!/EADDRINUSE/.test(String(err))) throw err;
    }
  }
  throw last;
}

async function rpc(method: string, params: Json, id: number | string = Date.now()): Promise<Json> {
  const res = await fetch(`${gw!.url}/acp/rpc`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ACP_TOKEN}` },
    body: JSON.stringify({ jsonrpc: '2.0', id, method, params }),
    signal: AbortSignal.timeout(TURN_TIMEOUT_MS),
  });
  expect(res.status).toBe(200);
  return res.json();
}

/** POST over SSE; returns the session.update params in arrival order and the final envelope. */
async function rpcSse(method: string, params: Json, id: number | string): Promise<{ updates: Json[]; final: Json; done: boolean }> {
  const res = await fetch(`${gw!.url}/acp/rpc`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${ACP_TOKEN}` },
    body: JSON.stringify({ jsonrpc: '2.0', id, method, params }),
    signal: AbortSignal.timeout(TURN_TIMEOUT_MS),
  });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const text = await res.text();
  const updates: Json[] = [];
  let final: Json;
  let done = false;
  for (const block of text.split('\n\n')) {
    const data = block
      .split('\n')
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(5).trimStart())
      .join('\n');
    if (!data) continue;
    if (data === '[DONE]') {
      done = true;
      continue;
    }
    const msg = JSON.parse(data);
    if (msg.method === 'session.update') updates.push(msg.params);
    else if (msg.id === id) final = msg;
  }
  return { updates, final, done };
}

/** The gateway's JSON log lines (stderr). */
function logLines(): Json[] {
  return gw!
    .logs()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        return {};
      }
    });
}
const mockServed = () => logLines().filter((l) => (l.msg === 'chat stream done' || l.msg === 'chat done') && l.channel === 'local/mock');

const alive = processAlive;

/** Live (non-zombie) members of process group `pgid`, from /proc. */
function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // state ppid pgrp …
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function expectUpdates(updates: Json[], result: Json, sessionId: string) {
  expect(updates.length).toBeGreaterThanOrEqual(3);
  for (const u of updates) {
    expect(u).toMatchObject({ sessionId, threadId: sessionId, turnId: result.turnId, runId: result.runId });
    expect(typeof u.seq).toBe('number');
  }
  for (let i = 1; i < updates.length; i++) expect(updates[i].seq).toBeGreaterThan(updates[i - 1].seq);
  expect(updates[0]).toMatchObject({ type: 'status', event: 'started' });
  expect(updates.at(-1)).toMatchObject({ type: 'status', event: 'completed', status: 'completed' });
  const deltas = updates.filter((u) => u.type === 'delta');
  expect(deltas.length).toBeGreaterThan(0);
  for (const d of deltas) expect(d.structuredEvent).toMatchObject({ sessionUpdate: 'agent_message_chunk', content: { type: 'text' } });
  expect(deltas.map((d) => d.delta).join('')).toBe(result.output);
}

let setupError: unknown;
beforeAll(async () => {
  try {
    // Install (or reuse) the pinned opencode; throws if it cannot be installed or does not run.
    oc = await ensureAgent('opencode', { timeoutMs: 5 * 60_000 });
    timings.setupMs = oc.ms;
    agentHome = path.join(realpathSync(tmpDir('sy-opencode-home-')), 'home');
    mkdirSync(agentHome, { recursive: true });
    const t = Date.now();
    gw = await startGatewayWithAgent(oc.bin);
    timings.gatewayStartMs = Date.now() - t;
  } catch (err) {
    setupError = err; // rethrown by the test: it is reported as FAILED, not as skipped
  }
}, 6 * 60_000);

afterAll(async () => {
  const code = await gw?.stop(10_000);
  if (gw && code !== 0) console.error(`gateway exited with ${code}\n${gw.logs().slice(-4000)}`);
  cleanupDirs();
  console.info(
    `opencode e2e: opencode ${oc?.version ?? '?'} (${oc?.installed ? 'installed now' : 'cached'}, ${oc?.bin ?? '-'}); timings ${JSON.stringify(timings)}`,
  );
}, 30_000);

describe('opencode acp through /acp/rpc, with this gateway as its model backend', () => {
  it(
    'completes turns started through /acp/rpc on the mock channel, and session.close ends the opencode process',
    async () => {
      if (setupError) throw setupError;
      try {
        // The catalog entry is enabled: the probe started opencode and it answered ACP initialize (protocol 1).
        let t = Date.now();
        const caps = await rpc('acp.capabilities', {}, 'caps');
        timings.probeMs = Date.now() - t;
        const entry = caps.result.providerCatalog.find((p: Json) => p.providerId === 'opencode');
        expect(entry, `opencode is not available: ${entry?.unavailableReason}`).toMatchObject({ label: 'OpenCode', targets: ['agent'], enabled: true });

        const sessionId = `oc-e2e-${Date.now().toString(36)}`;
        const nonce = Math.random().toString(36).slice(2, 10);
        const prompt = `Hello opencode, nonce ${nonce}`;

        // Turn 1: session.start over SSE (starts the opencode process for this session).
        t = Date.now();
        const first = await rpcSse(
          'session.start',
          { sessionId, taskPrompt: prompt, routing: { routingMode: 'explicit', explicitExecutionTarget: 'agent', explicitProviderId: 'opencode' } },
          1,
        );
        timings.firstTurnMs = Date.now() - t;
        expect(first.done).toBe(true);
        expect(first.final?.error).toBeUndefined();
        const r1 = first.final.result;
        expect(r1).toMatchObject({
          success: true,
          status: 'completed',
          sessionId,
          threadId: sessionId,
          stopReason: 'end_turn',
          resolvedExecutionTarget: 'single-agent',
          resolvedProviderId: 'opencode',
        });
        expect(r1.output).toContain(`[mock ${MODEL}] You said: ${prompt}`);
        expectUpdates(first.updates, r1, sessionId);

        // The gateway's mock channel served opencode's /v1 requests (title + the turn itself).
        const afterFirst = await waitFor(() => (mockServed().length >= 1 ? mockServed() : undefined), 'the mock channel to log served /v1 requests', 5_000);
        const routed = logLines().filter((l) => l.msg === 'route' && l.model === MODEL);
        expect(routed.length).toBeGreaterThanOrEqual(1);
        expect(routed.every((l) => l.chosen === 'local/mock')).toBe(true);
        const channels = await adminGet<{ channels: Json[] }>(gw!.url, '/admin/channels');
        expect(channels.channels).toEqual([expect.objectContaining({ channel: 'mock', provider: 'mock', mock: true, inflight: 0, models: [MODEL] })]);

        // The opencode process of this session (pid = its process group).
        const started = logLines().filter((l) => l.msg === 'agent session started' && l.session === sessionId);
        expect(started).toHaveLength(1);
        expect(started[0].agentInfo).toMatchObject({ name: 'OpenCode', version: oc.version });
        const pid = started[0].pid as number;
        expect(alive(pid)).toBe(true);

        // Turn 2: session.message continues the same opencode session; seq keeps increasing.
        const prompt2 = `Second turn ${nonce}`;
        t = Date.now();
        const second = await rpcSse('session.message', { sessionId, taskPrompt: prompt2 }, 2);
        timings.secondTurnMs = Date.now() - t;
        const r2 = second.final.result;
        expect(r2).toMatchObject({ success: true, status: 'completed', sessionId, resolvedProviderId: 'opencode' });
        expect(r2.output).toContain(`[mock ${MODEL}] You said: ${prompt2}`);
        expect(r2.turnId).not.toBe(r1.turnId);
        expectUpdates(second.updates, r2, sessionId);
        expect(second.updates[0].seq).toBeGreaterThan(first.updates.at(-1).seq);
        expect(mockServed().length).toBeGreaterThan(afterFirst.length);
        expect(logLines().filter((l) => l.msg === 'agent session started' && l.session === sessionId)).toHaveLength(1); // same process

        // session.close ends the opencode process and everything in its process group.
        t = Date.now();
        const closed = await rpc('session.close', { sessionId }, 3);
        expect(closed.result).toMatchObject({ accepted: true, closed: true });
        await waitFor(() => !alive(pid) && groupMembers(pid).length === 0, `opencode (pid ${pid}) and its process group to end after session.close`, 10_000);
        timings.closeMs = Date.now() - t;
        await waitFor(() => logLines().some((l) => l.msg === 'agent session closed' && l.session === sessionId), 'the "agent session closed" log line', 5_000);

        // A closed session does not continue.
        const after = await rpc('session.message', { sessionId, taskPrompt: 'again' }, 4);
        expect(after.error?.data?.code).toBe('SESSION_CONTINUATION_UNAVAILABLE');

        // OpenCode kept its files in the temp HOME, never in the real one.
        expect(existsSync(path.join(agentHome, '.local', 'share', 'opencode'))).toBe(true);
        for (const p of absentBefore) expect(existsSync(p), `${p} must not be created`).toBe(false);
      } catch (err) {
        // the gateway log (with the agent's stderr tail in errors) makes a CI failure diagnosable
        console.error(`gateway log tail:\n${gw?.logs().slice(-6000)}`);
        throw err;
      }
    },
    4 * 60_000,
  );
});
