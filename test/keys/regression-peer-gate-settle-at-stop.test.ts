/**
 * Regression: the peer gate (gateway.bridge.peerLimits, src/keys/peer-gate.ts) settled a served forward's lease with
 * `void limiter.settle(...)`, counted nowhere. A stop waits for the /v1 requests still settling (KeyService's tickets)
 * before its final usage write and the limiter's close, but not for those: a peer forward ending as the gateway stopped
 * had its settlement cut by the limiter's close (a Redis limiter's QUIT), its lease left to expire by itself. Now a
 * forward the gate admitted is a ticket like a /v1 request's, and the stop waits for its settlement the same way.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultRawConfig, validateConfig } from '../../src/config/load.js';
import type { Settlement } from '../../src/keys/limiter.js';
import { MemoryLimiter } from '../../src/keys/memory-limiter.js';
import { KeyService } from '../../src/keys/service.js';
import { SqliteKeyStore } from '../../src/keys/sqlite-key-store.js';
import { cleanupDirs, memoryLogger, tmpDir } from '../helpers/env.js';

afterAll(() => cleanupDirs());

/** Every callback already queued (promise reactions included) has run. */
const settled = () => new Promise<void>((r) => setImmediate(r));

/** A limiter whose settlements end only when the test says so (a Redis slow to answer), and that says what it saw. */
class HeldSettleLimiter extends MemoryLimiter {
  readonly events: string[] = [];
  private releases: Array<() => void> = [];

  override async settle(scope: string, lease: string, s: Settlement): Promise<void> {
    this.events.push(`settle ${scope} started`);
    await new Promise<void>((r) => this.releases.push(r));
    await super.settle(scope, lease, s);
    this.events.push(`settle ${scope} ended`);
  }

  release(): void {
    for (const r of this.releases.splice(0)) r();
  }

  override async close(): Promise<void> {
    this.events.push('limiter closed');
    await super.close();
  }
}

describe('a stop while a peer forward settles', () => {
  it('waits for the settlement the peer gate started before it closes the limiter', async () => {
    // a limit on the peer: its forward holds a lease, which its end settles
    const raw = { ...defaultRawConfig(), gateway: { bridge: { peerLimits: { concurrent: 4 } } } };
    const limiter = new HeldSettleLimiter();
    const svc = new KeyService({
      config: validateConfig(raw, 'test'),
      store: new SqliteKeyStore(join(tmpDir(), 'data', 'switchyard.db')),
      limiter,
      logger: memoryLogger().logger,
    });
    const admission = await svc.peerGate('gw_peer', 'gpu', 'llama', false);
    expect(admission.ok).toBe(true);
    if (!admission.ok) return;
    // the forward ends: its lease's settlement starts, and is held
    admission.done({ prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 }, true);
    expect(limiter.events).toEqual(['settle peer:gw_peer started']);

    let stopped = false;
    const stopping = svc.close(Date.now() + 30_000).then(() => void (stopped = true));
    // the stop has gone as far as it goes on its own: none of its steps waits on the network (SQLite, a memory limiter)
    await settled();
    expect(stopped).toBe(false);
    expect(limiter.events).toEqual(['settle peer:gw_peer started']);

    limiter.release();
    await stopping;
    expect(limiter.events).toEqual(['settle peer:gw_peer started', 'settle peer:gw_peer ended', 'limiter closed']);
  });
});
