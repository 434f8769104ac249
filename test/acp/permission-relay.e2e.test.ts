/**
 * Issue 12 item 4, the permission relay (addendum 2026-10 §5), with the fake ACP agent (test/fakes/
 * fake-acp-agent.mjs, prompt "permission": it asks session/request_permission with four options and replies with
 * what it was told). The app answers over /acp/rpc: allow, reject, an option not offered, a timeout, a cancel,
 * and a gateway restart (SIGKILL) while a prompt is pending.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { spawnGateway, type GatewayProcess } from '../helpers/env.js';
import { acpRpc, cleanupDirs, startInProcess, startProcess } from '../helpers/env.js';
import type { Gateway } from '../../src/gateway.js';

const TOKEN = 'perm-relay-token-7';
/** a second app (its own token): permissions.list without a sessionId lists each token's own prompts */
const TOKEN2 = 'perm-relay-token-other-app';
const FAKE_AGENT = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const acpConfig = (permissionTimeoutMs?: number) => ({
  tokens: [TOKEN, TOKEN2],
  ...(permissionTimeoutMs ? { permissionTimeoutMs } : {}),
  // no `permissions`: the default "ask" relays to the app
  agents: [{ id: 'fake', label: 'Fake Agent', command: process.execPath, args: [FAKE_AGENT] }],
});

type Json = any;
let gw: Gateway;
let quick: Gateway;
beforeAll(async () => {
  [gw, quick] = await Promise.all([startInProcess({ acp: acpConfig() }), startInProcess({ acp: acpConfig(700) })]);
});
afterAll(async () => {
  await Promise.all([gw?.close(), quick?.close()]);
  cleanupDirs();
});

/** One /acp/rpc call (test/helpers/env.ts acpRpc), with the first app's token unless another is given. */
const call = (url: string, method: string, params: Record<string, unknown>, token = TOKEN) => acpRpc(url, token, method, params);
/** Starts a "permission" turn over SSE; resolves with its result and every update. */
const permissionTurn = (url: string, sessionId: string, token = TOKEN) =>
  acpRpc(url, token, 'session.start', { sessionId, taskPrompt: 'permission please', provider: 'fake', requestedExecutionTarget: 'agent' }, true);
async function pendingPrompt(url: string, sessionId: string): Promise<Json> {
  const end = Date.now() + 15_000;
  for (;;) {
    const r = await call(url, 'xworkmate.permissions.list', { sessionId });
    if (r.result?.items?.length) return r.result.items[0];
    if (Date.now() > end) throw new Error(`no pending prompt for ${sessionId}`);
    await new Promise((res) => setTimeout(res, 30));
  }
}
const phases = (updates: Json[]) => updates.filter((u) => u.type === 'task').map((u) => u.task.phase);
const resolvedOf = (updates: Json[]) => updates.find((u) => u.event === 'task.permission_resolved');

describe('permission relay', () => {
  it('allow: the prompt is listed, answered with an offered option, and the agent gets it', async () => {
    const turn = permissionTurn(gw.url, 'p-allow');
    const p = await pendingPrompt(gw.url, 'p-allow');
    expect(p.requestId).toMatch(/^perm-[0-9a-f]{32}$/);
    expect(p).toMatchObject({ sessionId: 'p-allow', toolCall: { toolCallId: 'call_perm', title: 'Write config.json', kind: 'edit' } });
    expect(p.options.map((o: Json) => o.optionId)).toEqual(['opt-allow', 'opt-always', 'opt-reject', 'opt-never']);
    expect(p.holder).toBeUndefined();
    // tasks.get shows it too
    expect((await call(gw.url, 'xworkmate.tasks.get', { sessionId: 'p-allow' })).result.pendingPermissions).toEqual([p]);
    expect(await call(gw.url, 'xworkmate.permissions.respond', { sessionId: 'p-allow', requestId: p.requestId, optionId: 'opt-allow' })).toMatchObject({
      result: { accepted: true, requestId: p.requestId },
    });
    const { result, updates } = await turn;
    expect(result).toMatchObject({ status: 'completed', output: 'permission: opt-allow' });
    expect(phases(updates)).toEqual(['started', 'permission_requested', 'permission_resolved', 'completed']);
    expect(updates.find((u) => u.event === 'task.permission_requested').task.detail).toEqual(p);
    expect(resolvedOf(updates).task.detail).toMatchObject({ requestId: p.requestId, outcome: { outcome: 'selected', optionId: 'opt-allow' }, reason: 'user' });
    const after = (await call(gw.url, 'xworkmate.tasks.get', { sessionId: 'p-allow' })).result;
    expect(after.pendingPermissions).toEqual([]);
    expect(after.taskEvents.map((e: Json) => e.task.phase)).toEqual(['started', 'permission_requested', 'permission_resolved', 'completed']);
    // a second answer: already decided
    expect((await call(gw.url, 'xworkmate.permissions.respond', { sessionId: 'p-allow', requestId: p.requestId, optionId: 'opt-allow' })).error).toMatchObject({
      code: -32602,
      message: 'PERMISSION_ALREADY_DECIDED',
      data: { code: 'PERMISSION_ALREADY_DECIDED' },
    });
  });

  it('the ids of an answer are picked ids, trimmed as routing ids are: requestId, optionId and decision with surrounding whitespace name the prompt and its option', async () => {
    const turn = permissionTurn(gw.url, 'p-trim');
    const p = await pendingPrompt(gw.url, 'p-trim');
    expect(
      await call(gw.url, 'xworkmate.permissions.respond', { sessionId: 'p-trim', requestId: ` ${p.requestId}\n`, optionId: '\topt-always ' }),
    ).toMatchObject({ result: { accepted: true, requestId: p.requestId } });
    const { result, updates } = await turn;
    expect(result).toMatchObject({ status: 'completed', output: 'permission: opt-always' });
    expect(resolvedOf(updates).task.detail).toMatchObject({ requestId: p.requestId, outcome: { outcome: 'selected', optionId: 'opt-always' }, reason: 'user' });

    const cancelled = permissionTurn(gw.url, 'p-trim-cancel');
    const q = await pendingPrompt(gw.url, 'p-trim-cancel');
    expect(
      await call(gw.url, 'xworkmate.permissions.respond', { sessionId: 'p-trim-cancel', requestId: `${q.requestId} `, decision: ' cancel ' }),
    ).toMatchObject({
      result: { accepted: true, requestId: q.requestId },
    });
    expect((await cancelled).result).toMatchObject({ status: 'completed', output: 'permission: cancelled' });
    // blank is still absent
    expect((await call(gw.url, 'xworkmate.permissions.respond', { sessionId: 'p-trim-cancel', requestId: '  ', decision: 'cancel' })).error).toMatchObject({
      code: -32602,
      data: { code: 'INVALID_PARAMS', field: 'requestId' },
    });
  });

  it('permissions.list without a sessionId lists the prompts of the calling token’s sessions only (HTTP and WebSocket); any token may answer by id', async () => {
    const mineTurn = permissionTurn(gw.url, 'p-mine');
    const theirsTurn = permissionTurn(gw.url, 'p-theirs', TOKEN2);
    const mine = await pendingPrompt(gw.url, 'p-mine');
    const theirs = await pendingPrompt(gw.url, 'p-theirs');
    const listed = async (token: string) => ((await call(gw.url, 'xworkmate.permissions.list', {}, token)).result.items as Json[]).map((p) => p.requestId);
    expect(await listed(TOKEN)).toContain(mine.requestId);
    expect(await listed(TOKEN)).not.toContain(theirs.requestId);
    expect(await listed(TOKEN2)).toEqual([theirs.requestId]);
    // the WebSocket's caller is the token of its upgrade
    const sock = new WebSocket(`${gw.url.replace(/^http/, 'ws')}/acp`, { headers: { authorization: `Bearer ${TOKEN2}` } });
    await new Promise((r) => sock.once('open', r));
    const reply = new Promise<Json>((r) => sock.once('message', (d) => r(JSON.parse(d.toString()))));
    sock.send(JSON.stringify({ jsonrpc: '2.0', id: 'ws-list', method: 'xworkmate.permissions.list', params: {} }));
    expect((await reply).result.items).toEqual([theirs]);
    sock.close();
    // with the session named, its prompts are listed to any token (the session's record, as before)
    expect((await call(gw.url, 'xworkmate.permissions.list', { sessionId: 'p-mine' }, TOKEN2)).result.items).toEqual([mine]);
    // and any connection may answer a prompt by its id (addendum §5): here each app answers the other's
    expect(
      (await call(gw.url, 'xworkmate.permissions.respond', { sessionId: 'p-mine', requestId: mine.requestId, optionId: 'opt-allow' }, TOKEN2)).result,
    ).toMatchObject({ accepted: true });
    expect(
      (await call(gw.url, 'xworkmate.permissions.respond', { sessionId: 'p-theirs', requestId: theirs.requestId, optionId: 'opt-reject' })).result,
    ).toMatchObject({ accepted: true });
    expect((await mineTurn).result).toMatchObject({ status: 'completed', output: 'permission: opt-allow' });
    expect((await theirsTurn).result).toMatchObject({ status: 'completed', output: 'permission: opt-reject' });
    expect(await listed(TOKEN2)).toEqual([]);
  });

  it('reject, answered over the WebSocket', async () => {
    const turn = permissionTurn(gw.url, 'p-reject');
    const p = await pendingPrompt(gw.url, 'p-reject');
    const sock = new WebSocket(`${gw.url.replace(/^http/, 'ws')}/acp`, { headers: { authorization: `Bearer ${TOKEN}` } });
    await new Promise((r) => sock.once('open', r));
    const reply = new Promise<Json>((r) => sock.once('message', (d) => r(JSON.parse(d.toString()))));
    sock.send(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 'ws-r',
        method: 'xworkmate.permissions.respond',
        params: { sessionId: 'p-reject', requestId: p.requestId, optionId: 'opt-reject' },
      }),
    );
    expect(await reply).toMatchObject({ id: 'ws-r', result: { accepted: true } });
    sock.close();
    const { result } = await turn;
    expect(result).toMatchObject({ status: 'completed', output: 'permission: opt-reject' });
  });

  it('an option the agent did not offer is refused and the prompt stays pending; wrong session and unknown ids are refused', async () => {
    const turn = permissionTurn(gw.url, 'p-bogus');
    const p = await pendingPrompt(gw.url, 'p-bogus');
    const bogus = await call(gw.url, 'xworkmate.permissions.respond', { sessionId: 'p-bogus', requestId: p.requestId, optionId: 'opt-root' });
    expect(bogus.error).toMatchObject({ code: -32602, message: 'PERMISSION_OPTION_NOT_OFFERED', data: { code: 'PERMISSION_OPTION_NOT_OFFERED' } });
    const mismatch = await call(gw.url, 'xworkmate.permissions.respond', { sessionId: 'p-other', requestId: p.requestId, optionId: 'opt-allow' });
    expect(mismatch.error).toMatchObject({ code: -32602, data: { code: 'PERMISSION_SESSION_MISMATCH' } });
    const unknown = await call(gw.url, 'xworkmate.permissions.respond', {
      sessionId: 'p-bogus',
      requestId: 'perm-00000000000000000000000000000000',
      optionId: 'opt-allow',
    });
    expect(unknown.error).toMatchObject({ code: -32602, data: { code: 'PERMISSION_REQUEST_NOT_FOUND' } });
    const both = await call(gw.url, 'xworkmate.permissions.respond', {
      sessionId: 'p-bogus',
      requestId: p.requestId,
      optionId: 'opt-allow',
      decision: 'cancel',
    });
    expect(both.error).toMatchObject({ code: -32602, data: { code: 'INVALID_PARAMS' } });
    expect((await call(gw.url, 'xworkmate.permissions.list', { sessionId: 'p-bogus' })).result.items).toEqual([p]);
    await call(gw.url, 'xworkmate.permissions.respond', { sessionId: 'p-bogus', requestId: p.requestId, decision: 'cancel' });
    const { result, updates } = await turn;
    expect(result.output).toBe('permission: cancelled');
    expect(resolvedOf(updates).task.detail).toMatchObject({ outcome: { outcome: 'cancelled' }, reason: 'user' });
  });

  it('unanswered: resolved as cancelled after acp.permissionTimeoutMs', async () => {
    const turn = permissionTurn(quick.url, 'p-timeout');
    await pendingPrompt(quick.url, 'p-timeout');
    const { result, updates } = await turn;
    expect(result).toMatchObject({ status: 'completed', output: 'permission: cancelled' });
    expect(resolvedOf(updates).task.detail).toMatchObject({ outcome: { outcome: 'cancelled' }, reason: 'timeout' });
    expect((await call(quick.url, 'xworkmate.permissions.list', { sessionId: 'p-timeout' })).result.items).toEqual([]);
  });

  it('session.cancel while a prompt is pending: the prompt resolves as cancelled (run_cancelled) and the turn ends cancelled', async () => {
    const turn = permissionTurn(gw.url, 'p-cancel');
    await pendingPrompt(gw.url, 'p-cancel');
    expect((await call(gw.url, 'session.cancel', { sessionId: 'p-cancel' })).result).toEqual({ accepted: true, cancelled: true, runCancelled: true });
    const { result, updates } = await turn;
    expect(result.status).toBe('cancelled');
    expect(resolvedOf(updates).task.detail).toMatchObject({ outcome: { outcome: 'cancelled' }, reason: 'run_cancelled' });
    expect((await call(gw.url, 'xworkmate.permissions.list', { sessionId: 'p-cancel' })).result.items).toEqual([]);
  });
});

describe('a gateway restart while a prompt is pending', () => {
  const procs: GatewayProcess[] = [];
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop()));
  });

  it('the prompt is in the store; after SIGKILL and restart it resolves as cancelled (gateway_restarted), recorded', async () => {
    const first = await startProcess({ gateway: { id: 'gw_perm' }, acp: acpConfig() });
    procs.push(first);
    void permissionTurn(first.url, 'p-restart').catch(() => undefined);
    const p = await pendingPrompt(first.url, 'p-restart');
    first.kill('SIGKILL');
    await new Promise((r) => first.proc.once('exit', r));
    const second = await spawnGateway(first.configPath, { SWITCHYARD_LOG: 'info' });
    procs.push(second);
    const t = (await call(second.url, 'xworkmate.tasks.get', { sessionId: 'p-restart' })).result;
    expect(t.pendingPermissions).toEqual([]);
    const resolved = t.taskEvents.find((e: Json) => e.event === 'task.permission_resolved');
    expect(resolved.task.detail).toMatchObject({ requestId: p.requestId, outcome: { outcome: 'cancelled' }, reason: 'gateway_restarted' });
    expect((await call(second.url, 'xworkmate.permissions.list', { sessionId: 'p-restart' })).result.items).toEqual([]);
    const late = await call(second.url, 'xworkmate.permissions.respond', { sessionId: 'p-restart', requestId: p.requestId, optionId: 'opt-allow' });
    expect(late.error).toMatchObject({ code: -32602, data: { code: 'PERMISSION_ALREADY_DECIDED' } });
    // the session goes on: the next turn runs (a new agent process)
    const next = await call(second.url, 'session.message', { sessionId: 'p-restart', taskPrompt: 'hello again' });
    expect(next.result).toMatchObject({ status: 'completed', output: 'echo: hello again' });
  });

  it('a prompt answered before a restart: a late answer after it gets PERMISSION_ALREADY_DECIDED (from the record)', async () => {
    const first = await startProcess({ gateway: { id: 'gw_perm_answered' }, acp: acpConfig() });
    procs.push(first);
    const turn = permissionTurn(first.url, 'p-answered');
    const p = await pendingPrompt(first.url, 'p-answered');
    expect(
      (await call(first.url, 'xworkmate.permissions.respond', { sessionId: 'p-answered', requestId: p.requestId, optionId: 'opt-reject' })).result,
    ).toMatchObject({
      accepted: true,
    });
    expect((await turn).result).toMatchObject({ status: 'completed', output: 'permission: opt-reject' });
    await first.stop();
    const second = await spawnGateway(first.configPath, { SWITCHYARD_LOG: 'info' });
    procs.push(second);
    const late = await call(second.url, 'xworkmate.permissions.respond', { sessionId: 'p-answered', requestId: p.requestId, optionId: 'opt-allow' });
    expect(late.error).toMatchObject({ code: -32602, message: 'PERMISSION_ALREADY_DECIDED', data: { code: 'PERMISSION_ALREADY_DECIDED' } });
  });
});
