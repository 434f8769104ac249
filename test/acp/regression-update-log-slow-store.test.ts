/**
 * Regression: the updates a turn numbers under its lease wait in memory until the store's update log has them
 * (update-log.ts). With a store that does not keep up (a loaded or stalled Redis) they waited without any bound, in
 * count or bytes: a turn streaming tool calls or thoughts (its output bound counts deltas only) held all of them.
 * Now the updates of a session waiting to be written are bounded in bytes by `acp.updateLogMaxBytes` (more could not
 * be kept by the log anyway): past it the turn is stopped (its runtime told to, as for the output bound) and fails
 * with SESSION_STORE_UNAVAILABLE; what it sent is stored once the store catches up, and its result after that.
 */
import { describe, expect, it } from 'vitest';
import { TurnRunner } from '../../src/acp/turn-runner.js';
import type { Runtime } from '../../src/acp/runtime.js';
import type { SessionStore } from '../../src/sessions/store.js';
import { memoryLogger, waitFor } from '../helpers/env.js';
import { wrapStore } from '../helpers/store-wrap.js';
import { runnerStores } from '../helpers/runner-stores.js';
import { echoTarget } from '../helpers/echo-sessions.js';

const { open, runners } = runnerStores('slow-log');

/** `base` whose update-log writes wait, once `hold()` is called, until `release()`; `held()` is called as the first one waits */
function holdingLog(base: SessionStore, held: () => void) {
  let gate: Promise<void> | undefined;
  let open = () => {};
  const store = wrapStore(base, {
    appendEvents: async (...args: Parameters<SessionStore['appendEvents']>) => {
      if (gate) held();
      await gate;
      return base.appendEvents(...args);
    },
  });
  return {
    store,
    hold: () => void (gate = new Promise<void>((r) => (open = r))),
    release: () => {
      gate = undefined;
      open();
    },
  };
}

const LOG_MAX = 256 * 1024;
/** one tool-call update's payload: the log's bound passes after 16 of them */
const STEP = 'x'.repeat(16 * 1024);
const STEPS = 200;
/** the steps of a turn whose prompt is `few`: less than the bound together */
const FEW = 8;

interface Seen {
  steps: number;
  /** `steps` when the first write of the log began to wait */
  atHold: number | undefined;
  stopped: boolean;
  ended: boolean;
}

/** a runtime that streams STEPS tool calls (FEW for the prompt `few`; no deltas: the output bound does not count them), then answers */
function toolCalls(seen: Seen): Runtime {
  return {
    async prompt(turn, emit, signal) {
      try {
        for (let i = 0; i < (turn.text === 'few' ? FEW : STEPS) && !signal.aborted; i++) {
          emit({ type: 'step', event: 'tool_call', structuredEvent: { sessionUpdate: 'tool_call', toolCallId: `t${i}`, rawInput: STEP } });
          seen.steps++;
          // The bound counts what waits behind a write under way: the rest come once the log's first write (its timer's,
          // within FLUSH_MS) waits at the store. On an idle machine all the steps went out before that timer fired, and
          // the turn was never stopped.
          while (seen.atHold === undefined && !signal.aborted) await new Promise<void>((r) => setTimeout(r, 1));
          await new Promise<void>((r) => setImmediate(r));
        }
        seen.stopped = signal.aborted;
        return { output: signal.aborted ? '' : `done: ${turn.text}`, stopReason: signal.aborted ? 'cancelled' : 'end_turn' };
      } finally {
        seen.ended = true;
      }
    },
    async close() {},
  };
}

describe.each(['sqlite', 'redis'] as const)('updates waiting for a slow update log (%s)', (kind) => {
  it('are bounded in bytes: past acp.updateLogMaxBytes the turn is stopped and fails with SESSION_STORE_UNAVAILABLE', async () => {
    const seen: Seen = { steps: 0, atHold: undefined, stopped: false, ended: false };
    const log = holdingLog(await open(kind), () => (seen.atHold ??= seen.steps));
    const runner = new TurnRunner({
      store: log.store,
      gatewayId: 'gw_slow_log',
      logger: memoryLogger().logger,
      runtimeFor: async () => toolCalls(seen),
      leaseTtlMs: 3_000,
      updateLogMaxBytes: LOG_MAX,
    });
    runners.push(runner);
    const updates: Array<Record<string, unknown>> = [];
    log.hold();
    const result = runner.start({ sessionId: 'slow-1', threadId: 'slow-1', prompt: 'go', workingDirectory: undefined, target: echoTarget }, (u) =>
      updates.push(u),
    );
    await waitFor(() => seen.ended || undefined, 'the turn ended at its runtime');
    // the result waits for the log: the store catches up now
    log.release();
    const r = await result;
    expect(seen.stopped).toBe(true);
    // stopped at the first update after those waiting behind the write under way passed the bound (each step's JSON
    // is a little over STEP long)
    expect(seen.atHold).toBeDefined();
    expect(seen.steps - seen.atHold!).toBeLessThanOrEqual(Math.ceil(LOG_MAX / STEP.length) + 1);
    expect(r).toMatchObject({ status: 'failed', code: 'SESSION_STORE_UNAVAILABLE' });
    expect(r.error).toMatch(/session store does not keep up/);
    const last = updates.at(-1);
    expect(last).toMatchObject({ type: 'status', status: 'failed', code: 'SESSION_STORE_UNAVAILABLE' });
    // what was sent is stored once the store caught up (the log keeps its newest acp.updateLogMaxBytes of it), its end too
    const tail = updates.slice(-3);
    const got = (await runner.task({ sessionId: 'slow-1', afterSeq: Number(tail[0]!.seq) })).updates as Array<Record<string, unknown>>;
    expect(got).toEqual(tail.slice(1));

    // the store keeping up again, the next turn runs whole
    seen.steps = 0;
    const next = await runner.message('slow-1', 'few', () => undefined);
    expect(next).toMatchObject({ status: 'completed', output: 'done: few' });
    expect(seen.steps).toBe(FEW);
  });
});
