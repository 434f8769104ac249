/**
 * Issue 10 items 6 and 7, and issue 11 item 6 (llm wiring) on a real gateway process whose environment holds
 * secrets (a channel key referenced as `${VAR}`, an OPENAI_API_KEY of its own), with the fake ACP agent:
 *  - an agent printing its environment (and a terminal it opens) sees PATH, HOME, locale and its own `env`,
 *    never the gateway's secrets;
 *  - an agent printing its environment on stderr and dying: the client and the store get a short reason, the
 *    log keeps the stderr;
 *  - `preset: "hermes"` + `llm` (the fake stands in for Hermes, which is Python-only): the generated config
 *    points at this gateway; the per-session token works on the model API only, every model name on it is
 *    pinned to `llm.model`, and it dies (and the private folder goes) when the session closes.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupDirs, startProcess } from '../helpers/env.js';
import { agentRouting, rpc } from './acp-rpc.js';

const FAKE = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const ACP = 'acp-env-token-8c1d2e';
const V1 = 'v1-env-token-51aa0b';
const ADMIN = 'admin-env-token-c3e9f0';
const CHANNEL_KEY = 'sk-channel-secret-0f3b9e77a1c4d2';
const GATEWAY_OPENAI_KEY = 'sk-gateway-own-openai-4e1f0a9b2c';
type Gw = Awaited<ReturnType<typeof startProcess>>;
let gw: Gw;

beforeAll(async () => {
  gw = await startProcess(
    {
      gateway: { auth: { tokens: [V1] }, admin: { token: ADMIN } },
      channels: [
        { name: 'paid', provider: 'openai', baseUrl: 'http://127.0.0.1:9/v1', apiKey: '${SY_AGENTS_TEST_CHANNEL_KEY}', models: ['paid-model'] },
        { name: 'mock', provider: 'mock', models: ['mock-1', 'mock-2'] },
      ],
      acp: {
        tokens: [ACP],
        agents: [
          { id: 'fake', label: 'Fake', command: process.execPath, args: [FAKE], permissions: 'allow', env: { AGENT_OWN: 'visible-to-the-agent' } },
          { id: 'hermes', label: 'Hermes (fake)', preset: 'hermes', command: process.execPath, args: [FAKE], llm: { model: 'mock-1' }, permissions: 'allow' },
        ],
        // role routing may pick another model than llm.model: the session token is pinned to the role's model
        roles: { roles: [{ role: 'engineer', models: [{ key: 'two', model: 'mock-2' }], executors: ['hermes'] }] },
      },
    },
    { SY_AGENTS_TEST_CHANNEL_KEY: CHANNEL_KEY, OPENAI_API_KEY: GATEWAY_OPENAI_KEY, LC_ALL: 'C.UTF-8' },
  );
}, 30_000);

afterAll(async () => {
  await gw?.stop(10_000);
  cleanupDirs();
});

const call = (method: string, params: Record<string, unknown>) => rpc(gw.url, ACP, method, params, 30_000);
/** The agent's value of `name`, through a file in its session folder: replies carry it scrubbed. */
async function agentEnv(sessionId: string, agent: string, name: string): Promise<string> {
  expect((await turn(sessionId, agent, `envfile ${name}`, false)).output).toBe('written');
  return readFileSync(path.join(gw.dir, 'workspaces', sessionId, `.env-${name}`), 'utf8');
}
const turn = async (sessionId: string, agent: string, taskPrompt: string, first: boolean) =>
  (await call(first ? 'session.start' : 'session.message', { sessionId, taskPrompt, ...(first ? { routing: agentRouting(agent) } : {}) })).result;

const ALLOWED = /^(PATH|HOME|USER|LOGNAME|SHELL|TMPDIR|TZ|TERM|LANG|LANGUAGE|LC_[A-Z_]+|AGENT_OWN)$/;

describe('agent environment', () => {
  it('an agent printing its environment sees PATH, HOME, locale and its own env, never the gateway’s secrets', async () => {
    const r = await turn('env-1', 'fake', 'printenv', true);
    expect(r).toMatchObject({ success: true });
    const env = JSON.parse(r.output) as Record<string, string>;
    expect(env.PATH).toBe(process.env.PATH);
    expect(env.LC_ALL).toBe('C.UTF-8');
    expect(env.AGENT_OWN).toBe('visible-to-the-agent');
    expect(Object.keys(env).filter((k) => !ALLOWED.test(k))).toEqual([]);
    for (const secret of [CHANNEL_KEY, GATEWAY_OPENAI_KEY, V1, ACP, ADMIN]) expect(r.output).not.toContain(secret);

    // a terminal the agent opens starts from the agent's environment, not the gateway's
    const t = await turn('env-1', 'fake', 'terminal env', false);
    expect(t).toMatchObject({ success: true });
    expect(t.output).toMatch(/^terminal 0: /);
    expect(t.output).toContain('FAKE_TERM=yes');
    expect(t.output).toContain('AGENT_OWN=visible-to-the-agent');
    for (const secret of [CHANNEL_KEY, GATEWAY_OPENAI_KEY, 'SY_AGENTS_TEST_CHANNEL_KEY']) expect(t.output).not.toContain(secret);
  });

  it('an agent printing its environment on stderr and dying: the client and the store get a short reason, the log the stderr', async () => {
    expect(await turn('leak-1', 'hermes', 'hello', true)).toMatchObject({ success: true });
    const token = await agentEnv('leak-1', 'hermes', 'OPENAI_API_KEY');
    expect(token).toMatch(/^sy-agent-/);
    // a reply that carries the token has it scrubbed (the token is registered with the secret scrubber)
    expect((await turn('leak-1', 'hermes', 'env OPENAI_API_KEY', false)).output).toBe('env OPENAI_API_KEY=[REDACTED]');

    // the same reply in deltas of 1 to 7 characters: the token split across them goes out (and is stored, and
    // replayed) as [REDACTED] too, never in pieces
    type Replay = { events: Array<{ seq: number; type: string; payload: Record<string, any> }>; lastEventSeq: number };
    const read = async (after: number): Promise<Replay> => {
      const res = await fetch(`${gw.url}/api/v1/sessions/leak-1/events?after_seq=${after}&limit=500`, { headers: { authorization: `Bearer ${ACP}` } });
      expect(res.status).toBe(200);
      return (await res.json()) as Replay;
    };
    const replay = async (after: number) => (await read(after)).events;
    /** the session's newest seq: the next turn's events come after it */
    const last = async () => (await read(0)).lastEventSeq;
    for (const n of [1, 2, 3, 7]) {
      const before = await last();
      expect((await turn('leak-1', 'hermes', `envsplit OPENAI_API_KEY ${n}`, false)).output).toBe('env OPENAI_API_KEY=[REDACTED]');
      const events = await replay(before);
      const deltas = events.filter((e) => e.type === 'message.delta').map((e) => e.payload);
      expect(deltas.map((d) => d.delta).join(''), `deltas of ${n}`).toBe('env OPENAI_API_KEY=[REDACTED]');
      // the agent's own payload carries the text that went out, held text included
      for (const d of deltas) expect(d.structuredEvent).toEqual({ sessionUpdate: 'agent_message_chunk', content: { type: 'text', text: d.delta } });
      const stored = JSON.stringify(events) + JSON.stringify((await call('xworkmate.tasks.get', { sessionId: 'leak-1' })).result);
      // no six characters of the token's random part, anywhere
      const random = token.slice('sy-agent-'.length);
      for (let i = 0; i + 6 <= random.length; i++) expect(stored, `deltas of ${n}`).not.toContain(random.slice(i, i + 6));

      // the same in thought chunks (the text is the ACP payload's only), then a message: the held thought goes out
      // as a thought before the message
      const at = await last();
      expect((await turn('leak-1', 'hermes', `thinksplit OPENAI_API_KEY ${n}`, false)).output).toBe('thought');
      const thoughtEvents = await replay(at);
      const thoughts = thoughtEvents.filter((e) => e.payload.structuredEvent?.sessionUpdate === 'agent_thought_chunk');
      expect(thoughts.map((e) => e.payload.structuredEvent.content.text).join(''), `thoughts of ${n}`).toBe('env OPENAI_API_KEY=[REDACTED]');
      const firstDelta = thoughtEvents.findIndex((e) => e.type === 'message.delta');
      expect(thoughtEvents.indexOf(thoughts.at(-1)!)).toBeLessThan(firstDelta);
      for (let i = 0; i + 6 <= random.length; i++) expect(JSON.stringify(thoughtEvents), `thoughts of ${n}`).not.toContain(random.slice(i, i + 6));

      // thought and message pieces interleaved, a plan and a tool call after each: each kind's held start waits for
      // that kind's next chunk (a held start let out before an update of another kind leaked the token in pieces)
      const mixAt = await last();
      expect((await turn('leak-1', 'hermes', `mixsplit OPENAI_API_KEY ${n}`, false)).output).toBe('env OPENAI_API_KEY=[REDACTED]');
      const mixed = await replay(mixAt);
      expect(
        mixed
          .filter((e) => e.type === 'message.delta')
          .map((e) => e.payload.delta)
          .join(''),
        `mixed deltas of ${n}`,
      ).toBe('env OPENAI_API_KEY=[REDACTED]');
      const mixedThoughts = mixed.filter((e) => e.payload.structuredEvent?.sessionUpdate === 'agent_thought_chunk');
      expect(mixedThoughts.map((e) => e.payload.structuredEvent.content.text).join(''), `mixed thoughts of ${n}`).toBe('env OPENAI_API_KEY=[REDACTED]');
      expect(mixed.filter((e) => e.payload.structuredEvent?.sessionUpdate === 'tool_call').length, `mixed tool calls of ${n}`).toBeGreaterThan(1);
      for (let i = 0; i + 6 <= random.length; i++) expect(JSON.stringify(mixed), `mixed of ${n}`).not.toContain(random.slice(i, i + 6));
    }

    // a held end goes out with the next chunk; only the payload's `text` member takes it, not a member that
    // happens to read the same as the chunk (`content.type` of a chunk reading "text")
    const before = await last();
    expect((await turn('leak-1', 'hermes', 'chunks yes text', false)).output).toBe('yestext');
    const held = (await replay(before)).filter((e) => e.type === 'message.delta').map((e) => e.payload);
    expect(held.map((d) => d.delta)).toEqual(['ye', 'stext']); // `s` may start the token (sy-agent-…)
    for (const d of held) expect(d.structuredEvent).toEqual({ sessionUpdate: 'agent_message_chunk', content: { type: 'text', text: d.delta } });

    const r = await turn('leak-1', 'hermes', 'leak', false);
    expect(r).toMatchObject({ success: false, status: 'failed', errorCode: 'UPSTREAM_ERROR' });
    expect(r.error).toBe('agent "hermes" exited with code 3 unexpectedly (its stderr is in the gateway log)');
    const task = (await call('xworkmate.tasks.get', { sessionId: 'leak-1' })).result;
    for (const text of [JSON.stringify(r), JSON.stringify(task)]) {
      expect(text).not.toContain('fake agent environment');
      expect(text).not.toContain(token);
    }
    // the log has it, scrubbed: the model-API token in it (the one secret the agent had) is not there
    const leaked = gw
      .logs()
      .split('\n')
      .filter((l) => l.includes('fake agent environment'));
    expect(leaked.length).toBeGreaterThanOrEqual(1);
    for (const l of leaked) {
      expect(l).not.toContain(token);
      expect(l).toContain('[REDACTED]');
    }
  });
});

describe('preset + llm: the gateway points the agent at its own model API', () => {
  it('writes the preset config, mints a token the model API alone accepts, pins the model, and revokes it at close', async () => {
    const sessionId = 'llm-1';
    const cfg = await turn(sessionId, 'hermes', 'llm-config', true);
    expect(cfg).toMatchObject({ success: true });
    expect(cfg.output).toContain(`base_url: "${gw.url}/v1"`);
    expect(cfg.output).toContain('default: "mock-1"');

    // the fake asks for its own model; the token pins it to llm.model (mock-1), and /v1 accepts the token
    const llm = await turn(sessionId, 'hermes', 'llm hi there', false);
    expect(llm.output).toBe('llm 200 mock-1: [mock mock-1] You said: hi there');
    // the agent's model traffic is accounted to it (usage by key: agent:<id>)
    const usage = (await (await fetch(`${gw.url}/admin/usage?by=key`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as {
      rows: Array<{ group: string; requests: number; inputTokens: number }>;
    };
    expect(usage.rows.find((r) => r.group === 'agent:hermes')).toMatchObject({ requests: 1 });

    const token = await agentEnv(sessionId, 'hermes', 'OPENAI_API_KEY');
    const home = await agentEnv(sessionId, 'hermes', 'HOME');
    expect(home.startsWith(path.join(gw.dir, 'agent-homes') + path.sep)).toBe(true);
    expect((await turn(sessionId, 'hermes', 'home-mode', false)).output).toBe('home-mode 700');
    const auth = { authorization: `Bearer ${token}` };
    // the model lists show the token only what it may use: its pinned model, not every model of the gateway
    const models = await fetch(`${gw.url}/v1/models`, { headers: auth });
    expect(models.status).toBe(200);
    expect(((await models.json()) as { data: Array<{ id: string }> }).data.map((m) => m.id)).toEqual(['mock-1']);
    const gemini = await fetch(`${gw.url}/v1beta/models`, { headers: { 'x-goog-api-key': token } });
    expect(gemini.status).toBe(200);
    expect(((await gemini.json()) as { models: Array<{ name: string }> }).models.map((m) => m.name)).toEqual(['models/mock-1']);
    // a client token still sees every model
    const all = (await (await fetch(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${V1}` } })).json()) as { data: Array<{ id: string }> };
    expect(all.data.map((m) => m.id).sort()).toEqual(['mock-1', 'mock-2', 'paid-model']);
    // every model API answers in the name of the model that served it (the pinned one), not the one asked for
    const post = (p: string, body: unknown, extra: Record<string, string> = {}) =>
      fetch(`${gw.url}${p}`, { method: 'POST', headers: { ...auth, ...extra, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const msg = await post('/v1/messages', { model: 'claude-asked-for', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] });
    expect([msg.status, ((await msg.json()) as { model: string }).model]).toEqual([200, 'mock-1']);
    const streamed = await (
      await post('/v1/messages', { model: 'claude-asked-for', max_tokens: 16, stream: true, messages: [{ role: 'user', content: 'hi' }] })
    ).text();
    expect(streamed).toContain('"model":"mock-1"');
    expect(streamed).not.toContain('claude-asked-for');
    const resp = await post('/v1/responses', { model: 'gpt-asked-for', input: 'hi' });
    expect([resp.status, ((await resp.json()) as { model: string }).model]).toEqual([200, 'mock-1']);
    const chat = await post('/v1/chat/completions', { model: 'gpt-asked-for', messages: [{ role: 'user', content: 'hi' }] });
    expect([chat.status, ((await chat.json()) as { model: string }).model]).toEqual([200, 'mock-1']);
    // …and nothing else does
    expect((await fetch(`${gw.url}/admin/status`, { headers: auth })).status).toBe(401);
    const acp = await fetch(`${gw.url}/acp/rpc`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'acp.capabilities', params: {} }),
    });
    expect(acp.status).toBe(401);

    expect((await call('session.close', { sessionId })).result).toMatchObject({ closed: true });
    const after = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mock-1', messages: [{ role: 'user', content: 'still there?' }] }),
    });
    expect(after.status).toBe(401);
    expect(existsSync(home)).toBe(false);
  });
});

describe('preset + llm under role routing', () => {
  it("the session token pins the agent to the role's model, so the binding is verified by the gateway itself", async () => {
    const r = await call('session.start', {
      sessionId: 'role-llm-1',
      taskPrompt: 'llm hi',
      workingDirectory: 'role-llm',
      routing: { role: 'engineer', roleMode: 'auto' },
    });
    expect(r.result).toMatchObject({ success: true, resolvedRole: 'engineer', resolvedModelId: 'mock-2', modelBindingVerified: true });
    // the fake asked for its own model; the gateway served the role's model, not llm.model (mock-1)
    expect(r.result.output).toBe('llm 200 mock-2: [mock mock-2] You said: hi');
  });
});
