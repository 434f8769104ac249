/**
 * Regression: the ACP core's reconfigure (a config reload of `acp.agents` / `acp.gateways`) cleared its runtime
 * table before it built the new one, so a throw midway (an agent entry without a command: the schema rules it
 * out, a bug could not) left the gateway with no runtimes at all. `prepare(next)` builds the new table and
 * changes nothing; only the commit it returns (which cannot throw) swaps it in, whole. A throw leaves the table
 * in use, and the lists it was built from, as they were. (At the gateway level: test/ops/reload-acp-whole.e2e.test.ts.)
 *
 * The core on a real SQLite store, with the fake ACP agent as the configured agent (spawned for real).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createAcpCore, type AcpCore } from '../../src/acp/index.js';
import { validateConfig } from '../../src/config/load.js';
import { Router } from '../../src/router/router.js';
import { openStore } from '../../src/sessions/open-store.js';
import type { SessionStore } from '../../src/sessions/store.js';
import { memoryLogger } from '../helpers/env.js';

const FAKE = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'sy-acp-reconfigure-'));
const opened: Array<{ core: AcpCore; store: SessionStore }> = [];
afterAll(async () => {
  for (const { core, store } of opened) {
    await core.close();
    await store.close();
  }
  rmSync(tmp, { recursive: true, force: true });
});

const agent = (id: string) => ({ id, label: id, command: process.execPath, args: [FAKE], permissions: 'allow' });

async function core(): Promise<AcpCore> {
  const config = validateConfig({ acp: { tokens: ['reconfigure-acp-token'], agents: [agent('fake')] } }, 'test', {});
  const { logger } = memoryLogger();
  const store = await openStore({ kind: 'sqlite', path: join(tmp, `r${Math.random()}.db`) });
  const c = createAcpCore({
    config,
    baseDir: tmp,
    router: new Router({ ...config.gateway.routing, logger }),
    store,
    gatewayId: 'gw_reconf',
    logger,
    // availability is not what this is about: every configured runtime counts as available
    availability: { agent: async () => ({ enabled: true }), gateway: async () => ({ enabled: true }) },
  });
  opened.push({ core: c, store });
  return Object.assign(c, { config });
}

const start = (c: AcpCore, sessionId: string, provider: string) =>
  c.dispatch(
    { method: 'session.start', params: { sessionId, taskPrompt: `hello from ${sessionId}`, executionTarget: 'agent', provider } },
    { notify: () => undefined },
  ) as Promise<Record<string, unknown>>;
const agentIds = async (c: AcpCore) =>
  (
    (await c.dispatch({ method: 'acp.capabilities', params: {} }, { notify: () => undefined })) as { providerCatalog: Array<{ providerId: string }> }
  ).providerCatalog.map((p) => p.providerId);

describe('reconfigure', () => {
  it('a build that throws midway leaves the agents in use serving, and their list as it was', async () => {
    const c = (await core()) as AcpCore & { config: ReturnType<typeof validateConfig> };
    expect(await start(c, 'before', 'fake')).toMatchObject({ status: 'completed', output: expect.stringContaining('hello from before') });

    // a reload whose second entry has no command: the build throws after the first was made
    const acp = c.config.acp;
    const before = [...acp.agents];
    const broken = [agent('other') as (typeof acp.agents)[number], { ...agent('broken'), command: undefined } as unknown as (typeof acp.agents)[number]];
    expect(() => c.prepare({ agents: broken, gateways: [] })).toThrow(/"broken": no command/);

    // the old table serves, and the lists name what it serves
    expect(acp.agents).toEqual(before);
    expect(await agentIds(c)).toContain('fake');
    expect(await agentIds(c)).not.toContain('other');
    expect(await start(c, 'after', 'fake')).toMatchObject({ status: 'completed', output: expect.stringContaining('hello from after') });

    // a reload that builds is applied whole, at its commit and not before
    const commit = c.prepare({ agents: [agent('other') as (typeof acp.agents)[number]], gateways: [] });
    expect(await agentIds(c)).toContain('fake');
    expect(await start(c, 'prepared', 'fake')).toMatchObject({ status: 'completed', output: expect.stringContaining('hello from prepared') });
    acp.agents.splice(0, acp.agents.length, agent('other') as (typeof acp.agents)[number]);
    commit();
    expect(await agentIds(c)).toContain('other');
    expect(await agentIds(c)).not.toContain('fake');
    expect(await start(c, 'next', 'other')).toMatchObject({ status: 'completed', output: expect.stringContaining('hello from next') });
  });
});
