/**
 * A reload makes the providers of the channels its file adds or changes before it applies anything. When the
 * reload then fails (the file is refused by a check after they were made, or applying it throws), every
 * provider made for it that the gateway did not take must be closed: an OpenAI channel's provider holds an
 * undici Pool, and one left open per failed reload is a leak.
 *
 * The reload function runs on real parts (real providers, a real Router, a real BridgeMesh); the registry is
 * wrapped only to see which providers were made and whether each was closed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigError, validateConfig } from '../../src/config/load.js';
import type { ChannelProvider, ProviderChannelConfig } from '../../src/providers/provider.js';
import { Router } from '../../src/router/router.js';
import { localCandidate } from '../../src/router/local-candidate.js';
import { BridgeMesh } from '../../src/bridge/mesh.js';
import { applyReload, type ReloadTarget } from '../../src/gateway-reload.js';
import { createProvider } from '../../src/providers/registry.js';
import { memoryLogger } from '../helpers/env.js';

interface Made {
  channel: string;
  provider: ChannelProvider;
  closed: number;
}
const made: Made[] = [];

vi.mock('../../src/providers/registry.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/providers/registry.js')>();
  return {
    ...real,
    createProvider(cfg: ProviderChannelConfig): ChannelProvider {
      const provider = real.createProvider(cfg);
      const rec: Made = { channel: cfg.name, provider, closed: 0 };
      made.push(rec);
      const close = provider.close.bind(provider);
      provider.close = () => {
        rec.closed++;
        return close();
      };
      const retire = provider.retire?.bind(provider);
      if (retire)
        provider.retire = (graceMs) => {
          rec.closed++;
          return retire(graceMs);
        };
      return provider;
    },
  };
});

const dir = mkdtempSync(join(tmpdir(), 'sy-reload-unused-'));
const meshes: BridgeMesh[] = [];
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
  made.splice(0);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const openai = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  provider: 'openai',
  baseUrl: 'http://127.0.0.1:9/v1',
  models: [`${name}-1`],
  ...extra,
});

function routerFor(raw: Record<string, unknown>): Router {
  const r = validateConfig(raw, 'test', {}).gateway.routing;
  return new Router({ ...r, logger: memoryLogger().logger });
}

/** A running gateway's reload state: its channels' providers made (and counted) as a start makes them. */
function target(raw: Record<string, unknown>, router = routerFor(raw)): ReloadTarget {
  const live = validateConfig(raw, 'test', {});
  const providers = new Map<string, ChannelProvider>();
  for (const ch of live.channels) {
    const p = createProvider(ch);
    providers.set(ch.name, p);
    router.add(localCandidate(ch, p));
  }
  const { logger } = memoryLogger();
  const mesh = new BridgeMesh({ config: live, gatewayId: 'gw_unused', router, logger });
  meshes.push(mesh);
  return { live, path: join(dir, 'switchyard.json5'), baseDir: dir, router, mesh, providers, logger };
}

/** Every provider made for the reload: those the gateway took are open, every other one was closed. */
function expectNoneLeft(t: ReloadTarget, forReload: Made[]): void {
  expect(forReload.length).toBeGreaterThan(0);
  for (const m of forReload) {
    const taken = t.providers.get(m.channel) === m.provider;
    expect({ channel: m.channel, closed: m.closed > 0 }).toEqual({ channel: m.channel, closed: !taken });
  }
}

describe('a reload that fails closes the providers it made and did not apply', () => {
  it('refused by a later check (a bridge ca file that cannot be read): the changed channel`s new provider is closed', async () => {
    const t = target({ channels: [openai('a'), openai('b')] });
    const running = new Map(t.providers);
    made.splice(0);
    const next = validateConfig(
      {
        channels: [openai('a', { timeoutMs: 5000 }), openai('b'), openai('c')],
        gateway: { bridges: [{ name: 'up', url: 'wss://127.0.0.1:9/bridge', token: 'tok-unused', ca: './no-such-ca.pem' }] },
      },
      'test',
      {},
    );
    const err = await applyReload(t, next).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems).toEqual([`gateway.bridges.0.ca: cannot read ${join(dir, 'no-such-ca.pem')}: ENOENT`]);
    // nothing applied: the running providers are the old ones, and the ones made for the file are closed
    expect(t.providers).toEqual(running);
    expect(made.map((m) => m.channel)).toEqual(['a', 'c']);
    expectNoneLeft(t, made);
  });

  // nothing in the apply is expected to throw (gateway-reload.ts: the fallible steps run before it); this forces it
  it('apply throws after the providers were made: the ones the gateway did not take are closed', async () => {
    const raw = { channels: [openai('a')] };
    const router = routerFor(raw);
    const t = target(raw, router);
    made.splice(0);
    // the routing table refuses the second new channel: applying stops half-way
    const add = router.add.bind(router);
    router.add = (c) => {
      if (c.id === 'local/c') throw new Error('routing table refused local/c');
      add(c);
    };
    const next = validateConfig({ channels: [openai('a'), openai('b'), openai('c'), openai('d')] }, 'test', {});
    await expect(applyReload(t, next)).rejects.toThrow('routing table refused local/c');
    expect(made.map((m) => m.channel)).toEqual(['b', 'c', 'd']);
    expect(t.providers.has('b')).toBe(true);
    // the channel whose routing failed is not left in the provider map, unrouted (its provider open until
    // shutdown): a provider is stored only once it is routed, so c's is closed with d's
    expect(t.providers.has('c')).toBe(false);
    expect(router.get('local/c')).toBeUndefined();
    expectNoneLeft(t, made);
  });

  it('refused for one channel`s options: the providers made for the others are closed', async () => {
    const t = target({ channels: [openai('a')] });
    made.splice(0);
    const next = validateConfig({ channels: [openai('a'), openai('b'), openai('c', { options: { responsesApi: 'yes' } }), openai('d')] }, 'test', {});
    await expect(applyReload(t, next)).rejects.toThrow(/channels\.2\.options\.responsesApi: channel c: options\.responsesApi must be a boolean/);
    expect(made.map((m) => m.channel)).toEqual(['b', 'd']);
    expectNoneLeft(t, made);
  });
});
