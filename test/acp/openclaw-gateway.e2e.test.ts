/**
 * A real gateway process whose `kind: "openclaw"` gateway provider is the fake OpenClaw (test/fakes/), broken
 * on purpose: a connection dropped mid-turn ends the task with UPSTREAM_CONNECTION_LOST and frees the session
 * for its next turn; a server that echoes the token in its error codes never gets it into anything a client
 * sees or the logs; a secret streamed across deltas goes out as `[REDACTED]` with every delta's `structuredEvent`
 * intact; a shutdown does not wait for an OpenClaw handshake that never completes.
 */
import { describe, expect, it } from 'vitest';
import { acpRpc, startProcess, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { startFakeOpenClaw, type FakeOpenClaw } from '../fakes/fake-openclaw.js';

const ACP = 'acp-openclaw-e2e-token-31';
const TOKEN = 'oc-e2e-secret-token-8c1d4f';
const { procs, ups: fakes } = stopAfterAll();

async function setup(): Promise<{ f: FakeOpenClaw; gw: GatewayProcess }> {
  const f = await startFakeOpenClaw({ token: TOKEN });
  fakes.push(f);
  const gw = await startProcess({
    gateway: { id: `gw_oc_${Math.random().toString(36).slice(2, 8)}` },
    acp: { tokens: [ACP], gateways: [{ id: 'openclaw', label: 'OpenClaw', kind: 'openclaw', url: f.url, token: TOKEN }] },
  });
  procs.push(gw);
  return { f, gw };
}
const start = (gw: GatewayProcess, sessionId: string, taskPrompt: string) =>
  acpRpc(gw.url, ACP, 'session.start', { sessionId, taskPrompt, requestedExecutionTarget: 'gateway', gatewayProviderId: 'openclaw' }, true);

describe('an OpenClaw gateway provider that breaks', () => {
  it('a connection dropped mid-turn fails the task clearly; the session and the gateway provider work again after', async () => {
    const { f, gw } = await setup();
    f.script = () => ({ chunks: ['half ', 'an answer'], end: 'drop', delayMs: 30 });
    const r1 = await start(gw, 's-drop', 'hello');
    expect(r1.result).toMatchObject({ status: 'failed', errorCode: 'UPSTREAM_CONNECTION_LOST', output: 'half an answer' });
    expect(r1.result.error).toMatch(/^connection to the OpenClaw gateway closed \(code \d+/);
    expect(r1.updates.at(-1)).toMatchObject({ type: 'status', event: 'failed', status: 'failed' });
    // the turn's lease is free: the same session's next turn runs (on a new connection)
    f.script = (p) => ({ chunks: [`Echo: ${p.message}`] });
    const r2 = await acpRpc(gw.url, ACP, 'session.message', { sessionId: 's-drop', taskPrompt: 'again' });
    expect(r2.result).toMatchObject({ status: 'completed', output: 'Echo: again' });
    expect(f.connections).toBe(2);
    expect(gw.logs()).toContain('openclaw connection lost');
    expect(gw.logs()).not.toContain(TOKEN);
  });

  it('the token echoed in error codes reaches neither a client nor the logs', async () => {
    const { f, gw } = await setup();
    f.connectError = { code: `E_${TOKEN}`, message: `refused ${TOKEN}`, details: { code: `AUTH_${TOKEN}` } };
    const caps = await acpRpc(gw.url, ACP, 'acp.capabilities', {});
    const oc = caps.result.gatewayProviders.find((g: { providerId: string }) => g.providerId === 'openclaw');
    expect(oc.enabled).toBe(false);
    expect(oc.unavailableReason).toMatch(/refused the configured token/);
    expect(JSON.stringify(caps)).not.toContain(TOKEN);
    const r = await start(gw, 's-echo', 'hello');
    expect(r.result).toMatchObject({ status: 'unavailable' }); // refused by routing, with the probe's reason
    expect(JSON.stringify(r)).not.toContain(TOKEN);
    expect(gw.logs()).toContain('openclaw authentication failed');
    expect(gw.logs()).not.toContain(TOKEN);
  });

  it('a long answer in many deltas that carry the text so far reaches the client in updates that grow with its length', async () => {
    const { f, gw } = await setup();
    const answer = Array.from({ length: 100_000 }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');
    // 250 v4 deltas, each with the cumulative `message` so far, as real v4 servers send them
    f.script = () => ({ chunks: answer.match(/[\s\S]{1,400}/g)!, delayMs: 1 });
    const res = await fetch(`${gw.url}/acp/rpc`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ACP}`, 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'session.start',
        params: { sessionId: 's-long', taskPrompt: 'long', requestedExecutionTarget: 'gateway', gatewayProviderId: 'openclaw' },
      }),
    });
    const body = await res.text();
    const msgs = body
      .split('\n\n')
      .filter((b) => b.startsWith('data: ') && b !== 'data: [DONE]')
      .map((b) => JSON.parse(b.slice(6)) as Record<string, any>);
    expect(msgs.find((m) => 'id' in m)?.result).toMatchObject({ status: 'completed', output: answer });
    const updates = msgs.filter((m) => m.method === 'session.update').map((m) => m.params);
    expect(
      updates
        .filter((u) => u.type === 'delta')
        .map((u) => u.delta)
        .join(''),
    ).toBe(answer);
    // the whole SSE answer, where every message carries its body twice (`params`/`result` and `payload`,
    // docs/acp.md): each piece four times (`delta`, `text`), the output twice, and envelopes — about 8.1× the
    // answer (it was about 262×: every update carried the text so far)
    expect(Buffer.byteLength(body)).toBeLessThan(10 * answer.length);
  });

  // ackAfterChunks 2: the chat.send ack (a `status` update) comes while the scrubber holds the token's start, and
  // the held start waits for the next delta: it did not go out before the status (the token leaked in two pieces)
  it.each([0, 2])(
    'a secret streamed across deltas goes out as [REDACTED], and every delta still carries its chat event fields (ack after %i deltas)',
    async (ackAfterChunks) => {
      const { f, gw } = await setup();
      f.ackAfterChunks = ackAfterChunks;
      // the token (a secret the gateway knows) split over two deltas, and ends that look like its start but are not
      f.script = () => ({ chunks: ['the token is ', TOKEN.slice(0, 9), `${TOKEN.slice(9)}, not oc-e2`, 'x; bye oc-'] });
      const r = await start(gw, 's-secret', 'hello');
      if (ackAfterChunks > 0) {
        const kinds = r.updates.map((u) => (u.type === 'delta' ? 'delta' : `${u.type}/${u.event}`));
        // the ack's status comes after the first delta: the token's start was held when it came
        expect(kinds.indexOf('status/running', kinds.indexOf('delta'))).toBeGreaterThan(kinds.indexOf('delta'));
      }
      const output = 'the token is [REDACTED], not oc-e2x; bye oc-';
      expect(r.result).toMatchObject({ status: 'completed', output });
      const deltas = r.updates.filter((u) => u.type === 'delta');
      expect(deltas.map((u) => u.delta).join('')).toBe(output);
      // the scrubber changed all but the first (held back a piece, redacted the token, gave back what it held)
      expect(deltas.map((u) => u.delta)).toEqual(['the token is ', '[REDACTED], not ', 'oc-e2x; bye ', 'oc-']);
      for (const u of deltas) {
        expect(u.structuredEvent).toEqual({ runId: expect.any(String), sessionKey: 'agent:main:switchyard-s-secret', state: 'delta', seq: expect.any(Number) });
      }
      const all = JSON.stringify(r);
      for (const piece of [TOKEN.slice(0, 9), TOKEN.slice(9)]) expect(all).not.toContain(piece);
    },
  );

  it('a shutdown does not wait for an OpenClaw handshake that never completes', async () => {
    const { f, gw } = await setup();
    f.handshake = 'no-answer';
    // the capabilities probe gives up after 5 s; its connect goes on (handshake timeout 15 s)
    const caps = await acpRpc(gw.url, ACP, 'acp.capabilities', {});
    expect(caps.result.gatewayProviders.find((g: { providerId: string }) => g.providerId === 'openclaw').enabled).toBe(false);
    expect(f.connects).toHaveLength(1);
    const t0 = Date.now();
    await gw.stop(20_000);
    expect(Date.now() - t0).toBeLessThan(4000);
  });
});
