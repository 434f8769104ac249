/**
 * An `llm` agent's per-session token across the bridge mesh, on real processes: gateways A (runs the agent),
 * B and C (bridged to A, each serving `peer-model` from a fake OpenAI upstream of this process). The fake ACP
 * agent stands in for Hermes (preset `hermes`: OPENAI_BASE_URL + OPENAI_API_KEY) and makes its model calls
 * with exactly what the preset gives it.
 *  - the token is A's alone: B does not take it, the upstream never sees it, A's and B's logs, the session's
 *    updates, `/admin/sessions` and `xworkmate.tasks.get` never show it;
 *  - it is refused on `/admin/*` and `/acp/rpc` (HTTP and the `/acp` WebSocket), pinned to `llm.model` on the model APIs;
 *  - it dies with its session: `session.close`, a cancel then close, a transfer to B (where the agent gets a
 *    new token that works on B);
 *  - usage of the agent's calls served by a peer is recorded on A under the session's key.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import { acpRpc, adminGet, channelOf, cleanupDirs, spawnGateway, startProcess, waitFor, wsUrl } from '../helpers/env.js';
import { agentRouting, rpc } from './acp-rpc.js';

const FAKE = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const ACP = 'acp-mesh-token-7d21c9';
const BRIDGE = 'bridge-mesh-token-0ae4f2';
const ADMIN = 'admin-mesh-token-5c03be';
const PEER_REPLY = 'served by the peer';
type Gw = Awaited<ReturnType<typeof startProcess>>;
type Json = any;

let a: Gw;
let b: Gw;
let upB: OpenAiFake;
let appKey: { id: string; secret: string; name: string };

const hermes = (model: string) => ({
  id: 'hermes',
  label: 'Hermes (fake)',
  preset: 'hermes',
  command: process.execPath,
  args: [FAKE],
  llm: { model },
  permissions: 'allow',
});

beforeAll(async () => {
  upB = await startOpenAiUpstream({ reply: PEER_REPLY });
  b = await startProcess({
    gateway: {
      id: 'gw_mesh_b',
      name: 'box-b',
      admin: { token: ADMIN },
      bridge: { enabled: true, allowedTokens: [BRIDGE], shareChannels: ['b-ch'], acceptSessions: true },
    },
    channels: [channelOf(upB, 'b-ch', ['peer-model'])],
    acp: { tokens: [ACP], agents: [hermes('peer-model')] },
  });
  a = await startProcess({
    gateway: {
      id: 'gw_mesh_a',
      name: 'laptop',
      admin: { token: ADMIN },
      // the agents' only way in to the model APIs is their session token (docs/keys.md): no open loopback /v1
      auth: { requireKey: true },
      bridges: [{ name: 'box-b', url: wsUrl(b.url), token: BRIDGE, shareChannels: false, reconnectInterval: 100 }],
    },
    channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
    acp: { tokens: [ACP], agents: [hermes('peer-model')] },
  });
  await waitFor(async () => (await adminGet(a.url, '/admin/bridges', ADMIN)).peers[0]?.state === 'open', 'A→B link');
  const res = await fetch(`${a.url}/admin/keys`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
    body: JSON.stringify({ name: 'mesh-app', acp: true }),
  });
  expect(res.status, await res.clone().text()).toBe(201);
  const k = (await res.json()) as Json;
  appKey = { id: k.key?.id ?? k.id, secret: k.secret ?? k.key?.secret, name: 'mesh-app' };
}, 60_000);

afterAll(async () => {
  await a?.stop(10_000);
  await b?.stop(10_000);
  await upB?.close();
  cleanupDirs();
});

const turn = async (gw: Gw, cred: string, sessionId: string, taskPrompt: string, first = false) =>
  (
    await rpc(
      gw.url,
      cred,
      first ? 'session.start' : 'session.message',
      { sessionId, taskPrompt, ...(first ? { routing: agentRouting('hermes') } : {}) },
      30_000,
    )
  ).result;

/** the agent's token, through a file in its session folder (replies carry it scrubbed) */
async function tokenOf(gw: Gw, cred: string, sessionId: string, keyId?: string): Promise<string> {
  expect((await turn(gw, cred, sessionId, 'envfile OPENAI_API_KEY')).output).toBe('written');
  const root = keyId ? path.join(gw.dir, 'workspaces', 'keys', keyId) : path.join(gw.dir, 'workspaces');
  return readFileSync(path.join(root, sessionId, '.env-OPENAI_API_KEY'), 'utf8');
}

const chat = (gw: Gw, token: string, model = 'peer-model') =>
  fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'probe' }] }),
  });

/** Starts `sid` on A, reads its agent's token, and sends a 5 s turn: returned once that turn runs. */
async function runningTurn(sid: string): Promise<{ token: string; slow: Promise<unknown> }> {
  await turn(a, ACP, sid, 'hi', true);
  const token = await tokenOf(a, ACP, sid);
  const slow = rpc(a.url, ACP, 'session.message', { sessionId: sid, taskPrompt: 'slow 5000' }, 30_000);
  await waitFor(async () => (await adminGet(a.url, `/admin/sessions/${sid}`, ADMIN)).session.history.some((t: Json) => t.status === 'running'), 'running turn');
  return { token, slow };
}

describe('an llm agent’s session token across the mesh', () => {
  it('works on A only, for its model only, is refused on /admin and /acp, and never shows', async () => {
    const sid = 'mesh-tok-1';
    const first = await turn(a, ACP, sid, 'llm hello peer', true);
    expect(first.output).toBe(`llm 200 peer-model: ${PEER_REPLY}`);
    const token = await tokenOf(a, ACP, sid);
    expect(token.startsWith('sy-agent-')).toBe(true);

    // pinned: another model name on it runs on peer-model
    const other = await chat(a, token, 'mock-1');
    expect(other.status).toBe(200);
    expect(((await other.json()) as Json).model).toBe('peer-model');
    // without it, nothing: the model APIs are not open to a local process on this gateway
    expect(
      (
        await fetch(`${a.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'peer-model', messages: [{ role: 'user', content: 'x' }] }),
        })
      ).status,
    ).toBe(401);
    // B never takes A's token, and the upstream never saw it
    expect((await chat(b, token)).status).toBe(401);
    for (const r of upB.requests) expect(JSON.stringify(r.headers)).not.toContain(token);
    // refused on /admin and /acp/rpc
    expect((await fetch(`${a.url}/admin/sessions`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
    const sub = await fetch(`${a.url}/acp/rpc`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'session.start', params: { sessionId: 'sub', taskPrompt: 'hi', routing: agentRouting('hermes') } }),
    });
    expect(sub.status).toBe(401);
    const wsStatus = await new Promise<number>((resolve) => {
      const ws = new WebSocket(a.url.replace(/^http/, 'ws') + '/acp', { headers: { authorization: `Bearer ${token}` } });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => {
        ws.close();
        resolve(101);
      });
      ws.on('error', () => resolve(-1));
    });
    expect(wsStatus).toBe(401);
    // …and on the task-session REST surface: neither reading its own session nor posting to it
    expect((await fetch(`${a.url}/api/v1/sessions/${sid}/events`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
    const post = await fetch(`${a.url}/api/v1/sessions/${sid}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ clientRequestId: 'r1', text: 'hi' }),
    });
    expect(post.status).toBe(401);
    expect((await fetch(`${a.url}/metrics`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);

    // never shown: not in a turn's streamed updates or answer when the agent prints its environment, not in the
    // log when it dies printing it on stderr
    const printed = await acpRpc(a.url, ACP, 'session.message', { sessionId: sid, taskPrompt: 'printenv' }, true);
    expect(printed.result).toMatchObject({ success: true });
    expect(JSON.stringify(printed)).not.toContain(token);
    expect(JSON.stringify(printed.updates)).toContain('[REDACTED]');
    await acpRpc(a.url, ACP, 'session.message', { sessionId: sid, taskPrompt: 'leak' });
    await waitFor(() => a.logs().includes('fake agent environment'), 'the agent’s stderr in the log');
    const tasks = await rpc(a.url, ACP, 'xworkmate.tasks.get', { sessionId: sid, afterSeq: 0 });
    expect(JSON.stringify(tasks.result.updates)).toContain('[REDACTED]');
    expect(JSON.stringify(tasks)).not.toContain(token);
    expect(JSON.stringify(await adminGet(a.url, `/admin/sessions/${sid}`, ADMIN))).not.toContain(token);
    expect(JSON.stringify(await adminGet(a.url, '/admin/sessions', ADMIN))).not.toContain(token);
    expect(a.logs()).not.toContain(token);
    expect(b.logs()).not.toContain(token);

    expect((await rpc(a.url, ACP, 'session.close', { sessionId: sid })).result).toMatchObject({ closed: true });
    expect((await chat(a, token)).status).toBe(401);
  });

  it('usage of an agent started by a key is the key’s on A, also when a peer served it', async () => {
    const sid = 'mesh-key-1';
    const r = await turn(a, appKey.secret, sid, 'llm billed', true);
    expect(r.output).toBe(`llm 200 peer-model: ${PEER_REPLY}`);
    const usage = await adminGet<{ rows: Array<{ group: string; requests: number }> }>(a.url, '/admin/usage?by=key', ADMIN);
    const row = usage.rows.find((x) => x.group === appKey.name || x.group === appKey.id);
    expect(row, JSON.stringify(usage.rows)).toMatchObject({ requests: 1 });
    await rpc(a.url, appKey.secret, 'session.close', { sessionId: sid });
  });

  it('a cancel then a close revokes the token', async () => {
    const sid = 'mesh-cancel-1';
    const { token, slow } = await runningTurn(sid);
    await rpc(a.url, ACP, 'session.cancel', { sessionId: sid });
    await slow;
    expect((await rpc(a.url, ACP, 'session.close', { sessionId: sid })).result).toMatchObject({ closed: true });
    expect((await chat(a, token)).status).toBe(401);
  });

  it('a close while a turn runs revokes the token', async () => {
    const sid = 'mesh-close-running-1';
    const { token, slow } = await runningTurn(sid);
    expect((await rpc(a.url, ACP, 'session.close', { sessionId: sid })).result).toMatchObject({ closed: true });
    await slow;
    expect((await chat(a, token)).status).toBe(401);
  });

  it('a session.start that restarts the id revokes the old token; the new run gets its own', async () => {
    const sid = 'mesh-restart-id-1';
    await turn(a, ACP, sid, 'hi', true);
    const old = await tokenOf(a, ACP, sid);
    expect((await chat(a, old)).status).toBe(200);
    expect((await turn(a, ACP, sid, 'llm again', true)).output).toBe(`llm 200 peer-model: ${PEER_REPLY}`);
    expect((await chat(a, old)).status).toBe(401);
    const fresh = await tokenOf(a, ACP, sid);
    expect(fresh).not.toBe(old);
    expect((await chat(a, fresh)).status).toBe(200);
    await rpc(a.url, ACP, 'session.close', { sessionId: sid });
  });

  it('a restarted gateway knows no token of before; the session’s next turn gets a new one that works', async () => {
    const sid = 'mesh-restart-1';
    expect((await turn(a, ACP, sid, 'llm before restart', true)).output).toBe(`llm 200 peer-model: ${PEER_REPLY}`);
    const old = await tokenOf(a, ACP, sid);
    await a.stop(10_000);
    a = Object.assign(await spawnGateway(a.configPath, { SWITCHYARD_LOG: 'info' }), { dir: a.dir, configPath: a.configPath });
    await waitFor(async () => (await adminGet(a.url, '/admin/bridges', ADMIN)).peers[0]?.state === 'open', 'A→B link again');
    expect((await chat(a, old)).status).toBe(401);
    expect((await turn(a, ACP, sid, 'llm after restart')).output).toBe(`llm 200 peer-model: ${PEER_REPLY}`);
    const fresh = await tokenOf(a, ACP, sid);
    expect(fresh).not.toBe(old);
    await rpc(a.url, ACP, 'session.close', { sessionId: sid });
    expect((await chat(a, fresh)).status).toBe(401);
  });

  it('a session moved to B: its old token dies on A, and its agent on B gets one that works there', async () => {
    const sid = 'mesh-move-1';
    expect((await turn(a, ACP, sid, 'llm before', true)).output).toBe(`llm 200 peer-model: ${PEER_REPLY}`);
    const old = await tokenOf(a, ACP, sid);
    expect((await chat(a, old)).status).toBe(200);
    const moved = await fetch(`${a.url}/admin/sessions/${sid}/transfer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
      body: JSON.stringify({ to: 'gw_mesh_b' }),
    });
    expect(moved.status, await moved.clone().text()).toBe(200);
    expect((await chat(a, old)).status).toBe(401);
    expect((await chat(b, old)).status).toBe(401);
    const after = await turn(b, ACP, sid, 'llm after');
    expect(after.output).toBe(`llm 200 peer-model: ${PEER_REPLY}`);
    const fresh = await tokenOf(b, ACP, sid);
    expect(fresh).not.toBe(old);
    expect((await chat(b, fresh)).status).toBe(200);
    expect((await chat(a, fresh)).status).toBe(401);
    await rpc(b.url, ACP, 'session.close', { sessionId: sid });
    expect((await chat(b, fresh)).status).toBe(401);
  });
});
