/** The handshake decisions, from values: no sockets (src/bridge/handshake.ts). */
import { describe, expect, it } from 'vitest';
import { decideHello, decideHelloOk, type Admission } from '../../src/bridge/handshake.js';
import type { BridgeFrame, BridgeHelloFrame, BridgeHelloOkFrame } from '../../src/wire/bridge-frames.js';

const caps = { shareChannels: true, acceptSessions: false, loadBalance: true };
const hello = (over: Partial<BridgeHelloFrame> = {}): BridgeHelloFrame => ({
  type: 'bridge-hello',
  gatewayId: 'gw_peer',
  gatewayName: 'Peer',
  version: '1.0',
  token: 'tok',
  capabilities: caps,
  sharedChannels: [{ name: 'c', provider: 'mock', models: ['m'] }],
  ...over,
});
const ctx = (admission: Admission = 'ok', bound?: Buffer) => ({
  selfId: 'gw_self',
  allowedTokens: ['tok', 'tok-2'],
  supportedVersions: ['1.0'],
  maxPeers: 3,
  admission: () => admission,
  boundToken: () => bound,
});

describe('responder: decideHello', () => {
  it('accepts a good hello: negotiated version and the peer as announced', () => {
    const d = decideHello(hello(), ctx());
    expect(d).toMatchObject({
      ok: true,
      version: '1.0',
      peer: { id: 'gw_peer', name: 'Peer', capabilities: caps, sharedChannels: [{ name: 'c' }], sharedAgents: [] },
    });
  });
  it('refuses in order, each with its code and close code from the catalogue', () => {
    const other: BridgeFrame = { type: 'bridge-ping', ts: 1 };
    expect(decideHello(other, ctx())).toEqual({ ok: false, code: 'BAD_HELLO', message: expect.any(String), close: 4400 });
    expect(decideHello(hello({ token: 'nope' }), ctx())).toMatchObject({ code: 'AUTH_FAILED', close: 4401 });
    expect(decideHello(hello({ token: 'nope', version: '9.0' }), ctx())).toMatchObject({ code: 'AUTH_FAILED' });
    expect(decideHello(hello({ version: '9.0' }), ctx())).toMatchObject({ code: 'VERSION_UNSUPPORTED', close: 4505 });
    expect(decideHello(hello({ gatewayId: 'gw_self' }), ctx())).toMatchObject({ code: 'SELF_CONNECTION', close: 4403 });
    expect(decideHello(hello(), ctx('duplicate'))).toMatchObject({ code: 'DUPLICATE_PEER', close: 4409 });
    expect(decideHello(hello(), ctx('full'))).toMatchObject({ code: 'MAX_PEERS', close: 4429 });
  });
  it('a gatewayId bound to another token is refused (GATEWAY_ID_BOUND, close 4403), whatever the admission; the same token passes', () => {
    const first = decideHello(hello(), ctx());
    if (!first.ok) throw new Error('expected ok');
    expect(first.tokenDigest).toHaveLength(32);
    expect(decideHello(hello({ token: 'tok-2' }), ctx('replace', first.tokenDigest))).toMatchObject({ ok: false, code: 'GATEWAY_ID_BOUND', close: 4403 });
    expect(decideHello(hello({ token: 'tok-2' }), ctx('ok', first.tokenDigest))).toMatchObject({ ok: false, code: 'GATEWAY_ID_BOUND' });
    expect(decideHello(hello(), ctx('replace', first.tokenDigest))).toMatchObject({ ok: true });
  });
  it('never puts the token in a refusal', () => {
    const d = decideHello(hello({ token: 'secret-token-value' }), ctx());
    expect(JSON.stringify(d)).not.toContain('secret-token-value');
  });
});

describe('initiator: decideHelloOk', () => {
  const ok = (over: Partial<BridgeHelloOkFrame> = {}): BridgeHelloOkFrame => ({
    type: 'bridge-hello-ok',
    gatewayId: 'gw_peer',
    gatewayName: 'Peer',
    sharedChannels: [],
    version: '1.0',
    capabilities: caps,
    policy: { maxFrameBytes: 1024, heartbeatIntervalMs: 500 },
    ...over,
  });
  const ictx = (admission: Admission = 'ok') => ({ selfId: 'gw_self', supportedVersions: ['1.0', '1.1'], admission: () => admission });
  it('opens on hello-ok, the peer described by the same rule as the responder uses', () => {
    expect(decideHelloOk(ok(), ictx())).toMatchObject({ ok: true, peer: { id: 'gw_peer', name: 'Peer', version: '1.0', capabilities: caps } });
  });
  it('a bridge-error: keep its reason, let the responder close', () => {
    expect(decideHelloOk({ type: 'bridge-error', code: 'AUTH_FAILED', message: 'bridge token rejected', retryable: false }, ictx())).toEqual({
      ok: false,
      lastError: 'AUTH_FAILED: bridge token rejected',
    });
  });
  it('closes itself on self-connection and on a duplicate', () => {
    expect(decideHelloOk(ok({ gatewayId: 'gw_self' }), ictx())).toMatchObject({ ok: false, close: { code: 4403 } });
    expect(decideHelloOk(ok(), ictx('duplicate'))).toMatchObject({ ok: false, close: { code: 4409 } });
  });
  it('closes itself (4505) on a hello-ok naming a version it did not offer, before the mesh admits the peer', () => {
    let asked = false;
    const ctx = { selfId: 'gw_self', supportedVersions: ['1.0', '1.1'], admission: () => ((asked = true), 'ok' as const) };
    for (const version of ['9.9', '1.2', '0.9', 'x'])
      expect(decideHelloOk(ok({ version }), ctx)).toEqual({
        ok: false,
        lastError: `VERSION_UNSUPPORTED: the peer answered protocol version ${version}, which this gateway did not offer (it speaks 1.0, 1.1)`,
        close: { code: 4505, reason: 'version not offered' },
      });
    expect(asked).toBe(false);
    expect(decideHelloOk(ok({ version: '1.1' }), ctx)).toMatchObject({ ok: true, peer: { version: '1.1' } });
  });
  it("hands the hello-ok's dialNonces to the mesh's rule, and holds the link when it says so", () => {
    const seen: Array<[string, readonly string[] | undefined]> = [];
    const rule = (a: Admission) => ({
      selfId: 'gw_self',
      supportedVersions: ['1.0'],
      admission: (id: string, nonces: readonly string[] | undefined) => (seen.push([id, nonces]), a),
    });
    expect(decideHelloOk(ok({ dialNonces: ['n_1', 'n_2'] }), rule('hold'))).toMatchObject({ ok: true, hold: true, peer: { id: 'gw_peer' } });
    expect(decideHelloOk(ok(), rule('replace'))).toMatchObject({ ok: true, hold: false });
    expect(seen).toEqual([
      ['gw_peer', ['n_1', 'n_2']],
      ['gw_peer', undefined],
    ]);
  });
});
