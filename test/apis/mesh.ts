/**
 * The shared setup of the inbound-API suites: fake upstreams of every chat kind (openai, anthropic, ollama;
 * one answering text, one answering a tool call, one cut mid-stream), gateway B as a real process sharing
 * models backed by openai fakes, and gateway A in this process serving the local ones and dialling B. Each
 * API suite drives A with its own client; every model name says where it is served.
 */
import type { GatewayProcess } from '../helpers/env.js';
import type { Gateway } from '../../src/gateway.js';
import { startAnthropicUpstream } from '../fakes/anthropic-upstream.js';
import { startOllamaUpstream } from '../fakes/ollama-upstream.js';
import { startOpenAiUpstream } from '../fakes/openai-upstream.js';
import type { FakeUpstream, Scenario } from '../providers/conformance.js';
import { adminGet, cleanupDirs as cleanupEnvDirs, startProcess, waitFor, wsUrl } from '../helpers/env.js';
import { channelOf, cleanupDirs, startGw } from '../helpers/env.js';

export const REPLY = 'The quick brown fox jumps';
export const TOOL = { id: 'call_7Qx9LmP2', name: 'get_weather', arguments: '{"city":"Paris","unit":"c"}' };
export const USAGE = { input: 21, output: 7 };
const BRIDGE_TOKEN = 'apis-bridge-token-5d1e';
const ADMIN = 'apis-admin-token-77c2';

/**
 * model names on A: <kind> text answers, <kind>-tools tool calls, <kind>-cut a stream cut after 2 chunks;
 * `peer-slow` is B's mock answering one word every 60 ms
 */
export const KINDS = ['openai', 'anthropic', 'ollama', 'peer'] as const;
export type Kind = (typeof KINDS)[number];

export interface Mesh {
  a: Gateway & { logs: string[] };
  b: GatewayProcess;
  fakes: Record<string, FakeUpstream>;
  close(): Promise<void>;
}

export async function startMesh(extraA: Record<string, unknown> = {}, extraChannels: Array<Record<string, unknown>> = []): Promise<Mesh> {
  const fakes: Record<string, FakeUpstream> = {};
  const start = async (name: string, kind: 'openai' | 'anthropic' | 'ollama', s: Scenario) => {
    const up = kind === 'openai' ? await startOpenAiUpstream(s) : kind === 'anthropic' ? await startAnthropicUpstream(s) : await startOllamaUpstream(s);
    fakes[name] = up;
    return up;
  };
  const channels: Array<Record<string, unknown>> = [];
  for (const kind of ['openai', 'anthropic', 'ollama'] as const) {
    channels.push(channelOf(await start(kind, kind, { reply: REPLY, usage: USAGE }), `${kind}-ch`, [kind]));
    channels.push(channelOf(await start(`${kind}-tools`, kind, { toolCall: TOOL, usage: USAGE }), `${kind}-tools-ch`, [`${kind}-tools`]));
    channels.push(channelOf(await start(`${kind}-cut`, kind, { reply: REPLY, cutAfterChunks: 2 }), `${kind}-cut-ch`, [`${kind}-cut`]));
  }
  const peerText = await start('peer', 'openai', { reply: REPLY, usage: USAGE });
  const peerTools = await start('peer-tools', 'openai', { toolCall: TOOL, usage: USAGE });
  const peerCut = await start('peer-cut', 'openai', { reply: REPLY, cutAfterChunks: 2 });
  const b = await startProcess({
    gateway: {
      id: 'gw_apis_b',
      name: 'gpu-box',
      admin: { token: ADMIN },
      bridge: { enabled: true, allowedTokens: [BRIDGE_TOKEN], shareChannels: ['b-text', 'b-tools', 'b-cut', 'b-slow'] },
    },
    channels: [
      channelOf(peerText, 'b-text', ['peer']),
      channelOf(peerTools, 'b-tools', ['peer-tools']),
      channelOf(peerCut, 'b-cut', ['peer-cut']),
      // one word every 60 ms: shows whether chunks cross the bridge one by one
      { name: 'b-slow', provider: 'mock', models: ['peer-slow'], options: { chunkDelayMs: 60 } },
    ],
  });
  const a = await startGw({
    gateway: {
      id: 'gw_apis_a',
      name: 'laptop',
      bridges: [{ name: 'gpu-box', url: wsUrl(b.url), token: BRIDGE_TOKEN, shareChannels: false, reconnectInterval: 200 }],
      ...extraA,
    },
    channels: [...channels, ...extraChannels],
  });
  await waitFor(() => a.router.modelNames().includes('peer-cut') && a.router.modelNames().includes('peer-tools'), "A sees B's shared models", 15_000);
  return {
    a,
    b,
    fakes,
    async close() {
      await a.close();
      await b.stop();
      for (const f of Object.values(fakes)) await f.close();
      cleanupDirs();
      cleanupEnvDirs();
    },
  };
}

export { adminGet };
