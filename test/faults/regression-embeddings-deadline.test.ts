/**
 * Regression: the embeddings retry loop started attempts after the request's deadline. Chat checks the deadline
 * before every attempt; embeddings did not, so once an attempt failed at or after the deadline (its first-byte
 * timer is cut to the deadline) the loop went on with attempts whose budget was the 1 ms floor, each one a
 * request to the upstream and a failure against the channel's health, until `retries` ran out. Over HTTP the
 * request's own timer (cancelOnClose) fires at the same instant and usually hid it; the router's contract is
 * the deadline itself, so the router of a real in-process gateway is driven here with a deadline and no cancel,
 * as a caller holding only a deadline does, against a slow, failing fake upstream.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import { channelOf, cleanupDirs, settle, startGw } from '../helpers/env.js';
import type { Gateway } from '../../src/gateway.js';

/** every answer of the upstream: a 500 after this long */
const SLOW_MS = 600;
/** the request's deadline: after the first answer, before a second one could come */
const DEADLINE_MS = 1_000;

let up: OpenAiFake;
let gw: Gateway & { logs: string[] };

beforeAll(async () => {
  up = await startOpenAiUpstream({ delayMs: SLOW_MS, failStatus: 500 });
  gw = await startGw({
    gateway: {
      routing: {
        retries: 4,
        timeoutMs: 30_000,
        firstByteTimeoutMs: 30_000,
        // no ejection in the way: every attempt is counted in the channel's window
        health: { consecutiveFailures: 100, failureRatio: 1, minRequests: 100 },
      },
    },
    channels: [channelOf(up, 'emb', ['text-embedding-3-small'])],
  });
});

afterAll(async () => {
  await gw?.close();
  await up?.close();
  cleanupDirs();
});

describe('embeddings retries and the deadline', () => {
  it('no attempt starts after the deadline: the attempt running at the deadline is the last one, and its error is the answer', async () => {
    const started = Date.now();
    const deadline = started + DEADLINE_MS;
    const r = await settle(gw.router.embeddings({ model: 'text-embedding-3-small', input: 'hello' }, { requestId: 'emb-deadline', hops: [], deadline }));
    const ended = Date.now();
    expect(r.ok).toBe(false);
    // the second attempt (started at ~SLOW_MS, before the deadline) was cut at the deadline
    expect(r.ok ? undefined : r.error).toMatchObject({ code: 'UPSTREAM_TIMEOUT' });
    expect(ended - deadline).toBeLessThan(500);
    // two attempts, both started before the deadline: the first failed with the 500, the second timed out
    const h = gw.router.healthOf('local/emb');
    expect({ attempts: h.windowRequests, failures: h.windowFailures }).toEqual({ attempts: 2, failures: 2 });
    expect(up.count('/embeddings')).toBe(2);
  });
});
