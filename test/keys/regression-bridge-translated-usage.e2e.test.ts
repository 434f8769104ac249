/**
 * Regression, across a bridge: a forward served by a translated channel whose upstream did not count (an
 * Anthropic answer without `usage`, an Ollama answer without `prompt_eval_count`) was recorded as a count of 0
 * on both sides, with `estimated` false. Each side judges the usage the stream or answer carried by the same
 * rule (src/usage/record.ts countOf), so the serving gateway's `served-for` record and the requesting gateway's
 * `served-by` record are both estimates, flagged so, streamed and not. Two real gateway processes bridged.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAnthropicUpstream } from '../fakes/anthropic-upstream.js';
import { startOllamaUpstream } from '../fakes/ollama-upstream.js';
import type { FakeUpstream } from '../providers/conformance.js';
import { channelOf, cleanupDirs, startProcess, waitFor, wsUrl, type GatewayProcess } from '../helpers/env.js';
import { admin, chat } from './helpers.js';

const BRIDGE = 'bridge-translated-usage-token-5150';
const reply = 'alpha beta gamma delta';
const prompt = 'word '.repeat(100); // ~500 characters: an input estimate over 125 tokens
let ant: FakeUpstream;
let oll: FakeUpstream;
let a: GatewayProcess;
let b: GatewayProcess;

beforeAll(async () => {
  ant = await startAnthropicUpstream({ reply, uncounted: 'omitted' });
  oll = await startOllamaUpstream({ reply, omitPromptEvalCount: true });
  const pricing = { input: 1, output: 2 };
  b = await startProcess({
    gateway: {
      id: 'gw_b',
      usage: { flushIntervalMs: 50 },
      bridge: { enabled: true, allowedTokens: [BRIDGE], shareChannels: ['ant-b', 'oll-b'], peerLimits: {} },
    },
    channels: [channelOf(ant, 'ant-b', ['claude-x'], { pricing }), channelOf(oll, 'oll-b', ['llama'], { pricing })],
  });
  a = await startProcess({ gateway: { id: 'gw_a', usage: { flushIntervalMs: 50 }, bridges: [{ name: 'b', url: wsUrl(b.url), token: BRIDGE }] }, channels: [] });
  await waitFor(async () => {
    const peers = JSON.stringify((await admin(a.url, 'GET', '/admin/bridges/channels')).json.peers);
    return peers.includes('ant-b') && peers.includes('oll-b');
  }, "A sees B's shared channels");
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await Promise.all([ant?.close(), oll?.close()]);
  cleanupDirs();
});

interface Row {
  requests: number;
  inputTokens: number;
  outputTokens: number;
  estimated: number;
}

/** B's served-for row of A and A's served-by row of B, per channel */
async function rows(channel: string): Promise<{ servedFor: Row; servedBy: Row }> {
  const none: Row = { requests: 0, inputTokens: 0, outputTokens: 0, estimated: 0 };
  // by channel: each gateway records the channel that served (B's own name for it on both sides)
  const row = async (url: string) =>
    ((await admin(url, 'GET', '/admin/usage?by=channel')).json.rows as Array<Row & { group: string }>).find((x) => x.group === channel) ?? none;
  return { servedFor: await row(b.url), servedBy: await row(a.url) };
}

describe('a forward to a translated channel that did not count is an estimate on both sides of the bridge', () => {
  for (const [channel, model, outputCounted] of [
    ['ant-b', 'claude-x', undefined],
    ['oll-b', 'llama', reply.split(' ').length],
  ] as const) {
    it(`${channel}: ${outputCounted === undefined ? 'no usage' : 'no prompt_eval_count'}, streamed and not`, async () => {
      for (const stream of [false, true]) {
        const before = await rows(channel);
        const r = await chat(a.url, undefined, { model, messages: [{ role: 'user', content: prompt }], stream });
        expect(r.status, r.text).toBe(200);
        expect(r.headers.get('x-switchyard-peer')).toBe('b');
        const after = await waitFor(async () => {
          const x = await rows(channel);
          return x.servedFor.requests > before.servedFor.requests && x.servedBy.requests > before.servedBy.requests ? x : undefined;
        }, 'both records of the forward');
        for (const side of ['servedFor', 'servedBy'] as const) {
          const d = (k: keyof Row) => after[side][k] - before[side][k];
          const got = {
            side,
            stream,
            requests: d('requests'),
            estimated: d('estimated'),
            inputEstimated: d('inputTokens') > prompt.length / 4,
            output: d('outputTokens'),
          };
          expect(got).toEqual({ side, stream, requests: 1, estimated: 1, inputEstimated: true, output: outputCounted ?? got.output });
          expect(got.output).toBeGreaterThan(0);
        }
      }
    });
  }
});
