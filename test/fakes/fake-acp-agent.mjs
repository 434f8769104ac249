#!/usr/bin/env node
// A fake ACP v1 agent speaking real NDJSON JSON-RPC 2.0 over stdio. No dependencies.
// Behaviour per turn = the first word of the prompt text:
//   (anything else)        echo: "echo: <text>" in several agent_message_chunk updates, stopReason end_turn
//   tool                   tool_call (pending) → tool_call_update (in_progress) → tool_call_update (completed)
//   plan                   a plan update with three entries
//   permission             session/request_permission; replies "permission: <optionId|cancelled>"
//   read <path>            fs/read_text_file; replies "read ok: <content>" or "read error: <message>"
//   write <path> <text>    fs/write_text_file; replies "write ok" or "write error: <message>"
//   terminal <cmd> [args]  terminal/create → wait_for_exit → output → release; replies "terminal <code>: <output>"
//   slow                   a chunk every 100 ms for 20 s; honours session/cancel (stopReason "cancelled")
//   crash                  one chunk, then process.exit(3)
//   garbage                a non-JSON line on stdout, then a normal echo reply
//   hang                   never answers
//   garbage-stale          a non-JSON line, then ten chunks "stale <i>" 20 ms apart, then it ends the turn
//   garbage-deaf           a non-JSON line, then a chunk "stale <i>" every 50 ms for good (ignores session/cancel)
//   spawn-child            starts `sleep 1000` (same process group) and replies "child <pid>"
//   env <NAME>             replies with process.env[NAME]
//   envsplit <NAME> <n>    the same reply, "env <NAME>=<value>", in agent_message_chunk updates of n characters each
//   chunks <a> <b> …       replies with each word as an agent_message_chunk of its own (no spaces added)
//   thinksplit <NAME> <n>  "env <NAME>=<value>" in agent_thought_chunk updates of n characters each, then replies "thought"
//   mixsplit <NAME> <n>    "env <NAME>=<value>" twice, as thought chunks and as message chunks of n characters each,
//                          interleaved piece by piece, with a plan update and a tool_call update after every piece
//   cwd                    replies with the session cwd and process.cwd()
//   printenv               replies with its whole environment as JSON
//   envfile <NAME>         writes process.env[NAME] to <session cwd>/.env-<NAME> (for values the gateway scrubs
//                          from replies, e.g. its per-session token) and replies "written"
//   home-mode              replies with the octal mode of $HOME
//   leak                   prints its whole environment on stderr, then exits with code 3
//   history                replies "history: <earlier prompts of this session, joined by |>"
//   llm <text>             calls $OPENAI_BASE_URL/chat/completions with $OPENAI_API_KEY (as Hermes does), asking for
//                          model "fake-agent-own-model"; replies "llm <status> <model>: <content or error message>"
//   llmstream <text>       the same call streamed; writes <session cwd>/.stream-started at the first content chunk,
//                          reads to the end, replies "llmstream <status> <content> | <end>", end: done (a [DONE]
//                          line), error <message> (an in-band error event), cut (the body ended without either)
//   llm-config             replies with $HERMES_HOME/config.yaml
//   model                  replies "model: <the session's current model option value>"
// Hostile turns (an agent the gateway must survive):
//   bigout <n>             n agent_message_chunk updates of 1 MiB each, then end_turn (unless cancelled first)
//   flood <n> <size>       n agent_message_chunk updates of <size> characters each (the i-th all one letter, a–z in
//                          turn), as fast as stdout takes them, then end_turn: a long turn of many deltas
//   deepperm <levels>      session/request_permission whose toolCall nests <levels> deep; replies with the outcome
//   permflood <n>          n session/request_permission at once; replies "cancelled <k> of <n>" once all are answered
//   stopreason <value>     replies "stopped" and ends the turn with stopReason <value>
//   permleave              session/request_permission without waiting for it, then end_turn at once; the answer,
//                          when it comes, is written to <session cwd>/.permleave
//   readflood <path> <n>   stops reading its stdin, then sends n fs/read_text_file requests for <path> at once and
//                          never ends the turn: every answer waits unread in the gateway
// Env: FAKE_ACP_MODELS=a,b (announce a session config option {id:"model", category:"model"} offering these, the
// first current; session/set_config_option sets it), FAKE_ACP_MODEL_STICKY=1 (set_config_option answers but
// keeps the old value), FAKE_ACP_PROTOCOL (protocolVersion to answer), FAKE_ACP_MODE=garbage-before-init|silent|auth-required,
// FAKE_ACP_INIT_HOLD=<dir> (hold the answer to initialize: write <dir>/held-<pid> holding process.cwd(), then answer
// once <dir>/release-<pid> exists, so a test decides when each process finishes starting),
// FAKE_ACP_LOAD=1 (announce loadSession; sessions are kept in <cwd>/.fake-acp-sessions.json, so a new process
// can session/load what an earlier one stored, and replays the earlier prompts as user_message_chunk updates),
// FAKE_ACP_IGNORE_SIGTERM=1 (SIGTERM is ignored: stopping the agent takes the gateway's whole grace, then SIGKILL),
// FAKE_ACP_SIGTERM_MARK=<dir> (with it: each SIGTERM writes <dir>/sigterm-<pid>, so a test knows the stop began).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const MODE = process.env.FAKE_ACP_MODE ?? '';
if (process.env.FAKE_ACP_IGNORE_SIGTERM === '1')
  process.on('SIGTERM', () => {
    const mark = process.env.FAKE_ACP_SIGTERM_MARK;
    if (mark) writeFileSync(path.join(mark, `sigterm-${process.pid}`), '');
  });
let nextId = 1;
const waiting = new Map(); // our outgoing request id → resolve
const sessions = new Map(); // sessionId → { cwd, cancelled }
let buf = '';
const LOAD = process.env.FAKE_ACP_LOAD === '1';
const MODELS = (process.env.FAKE_ACP_MODELS ?? '').split(',').filter(Boolean);
const configOptions = (s) =>
  MODELS.length === 0
    ? undefined
    : [{ id: 'model', name: 'Model', category: 'model', type: 'select', currentValue: s.model, options: MODELS.map((m) => ({ value: m, name: m })) }];
const stateFile = (cwd) => path.join(cwd, '.fake-acp-sessions.json');
const readState = (cwd) => {
  try {
    return JSON.parse(readFileSync(stateFile(cwd), 'utf8'));
  } catch {
    return {};
  }
};
const saveSession = (sessionId, s) => {
  if (!LOAD) return;
  const all = readState(s.cwd);
  all[sessionId] = { prompts: s.prompts };
  writeFileSync(stateFile(s.cwd), JSON.stringify(all));
};

const send = (msg) => process.stdout.write(JSON.stringify({ jsonrpc: '2.0', ...msg }) + '\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const request = (method, params) =>
  new Promise((resolve) => {
    const id = nextId++;
    waiting.set(id, resolve);
    send({ id, method, params });
  });
const update = (sessionId, u) => send({ method: 'session/update', params: { sessionId, update: u } });
const say = (sessionId, text) => update(sessionId, { sessionUpdate: 'agent_message_chunk', content: { type: 'text', text } });

process.stdin.on('data', (chunk) => {
  buf += chunk;
  let nl;
  while ((nl = buf.indexOf('\n')) !== -1) {
    const line = buf.slice(0, nl);
    buf = buf.slice(nl + 1);
    if (line.trim()) void handle(JSON.parse(line));
  }
});
process.stdin.on('end', () => process.exit(0));

async function handle(msg) {
  if (msg.method === undefined) {
    waiting.get(msg.id)?.(msg);
    waiting.delete(msg.id);
    return;
  }
  if (msg.method === 'session/cancel') {
    const s = sessions.get(msg.params.sessionId);
    if (s) s.cancelled = true;
    return;
  }
  if (msg.id === undefined) return;
  try {
    send({ id: msg.id, result: await answer(msg.method, msg.params) });
  } catch (err) {
    send({ id: msg.id, error: { code: err.code ?? -32603, message: err.message } });
  }
}

async function answer(method, params) {
  switch (method) {
    case 'initialize':
      if (process.env.FAKE_ACP_INIT_HOLD) {
        const dir = process.env.FAKE_ACP_INIT_HOLD;
        writeFileSync(path.join(dir, `held-${process.pid}`), process.cwd());
        while (!existsSync(path.join(dir, `release-${process.pid}`))) await sleep(20);
      }
      if (MODE === 'garbage-before-init') process.stdout.write('Welcome to FakeAgent!\n');
      if (MODE === 'silent') return new Promise(() => {});
      return {
        protocolVersion: Number(process.env.FAKE_ACP_PROTOCOL ?? 1),
        agentCapabilities: { loadSession: LOAD, promptCapabilities: { image: false, audio: false, embeddedContext: false } },
        authMethods: [],
        agentInfo: { name: 'fake-acp-agent', title: 'Fake ACP Agent', version: '1.0.0' },
        clientSeen: { protocolVersion: params.protocolVersion, clientCapabilities: params.clientCapabilities, clientInfo: params.clientInfo },
      };
    case 'session/new': {
      if (MODE === 'auth-required') throw Object.assign(new Error('Authentication required'), { code: -32000 });
      const sessionId = LOAD ? `fake-session-${process.pid}-${sessions.size + 1}` : `fake-session-${sessions.size + 1}`;
      sessions.set(sessionId, { cwd: params.cwd, cancelled: false, mcpServers: params.mcpServers, prompts: [], model: MODELS[0] });
      saveSession(sessionId, sessions.get(sessionId));
      return { sessionId, ...(MODELS.length ? { configOptions: configOptions(sessions.get(sessionId)) } : {}) };
    }
    case 'session/set_config_option': {
      const s = sessions.get(params.sessionId);
      if (!s) throw Object.assign(new Error('unknown session'), { code: -32602 });
      if (params.configId !== 'model' || !MODELS.includes(params.value))
        throw Object.assign(new Error(`invalid value for ${params.configId}`), { code: -32602 });
      if (process.env.FAKE_ACP_MODEL_STICKY !== '1') s.model = params.value;
      return { configOptions: configOptions(s) };
    }
    case 'session/load': {
      if (!LOAD) throw Object.assign(new Error('method not found: session/load'), { code: -32601 });
      const saved = readState(params.cwd)[params.sessionId];
      if (!saved) throw Object.assign(new Error(`Session not found: ${params.sessionId}`), { code: -32002 });
      sessions.set(params.sessionId, { cwd: params.cwd, cancelled: false, mcpServers: params.mcpServers, prompts: saved.prompts });
      for (const p of saved.prompts) update(params.sessionId, { sessionUpdate: 'user_message_chunk', content: { type: 'text', text: p } });
      return {};
    }
    case 'session/prompt':
      return turn(params.sessionId, params.prompt.map((b) => (b.type === 'text' ? b.text : '')).join(''));
    default:
      throw Object.assign(new Error(`method not found: ${method}`), { code: -32601 });
  }
}

async function turn(sessionId, text) {
  const s = sessions.get(sessionId);
  if (!s) throw Object.assign(new Error('unknown session'), { code: -32602 });
  s.cancelled = false;
  const earlier = s.prompts.slice();
  s.prompts.push(text);
  saveSession(sessionId, s);
  const [word = '', ...rest] = text.trim().split(/\s+/);
  const abs = (p) => (path.isAbsolute(p) ? p : path.join(s.cwd, p));
  const reply = (t) => {
    say(sessionId, t);
    return { stopReason: 'end_turn' };
  };
  switch (word) {
    case 'tool':
      update(sessionId, {
        sessionUpdate: 'tool_call',
        toolCallId: 'call_1',
        title: 'Reading notes.md',
        kind: 'read',
        status: 'pending',
        locations: [{ path: abs('notes.md') }],
      });
      update(sessionId, { sessionUpdate: 'tool_call_update', toolCallId: 'call_1', status: 'in_progress' });
      update(sessionId, {
        sessionUpdate: 'tool_call_update',
        toolCallId: 'call_1',
        status: 'completed',
        content: [{ type: 'content', content: { type: 'text', text: 'read 3 lines' } }],
      });
      return reply('tool done');
    case 'plan':
      update(sessionId, {
        sessionUpdate: 'plan',
        entries: [
          { content: 'look around', priority: 'high', status: 'completed' },
          { content: 'make a change', priority: 'medium', status: 'in_progress' },
          { content: 'run the tests', priority: 'low', status: 'pending' },
        ],
      });
      return reply('planned');
    case 'bigout': {
      const mib = 'm'.repeat(1024 * 1024);
      for (let i = 0; i < Number(rest[0] ?? 1) && !s.cancelled; i++) {
        say(sessionId, mib);
        await sleep(1);
      }
      return s.cancelled ? { stopReason: 'cancelled' } : { stopReason: 'end_turn' };
    }
    case 'flood': {
      const n = Number(rest[0] ?? 100);
      const size = Number(rest[1] ?? 1024);
      for (let i = 0; i < n; i++) {
        say(sessionId, String.fromCharCode(97 + (i % 26)).repeat(size));
        if (i % 16 === 15) await new Promise((r) => setImmediate(r));
      }
      return { stopReason: 'end_turn' };
    }
    case 'deepperm': {
      const n = Number(rest[0] ?? 5000);
      // written as text: JSON.stringify of the value itself would overflow this process's stack too
      const id = nextId++;
      const answered = new Promise((resolve) => waiting.set(id, resolve));
      const toolCall = `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
      process.stdout.write(
        `{"jsonrpc":"2.0","id":${id},"method":"session/request_permission","params":{"sessionId":${JSON.stringify(sessionId)},"toolCall":${toolCall},"options":[{"optionId":"a","name":"A","kind":"allow_once"}]}}\n`,
      );
      const res = await answered;
      return reply(res.error ? `deepperm error: ${res.error.code}` : `deepperm: ${res.result.outcome.outcome}`);
    }
    case 'permflood': {
      const n = Number(rest[0] ?? 100);
      const asks = Array.from({ length: n }, (_, i) =>
        request('session/request_permission', {
          sessionId,
          toolCall: { toolCallId: `flood_${i}`, title: `flood ${i}`, kind: 'edit', status: 'pending' },
          options: [{ optionId: 'a', name: 'A', kind: 'allow_once' }],
        }),
      );
      const outcomes = await Promise.all(asks);
      return reply(`cancelled ${outcomes.filter((r) => r.result?.outcome?.outcome === 'cancelled').length} of ${n}`);
    }
    case 'readflood': {
      process.stdin.pause();
      setInterval(() => undefined, 60_000); // a paused stdin no longer keeps the process up
      for (let i = 0; i < Number(rest[1] ?? 100); i++) send({ id: nextId++, method: 'fs/read_text_file', params: { sessionId, path: abs(rest[0] ?? '') } });
      return new Promise(() => undefined);
    }
    case 'stopreason':
      say(sessionId, 'stopped');
      return { stopReason: rest[0] ?? '' };
    case 'permleave': {
      void request('session/request_permission', {
        sessionId,
        toolCall: { toolCallId: 'call_leave', title: 'Left behind', kind: 'edit', status: 'pending' },
        options: [{ optionId: 'a', name: 'A', kind: 'allow_once' }],
      }).then((res) => writeFileSync(path.join(s.cwd, '.permleave'), JSON.stringify(res.result?.outcome ?? res.error)));
      return reply('left a prompt open');
    }
    case 'permission': {
      const res = await request('session/request_permission', {
        sessionId,
        toolCall: { toolCallId: 'call_perm', title: 'Write config.json', kind: 'edit', status: 'pending' },
        options: [
          { optionId: 'opt-allow', name: 'Allow once', kind: 'allow_once' },
          { optionId: 'opt-always', name: 'Always allow', kind: 'allow_always' },
          { optionId: 'opt-reject', name: 'Reject', kind: 'reject_once' },
          { optionId: 'opt-never', name: 'Never', kind: 'reject_always' },
        ],
      });
      if (res.error) return reply(`permission error: ${res.error.message}`);
      const o = res.result.outcome;
      if (o.outcome === 'cancelled') return s.cancelled ? { stopReason: 'cancelled' } : reply('permission: cancelled');
      return reply(`permission: ${o.optionId}`);
    }
    case 'read': {
      const res = await request('fs/read_text_file', {
        sessionId,
        path: abs(rest[0] ?? ''),
        ...(rest[1] ? { line: Number(rest[1]), limit: Number(rest[2] ?? 1) } : {}),
      });
      return reply(res.error ? `read error: ${res.error.message}` : `read ok: ${res.result.content}`);
    }
    case 'write': {
      const res = await request('fs/write_text_file', { sessionId, path: abs(rest[0] ?? ''), content: rest.slice(1).join(' ') });
      return reply(res.error ? `write error: ${res.error.message}` : 'write ok');
    }
    case 'terminal': {
      const created = await request('terminal/create', {
        sessionId,
        command: rest[0],
        args: rest.slice(1),
        env: [{ name: 'FAKE_TERM', value: 'yes' }],
        outputByteLimit: 4096,
      });
      if (created.error) return reply(`terminal error: ${created.error.message}`);
      const { terminalId } = created.result;
      const exit = await request('terminal/wait_for_exit', { sessionId, terminalId });
      const out = await request('terminal/output', { sessionId, terminalId });
      await request('terminal/release', { sessionId, terminalId });
      return reply(`terminal ${exit.result.exitCode}: ${out.result.output.trim()}`);
    }
    case 'slow':
      for (let i = 0; i < 200; i++) {
        if (s.cancelled) return { stopReason: 'cancelled' };
        say(sessionId, `tick ${i} `);
        await sleep(100);
      }
      return { stopReason: 'end_turn' };
    case 'crash':
      say(sessionId, 'about to crash');
      process.stderr.write('fake agent: simulated crash\n');
      setTimeout(() => process.exit(3), 20);
      return new Promise(() => {});
    case 'garbage':
      process.stdout.write('this is not json-rpc at all\n');
      await sleep(50);
      break;
    case 'garbage-stale':
      // keeps working after the gateway gave the turn up: ten more chunks 20 ms apart, then it ends (cancelled
      // if it was told to)
      process.stdout.write('this is not json-rpc at all\n');
      for (let i = 0; i < 10; i++) {
        await sleep(20);
        say(sessionId, `stale ${i} `);
      }
      return { stopReason: s.cancelled ? 'cancelled' : 'end_turn' };
    case 'garbage-deaf':
      // the same, but never stops on its own: a chunk every 50 ms, session/cancel ignored
      process.stdout.write('this is not json-rpc at all\n');
      for (let i = 0; ; i++) {
        await sleep(50);
        say(sessionId, `stale ${i} `);
      }
    case 'hang':
      return new Promise(() => {});
    case 'spawn-child': {
      const child = spawn('sleep', ['1000'], { stdio: 'ignore' });
      return reply(`child ${child.pid}`);
    }
    case 'env':
      return reply(`env ${rest[0]}=${process.env[rest[0]] ?? ''}`);
    case 'chunks':
      for (const w of rest) say(sessionId, w);
      return { stopReason: 'end_turn' };
    case 'envsplit':
    case 'thinksplit': {
      const text = `env ${rest[0]}=${process.env[rest[0]] ?? ''}`;
      const n = Math.max(1, Number(rest[1]) || 1);
      for (let i = 0; i < text.length; i += n) {
        if (word === 'envsplit') say(sessionId, text.slice(i, i + n));
        else update(sessionId, { sessionUpdate: 'agent_thought_chunk', content: { type: 'text', text: text.slice(i, i + n) } });
      }
      return word === 'envsplit' ? { stopReason: 'end_turn' } : reply('thought');
    }
    case 'mixsplit': {
      const text = `env ${rest[0]}=${process.env[rest[0]] ?? ''}`;
      const n = Math.max(1, Number(rest[1]) || 1);
      for (let i = 0; i < text.length; i += n) {
        const piece = text.slice(i, i + n);
        update(sessionId, { sessionUpdate: 'agent_thought_chunk', content: { type: 'text', text: piece } });
        update(sessionId, { sessionUpdate: 'plan', entries: [{ content: `step ${i}`, priority: 'medium', status: 'in_progress' }] });
        say(sessionId, piece);
        update(sessionId, { sessionUpdate: 'tool_call', toolCallId: `call_${i}`, title: `piece ${i}`, kind: 'other', status: 'completed' });
      }
      return { stopReason: 'end_turn' };
    }
    case 'cwd':
      return reply(`cwd ${s.cwd} ${process.cwd()}`);
    case 'printenv':
      return reply(JSON.stringify(process.env));
    case 'envfile':
      writeFileSync(path.join(s.cwd, `.env-${rest[0]}`), process.env[rest[0]] ?? '');
      return reply('written');
    case 'home-mode':
      return reply(`home-mode ${(statSync(process.env.HOME ?? '/').mode & 0o777).toString(8)}`);
    case 'leak':
      process.stderr.write(`fake agent environment: ${JSON.stringify(process.env)}\n`);
      setTimeout(() => process.exit(3), 20);
      return new Promise(() => {});
    case 'model':
      return reply(`model: ${s.model ?? 'none'}`);
    case 'history':
      return reply(`history: ${earlier.join('|')}`);
    case 'llm': {
      try {
        const res = await fetch(`${process.env.OPENAI_BASE_URL}/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${process.env.OPENAI_API_KEY}` },
          body: JSON.stringify({ model: 'fake-agent-own-model', messages: [{ role: 'user', content: rest.join(' ') }] }),
        });
        const body = await res.json();
        return reply(`llm ${res.status} ${body.model ?? '-'}: ${body.choices?.[0]?.message?.content ?? body.error?.message}`);
      } catch (err) {
        return reply(`llm failed: ${err.message}`);
      }
    }
    case 'llmstream': {
      try {
        const res = await fetch(`${process.env.OPENAI_BASE_URL}/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${process.env.OPENAI_API_KEY}` },
          body: JSON.stringify({ model: 'fake-agent-own-model', stream: true, messages: [{ role: 'user', content: rest.join(' ') }] }),
        });
        let content = '';
        let end = 'cut';
        let buf = '';
        const dec = new TextDecoder();
        try {
          for await (const chunk of res.body) {
            buf += dec.decode(chunk, { stream: true });
            let i;
            while ((i = buf.indexOf('\n')) !== -1) {
              const line = buf.slice(0, i).trim();
              buf = buf.slice(i + 1);
              if (!line.startsWith('data:')) continue;
              const data = line.slice(5).trim();
              if (data === '[DONE]') {
                end = 'done';
                continue;
              }
              const ev = JSON.parse(data);
              if (ev.error) end = `error ${ev.error.message}`;
              const piece = ev.choices?.[0]?.delta?.content;
              if (piece) {
                if (!content) writeFileSync(path.join(s.cwd, '.stream-started'), '1');
                content += piece;
              }
            }
          }
        } catch (err) {
          end = `cut ${err.message}`;
        }
        return reply(`llmstream ${res.status} ${content} | ${end}`);
      } catch (err) {
        return reply(`llmstream failed: ${err.message}`);
      }
    }
    case 'llm-config':
      try {
        return reply(readFileSync(path.join(process.env.HERMES_HOME ?? '', 'config.yaml'), 'utf8'));
      } catch (err) {
        return reply(`llm-config failed: ${err.message}`);
      }
  }
  const words = `echo: ${text}`.split(/(?<= )/);
  for (const w of words) {
    say(sessionId, w);
    await sleep(5);
  }
  return { stopReason: 'end_turn' };
}
