/**
 * Conformance gaps of `/acp/rpc` against its spec (acp-rpc.md and the 2026-10 addendum), each found by an audit
 * against a real gateway process and the fake ACP agent:
 *
 * - The routing fields (`provider`, `model`, `gatewayProviderId`, `requestedExecutionTarget`, `routing.*`) took
 *   strings of any length and lone UTF-16 surrogates, unlike every other id: a 1.5 MB `model` started a session
 *   whose record, results and `xworkmate.routing.resolve` answer all carried it, and a 1.5 MB `provider` came
 *   back inside the `unavailableMessage`. They are ids like the others now: at most 256 characters, well-formed,
 *   else -32602 naming the field, and nothing starts.
 * - A numeric `id` past 2^53 − 1 was answered under another id (12345678901234567891 came back as
 *   12345678901234567000: JSON numbers read as doubles), where the spec echoes `id` exactly. Such a request is now
 *   refused with -32600 naming `id`, on HTTP and WebSocket alike.
 * - Results of turns that did not complete carried their machine code as `errorCode` only, and a cancelled turn
 *   none, where the addendum (§3) names it `code`, with `TASK_CANCELLED` on a cancel. They carry `code` now
 *   (`errorCode` stays, for the clients that read it).
 * - An unknown method's name came back whole, twice (message and `data.method`): a 1 MB name got a 2 MB error.
 *   It is quoted to 256 characters, as ids are.
 *
 * - `xworkmate.routing.resolve` read `workingDirectory` as a bare string where `session.start` reads it as a
 *   folder hint: for a role that needs a workspace, resolve said "selected" for `"."` (no folder) and for
 *   `"../x"` (refused), where the start of the same params was refused. It reads the hint as the start does.
 *
 * - A plain (not upgraded) request to `/acp`, the WebSocket entry, got the server's generic 404 "no route" in the
 *   model APIs' error format. It gets 426 with a JSON-RPC envelope (`UPGRADE_REQUIRED`) saying how to use it,
 *   after the same Origin and Bearer checks as the upgrade.
 *
 * - A `session.cancel` that came while a `session.start` was replacing its session (closing the old one, whose
 *   agent takes a while to stop, and storing the new record) was lost: it answered `cancelled: false`, and the
 *   new turn ran to its end. The cancel is now for that start's turn, which ends cancelled at once.
 *
 * - A `session.message` that came while a `session.start` was replacing its session revived the old record beside
 *   it: the message ran first (before the start's turn, which came first), on a second agent process, and its
 *   turn was then lost when the start stored the new record. It now waits for the start and runs as the next
 *   turn of the new session, in arrival order.
 *
 * With them, a sweep of hostile params over every method: each answer is a JSON-RPC envelope for the request's
 * id, and the gateway serves on.
 */
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { acpRpc, adminGet, startProcess, waitFor, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';

type Json = any;

const FAKE = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const ACP = 'rpc-conformance-acp-token-4410';
const started = stopAfterAll();
let gw: GatewayProcess;

beforeAll(async () => {
  gw = started.trackGateway(
    await startProcess({
      gateway: { id: 'gw_rpc_conformance', maxBodyBytes: 4 * 1024 * 1024 },
      channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
      acp: {
        tokens: [ACP],
        agents: [
          { id: 'fake', label: 'Fake', command: process.execPath, args: [FAKE], permissions: 'allow' },
          // an agent slow to stop: closing its session takes the 2 s stop grace
          { id: 'stubborn', label: 'Stubborn', command: process.execPath, args: [FAKE], permissions: 'allow', env: { FAKE_ACP_IGNORE_SIGTERM: '1' } },
        ],
        gateways: [{ id: 'switchyard', label: 'Switchyard', kind: 'channels', model: 'mock-1' }],
        roles: {
          policyVersion: 'p-1',
          roles: [
            { role: 'engineer', models: [{ key: 'm1', model: 'mock-1' }], executors: ['switchyard'] },
            { role: 'architect', models: [{ key: 'm1', model: 'mock-1' }], executors: ['switchyard'], requiresWorkspace: true },
          ],
        },
      },
    }),
  );
}, 60_000);

/** one request as raw JSON text (ids a JSON.stringify of a JS number cannot spell) */
async function postRaw(text: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`${gw.url}/acp/rpc`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ACP}`, 'content-type': 'application/json' },
    body: text,
  });
  return { status: res.status, body: await res.text() };
}

/** An open /acp WebSocket with the token, and every message it has been sent (parsed) so far. */
async function acpSocket(): Promise<{ ws: WebSocket; got: Json[] }> {
  const ws = new WebSocket(`${gw.url.replace(/^http/, 'ws')}/acp`, { headers: { authorization: `Bearer ${ACP}` } });
  const got: Json[] = [];
  ws.on('message', (d) => got.push(JSON.parse(String(d))));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return { ws, got };
}

const agent = { routingMode: 'explicit', explicitExecutionTarget: 'agent', explicitProviderId: 'fake' };
const LONG = 'm'.repeat(257);
const HUGE = 'p'.repeat(1_500_000);

async function expectAlive(): Promise<void> {
  const h = await acpRpc(gw.url, ACP, 'health', {});
  expect(h.result).toMatchObject({ status: 'ok' });
}

describe('routing fields are bounded ids', () => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['a model over 256 characters', { model: LONG, routing: agent }, 'model'],
    ['routing.explicitModel over 256 characters', { routing: { ...agent, explicitModel: LONG } }, 'routing.explicitModel'],
    ['a 1.5 MB provider', { provider: HUGE, requestedExecutionTarget: 'agent' }, 'provider'],
    ['a 1.5 MB gatewayProviderId', { gatewayProviderId: HUGE, requestedExecutionTarget: 'gateway' }, 'gatewayProviderId'],
    ['a lone surrogate in routing.explicitProviderId', { routing: { ...agent, explicitProviderId: 'fa\ud800ke' } }, 'routing.explicitProviderId'],
    ['a lone surrogate in model', { model: 'mock-\udc00', routing: agent }, 'model'],
    ['a 300-character requestedExecutionTarget', { requestedExecutionTarget: 'a'.repeat(300) }, 'requestedExecutionTarget'],
    ['a lone surrogate in routing.role', { routing: { role: 'engineer\ud800', roleMode: 'auto' } }, 'routing.role'],
  ];
  for (const [what, routing, field] of cases) {
    it(`${what}: -32602 naming ${field} from session.start and xworkmate.routing.resolve; no session`, async () => {
      const sessionId = `bounded-${field.replace(/\W/g, '-')}-${Math.random().toString(36).slice(2, 8)}`;
      const start = await acpRpc(gw.url, ACP, 'session.start', { sessionId, taskPrompt: 'hello', ...routing });
      expect(start.result).toBeUndefined();
      expect(start.error).toMatchObject({ code: -32602, data: { code: 'INVALID_PARAMS', field } });
      // the error names the field, and never carries the value back
      expect(JSON.stringify(start.error).length).toBeLessThan(1000);

      const resolve = await acpRpc(gw.url, ACP, 'xworkmate.routing.resolve', routing);
      expect(resolve.error).toMatchObject({ code: -32602, data: { code: 'INVALID_PARAMS', field } });

      // nothing was started under that id
      const msg = await acpRpc(gw.url, ACP, 'session.message', { sessionId, taskPrompt: 'again' });
      expect(msg.error).toMatchObject({ code: -32002, data: { code: 'SESSION_CONTINUATION_UNAVAILABLE' } });
    });
  }

  it('a 256-character model is still a model: the session starts and the result names it', async () => {
    const model = 'k'.repeat(256);
    const r = await acpRpc(gw.url, ACP, 'session.start', { sessionId: 'bounded-ok', taskPrompt: 'hello', model, routing: agent });
    expect(r.error).toBeUndefined();
    expect(r.result).toMatchObject({ success: true, status: 'completed', resolvedModel: model });
    await expectAlive();
  });
});

describe('id is echoed exactly or refused', () => {
  it('HTTP: an integer id past 2^53 - 1 gets -32600 naming id (never an answer under a rounded id); 2^53 - 1 is echoed', async () => {
    const big = await postRaw('{"jsonrpc":"2.0","id":12345678901234567891,"method":"health"}');
    expect(big.status).toBe(400);
    expect(big.body).not.toContain('12345678901234567000');
    const j = JSON.parse(big.body);
    expect(j).toMatchObject({ jsonrpc: '2.0', id: null, ok: false, error: { code: -32600, data: { code: 'INVALID_REQUEST', field: 'id' } } });
    expect(j.error.message).toMatch(/string/);

    const max = await postRaw('{"jsonrpc":"2.0","id":9007199254740991,"method":"health"}');
    expect(max.status).toBe(200);
    expect(max.body).toContain('"id":9007199254740991,');
    const neg = await postRaw('{"jsonrpc":"2.0","id":-9007199254740993,"method":"health"}');
    expect(JSON.parse(neg.body)).toMatchObject({ id: null, error: { code: -32600, data: { field: 'id' } } });
    // the same digits as a string are echoed as sent
    const str = await postRaw('{"jsonrpc":"2.0","id":"12345678901234567891","method":"health"}');
    expect(JSON.parse(str.body)).toMatchObject({ id: '12345678901234567891', ok: true });
  });

  it('HTTP: id null is a request (JSON-RPC 2.0 §4), answered with id null, never refused nor taken for a notification', async () => {
    const r = await postRaw('{"jsonrpc":"2.0","id":null,"method":"health"}');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({
      jsonrpc: '2.0',
      id: null,
      result: { status: 'ok', version: expect.any(String) },
      type: 'res',
      ok: true,
      payload: expect.any(Object),
    });
    // a method error keeps it too
    const e = await postRaw('{"jsonrpc":"2.0","id":null,"method":"no.such.method"}');
    expect(JSON.parse(e.body)).toMatchObject({ id: null, ok: false, error: { code: -32601 } });
  });

  it('WebSocket: id null is answered with id null', async () => {
    const { ws, got } = await acpSocket();
    try {
      ws.send('{"jsonrpc":"2.0","id":null,"method":"health"}');
      await waitFor(() => got.length >= 1 || undefined, 'the answer');
      expect(got[0]).toMatchObject({ id: null, ok: true, result: { status: 'ok' } });
    } finally {
      ws.close();
    }
  });

  it('WebSocket: the same refusal, and the socket goes on serving', async () => {
    const { ws, got } = await acpSocket();
    try {
      ws.send('{"jsonrpc":"2.0","id":12345678901234567891,"method":"health"}');
      ws.send('{"jsonrpc":"2.0","id":"after","method":"health"}');
      await waitFor(() => got.length >= 2 || undefined, 'two answers');
      const refused = got.find((m) => m.ok === false);
      expect(refused).toMatchObject({ id: null, error: { code: -32600, data: { code: 'INVALID_REQUEST', field: 'id' } } });
      expect(got.some((m) => m.id === 12345678901234567000)).toBe(false);
      expect(got.find((m) => m.id === 'after')).toMatchObject({ ok: true, result: { status: 'ok' } });
    } finally {
      ws.close();
    }
  });
});

describe('results of turns that did not complete carry `code` (addendum §3)', () => {
  it('a cancelled turn: code TASK_CANCELLED', async () => {
    const sessionId = 'code-cancel';
    const run = acpRpc(gw.url, ACP, 'session.start', { sessionId, taskPrompt: 'slow', routing: agent });
    await waitFor(async () => {
      const t = await acpRpc(gw.url, ACP, 'xworkmate.tasks.get', { sessionId });
      return t.result?.status === 'running' && (t.result.progress?.outputChars ?? 0) > 0 ? true : undefined;
    }, 'the slow turn to send text');
    const c = await acpRpc(gw.url, ACP, 'session.cancel', { sessionId });
    expect(c.result).toMatchObject({ accepted: true, cancelled: true });
    const r = (await run).result;
    expect(r).toMatchObject({ success: false, status: 'cancelled', stopReason: 'cancelled', code: 'TASK_CANCELLED' });
    // and the snapshot of the run says the same
    const snap = await acpRpc(gw.url, ACP, 'xworkmate.tasks.get', { runId: r.runId });
    expect(snap.result.result).toMatchObject({ status: 'cancelled', code: 'TASK_CANCELLED' });
  });

  it('a failed turn: code is its gateway error code (as errorCode); a completed one has none', async () => {
    const failed = (await acpRpc(gw.url, ACP, 'session.start', { sessionId: 'code-crash', taskPrompt: 'crash', routing: agent })).result;
    expect(failed).toMatchObject({ success: false, status: 'failed' });
    expect(typeof failed.errorCode).toBe('string');
    expect(failed.code).toBe(failed.errorCode);

    const done = (await acpRpc(gw.url, ACP, 'session.start', { sessionId: 'code-ok', taskPrompt: 'hello', routing: agent })).result;
    expect(done).toMatchObject({ success: true, status: 'completed' });
    expect(done.code).toBeUndefined();
    await expectAlive();
  });
});

describe('hostile input gets a clear, bounded JSON-RPC error', () => {
  it('an unknown method of 1 MB: -32601 quoting at most 256 characters of it', async () => {
    const name = `x${'y'.repeat(1_000_000)}`;
    const r = await postRaw(JSON.stringify({ jsonrpc: '2.0', id: 'long-method', method: name }));
    expect(r.status).toBe(200);
    expect(r.body.length).toBeLessThan(2000);
    const j = JSON.parse(r.body);
    expect(j).toMatchObject({ id: 'long-method', ok: false, error: { code: -32601, data: { code: 'METHOD_NOT_FOUND' } } });
    expect(j.error.data.method).toBe(`${name.slice(0, 256)}…`);
    expect(j.error.message).toContain(name.slice(0, 256));
  });

  it('every method, bad types and sizes in every param it reads: an envelope for the same id, and the gateway serves on', async () => {
    const methods: Record<string, Record<string, unknown>> = {
      'acp.capabilities': {},
      health: {},
      'session.start': { sessionId: 'sweep', taskPrompt: 'hello', routing: agent },
      'session.message': { sessionId: 'sweep', taskPrompt: 'hello' },
      'session.cancel': { sessionId: 'sweep' },
      'session.close': { sessionId: 'sweep' },
      'xworkmate.tasks.get': { sessionId: 'sweep', afterSeq: 0, limit: 5 },
      'xworkmate.permissions.respond': { sessionId: 'sweep', requestId: 'perm-x', optionId: 'a' },
      'xworkmate.permissions.list': { sessionId: 'sweep' },
      'xworkmate.routing.resolve': { routing: agent },
    };
    const bad: unknown[] = [7, true, {}, ['a'], 'z'.repeat(2000), '\ud800', -1, 1e308];
    let id = 0;
    for (const [method, base] of Object.entries(methods)) {
      for (const field of [...Object.keys(base), 'runId', 'workingDirectory', 'metadata', 'threadId']) {
        for (const value of bad) {
          const n = ++id;
          const r = await postRaw(JSON.stringify({ jsonrpc: '2.0', id: n, method, params: { ...base, [field]: value } }));
          expect(r.status, `${method} ${field}=${JSON.stringify(value)?.slice(0, 20)}`).toBe(200);
          const j = JSON.parse(r.body);
          expect(j.jsonrpc).toBe('2.0');
          expect(j.id).toBe(n);
          if (j.ok === false) {
            expect(typeof j.error.code).toBe('number');
            expect(typeof j.error.data.code).toBe('string');
            expect(j.error.message.length).toBeLessThan(600);
          } else expect(j.result).toBeDefined();
        }
      }
    }
    await expectAlive();
    expect(gw.proc.exitCode).toBeNull();
  }, 120_000);
});

describe('xworkmate.routing.resolve decides as session.start does', () => {
  const architect = (workingDirectory: string) => ({
    taskPrompt: 'design it',
    workingDirectory,
    routing: { role: 'architect', roleMode: 'auto' },
  });

  it('a workspace-needing role with workingDirectory "." (no folder): both refuse it as workspace_unauthorized', async () => {
    const resolve = await acpRpc(gw.url, ACP, 'xworkmate.routing.resolve', architect('.'));
    expect(resolve.result).toMatchObject({ unavailable: true, unavailableCode: 'ROLE_SELECTION_REJECTED', roleSelection: { code: 'workspace_unauthorized' } });
    const start = await acpRpc(gw.url, ACP, 'session.start', { sessionId: 'arch-dot', ...architect('.') });
    expect(start.result).toMatchObject({
      status: 'unavailable',
      unavailableCode: 'ROLE_SELECTION_REJECTED',
      roleSelection: { code: 'workspace_unauthorized' },
    });
  });

  it('workingDirectory with "..": both refuse it with -32602 naming the field', async () => {
    for (const method of ['xworkmate.routing.resolve', 'session.start']) {
      const r = await acpRpc(gw.url, ACP, method, { sessionId: 'arch-dotdot', ...architect('../elsewhere') });
      expect(r.error, method).toMatchObject({ code: -32602, data: { code: 'INVALID_PARAMS', field: 'workingDirectory' } });
    }
  });

  it('a real folder: both select the role', async () => {
    const resolve = await acpRpc(gw.url, ACP, 'xworkmate.routing.resolve', architect('designs'));
    expect(resolve.result).toMatchObject({ unavailable: false, resolvedRole: 'architect', roleSelection: { selected: true } });
    const start = await acpRpc(gw.url, ACP, 'session.start', { sessionId: 'arch-ok', ...architect('designs') });
    expect(start.result).toMatchObject({ success: true, status: 'completed', resolvedRole: 'architect' });
  });
});

describe('/acp without a WebSocket upgrade', () => {
  it('426 with a JSON-RPC envelope naming the two ways in; 401 first without a token', async () => {
    for (const method of ['GET', 'POST']) {
      const res = await fetch(`${gw.url}/acp`, { method, headers: { authorization: `Bearer ${ACP}` } });
      expect(res.status, method).toBe(426);
      expect(res.headers.get('upgrade')).toBe('websocket');
      const j = (await res.json()) as Json;
      expect(j).toMatchObject({ jsonrpc: '2.0', id: null, ok: false, error: { code: -32600, data: { code: 'UPGRADE_REQUIRED' } } });
      expect(j.error.message).toContain('/acp/rpc');
    }
    const anon = await fetch(`${gw.url}/acp`);
    expect(anon.status).toBe(401);
    expect(await anon.json()).toMatchObject({ error: { code: -32001, data: { code: 'UNAUTHORIZED' } } });
  });
});

/** The stubborn agent's routing (slow to stop: the 2 s grace), and a first turn of `sessionId` that is running and has sent text. */
const STUBBORN = { routingMode: 'explicit', explicitExecutionTarget: 'agent', explicitProviderId: 'stubborn' };
async function slowFirstTurn(sessionId: string): Promise<{ first: Promise<Json> }> {
  const first = acpRpc(gw.url, ACP, 'session.start', { sessionId, taskPrompt: 'slow', routing: STUBBORN });
  await waitFor(async () => {
    const t = await acpRpc(gw.url, ACP, 'xworkmate.tasks.get', { sessionId });
    return t.result?.status === 'running' && (t.result.progress?.outputChars ?? 0) > 0 ? true : undefined;
  }, 'the first turn to send text');
  return { first }; // wrapped: an async function would wait for the turn's result itself
}

describe('session.cancel during a session.start that replaces the session', () => {
  it('the cancel is for the new turn: cancelled true, and the turn ends cancelled without running', async () => {
    const sessionId = 'cancel-in-restart';
    const { first } = await slowFirstTurn(sessionId);
    // the restart cancels the first turn at once, then stops its agent, which takes the 2 s grace: the first
    // turn's result is back while the restart is still replacing the session
    const t0 = Date.now();
    const second = acpRpc(gw.url, ACP, 'session.start', { sessionId, taskPrompt: 'slow', routing: STUBBORN });
    expect((await first).result).toMatchObject({ status: 'cancelled' });
    // sent within the grace, while the restart still replaces the session (on the old code: cancelled false)
    const cancel = await acpRpc(gw.url, ACP, 'session.cancel', { sessionId });
    expect(cancel.result).toEqual({ accepted: true, cancelled: true, runCancelled: true });
    const r = (await second).result;
    expect(r).toMatchObject({ success: false, status: 'cancelled', code: 'TASK_CANCELLED', output: '' });
    // its 20 s turn never ran
    expect(Date.now() - t0).toBeLessThan(10_000);
    const snap = await acpRpc(gw.url, ACP, 'xworkmate.tasks.get', { sessionId });
    expect(snap.result).toMatchObject({ status: 'cancelled', runId: r.runId });
    // the session is open: the next turn runs
    const next = await acpRpc(gw.url, ACP, 'session.message', { sessionId, taskPrompt: 'hello' });
    expect(next.result).toMatchObject({ success: true, status: 'completed', output: 'echo: hello' });
  }, 60_000);
});

describe('session.message during a session.start that replaces the session', () => {
  it('runs after the start’s turn, as the next turn of the new session; both turns are in its history', async () => {
    const sessionId = 'message-in-restart';
    const { first } = await slowFirstTurn(sessionId);
    const restart = acpRpc(gw.url, ACP, 'session.start', { sessionId, taskPrompt: 'hello', routing: STUBBORN }, true);
    expect((await first).result).toMatchObject({ status: 'cancelled' });
    // the restart is still stopping the old agent (2 s grace)
    const message = acpRpc(gw.url, ACP, 'session.message', { sessionId, taskPrompt: 'after restart' }, true);
    const [s, m] = await Promise.all([restart, message]);
    expect(s.result).toMatchObject({ success: true, output: 'echo: hello' });
    expect(m.result).toMatchObject({ success: true, output: 'echo: after restart' });
    // arrival order: every update of the start's turn comes before the message's turn started
    const startSeqs = s.updates.map((u: Json) => u.seq as number);
    const messageStarted = m.updates.find((u: Json) => u.event === 'started').seq as number;
    expect(Math.max(...startSeqs)).toBeLessThan(messageStarted);
    // one session, both turns in it
    const rec = (await adminGet(gw.url, `/admin/sessions/${sessionId}`)).session;
    expect(rec.history.map((t: Json) => t.prompt)).toEqual(['hello', 'after restart']);
  }, 60_000);
});
