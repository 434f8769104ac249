/**
 * Virtual keys on the agent-task entry (`/acp/rpc` and the `/acp` WebSocket): a key created with `acp: true`
 * starts agent tasks, and its sessions' model traffic is the key's: an agent's requests on its session token
 * and a gateway chat task's request are recorded under the key, to the upstream's token, and held to the key's
 * models, budget and state (disabled) as they stand at each request. A key without `acp`, a disabled key and an
 * unknown secret are refused on both transports; `acp.tokens` keep working, their sessions' traffic recorded as
 * `agent:<runtime id>`. In-process gateway (SQLite), the scripted OpenAI upstream, and the fake ACP agent under
 * the hermes preset with `llm` (a real child process calling the gateway's /v1 with its session token).
 */
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import { channelOf, cleanupDirs, startGw, waitFor } from '../helpers/env.js';
import type { Gateway } from '../../src/gateway.js';
import { agentRouting, rpc } from '../agents/acp-rpc.js';
import { admin, createKey } from './helpers.js';

const FAKE = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const ACP = 'acp-keys-static-token-3a9c71';
let up: OpenAiFake;
let gw: Gateway & { logs: string[] };

const hermes = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  label: `Hermes (fake) ${id}`,
  preset: 'hermes',
  command: process.execPath,
  args: [FAKE],
  llm: { model: 'gpt-4o-mini' },
  permissions: 'allow',
  ...extra,
});

beforeAll(async () => {
  up = await startOpenAiUpstream({ reply: 'from the upstream' });
  gw = await startGw({
    gateway: { keys: { refreshMs: 100 } },
    channels: [channelOf(up, 'oa', ['gpt-4o-mini', 'gpt-4o'])],
    acp: {
      tokens: [ACP],
      agents: [hermes('hermes'), hermes('hermes-warm', { warm: 1 })],
      gateways: [{ id: 'chat', label: 'Chat', kind: 'channels', model: 'gpt-4o' }],
    },
  });
}, 30_000);

afterAll(async () => {
  await gw?.close();
  await up?.close();
  cleanupDirs();
});

/** One /acp/rpc call as the raw HTTP answer (status and envelope). */
async function raw(secret: string | undefined, method = 'xworkmate.capabilities', params: Record<string, unknown> = {}) {
  const res = await fetch(`${gw.url}/acp/rpc`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(secret ? { authorization: `Bearer ${secret}` } : {}) },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  return { status: res.status, body: (await res.json()) as any };
}

/** The `/acp` upgrade's outcome: 101 when it opened, else the refusal's status. */
function upgrade(secret: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${gw.url.replace(/^http/, 'ws')}/acp`, { headers: { authorization: `Bearer ${secret}` } });
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      ws.terminate();
    });
    ws.once('error', reject);
  });
}

const start = (secret: string, sessionId: string, taskPrompt: string, routing: Record<string, unknown> = agentRouting('hermes')) =>
  rpc(gw.url, secret, 'session.start', { sessionId, taskPrompt, routing }, 30_000);
const message = (secret: string, sessionId: string, taskPrompt: string) => rpc(gw.url, secret, 'session.message', { sessionId, taskPrompt }, 30_000);
/** the next upstream answer's usage (an enqueued scenario replaces the base one: the reply is repeated) */
const used = (input: number, output: number) => ({ reply: 'from the upstream', usage: { input, output } });
const chatTask = { explicitExecutionTarget: 'gateway', preferredGatewayProviderId: 'chat' };

/** usage rows grouped by key (a key's row is named after the key), after the recorder flushed */
async function usageByKey(): Promise<Record<string, { requests: number; inputTokens: number; outputTokens: number }>> {
  const r = await admin(gw.url, 'GET', '/admin/usage?by=key');
  expect(r.status).toBe(200);
  return Object.fromEntries((r.json.rows as any[]).map((x) => [x.group, x]));
}

describe('virtual keys on /acp/rpc and /acp', () => {
  it('a key created with acp is accepted; one without acp gets 403, a disabled key and an unknown secret 401, over HTTP and the WebSocket', async () => {
    const withAcp = await createKey(gw.url, { name: 'app-acp', acp: true });
    const modelsOnly = await createKey(gw.url, { name: 'app-models-only' });
    const disabled = await createKey(gw.url, { name: 'app-acp-disabled', acp: true });
    expect((await admin(gw.url, 'POST', '/admin/keys/app-acp-disabled/disable')).status).toBe(200);
    expect((await admin(gw.url, 'GET', '/admin/keys/app-acp')).json.key).toMatchObject({ acp: true });
    expect((await admin(gw.url, 'GET', '/admin/keys/app-models-only')).json.key).toMatchObject({ acp: false });
    const bad = await admin(gw.url, 'POST', '/admin/keys', { name: 'bad-acp', acp: 'yes' });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatchObject({ param: 'acp' });

    expect((await raw(withAcp.secret)).status).toBe(200);
    const forbidden = await raw(modelsOnly.secret);
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.error).toMatchObject({ code: -32003, data: { code: 'FORBIDDEN' } });
    expect(forbidden.body.error.message).toMatch(/may not start agent tasks: create a key with acp: true/);
    const off = await raw(disabled.secret);
    expect(off.status).toBe(401);
    expect(off.body.error.message).toMatch(/is disabled/);
    const unknown = await raw('sy-' + 'A'.repeat(43));
    expect(unknown.status).toBe(401);
    expect(unknown.body.error.data.code).toBe('UNAUTHORIZED');
    // no secret in any answer
    for (const r of [forbidden, off, unknown])
      for (const s of [withAcp.secret, modelsOnly.secret, disabled.secret]) expect(JSON.stringify(r.body)).not.toContain(s);
    // the static tokens still work beside the keys
    expect((await raw(ACP)).status).toBe(200);

    expect(await upgrade(withAcp.secret)).toBe(101);
    expect(await upgrade(modelsOnly.secret)).toBe(403);
    expect(await upgrade(disabled.secret)).toBe(401);
    expect(await upgrade(ACP)).toBe(101);
  });

  it("an agent's model requests in a key's session are recorded under the key, to the upstream's token; a token's session's under agent:<id>", async () => {
    const k = await createKey(gw.url, { name: 'agent-app', acp: true });
    up.enqueue(used(11, 4), used(13, 6), used(17, 2));
    expect((await start(k.secret, 'k-agent-1', 'llm first')).result.output).toBe('llm 200 gpt-4o-mini: from the upstream');
    expect((await message(k.secret, 'k-agent-1', 'llm second')).result.output).toBe('llm 200 gpt-4o-mini: from the upstream');
    const before = (await usageByKey())['agent:hermes']?.requests ?? 0;
    expect((await start(ACP, 'token-agent-1', 'llm third')).result.output).toBe('llm 200 gpt-4o-mini: from the upstream');

    const rows = await usageByKey();
    expect(rows['agent-app']).toMatchObject({ requests: 2, inputTokens: 24, outputTokens: 10 });
    expect(rows['agent:hermes']!.requests).toBe(before + 1);
    // the session records who started it: the key's id, never its secret
    expect((await gw.store.get('k-agent-1'))?.metadata.caller).toBe(`key:${k.id}`);
  });

  it("the key's models, budget and state hold for its sessions' agents, as the key stands at each request", async () => {
    // models: the agent's model (llm.model) is outside the key's globs
    const narrow = await createKey(gw.url, { name: 'narrow-app', acp: true, models: ['gpt-4o'] });
    const n = await start(narrow.secret, 'k-narrow-1', 'llm hi');
    expect(n.result.output).toMatch(/^llm 403 -: API key sy-.{4}… may not use model "gpt-4o-mini"$/);

    // budget: the first request spends past it, the next one is refused
    const budgeted = await createKey(gw.url, { name: 'budget-app', acp: true, budget: { period: 'day', tokens: 30 } });
    up.enqueue(used(20, 15));
    expect((await start(budgeted.secret, 'k-budget-1', 'llm one')).result.output).toBe('llm 200 gpt-4o-mini: from the upstream');
    const calls = up.count('/chat/completions');
    const refused = await message(budgeted.secret, 'k-budget-1', 'llm two');
    expect(refused.result.output).toMatch(/^llm 429 -: .*budget/i);
    expect(up.count('/chat/completions')).toBe(calls); // refused before the upstream

    // disabled mid-session: the agent's next request is refused, and so is the app's next call
    const later = await createKey(gw.url, { name: 'disabled-later', acp: true });
    expect((await start(later.secret, 'k-later-1', 'llm before')).result.output).toBe('llm 200 gpt-4o-mini: from the upstream');
    expect((await admin(gw.url, 'POST', '/admin/keys/disabled-later/disable')).status).toBe(200);
    expect((await message(ACP, 'k-later-1', 'llm after')).result.output).toMatch(/^llm 401 -: API key sy-.{4}… is disabled$/);
    expect((await raw(later.secret, 'session.message', { sessionId: 'k-later-1', taskPrompt: 'x' })).status).toBe(401);
  });

  it("a gateway chat task's model request is recorded under the key that started it, and the key's budget refuses its next turn", async () => {
    const k = await createKey(gw.url, { name: 'chat-app', acp: true, budget: { period: 'day', tokens: 5 } });
    up.enqueue(used(7, 3));
    const first = await start(k.secret, 'k-chat-1', 'hello', chatTask);
    expect(first.result).toMatchObject({ success: true, output: 'from the upstream' });
    expect((await usageByKey())['chat-app']).toMatchObject({ requests: 1, inputTokens: 7, outputTokens: 3 });

    const calls = up.count('/chat/completions');
    const second = await message(k.secret, 'k-chat-1', 'again');
    expect(second.result.success).toBe(false);
    expect(JSON.stringify(second.result)).toContain('BUDGET_EXCEEDED');
    expect(up.count('/chat/completions')).toBe(calls);

    // a token's chat task is recorded too, under the runtime's id
    up.enqueue(used(2, 1));
    const before = (await usageByKey())['agent:chat']?.requests ?? 0;
    expect((await start(ACP, 'token-chat-1', 'hello', chatTask)).result).toMatchObject({ success: true });
    expect((await usageByKey())['agent:chat']!.requests).toBe(before + 1);
  });

  it('a gateway chat task whose upstream never sends its count (no usage chunk) is charged its key an estimate', async () => {
    const k = await createKey(gw.url, { name: 'chat-uncounted', acp: true });
    const prompt = 'word '.repeat(80); // 400 characters: ~100 tokens by the estimate
    up.enqueue({ reply: 'one two three', noUsage: true });
    const done = await start(k.secret, 'k-chat-uncounted', prompt, chatTask);
    expect(done.result).toMatchObject({ success: true, output: 'one two three' });
    const row = (await usageByKey())['chat-uncounted']!;
    expect(row.requests).toBe(1);
    expect(row.inputTokens).toBeGreaterThan(prompt.length / 4);
    // one per chunk taken: the role chunk, three words, the finish chunk
    expect(row.outputTokens).toBe(5);
  });

  it("a gateway chat task cancelled mid-stream, before the upstream's count, is charged its key an estimate", async () => {
    const k = await createKey(gw.url, { name: 'chat-cancel', acp: true });
    const prompt = 'word '.repeat(80); // 400 characters: ~100 tokens by the estimate
    up.enqueue({ reply: 'one two three four five six seven eight nine ten', chunkDelayMs: 300, usage: { input: 50, output: 10 } });
    const turn = start(k.secret, 'k-chat-cancel', prompt, chatTask);
    // the first words reached the task: then it is cancelled, long before the stream's usage chunk
    await waitFor(async () => {
      const r = await rpc(gw.url, k.secret, 'xworkmate.tasks.get', { sessionId: 'k-chat-cancel', afterSeq: 0 });
      return (r.result?.updates as any[] | undefined)?.some((u) => u.type === 'delta');
    }, 'a delta of the chat task');
    expect((await rpc(gw.url, k.secret, 'session.cancel', { sessionId: 'k-chat-cancel' })).result).toMatchObject({ cancelled: true });
    expect((await turn).result).toMatchObject({ status: 'cancelled' });
    const row = await waitFor(async () => (await usageByKey())['chat-cancel'], 'the cancelled turn recorded');
    expect(row.requests).toBe(1);
    expect(row.inputTokens).toBeGreaterThan(prompt.length / 4);
    expect(row.outputTokens).toBeGreaterThanOrEqual(1);
    expect(row.outputTokens).toBeLessThan(10);
  });

  it('a session whose key this gateway does not hold (moved here from a gateway with another key store) is accounted to its runtime', async () => {
    const principal = { kind: 'agent', agentId: 'hermes', sessionId: 'moved-1', keyId: 'key_00000000000000aa' } as const;
    const before = (await usageByKey())['agent:hermes']?.requests ?? 0;
    const ticket = await gw.keys.admit(principal, 'gpt-4o-mini');
    await ticket.finish({ model: 'gpt-4o-mini', channel: 'oa', usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 }, stream: false, ok: true });
    expect((await usageByKey())['agent:hermes']!.requests).toBe(before + 1);
    // a key it does hold, disabled, is refused
    const k = await createKey(gw.url, { name: 'held-disabled', acp: true });
    expect((await admin(gw.url, 'POST', '/admin/keys/held-disabled/disable')).status).toBe(200);
    await expect(Promise.resolve(gw.keys.admit({ ...principal, keyId: k.id }, 'gpt-4o-mini'))).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
  });

  it('a key reaches only the sessions it started, on every method and the WebSocket resume; acp.tokens reach every session', async () => {
    const a = await createKey(gw.url, { name: 'tenant-a', acp: true });
    const b = await createKey(gw.url, { name: 'tenant-b', acp: true });
    up.enqueue(used(1, 1));
    const first = (await start(a.secret, 'iso-1', 'hello', chatTask)).result;
    expect(first).toMatchObject({ success: true, output: 'from the upstream' });

    const refused = async (method: string, params: Record<string, unknown>) => {
      const r = await rpc(gw.url, b.secret, method, { sessionId: 'iso-1', ...params });
      expect(r.error, `${method}: ${JSON.stringify(r)}`).toMatchObject({ code: -32003, data: { code: 'FORBIDDEN', sessionId: 'iso-1' } });
      expect(JSON.stringify(r)).not.toContain('from the upstream');
    };
    await refused('session.message', { taskPrompt: 'mine now' });
    await refused('session.start', { taskPrompt: 'take it over', routing: chatTask });
    await refused('xworkmate.tasks.get', {});
    await refused('xworkmate.tasks.get', { afterSeq: 0 });
    await refused('xworkmate.permissions.list', {});
    await refused('xworkmate.permissions.respond', { requestId: 'perm-x', decision: 'cancel' });
    await refused('session.cancel', {});
    await refused('session.close', {});
    // a runId alone names the session too
    const byRun = await rpc(gw.url, b.secret, 'xworkmate.tasks.get', { runId: first.runId });
    expect(byRun.error).toMatchObject({ code: -32003, data: { code: 'FORBIDDEN', sessionId: 'iso-1' } });
    expect(JSON.stringify(byRun)).not.toContain('from the upstream');
    expect((await rpc(gw.url, a.secret, 'xworkmate.tasks.get', { runId: first.runId })).result).toMatchObject({ sessionId: 'iso-1' });

    // the session is untouched: its key continues it, and an acp.tokens token (the operator's) reaches it too
    up.enqueue(used(1, 1));
    expect((await message(a.secret, 'iso-1', 'still mine')).result).toMatchObject({ success: true });
    expect((await rpc(gw.url, ACP, 'xworkmate.tasks.get', { sessionId: 'iso-1' })).result).toMatchObject({ sessionId: 'iso-1', status: 'completed' });
    // a key starts sessions of its own as before
    up.enqueue(used(1, 1));
    expect((await start(b.secret, 'iso-2', 'hello', chatTask)).result).toMatchObject({ success: true });

    // the WebSocket resume: the other key is told FORBIDDEN and the socket closes with 1008; the owner gets the log
    const resume = (secret: string) =>
      new Promise<{ messages: any[]; code: number }>((resolve, reject) => {
        const messages: any[] = [];
        const ws = new WebSocket(`${gw.url.replace(/^http/, 'ws')}/acp?sessionId=iso-1&afterSeq=0`, { headers: { authorization: `Bearer ${secret}` } });
        ws.on('message', (d) => {
          messages.push(JSON.parse(String(d)));
          if (messages.some((m) => m.method === 'session.update')) ws.close();
        });
        ws.once('close', (code) => resolve({ messages, code }));
        ws.once('error', reject);
      });
    const other = await resume(b.secret);
    expect(other.code).toBe(1008);
    expect(other.messages).toEqual([expect.objectContaining({ error: expect.objectContaining({ data: expect.objectContaining({ code: 'FORBIDDEN' }) }) })]);
    const owner = await resume(a.secret);
    expect(owner.messages.some((m) => m.method === 'session.update' && m.params.sessionId === 'iso-1')).toBe(true);
  });

  it("a key's agent sessions work in folders of their own: no workingDirectory reaches another key's files", async () => {
    const a = await createKey(gw.url, { name: 'folders-a', acp: true });
    const b = await createKey(gw.url, { name: 'folders-b', acp: true });
    // read and write are the fake agent's own file operations: no model request is made
    expect((await start(a.secret, 'fold-a', 'write secret.txt topsecret-a')).result).toMatchObject({ success: true, output: 'write ok' });
    // B names A's session folder, and the folder A's absolute client paths map to: its own, empty ones
    for (const [i, workingDirectory] of ['fold-a', 'clients', '.'].entries()) {
      const r = await rpc(
        gw.url,
        b.secret,
        'session.start',
        { sessionId: `fold-b-${i}`, taskPrompt: 'read secret.txt', routing: agentRouting('hermes'), workingDirectory },
        30_000,
      );
      expect(r.result.output, workingDirectory).toMatch(/^read error: /);
      expect(JSON.stringify(r)).not.toContain('topsecret-a');
    }
    // A's own next turn still finds it
    expect((await message(a.secret, 'fold-a', 'read secret.txt')).result.output).toBe('read ok: topsecret-a');
  });

  it("a warm spare taken by a key's session bills that key", async () => {
    await waitFor(() => gw.logs.some((l) => l.includes('warm agent process ready') && l.includes('hermes-warm')), 'the warm spare', 20_000);
    const k = await createKey(gw.url, { name: 'warm-app', acp: true });
    up.enqueue(used(5, 5));
    expect((await start(k.secret, 'k-warm-1', 'llm warm', agentRouting('hermes-warm'))).result.output).toBe('llm 200 gpt-4o-mini: from the upstream');
    expect(gw.logs.some((l) => l.includes('warm agent process taken') && l.includes('k-warm-1'))).toBe(true);
    expect((await usageByKey())['warm-app']).toMatchObject({ requests: 1, inputTokens: 5, outputTokens: 5 });
  });
});
