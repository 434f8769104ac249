/**
 * A bridge responder that is not a gateway: a raw WebSocket server that answers `bridge-hello` with the
 * `bridge-hello-ok` it is given (sharing one channel, `up`, and announcing `policy`) and hands every later frame
 * to `onFrame`. For tests of what a gateway does with what no gateway would send: malformed answers, policies
 * out of bounds.
 */
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

export type RawFrame = Record<string, unknown> & { type: string; requestId?: string };

export interface RawPeerOptions {
  gatewayId: string;
  gatewayName: string;
  /** the models of the one channel (`up`, provider openai) it shares */
  models: string[];
  policy: { maxFrameBytes: number; heartbeatIntervalMs: number };
  /** the protocol version its hello-ok names (default 1.0: a peer that cannot be sent bridge-stream-pause) */
  version?: string;
  /** the loadBalance capability it announces (default false: its channels are used only when no local one is left) */
  loadBalance?: boolean;
  /** every frame after the hello */
  onFrame: (ws: WebSocket, f: RawFrame) => void;
  /** called once the hello-ok is sent: what the peer says unasked */
  afterHello?: (ws: WebSocket) => void;
}

export interface RawPeer {
  /** ws://127.0.0.1:PORT/bridge, a `gateway.bridges[].url` */
  url: string;
  close(): Promise<void>;
}

export async function startRawBridgePeer(o: RawPeerOptions): Promise<RawPeer> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  wss.on('connection', (ws) => {
    ws.on('message', (data) => {
      const f = JSON.parse(String(data)) as RawFrame;
      if (f.type !== 'bridge-hello') return o.onFrame(ws, f);
      ws.send(
        JSON.stringify({
          type: 'bridge-hello-ok',
          gatewayId: o.gatewayId,
          gatewayName: o.gatewayName,
          version: o.version ?? '1.0',
          capabilities: { shareChannels: true, acceptSessions: false, loadBalance: o.loadBalance ?? false },
          sharedChannels: [{ name: 'up', provider: 'openai', models: o.models }],
          policy: o.policy,
        }),
      );
      o.afterHello?.(ws);
    });
  });
  await new Promise((r) => wss.once('listening', r));
  return {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/bridge`,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      await new Promise((r) => wss.close(r));
    },
  };
}

/** The `bridge-hello` a raw initiator sends: `gatewayId` and `gatewayName` both `id`, sharing nothing. */
export function helloFrame(id: string, token: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    type: 'bridge-hello',
    gatewayId: id,
    gatewayName: id,
    version: '1.0',
    token,
    capabilities: { shareChannels: false, acceptSessions: false, loadBalance: false },
    sharedChannels: [],
    ...extra,
  });
}

/** The `payload` of a raw peer's `bridge-response`: a one-choice chat completion saying "hi" for `model`. */
export function peerCompletion(model: unknown, id = 'chatcmpl-peer') {
  return {
    id,
    object: 'chat.completion',
    created: 1,
    model,
    choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
  };
}
