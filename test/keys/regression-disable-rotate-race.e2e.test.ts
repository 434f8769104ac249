/**
 * Regression: a disable and a rotation of the same key at the same time, on a Redis key store, undid each other.
 * Each read the whole record, changed its own field and wrote the whole record back (one Lua script for the write,
 * but the read before it was not part of it): the one that wrote last put back what the other had changed, so a
 * key disabled during a rotation came back enabled (with the new secret working), or a key rotated during a
 * disable kept its old secret while the caller of `rotate` was handed a new one that opened nothing. Each change
 * is now one compare-and-set of the record (read again and re-applied when it changed meanwhile).
 *
 * Two gateways in this process on one real redis-server (as two instances sharing keys), racing the two changes
 * many times from both sides; each round's outcome is checked in the store and on both gateways' /v1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { hashSecret } from '../../src/keys/model.js';
import { startRedis, type RedisServer } from '../sessions/fixtures/redis-server.js';
import { cleanupDirs, startInProcess } from '../helpers/env.js';
import { ask, chat, createKey } from './helpers.js';

let redis: RedisServer;
let a: Gateway;
let b: Gateway;

beforeAll(async () => {
  redis = await startRedis();
  const cfg = () => ({
    gateway: { keys: { refreshMs: 100 } },
    channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
    store: { kind: 'redis', url: redis.url, prefix: 'race:' },
  });
  a = await startInProcess(cfg());
  b = await startInProcess(cfg());
}, 30_000);

afterAll(async () => {
  await a?.close();
  await b?.close();
  await redis?.stop();
  cleanupDirs();
});

const ROUNDS = 40;

describe('a disable and a rotation of one key at once (Redis key store)', () => {
  it('both hold, every time: the key ends disabled and holding the secret the rotation handed out', async () => {
    for (let i = 0; i < ROUNDS; i++) {
      const name = `race-${i}`;
      const old = await createKey(a.url, { name });
      // from both sides in turn: the disable on one instance, the rotation on the other
      const [disabler, rotator] = i % 2 === 0 ? [a, b] : [b, a];
      const [disabled, rotated] = await Promise.all([disabler.keys.setDisabled(name, true), rotator.keys.rotate(name)]);
      expect(disabled.disabled).toBe(true);

      const stored = await a.keys.find(name);
      expect({ round: i, disabled: stored.disabled, rotatedSecretHolds: stored.hash === hashSecret(rotated.secret) }).toEqual({
        round: i,
        disabled: true,
        rotatedSecretHolds: true,
      });
      // as each instance serves it (the instance that made a change reloads at once; the other within refreshMs)
      for (const gw of [disabler, rotator]) {
        await gw.keys.cache.refresh(true);
        const r = await chat(gw.url, rotated.secret, ask('mock-1'));
        expect(r.status).toBe(401);
        expect(r.json.error.message).toMatch(/is disabled/);
        const before = await chat(gw.url, old.secret, ask('mock-1'));
        expect(before.status).toBe(401);
        expect(before.json.error.message).toBe('invalid API key');
      }
    }
  }, 120_000);

  it('an enable racing a rotation holds too: the key ends enabled, and only the new secret works', async () => {
    for (let i = 0; i < ROUNDS / 2; i++) {
      const name = `race-enable-${i}`;
      await createKey(a.url, { name });
      await a.keys.setDisabled(name, true);
      const [, rotated] = await Promise.all([b.keys.setDisabled(name, false), a.keys.rotate(name)]);
      const stored = await b.keys.find(name);
      expect({ round: i, disabled: stored.disabled, rotatedSecretHolds: stored.hash === hashSecret(rotated.secret) }).toEqual({
        round: i,
        disabled: false,
        rotatedSecretHolds: true,
      });
      await b.keys.cache.refresh(true);
      expect((await chat(b.url, rotated.secret, ask('mock-1'))).status).toBe(200);
    }
  }, 120_000);
});
