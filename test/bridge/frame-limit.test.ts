/**
 * A frame larger than the peer takes is never sent: the peer would close the link on it (PAYLOAD_TOO_LARGE,
 * 4413) and fail every request on it. Instead only the request the frame belongs to fails, and the link stays
 * up. The limits differ on purpose: A takes 8 KiB frames, B 64 KiB, and each learns the other's in the
 * handshake (B from A's bridge-hello, A from B's bridge-hello-ok). So B refuses to send A an answer over 8 KiB,
 * which it could only know from A's hello, and A refuses to forward B a request over 64 KiB.
 * Last, a raw responder announces policies no gateway could be configured with (a heartbeat of 0 or 2^40 ms, a
 * frame limit of 1 byte): the initiator takes them within the bounds a gateway's own config has.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRawBridgePeer, type RawPeer } from '../fakes/raw-bridge-peer.js';
import type { Gateway } from '../../src/gateway.js';
import { gatewayErrorOf } from '../helpers/gateway-error.js';
import { adminGet, cleanupDirs, startGw, waitFor, waitForBridgeOpen, wsUrl } from '../helpers/env.js';

const TOKEN = 'frame-limit-bridge-token-9876';
const ADMIN = 'frame-limit-admin-token-5432';
const A_MAX = 8 * 1024;
const B_MAX = 64 * 1024;

/** An OpenAI-compatible upstream: the reply's content is 20,000 characters when the prompt says "big". */
let upstream: Server;
let upstreamUrl = '';
let a: Gateway & { logs: string[] };
let b: Gateway & { logs: string[] };
let rpcAborted = 0;

function startUpstream(): Promise<void> {
  upstream = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (text += c));
    req.on('end', () => {
      const body = JSON.parse(text) as { stream?: boolean; messages: Array<{ content: string }> };
      const content = body.messages[0]!.content === 'big' ? 'x'.repeat(20_000) : 'small reply';
      if (!body.stream) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            id: 'c1',
            object: 'chat.completion',
            created: 1,
            model: 'fl-model',
            choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
            usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
          }),
        );
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const chunk = (delta: Record<string, unknown>) =>
        `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'fl-model', choices: [{ index: 0, delta, finish_reason: null }] })}\n\n`;
      res.write(chunk({ role: 'assistant', content: 'first ' }));
      setTimeout(() => res.end(chunk({ content }) + 'data: [DONE]\n\n'), 20);
    });
  });
  return new Promise((resolve) =>
    upstream.listen(0, '127.0.0.1', () => {
      upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/v1`;
      resolve();
    }),
  );
}

const chat = (content: string, stream = false) =>
  fetch(`${a.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'fl-model', stream, messages: [{ role: 'user', content }] }),
  });

async function linkStillUp(): Promise<void> {
  const { peers } = await adminGet<{ peers: Array<{ name: string; state: string }> }>(a.url, '/admin/bridges', ADMIN);
  expect(peers.find((r) => r.name === 'b')?.state).toBe('open');
  expect(
    b.logs.filter((l) => l.includes('bridge peer connected')),
    'B saw one link, never a reconnect',
  ).toHaveLength(1);
  const res = await chat('small');
  expect(res.status).toBe(200);
  expect(((await res.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content).toBe('small reply');
}

beforeAll(async () => {
  await startUpstream();
  b = await startGw({
    gateway: {
      id: 'gw_fl_b',
      name: 'fl-b',
      bridge: { enabled: true, allowedTokens: [TOKEN], shareChannels: ['up'], shareAgents: ['codex'], limits: { maxFrameBytes: B_MAX } },
    },
    channels: [{ name: 'up', provider: 'openai', baseUrl: upstreamUrl, apiKey: 'sk-up', models: ['fl-model'] }],
    acp: { agents: [{ id: 'codex', label: 'Codex', command: 'codex-acp' }] },
  });
  // the serving side's ACP handler: updates, then a result; one update or the result too large for A
  b.mesh.rpcHandler = async ({ params, emit, signal }) => {
    signal.addEventListener('abort', () => rpcAborted++, { once: true });
    emit('session.update', { sessionId: params.sessionId, seq: 1, type: 'delta', delta: 'before ' });
    if (params.taskPrompt === 'big-update') emit('session.update', { sessionId: params.sessionId, seq: 2, type: 'delta', delta: 'y'.repeat(20_000) });
    if (signal.aborted) return { result: { status: 'cancelled' } };
    emit('session.update', { sessionId: params.sessionId, seq: 3, type: 'delta', delta: 'after' });
    return { result: { success: true, status: 'completed', output: params.taskPrompt === 'big-result' ? 'z'.repeat(20_000) : 'done' } };
  };
  a = await startGw({
    gateway: {
      id: 'gw_fl_a',
      name: 'fl-a',
      admin: { token: ADMIN },
      bridge: { limits: { maxFrameBytes: A_MAX } },
      bridges: [{ name: 'b', url: wsUrl(b.url), token: TOKEN, reconnectInterval: 100 }],
    },
    channels: [],
  });
  await waitFor(() => a.mesh.peerAgents().length > 0, 'the bridge open, B sharing its agent');
});

afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await new Promise((r) => upstream?.close(r));
  cleanupDirs();
});

describe('a frame larger than the peer takes', () => {
  it("B's answer over A's limit (learnt from A's hello): that request fails with 502 upstream_bad_response; the link stays", async () => {
    await linkStillUp();
    const res = await chat('big');
    expect(res.status).toBe(502);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('upstream_bad_response');
    expect(body.error.message).toContain(`via peer b: the answer is larger than this link takes in one frame (${A_MAX} bytes)`);
    await linkStillUp();
  });

  it('a streamed chunk over the limit ends that stream with an error event after the chunks before it, no [DONE]', async () => {
    const res = await chat('big', true);
    expect(res.status).toBe(200);
    const text = await res.text();
    const events = text
      .split('\n\n')
      .filter((e) => e.startsWith('data: '))
      .map((e) => e.slice(6));
    expect(JSON.parse(events[0]!).choices[0].delta.content).toBe('first ');
    expect(events).not.toContain('[DONE]');
    const last = JSON.parse(events[events.length - 1]!) as { error: { code: string; message: string } };
    expect(last.error.code).toBe('upstream_bad_response');
    expect(last.error.message).toContain(`the answer is larger than this link takes in one frame (${A_MAX} bytes)`);
    await linkStillUp();
  });

  it("a request over B's limit (from B's hello-ok) is not forwarded: 413 payload_too_large; the link stays", async () => {
    const res = await chat('q'.repeat(B_MAX));
    expect(res.status).toBe(413);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('payload_too_large');
    expect(body.error.message).toContain(`the request is larger than bridge peer b takes in one frame (${B_MAX} bytes)`);
    await linkStillUp();
  });

  it('an agent task whose update or result is over the limit fails that call (its run cancelled); the link stays', async () => {
    for (const prompt of ['big-update', 'big-result']) {
      const events: Array<Record<string, unknown>> = [];
      const abortedBefore = rpcAborted;
      const err = await gatewayErrorOf(
        a.mesh.rpc('gw_fl_b', 'session.start', { sessionId: `s-${prompt}`, provider: 'codex', taskPrompt: prompt }, { onEvent: (_m, p) => events.push(p) }),
      );
      expect(err.code, prompt).toBe('UPSTREAM_BAD_RESPONSE');
      expect(err.details).toMatchObject({ bridgeCode: 'PAYLOAD_TOO_LARGE' });
      expect(err.message).toContain(`an update or the result is larger than this link takes in one frame (${A_MAX} bytes)`);
      // the updates before the large one were relayed; none after it
      expect(events.map((e) => e.seq)).toEqual(prompt === 'big-update' ? [1] : [1, 3]);
      expect(rpcAborted, 'the run was cancelled').toBe(abortedBefore + 1);
    }
    const ok = await a.mesh.rpc('gw_fl_b', 'session.start', { sessionId: 's-ok', provider: 'codex', taskPrompt: 'fine' }, { onEvent: () => undefined });
    expect(ok).toEqual({ result: { success: true, status: 'completed', output: 'done' } });
    await linkStillUp();
  });

  it("an agent-task call or a session offer over B's limit is not sent: it fails at once with PAYLOAD_TOO_LARGE; the link stays", async () => {
    const call = await gatewayErrorOf(
      a.mesh.rpc('gw_fl_b', 'session.start', { sessionId: 's-huge', provider: 'codex', taskPrompt: 'p'.repeat(B_MAX) }, { onEvent: () => undefined }),
    );
    expect(call).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', message: `the call is larger than bridge peer b takes in one frame (${B_MAX} bytes)` });
    const offer = await gatewayErrorOf(
      a.mesh.resolvePeer('b')!.offerSession('tr-huge', { id: 's-huge', owner: 'gw_fl_a', metadata: { note: 'n'.repeat(B_MAX) } }, [], 10_000),
    );
    expect(offer).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', message: `the session is larger than bridge peer b takes in one frame (${B_MAX} bytes)` });
    await linkStillUp();
  });
});

/** A raw responder announcing `policy`; it answers pings, and each forward with a small response. */
function rawPeer(policy: { maxFrameBytes: number; heartbeatIntervalMs: number }, forwards: string[]): Promise<RawPeer> {
  return startRawBridgePeer({
    gatewayId: 'gw_raw_b',
    gatewayName: 'raw-b',
    models: ['tiny-model'],
    policy,
    onFrame: (ws, f) => {
      if (f.type === 'bridge-ping') ws.send(JSON.stringify({ type: 'bridge-pong', ts: f.ts }));
      else if (f.type === 'bridge-forward') {
        forwards.push(f.requestId!);
        const payload = {
          id: 't1',
          object: 'chat.completion',
          created: 1,
          model: 'tiny-model',
          choices: [{ index: 0, message: { role: 'assistant', content: 'tiny' }, finish_reason: 'stop' }],
        };
        ws.send(JSON.stringify({ type: 'bridge-response', requestId: f.requestId, payload }));
      }
    },
  });
}

async function dial(peer: RawPeer, id: string): Promise<Gateway & { logs: string[] }> {
  const c = await startGw({
    gateway: { id, admin: { token: ADMIN }, bridges: [{ name: 'raw', url: peer.url, token: 'raw-bridge-token-1234', reconnectInterval: 100 }] },
    channels: [],
  });
  await waitForBridgeOpen(c.url, ADMIN);
  return c;
}

describe('what a peer announces in its policy is taken within bounds', () => {
  it('a heartbeat of 0 or of 2^40 ms becomes 50 ms or 10 min (not a busy loop, not an overflowed timer)', async () => {
    for (const [announced, used] of [
      [0, 50],
      [2 ** 40, 600_000],
    ] as const) {
      const peer = await rawPeer({ maxFrameBytes: 1 << 20, heartbeatIntervalMs: announced }, []);
      const c = await dial(peer, 'gw_hb_a');
      try {
        // read from the open link; at 50 ms a stalled test process may see it closed for silence and dialled again,
        // and the new link takes the same bounded interval
        const interval = await waitFor(() => c.mesh.resolvePeer('raw')?.limits.heartbeatIntervalMs, 'the link to the raw peer');
        expect(interval).toBe(used);
      } finally {
        await c.close();
        await peer.close();
      }
    }
  });

  it('a frame limit below any gateway’s is taken at 1024 bytes: small frames still go, so the link works', async () => {
    const forwards: string[] = [];
    const peer = await rawPeer({ maxFrameBytes: 1, heartbeatIntervalMs: 60_000 }, forwards);
    const c = await dial(peer, 'gw_tiny_a');
    try {
      expect(c.mesh.resolvePeer('raw')!.peerMaxFrameBytes).toBe(1024);
      const res = await fetch(`${c.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'tiny-model', messages: [{ role: 'user', content: 'hi' }] }),
      });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content).toBe('tiny');
      expect(forwards).toHaveLength(1);
    } finally {
      await c.close();
      await peer.close();
    }
  });
});
