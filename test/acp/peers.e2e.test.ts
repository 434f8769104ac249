/**
 * /acp/rpc across the bridge with real gateway processes: a runtime a peer shares appears in the catalog and
 * its sessions run on the peer (updates relayed in order, continuation and close forwarded); the serving side
 * refuses runtimes it does not share and sessions the peer did not start; a session transferred to a peer is
 * still reachable through the old gateway, and an unreachable owner is named in the error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { adminGet, cleanupDirs, startProcess, waitFor, wsUrl, type GatewayProcess, acpRpc } from '../helpers/env.js';

const BRIDGE = 'peers-bridge-token-31415';
const ACP = 'peers-acp-token-27182';
let a: GatewayProcess;
let b: GatewayProcess;

const rpc = (gw: GatewayProcess, method: string, params: Record<string, unknown>, sse = false) => acpRpc(gw.url, ACP, method, params, sse);

const channelsProvider = (id: string) => ({ id, label: id, kind: 'channels', model: 'mock-1' });

/** A raw bridge peer of B (authenticated as `gatewayId`): `call` sends a bridge-rpc and waits for its answer. */
async function rawPeer(gatewayId: string) {
  const ws = new WebSocket(wsUrl(b.url));
  const frames: any[] = [];
  ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
  await new Promise((r) => ws.once('open', r));
  const hello = { type: 'bridge-hello', gatewayId, gatewayName: gatewayId, version: '1.0', token: BRIDGE };
  ws.send(JSON.stringify({ ...hello, capabilities: { shareChannels: false, acceptSessions: false, loadBalance: false } }));
  await waitFor(() => frames.find((f) => f.type === 'bridge-hello-ok'), 'hello-ok');
  const call = async (requestId: string, method: string, params: Record<string, unknown>) => {
    ws.send(JSON.stringify({ type: 'bridge-rpc', requestId, method, params }));
    return waitFor(() => frames.find((f) => f.requestId === requestId && f.type !== 'bridge-rpc-event'), requestId);
  };
  return { ws, frames, call };
}

beforeAll(async () => {
  b = await startProcess({
    gateway: { id: 'gw_peer_b', name: 'datacenter', bridge: { enabled: true, allowedTokens: [BRIDGE], shareAgents: ['b-chat'], acceptSessions: true } },
    channels: [{ name: 'm', provider: 'mock', models: ['mock-1'], options: { chunkDelayMs: 10 } }],
    acp: { tokens: [ACP], gateways: [channelsProvider('b-chat'), channelsProvider('b-private'), channelsProvider('switchyard')] },
  });
  a = await startProcess({
    gateway: {
      id: 'gw_peer_a',
      name: 'office',
      bridges: [{ name: 'datacenter', url: wsUrl(b.url), token: BRIDGE, shareChannels: false, reconnectInterval: 100 }],
    },
    channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
    acp: { tokens: [ACP], gateways: [channelsProvider('switchyard')] },
  });
  await waitFor(async () => (await adminGet(a.url, '/admin/bridges')).peers[0]?.state === 'open', 'A→B link');
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  cleanupDirs();
});

describe('peer-shared runtimes', () => {
  it("appear in A's catalog (only the shared one), enabled, with no address", async () => {
    const r = await rpc(a, 'acp.capabilities', {});
    const ids = r.result.gatewayProviders.map((g: any) => g.providerId);
    expect(ids).toEqual(['switchyard', 'b-chat']);
    expect(r.result.gatewayProviders[1]).toEqual({ providerId: 'b-chat', label: 'b-chat (via datacenter)', targets: ['gateway'], enabled: true });
    expect(JSON.stringify(r.result)).not.toMatch(/127\.0\.0\.1|ws:\/\//);
  });

  it('a session on a shared runtime runs on the peer: updates relayed in order, continuation and close forwarded', async () => {
    const start = await rpc(
      a,
      'session.start',
      {
        sessionId: 'p1',
        taskPrompt: 'hello over there',
        routing: { routingMode: 'explicit', explicitExecutionTarget: 'gateway', preferredGatewayProviderId: 'b-chat' },
      },
      true,
    );
    expect(start.result).toMatchObject({ success: true, status: 'completed', resolvedGatewayProviderId: 'b-chat' });
    expect(start.result.output).toContain('hello over there');
    expect(start.updates.length).toBeGreaterThan(2);
    const seqs = start.updates.map((u) => u.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    for (const u of start.updates) expect(u).toMatchObject({ sessionId: 'p1', threadId: 'p1', turnId: expect.any(String) });

    const msg = await rpc(a, 'session.message', { sessionId: 'p1', taskPrompt: 'second turn' });
    expect(msg.result).toMatchObject({ success: true, status: 'completed' });
    expect(msg.result.output).toContain('second turn');
    const onB = (await adminGet(b.url, '/admin/sessions/p1')).session;
    expect(onB.history.map((t: any) => t.prompt)).toEqual(['hello over there', 'second turn']);
    expect(onB.metadata.viaPeer).toBe('gw_peer_a');
    expect((await adminGet(a.url, '/admin/sessions/p1')).session).toMatchObject({ status: 'moved', movedTo: 'gw_peer_b' });

    expect((await rpc(a, 'session.close', { sessionId: 'p1' })).result).toEqual({ accepted: true, closed: true });
    expect((await adminGet(b.url, '/admin/sessions/p1')).session.status).toBe('closed');
    const after = await rpc(a, 'session.message', { sessionId: 'p1', taskPrompt: 'again?' });
    expect(after.error).toMatchObject({ code: -32002, data: { code: 'SESSION_CONTINUATION_UNAVAILABLE' } });
  });

  it('the serving side refuses an unshared runtime and sessions the peer did not start', async () => {
    const ws = new WebSocket(wsUrl(b.url));
    const frames: any[] = [];
    ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
    await new Promise((r) => ws.once('open', r));
    ws.send(
      JSON.stringify({
        type: 'bridge-hello',
        gatewayId: 'gw_sneak',
        gatewayName: 'sneak',
        version: '1.0',
        token: BRIDGE,
        capabilities: { shareChannels: false, acceptSessions: false, loadBalance: false },
      }),
    );
    await waitFor(() => frames.find((f) => f.type === 'bridge-hello-ok'), 'hello-ok');
    ws.send(
      JSON.stringify({
        type: 'bridge-rpc',
        requestId: 'r1',
        method: 'session.start',
        params: { sessionId: 'x1', taskPrompt: 'hi', gatewayProviderId: 'b-private', requestedExecutionTarget: 'gateway' },
      }),
    );
    ws.send(JSON.stringify({ type: 'bridge-rpc', requestId: 'r2', method: 'session.message', params: { sessionId: 'p1', taskPrompt: 'not yours' } }));
    const r1 = await waitFor(() => frames.find((f) => f.requestId === 'r1'), 'r1');
    const r2 = await waitFor(() => frames.find((f) => f.requestId === 'r2'), 'r2');
    ws.close();
    expect(r1).toMatchObject({ type: 'bridge-error', code: 'AGENT_NOT_SHARED' });
    expect(r2).toMatchObject({ type: 'bridge-error', code: 'AGENT_NOT_SHARED' });
    expect((await adminGet(b.url, '/admin/sessions')).sessions.map((s: any) => s.id)).not.toContain('x1');
  });

  it("a peer's session.start never replaces a session it cannot reach: a local client's, another peer's; its own it may restart", async () => {
    const local = await rpc(b, 'session.start', {
      sessionId: 'own1',
      taskPrompt: 'local secret prompt',
      gatewayProviderId: 'b-private',
      requestedExecutionTarget: 'gateway',
    });
    expect(local.result).toMatchObject({ success: true });
    const routing = { gatewayProviderId: 'b-chat', requestedExecutionTarget: 'gateway' };
    const x = await rawPeer('gw_take_x');
    const y = await rawPeer('gw_take_y');
    // the local client's session
    expect(await x.call('t1', 'session.start', { sessionId: 'own1', taskPrompt: 'mine now', ...routing })).toMatchObject({
      type: 'bridge-error',
      code: 'AGENT_NOT_SHARED',
    });
    expect(await x.call('t2', 'xworkmate.tasks.get', { sessionId: 'own1' })).toMatchObject({ type: 'bridge-error', code: 'AGENT_NOT_SHARED' });
    // another peer's session; the peer that started it may start it afresh
    expect(await x.call('t3', 'session.start', { sessionId: 'xs1', taskPrompt: 'x first', ...routing })).toMatchObject({ result: { success: true } });
    expect(await y.call('t4', 'session.start', { sessionId: 'xs1', taskPrompt: 'y takes it', ...routing })).toMatchObject({
      type: 'bridge-error',
      code: 'AGENT_NOT_SHARED',
    });
    expect(await x.call('t5', 'session.start', { sessionId: 'xs1', taskPrompt: 'x again', ...routing })).toMatchObject({ result: { success: true } });
    x.ws.close();
    y.ws.close();
    const own = (await adminGet(b.url, '/admin/sessions/own1')).session;
    expect(own.metadata.viaPeer).toBeUndefined();
    expect(own.target.gatewayProviderId).toBe('b-private');
    expect(own.history.map((t: any) => t.prompt)).toEqual(['local secret prompt']);
    const xs = (await adminGet(b.url, '/admin/sessions/xs1')).session;
    expect(xs.metadata.viaPeer).toBe('gw_take_x');
    expect(xs.history.map((t: any) => t.prompt)).toEqual(['x again']);
    // the local client's session is still its own, live
    expect((await rpc(b, 'session.message', { sessionId: 'own1', taskPrompt: 'still mine' })).result).toMatchObject({ success: true, status: 'completed' });
  });

  it("a peer's session.message may carry a REST message's clientRequestId: its queued update carries it; a malformed one is refused", async () => {
    const { ws, frames, call } = await rawPeer('gw_rest_peer');
    const routing = { gatewayProviderId: 'b-chat', requestedExecutionTarget: 'gateway' };
    expect(await call('c1', 'session.start', { sessionId: 'cr1', taskPrompt: 'first', ...routing })).toMatchObject({ result: { success: true } });
    expect(await call('c2', 'session.message', { sessionId: 'cr1', taskPrompt: 'second', clientRequestId: 'rest-42' })).toMatchObject({
      result: { success: true },
    });
    const events = frames.filter((f) => f.requestId === 'c2' && f.type === 'bridge-rpc-event').map((f) => f.params);
    expect(events[0]).toMatchObject({ type: 'status', event: 'queued', clientRequestId: 'rest-42' });
    for (const bad of ['', 'has space', 'x'.repeat(129), 42]) {
      const r = await call(`c3-${String(bad).length}-${typeof bad}`, 'session.message', { sessionId: 'cr1', taskPrompt: 'third', clientRequestId: bad });
      expect(r, String(bad)).toMatchObject({ type: 'bridge-rpc-result', error: { code: -32602, data: { code: 'INVALID_PARAMS', field: 'clientRequestId' } } });
      expect(r).not.toHaveProperty('result');
    }
    ws.close();
    // nothing ran for them
    expect((await adminGet(b.url, '/admin/sessions/cr1')).session.history.map((t: any) => t.prompt)).toEqual(['first', 'second']);
  });

  it("a virtual key's session on a peer's runtime stays the key's: it continues it, another key is refused", async () => {
    const createKey = async (name: string) => {
      const res = await fetch(`${a.url}/admin/keys`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name, acp: true }),
      });
      expect(res.status).toBe(201);
      return ((await res.json()) as { secret: string }).secret;
    };
    const mine = await createKey('peer-app');
    const other = await createKey('peer-other');
    const routing = { routingMode: 'explicit', explicitExecutionTarget: 'gateway', preferredGatewayProviderId: 'b-chat' };
    expect((await acpRpc(a.url, mine, 'session.start', { sessionId: 'pk1', taskPrompt: 'first', routing })).result).toMatchObject({ success: true });
    // A keeps a pointer to the peer's session; it records the key, so the key's next call reaches the peer
    expect((await adminGet(a.url, '/admin/sessions/pk1')).session).toMatchObject({ status: 'moved', metadata: { caller: expect.stringMatching(/^key:key_/) } });
    const next = await acpRpc(a.url, mine, 'session.message', { sessionId: 'pk1', taskPrompt: 'second' });
    expect(next.result).toMatchObject({ success: true });
    expect(next.result.output).toContain('second');
    const refused = await acpRpc(a.url, other, 'session.message', { sessionId: 'pk1', taskPrompt: 'not yours' });
    expect(refused.error).toMatchObject({ data: { code: 'FORBIDDEN' } });
  });
});

describe('forwarding after a transfer', () => {
  it('a session moved to B is continued through A; with B down, A names the owner', async () => {
    const start = await rpc(a, 'session.start', {
      sessionId: 'mv1',
      taskPrompt: 'first here',
      gatewayProviderId: 'switchyard',
      requestedExecutionTarget: 'gateway',
    });
    expect(start.result).toMatchObject({ success: true });
    const t = await fetch(`${a.url}/admin/sessions/mv1/transfer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ to: 'datacenter' }),
    });
    expect(t.status).toBe(200);
    const msg = await rpc(a, 'session.message', { sessionId: 'mv1', taskPrompt: 'continued via A' });
    expect(msg.result).toMatchObject({ success: true, status: 'completed' });
    const onB = (await adminGet(b.url, '/admin/sessions/mv1')).session;
    expect(onB.ownerGatewayId).toBe('gw_peer_b');
    expect(onB.history.map((x: any) => x.prompt)).toEqual(['first here', 'continued via A']);

    await b.stop();
    const down = await rpc(a, 'session.message', { sessionId: 'mv1', taskPrompt: 'anyone?' });
    expect(down.error).toMatchObject({ code: -32002, data: { code: 'SESSION_OWNER_UNREACHABLE', owner: 'gw_peer_b' } });
    expect(down.error.message).toMatch(/owned by gateway gw_peer_b/);
  });
});
