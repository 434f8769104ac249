/**
 * Bad input and hostile peers on /bridge: each gets the documented bridge-error code and close code, and
 * the gateway keeps serving its other peers and its /v1 clients. Raw `ws` clients play the hostile peer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import OpenAI from 'openai';
import type { Gateway } from '../../src/gateway.js';
import { adminGet, cleanupDirs, memoryLogger, startInProcess, waitFor, wsUrl } from '../helpers/env.js';

const TOKEN = 'bridge-secret-token-123456';
const ADMIN = 'hostile-admin-token-31415';
let gw: Gateway;
const mem = memoryLogger();

interface Outcome {
  frames: any[];
  close: { code: number; reason: string } | undefined;
}

/** Connects, sends the given frames (strings or objects), collects replies until close or `waitMs`. */
async function exchange(send: Array<string | Buffer | object>, opts: { waitMs?: number; binary?: boolean } = {}): Promise<Outcome & { ws: WebSocket }> {
  const ws = new WebSocket(wsUrl(gw.url));
  const out: Outcome = { frames: [], close: undefined };
  ws.on('message', (d) => out.frames.push(JSON.parse(d.toString())));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const closed = new Promise<void>((resolve) => ws.once('close', (code, reason) => ((out.close = { code, reason: reason.toString() }), resolve())));
  for (const f of send) ws.send(typeof f === 'string' || Buffer.isBuffer(f) ? f : JSON.stringify(f), { binary: opts.binary === true });
  await Promise.race([closed, new Promise((r) => setTimeout(r, opts.waitMs ?? 1500))]);
  return { ...out, ws };
}

const hello = (over: Record<string, unknown> = {}) => ({
  type: 'bridge-hello',
  gatewayId: 'gw_hostile',
  gatewayName: 'Hostile',
  version: '1.0',
  token: TOKEN,
  capabilities: { shareChannels: false, acceptSessions: false, loadBalance: false },
  sharedChannels: [],
  ...over,
});

/** An authenticated raw peer. */
async function authed(
  id: string,
  over: Record<string, unknown> = {},
): Promise<{ ws: WebSocket; frames: any[]; next: (pred: (f: any) => boolean, ms?: number) => Promise<any> }> {
  const ws = new WebSocket(wsUrl(gw.url));
  const frames: any[] = [];
  const waiters: Array<{ pred: (f: any) => boolean; resolve: (f: any) => void }> = [];
  ws.on('message', (d) => {
    const f = JSON.parse(d.toString());
    frames.push(f);
    for (const w of [...waiters]) {
      if (!w.pred(f)) continue;
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(f);
    }
  });
  await new Promise((r) => ws.once('open', r));
  const next = (pred: (f: any) => boolean, ms = 5000) =>
    new Promise<any>((resolve, reject) => {
      const found = frames.find(pred);
      if (found) return resolve(found);
      const t = setTimeout(() => reject(new Error(`no matching frame within ${ms} ms; got ${JSON.stringify(frames.map((f) => f.type))}`)), ms);
      waiters.push({ pred, resolve: (f) => (clearTimeout(t), resolve(f)) });
    });
  ws.send(JSON.stringify(hello({ gatewayId: id, ...over })));
  const ok = await next((f) => f.type === 'bridge-hello-ok' || f.type === 'bridge-error');
  expect(ok.type).toBe('bridge-hello-ok');
  return { ws, frames, next };
}

beforeAll(async () => {
  gw = await startInProcess(
    {
      gateway: {
        id: 'gw_server',
        name: 'Server',
        admin: { token: ADMIN },
        // a configured bridge that never connects (nothing listens there): its name is its own
        bridges: [{ name: 'tob', url: 'ws://127.0.0.1:9/bridge', token: 'tob-bridge-token-0123456789', reconnectInterval: 60_000 }],
        bridge: {
          enabled: true,
          allowedTokens: [TOKEN],
          shareChannels: ['shared-mock'],
          maxPeers: 3,
          limits: { handshakeTimeoutMs: 400, preAuthFrameBytes: 2048, maxFrameBytes: 64 * 1024, maxInflightPerPeer: 4 },
        },
      },
      channels: [
        { name: 'shared-mock', provider: 'mock', models: ['shared-model'], options: { delayMs: 300 } },
        { name: 'private-mock', provider: 'mock', models: ['private-model'] },
      ],
    },
    mem.logger,
  );
});

afterAll(async () => {
  await gw?.close();
  cleanupDirs();
});

async function stillServes(): Promise<void> {
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused' });
  const r = await client.chat.completions.create({ model: 'private-model', messages: [{ role: 'user', content: 'still there?' }] });
  expect(r.choices[0]!.message.content).toContain('still there?');
}

describe('bridge handshake refusals', () => {
  it('wrong token → AUTH_FAILED, close 4401, token not echoed', async () => {
    const r = await exchange([hello({ token: 'wrong-token-value' })]);
    expect(r.frames[0]).toMatchObject({ type: 'bridge-error', code: 'AUTH_FAILED' });
    expect(r.close?.code).toBe(4401);
    expect(JSON.stringify(r.frames)).not.toContain('wrong-token-value');
    await stillServes();
  });

  it('missing fields → BAD_HELLO, close 4400, naming the field', async () => {
    const { gatewayId: _omit, ...noId } = hello();
    const r = await exchange([noId]);
    expect(r.frames[0]).toMatchObject({ type: 'bridge-error', code: 'BAD_HELLO' });
    expect(r.frames[0].message).toMatch(/gatewayId/);
    expect(r.close?.code).toBe(4400);
  });

  it('no version overlap → VERSION_UNSUPPORTED, close 4505', async () => {
    const r = await exchange([hello({ version: '2.0', minVersion: '2.0', maxVersion: '3.0' })]);
    expect(r.frames[0]).toMatchObject({ type: 'bridge-error', code: 'VERSION_UNSUPPORTED' });
    expect(r.close?.code).toBe(4505);
  });

  it('connecting to itself → SELF_CONNECTION, close 4403', async () => {
    const r = await exchange([hello({ gatewayId: 'gw_server' })]);
    expect(r.frames[0]).toMatchObject({ type: 'bridge-error', code: 'SELF_CONNECTION' });
    expect(r.close?.code).toBe(4403);
  });

  it('a frame before hello → BAD_HELLO, close 4400', async () => {
    const r = await exchange([{ type: 'bridge-ping', ts: 1 }]);
    expect(r.frames[0]).toMatchObject({ type: 'bridge-error', code: 'BAD_HELLO' });
    expect(r.close?.code).toBe(4400);
  });

  it('garbage → BAD_FRAME, close 4400', async () => {
    const r = await exchange(['{ this is not json']);
    expect(r.frames[0]).toMatchObject({ type: 'bridge-error', code: 'BAD_FRAME' });
    expect(r.close?.code).toBe(4400);
  });

  it('binary frame → BAD_FRAME, close 4400', async () => {
    const r = await exchange([Buffer.from(JSON.stringify(hello()))], { binary: true });
    expect(r.frames[0]).toMatchObject({ type: 'bridge-error', code: 'BAD_FRAME' });
    expect(r.close?.code).toBe(4400);
  });

  it('oversized pre-auth frame → PAYLOAD_TOO_LARGE, close 4413', async () => {
    const r = await exchange([hello({ gatewayName: 'x'.repeat(4096) })]);
    expect(r.frames[0]).toMatchObject({ type: 'bridge-error', code: 'PAYLOAD_TOO_LARGE' });
    expect(r.close?.code).toBe(4413);
  });

  it('silence → HANDSHAKE_TIMEOUT, close 4408', async () => {
    const r = await exchange([], { waitMs: 2000 });
    expect(r.frames[0]).toMatchObject({ type: 'bridge-error', code: 'HANDSHAKE_TIMEOUT' });
    expect(r.close?.code).toBe(4408);
  });

  it('maxPeers exceeded → MAX_PEERS, close 4429; the existing peers keep working', async () => {
    const peers = await Promise.all(['gw_p1', 'gw_p2', 'gw_p3'].map((id) => authed(id)));
    const r = await exchange([hello({ gatewayId: 'gw_p4' })]);
    expect(r.frames[0]).toMatchObject({ type: 'bridge-error', code: 'MAX_PEERS' });
    expect(r.close?.code).toBe(4429);
    peers[0]!.ws.send(JSON.stringify({ type: 'bridge-ping', ts: 42 }));
    expect(await peers[0]!.next((f) => f.type === 'bridge-pong')).toMatchObject({ ts: 42 });
    for (const p of peers) p.ws.close();
    // the gateway noticed: none of the three is still listed as an open inbound link
    const ids = new Set(['gw_p1', 'gw_p2', 'gw_p3']);
    await waitFor(
      async () =>
        !(await adminGet<{ peers: Array<{ id: string; state: string }> }>(gw.url, '/admin/bridges', ADMIN)).peers.some(
          (p) => ids.has(p.id) && p.state === 'open',
        ),
      'the closed peers gone from /admin/bridges',
    );
  });

  it('duplicate gateway id: the new authenticated link replaces the old one (old closed 4409)', async () => {
    const first = await authed('gw_dup');
    const firstClosed = new Promise<number>((r) => first.ws.once('close', (code) => r(code)));
    const second = await authed('gw_dup');
    expect(await firstClosed).toBe(4409);
    second.ws.send(JSON.stringify({ type: 'bridge-ping', ts: 7 }));
    expect(await second.next((f) => f.type === 'bridge-pong')).toMatchObject({ ts: 7 });
    second.ws.close();
  });

  it('a duplicate id with a WRONG token does not replace the existing link', async () => {
    const first = await authed('gw_dup2');
    const r = await exchange([hello({ gatewayId: 'gw_dup2', token: 'nope-nope-nope' })]);
    expect(r.close?.code).toBe(4401);
    first.ws.send(JSON.stringify({ type: 'bridge-ping', ts: 9 }));
    expect(await first.next((f) => f.type === 'bridge-pong')).toMatchObject({ ts: 9 });
    first.ws.close();
  });
});

describe('after the handshake', () => {
  it('hello-ok lists only the whitelisted channel, with policy and capabilities', async () => {
    const p = await authed('gw_look');
    const ok = p.frames.find((f) => f.type === 'bridge-hello-ok');
    expect(ok).toMatchObject({ gatewayId: 'gw_server', gatewayName: 'Server', version: '1.0', policy: { maxFrameBytes: 64 * 1024 } });
    expect(ok.sharedChannels).toEqual([
      {
        name: 'shared-mock',
        provider: 'mock',
        models: ['shared-model'],
        capabilities: {
          embeddings: true,
          tools: true,
          vision: true,
          nativeResponses: false,
          synthetic: true,
          refuses: ['n', 'logprobs', 'response_format.json_object', 'response_format.json_schema', 'audio'],
        },
      },
    ]);
    p.ws.close();
  });

  it('unknown type → UNKNOWN_TYPE and the link stays open; garbage → BAD_FRAME without closing', async () => {
    const p = await authed('gw_unknown');
    p.ws.send(JSON.stringify({ type: 'bridge-teleport', requestId: 'r1' }));
    expect(await p.next((f) => f.type === 'bridge-error' && f.code === 'UNKNOWN_TYPE')).toMatchObject({ requestId: 'r1' });
    p.ws.send('not json at all');
    await p.next((f) => f.type === 'bridge-error' && f.code === 'BAD_FRAME');
    p.ws.send(JSON.stringify({ type: 'bridge-ping', ts: 5 }));
    expect(await p.next((f) => f.type === 'bridge-pong')).toMatchObject({ ts: 5 });
    p.ws.close();
  });

  it('an oversized frame after the handshake → PAYLOAD_TOO_LARGE and close 4413', async () => {
    const p = await authed('gw_big');
    const closed = new Promise<number>((r) => p.ws.once('close', (code) => r(code)));
    p.ws.send(JSON.stringify({ type: 'bridge-ping', ts: 1, pad: 'x'.repeat(100 * 1024) }));
    expect(await p.next((f) => f.type === 'bridge-error')).toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
    expect(await closed).toBe(4413);
    await stillServes();
  });

  it('forward missing fields → BAD_FRAME naming the field, with the requestId', async () => {
    const p = await authed('gw_missing');
    p.ws.send(JSON.stringify({ type: 'bridge-forward', requestId: 'm1', payload: { model: 'shared-model', messages: [] } }));
    const e = await p.next((f) => f.type === 'bridge-error' && f.requestId === 'm1');
    expect(e.code).toBe('BAD_FRAME');
    expect(e.message).toMatch(/targetChannel/);
    p.ws.close();
  });

  it('forward to an existing but unshared channel → CHANNEL_NOT_SHARED', async () => {
    const p = await authed('gw_sneaky');
    p.ws.send(
      JSON.stringify({
        type: 'bridge-forward',
        requestId: 'x1',
        targetChannel: 'private-mock',
        payload: { model: 'private-model', messages: [{ role: 'user', content: 'hi' }] },
      }),
    );
    expect(await p.next((f) => f.requestId === 'x1')).toMatchObject({ type: 'bridge-error', code: 'CHANNEL_NOT_SHARED', retryable: false });
    p.ws.close();
  });

  it('a shared channel answers a forward (non-stream and stream)', async () => {
    const p = await authed('gw_good');
    p.ws.send(
      JSON.stringify({
        type: 'bridge-forward',
        requestId: 'g1',
        targetChannel: 'shared-mock',
        payload: { model: 'shared-model', messages: [{ role: 'user', content: 'hello bridge' }] },
      }),
    );
    const res = await p.next((f) => f.requestId === 'g1');
    expect(res.type).toBe('bridge-response');
    expect(res.payload.choices[0].message.content).toContain('hello bridge');
    p.ws.send(
      JSON.stringify({
        type: 'bridge-forward',
        requestId: 'g2',
        stream: true,
        targetChannel: 'shared-mock',
        payload: { model: 'shared-model', messages: [{ role: 'user', content: 'stream it' }] },
      }),
    );
    const end = await p.next((f) => f.requestId === 'g2' && (f.type === 'bridge-stream-end' || f.type === 'bridge-error'));
    expect(end.type).toBe('bridge-stream-end');
    const text = p.frames
      .filter((f) => f.type === 'bridge-stream' && f.requestId === 'g2')
      .map((f) => f.chunk.choices[0]?.delta?.content ?? '')
      .join('');
    expect(text).toContain('stream it');
    p.ws.close();
  });

  it('a forward whose hops contain this gateway → LOOP_DETECTED', async () => {
    const p = await authed('gw_loop');
    p.ws.send(
      JSON.stringify({
        type: 'bridge-forward',
        requestId: 'l1',
        targetChannel: 'shared-mock',
        hops: ['gw_a', 'gw_server', 'gw_loop'],
        payload: { model: 'shared-model', messages: [{ role: 'user', content: 'hi' }] },
      }),
    );
    expect(await p.next((f) => f.requestId === 'l1')).toMatchObject({ type: 'bridge-error', code: 'LOOP_DETECTED' });
    p.ws.close();
  });

  it('a flood beyond maxInflightPerPeer → OVERLOADED for the excess, the rest served', async () => {
    const p = await authed('gw_flood');
    const n = 10;
    for (let i = 0; i < n; i++) {
      p.ws.send(
        JSON.stringify({
          type: 'bridge-forward',
          requestId: `f${i}`,
          targetChannel: 'shared-mock',
          payload: { model: 'shared-model', messages: [{ role: 'user', content: `n${i}` }] },
        }),
      );
    }
    const results = await Promise.all(Array.from({ length: n }, (_, i) => p.next((f) => f.requestId === `f${i}`)));
    const served = results.filter((f) => f.type === 'bridge-response').length;
    const refused = results.filter((f) => f.type === 'bridge-error' && f.code === 'OVERLOADED' && f.retryable === true).length;
    expect(served).toBe(4);
    expect(refused).toBe(6);
    await stillServes();
    p.ws.close();
  });

  it('bridge-cancel aborts a request being served', async () => {
    const p = await authed('gw_cancel');
    p.ws.send(
      JSON.stringify({
        type: 'bridge-forward',
        requestId: 'c1',
        targetChannel: 'shared-mock',
        payload: { model: 'shared-model', messages: [{ role: 'user', content: 'slow' }] },
      }),
    );
    p.ws.send(JSON.stringify({ type: 'bridge-cancel', requestId: 'c1' }));
    const r = await p.next((f) => f.requestId === 'c1');
    expect(r).toMatchObject({ type: 'bridge-error', code: 'CANCELLED' });
    p.ws.close();
  });

  it('a forward whose body /v1 would refuse is refused the same way (BAD_FRAME, gateway code INVALID_REQUEST), never served', async () => {
    const p = await authed('gw_badbody');
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['b1', { kind: 'chat', payload: { model: 'shared-model', messages: 'x' } }, 'messages'],
      ['b2', { kind: 'embeddings', payload: { model: 'shared-model', messages: [{ role: 'user', content: 'hi' }] } }, 'input'],
      ['b3', { kind: 'chat', payload: { messages: [{ role: 'user', content: 'hi' }] } }, 'model'],
      ['b4', { kind: 'chat', payload: { model: 'shared-model', messages: [{ role: 'user', content: 'hi' }], tool_choice: {} } }, 'tool_choice'],
    ];
    for (const [requestId, body] of cases) p.ws.send(JSON.stringify({ type: 'bridge-forward', requestId, targetChannel: 'shared-mock', ...body }));
    for (const [requestId, , param] of cases) {
      const e = await p.next((f) => f.requestId === requestId);
      expect(e).toMatchObject({ type: 'bridge-error', code: 'BAD_FRAME', gatewayCode: 'INVALID_REQUEST', retryable: false });
      expect(e.message).toMatch(new RegExp(`^${param}`));
    }
    await stillServes();
    p.ws.close();
  });

  it('a forward asking for a contract field its channel refuses → gatewayCode UNSUPPORTED with param, never served; n: 1 is served', async () => {
    // a requester that did not know the channel's `refuses` (an older build): the serving gateway's own check answers
    const p = await authed('gw_contract');
    const ask = (requestId: string, extra: Record<string, unknown>) =>
      p.ws.send(
        JSON.stringify({
          type: 'bridge-forward',
          requestId,
          targetChannel: 'shared-mock',
          payload: { model: 'shared-model', messages: [{ role: 'user', content: 'hi' }], ...extra },
        }),
      );
    ask('k1', { n: 3 });
    ask('k2', { response_format: { type: 'json_object' } });
    ask('k3', { n: 1, logprobs: false, response_format: { type: 'text' } });
    expect(await p.next((f) => f.requestId === 'k1')).toMatchObject({ type: 'bridge-error', gatewayCode: 'UNSUPPORTED', param: 'n', retryable: false });
    const k2 = await p.next((f) => f.requestId === 'k2');
    expect(k2).toMatchObject({ type: 'bridge-error', gatewayCode: 'UNSUPPORTED', param: 'response_format' });
    expect(k2.message).toMatch(/^response_format: channel "shared-mock" \(mock\) cannot give /);
    expect(await p.next((f) => f.requestId === 'k3')).toMatchObject({ type: 'bridge-response' });
    p.ws.close();
  });

  it('a frame nested deeper than 1024 levels → BAD_FRAME with its requestId; the link stays open', async () => {
    const p = await authed('gw_deep');
    const deep = `${'['.repeat(30_000)}${']'.repeat(30_000)}`;
    p.ws.send(`{"type":"bridge-forward","requestId":"d1","targetChannel":"shared-mock","payload":{"model":"shared-model","messages":${deep}}}`);
    expect(await p.next((f) => f.requestId === 'd1')).toMatchObject({
      type: 'bridge-error',
      code: 'BAD_FRAME',
      message: 'frame nests deeper than 1024 levels',
    });
    p.ws.send(
      JSON.stringify({
        type: 'bridge-forward',
        requestId: 'd2',
        targetChannel: 'shared-mock',
        payload: { model: 'shared-model', messages: [{ role: 'user', content: 'after the deep one' }] },
      }),
    );
    expect(await p.next((f) => f.requestId === 'd2')).toMatchObject({ type: 'bridge-response' });
    p.ws.close();
  });

  it('a peer announcing ever new channel names does not grow the routing tables', async () => {
    const p = await authed('gw_churn');
    const stats = (gw.router as unknown as { stats: Map<string, unknown> }).stats;
    const before = stats.size;
    for (let round = 0; round < 50; round++) {
      const sharedChannels = Array.from({ length: 20 }, (_, i) => ({ name: `c${round}-${i}`, provider: 'mock', models: [`m${round}-${i}`] }));
      p.ws.send(JSON.stringify({ type: 'bridge-channels', sharedChannels }));
    }
    await waitFor(() => gw.router.models().some((m) => m.id === 'm49-19'), 'the last announcement', 5_000, 10);
    expect(stats.size).toBe(before + 20);
    p.ws.close();
    await waitFor(() => stats.size === before, 'the tables back to their size once the peer left', 5_000, 10);
  });

  it("an inbound peer cannot take a configured bridge's name, and a name two peers share is refused", async () => {
    const transferTo = (to: string) =>
      fetch(`${gw.url}/admin/sessions/sess-x/transfer`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ to }),
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as { error: { code: string; message: string } } }));
    // room under maxPeers (3): the links of the tests above are closed by then
    const inboundOpen = async () =>
      (await adminGet<{ peers: Array<{ direction: string; state: string }> }>(gw.url, '/admin/bridges', ADMIN)).peers.filter(
        (p) => p.direction === 'inbound' && p.state === 'open',
      ).length;
    await waitFor(async () => (await inboundOpen()) === 0, 'no inbound link left open');
    const spoof = await authed('gw_spoof', { gatewayName: 'tob' });
    const r = await transferTo('tob');
    expect(r.status).toBe(404);
    expect(r.body.error.message).toBe('no connected peer named or with id "tob"');
    spoof.ws.close();
    const twin1 = await authed('gw_twin_1', { gatewayName: 'twin' });
    const twin2 = await authed('gw_twin_2', { gatewayName: 'twin' });
    const both = await transferTo('twin');
    expect(both.status).toBe(400);
    expect(both.body.error.message).toBe('2 connected peers are named "twin": name one by its gateway id');
    twin1.ws.close();
    twin2.ws.close();
  });

  it('/admin: bad percent-encoding in a path and a since no date can hold are 400s, not internal errors', async () => {
    const get = (path: string, method = 'GET') =>
      fetch(`${gw.url}${path}`, { method, headers: { authorization: `Bearer ${ADMIN}` } }).then(async (r) => ({
        status: r.status,
        body: (await r.json()) as { error: { code: string; param: string | null } },
      }));
    for (const [path, method, param] of [
      ['/admin/sessions/%ff', 'GET', 'session'],
      ['/admin/bridges/%ff', 'DELETE', 'bridge'],
      ['/admin/keys/%ff', 'GET', 'key'],
    ] as const) {
      const r = await get(path, method);
      expect(r.status, path).toBe(400);
      expect(r.body.error).toMatchObject({ code: 'invalid_request', param });
    }
    for (const since of ['999999999999h', '99999999999999999999']) {
      const r = await get(`/admin/usage?since=${since}`);
      expect(r.status, since).toBe(400);
      expect(r.body.error).toMatchObject({ code: 'invalid_request', param: 'since' });
    }
  });

  it('one bridge token binds at most 1024 gateway ids; past that a new id is refused (GATEWAY_ID_BOUND, 4403)', async () => {
    // ids bound by the tests above count too: fill the rest of this token's share
    const helloOnce = async (id: string) => {
      const ws = new WebSocket(wsUrl(gw.url));
      await new Promise((r) => ws.once('open', r));
      const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
      const first = new Promise<any>((r) => ws.once('message', (d) => r(JSON.parse(d.toString()))));
      ws.send(JSON.stringify(hello({ gatewayId: id })));
      return { ws, frame: await first, closed };
    };
    let refused: { frame: any; code: number } | undefined;
    for (let i = 0; i < 1100 && !refused; i++) {
      const r = await helloOnce(`gw_many_${i}`);
      if (r.frame.type === 'bridge-error') refused = { frame: r.frame, code: await r.closed };
      else {
        expect(r.frame).toMatchObject({ type: 'bridge-hello-ok' });
        r.ws.close();
        await r.closed;
      }
    }
    expect(refused?.frame).toMatchObject({ code: 'GATEWAY_ID_BOUND' });
    expect(refused?.code).toBe(4403);
    // an id bound before still connects
    const again = await authed('gw_many_0');
    again.ws.close();
  }, 60_000);

  it('never logs a bridge token', () => {
    expect(mem.lines.join('\n')).not.toContain(TOKEN);
    expect(mem.lines.join('\n')).not.toContain('wrong-token-value');
  });
});
