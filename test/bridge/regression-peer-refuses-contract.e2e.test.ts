/**
 * A peer that announces no `refuses` (an older build, or another implementation: a raw bridge responder here) is
 * taken to honour every contract field (src/wire/chat-contract.ts), and its own refusal comes back: a
 * bridge-error with gatewayCode UNSUPPORTED and `param`. A real gateway process requests, the official openai SDK
 * is the client.
 *
 * Regressions (each failed before the fix): the peer's `param` was lost (the client's 400 had `param: null`), and
 * the refusal, a verdict on the request, was held against the peer's health like an upstream failure.
 */
import OpenAI from 'openai';
import { beforeAll, describe, expect, it } from 'vitest';
import { startRawBridgePeer, type RawFrame } from '../fakes/raw-bridge-peer.js';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import { adminGet, channelOf, rejectionOf, startProcess, waitForBridgeOpen, type ChannelHealth, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';

const ADMIN = 'refuses-admin-token-31415';
const started = stopAfterAll();
let a: GatewayProcess;
let local: OpenAiFake;
let client: OpenAI;
const forwards: RawFrame[] = [];

/** What the raw peer answers: n above 1 is refused as a Switchyard serving gateway refuses it, the rest served. */
function answer(ws: { send(s: string): void }, f: RawFrame): void {
  const payload = f.payload as { model: string; n?: number };
  if (typeof payload.n === 'number' && payload.n > 1) {
    ws.send(
      JSON.stringify({
        type: 'bridge-error',
        requestId: f.requestId,
        code: 'INTERNAL',
        gatewayCode: 'UNSUPPORTED',
        param: 'n',
        message: `n: channel "up" (anthropic) cannot give ${payload.n} choices (n: ${payload.n}); docs/apis.md lists what each provider honours`,
        retryable: false,
      }),
    );
    return;
  }
  const completion = {
    id: 'chatcmpl-peer',
    object: 'chat.completion',
    created: 1,
    model: payload.model,
    choices: [{ index: 0, message: { role: 'assistant', content: 'from the peer' }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 1, completion_tokens: 3, total_tokens: 4 },
  };
  ws.send(JSON.stringify({ type: 'bridge-response', requestId: f.requestId, payload: completion }));
}

beforeAll(async () => {
  const peer = started.track(
    await startRawBridgePeer({
      gatewayId: 'gw_refuses_b',
      gatewayName: 'refuses-b',
      models: ['only-peer', 'both'],
      // so its channel is tried before a local one of a worse tier (docs/routing.md, Peers)
      loadBalance: true,
      policy: { maxFrameBytes: 1 << 20, heartbeatIntervalMs: 60_000 },
      onFrame: (ws, f) => {
        if (f.type !== 'bridge-forward') return;
        forwards.push(f);
        answer(ws, f);
      },
    }),
  );
  local = started.track(await startOpenAiUpstream({ reply: 'from the local channel' }));
  a = started.trackGateway(
    await startProcess({
      gateway: {
        id: 'gw_refuses_a',
        admin: { token: ADMIN },
        routing: { retries: 1 },
        bridges: [{ name: 'b', url: peer.url, token: 'refuses-bridge-token-27182', reconnectInterval: 100 }],
      },
      // the peer's channels join at priority 0: the local one is the fallback tier
      channels: [channelOf(local, 'oa', ['both'], { priority: 1 })],
    }),
  );
  await waitForBridgeOpen(a.url, ADMIN);
  client = new OpenAI({ apiKey: 'sk-client-unused', baseURL: `${a.url}/v1`, maxRetries: 0, timeout: 15_000 });
}, 60_000);

async function peerHealth(): Promise<ChannelHealth> {
  const { channels } = await adminGet<{ channels: Array<{ id: string; health: ChannelHealth }> }>(a.url, '/admin/channels', ADMIN);
  return channels.find((c) => c.id === 'peer/gw_refuses_b/up')!.health;
}

describe('a peer that announced no refuses, refusing a contract field itself', () => {
  it('is asked (it may honour it); its UNSUPPORTED reaches the client with its param, and is not held against it', async () => {
    expect((await client.chat.completions.create({ model: 'only-peer', messages: [{ role: 'user', content: 'hi' }], n: 1 })).choices[0]!.message.content).toBe(
      'from the peer',
    );
    const sent = forwards.length;
    const err = await rejectionOf(client.chat.completions.create({ model: 'only-peer', messages: [{ role: 'user', content: 'hi' }], n: 3 }));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err).toMatchObject({ status: 400, code: 'unsupported', param: 'n' });
    expect((err as Error).message).toContain('via peer b: n: channel "up" (anthropic) cannot give 3 choices');
    expect(forwards.length).toBe(sent + 1);
    expect(await peerHealth()).toMatchObject({ consecutiveFailures: 0, lastError: null });
  });

  it('with another candidate, the request is served there; the peer is still not held to account', async () => {
    const before = local.count('/chat/completions');
    const sent = forwards.length;
    const r = await client.chat.completions.create({ model: 'both', messages: [{ role: 'user', content: 'hi' }], n: 3 });
    expect(r.choices[0]!.message.content).toBe('from the local channel');
    expect(local.count('/chat/completions')).toBe(before + 1);
    // the peer was asked first (its tier), then the local channel
    expect(forwards.length).toBe(sent + 1);
    expect(forwards.at(-1)!.payload).toMatchObject({ model: 'both', n: 3 });
    expect(await peerHealth()).toMatchObject({ consecutiveFailures: 0, lastError: null });
  });
});
