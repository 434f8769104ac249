/**
 * The metrics tables in docs/operations.md are what an operator builds dashboards and alerts from, so they must
 * list exactly what GET /metrics serves: every family of a real scrape is a row with the same type, every row is a
 * family of the scrape, and each row's label names are the family's (from its samples, and from the registry for
 * families with no sample after this traffic: event counters nothing triggered, warm pools none configured).
 *
 * Two gateways in this process: B shares a channel over a bridge A dials (the link and candidate series have
 * samples on A), A serves /acp with a gateway runtime and runs one turn, and a flaky channel gives a failover.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { acpRpc, cleanupDirs, sdk, startGw, waitFor, waitForBridgeOpen, wsUrl } from '../helpers/env.js';
import { parseProm, type Sample } from './prom-text.js';

const DOC = new URL('../../docs/operations.md', import.meta.url);
const BRIDGE = 'metdoc-bridge-token-7c2e';
const ADMIN = 'metdoc-admin-token-4f81';
const ACP = 'metdoc-acp-token-93ab';

interface Row {
  type: string;
  labels: string[];
}

/**
 * The series rows of the tables in the *Metrics* section: `| \`name\` [/ \`_suffix\`] | type | labels | meaning |`.
 * A row `\`switchyard_peer_frames_sent_total\` / \`_received_total\`` stands for two families: the suffix replaces
 * as many `_` parts of the first name as it has. Labels are the backticked names outside parentheses (inside
 * them the docs give example values).
 */
function documentedFamilies(markdown: string): Map<string, Row> {
  const start = markdown.indexOf('\n## Metrics\n');
  const end = markdown.indexOf('\n## ', start + 1);
  const section = markdown.slice(start, end === -1 ? undefined : end);
  const rows = new Map<string, Row>();
  for (const line of section.split('\n')) {
    if (!line.startsWith('| `switchyard_')) continue;
    const [names, type, labels] = line
      .split('|')
      .slice(1, 4)
      .map((c) => c.trim());
    const row: Row = {
      type: type!,
      labels: [...labels!.replace(/\([^)]*\)/g, '').matchAll(/`([a-z_]+)`/g)].map((m) => m[1]!),
    };
    const [first, ...alts] = [...names!.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]!);
    for (const name of [
      first!,
      ...alts.map(
        (s) =>
          first!
            .split('_')
            .slice(0, -(s.split('_').length - 1))
            .join('_') + s,
      ),
    ]) {
      expect(rows.has(name), `${name} has one row`).toBe(false);
      rows.set(name, row);
    }
  }
  return rows;
}

/** `# TYPE name type` lines of an exposition. */
function scrapedTypes(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

/** The label names seen on a family's samples (a histogram's `_bucket`/`_sum`/`_count`, without `le`). */
function sampleLabels(samples: Sample[], family: string, type: string): Set<string> | undefined {
  const names = type === 'histogram' ? [`${family}_bucket`, `${family}_sum`, `${family}_count`] : [family];
  const mine = samples.filter((s) => names.includes(s.name));
  if (mine.length === 0) return undefined;
  return new Set(mine.flatMap((s) => Object.keys(s.labels)).filter((l) => l !== 'le'));
}

let a: Gateway & { logs: string[] };
let b: Gateway & { logs: string[] };

beforeAll(async () => {
  b = await startGw({
    gateway: { id: 'gw_md_b', name: 'md-b', bridge: { enabled: true, allowedTokens: [BRIDGE], shareChannels: ['up'] } },
    channels: [{ name: 'up', provider: 'mock', models: ['remote-1'] }],
  });
  a = await startGw({
    gateway: {
      id: 'gw_md_a',
      name: 'md-a',
      admin: { token: ADMIN },
      bridges: [{ name: 'b', url: wsUrl(b.url), token: BRIDGE, reconnectInterval: 100 }],
    },
    channels: [
      { name: 'local', provider: 'mock', models: ['mock-1'] },
      { name: 'flaky', provider: 'mock', models: ['flaky-1'], options: { failFirst: 1, failStatus: 500 } },
    ],
    acp: { tokens: [ACP], gateways: [{ id: 'gw', label: 'Gateway', kind: 'channels', model: 'mock-1' }] },
  });
  await waitForBridgeOpen(a.url, ADMIN);
  const client = sdk(a);
  await client.chat.completions.create({ model: 'mock-1', messages: [{ role: 'user', content: 'local' }] });
  await client.chat.completions.create({ model: 'remote-1', messages: [{ role: 'user', content: 'over the bridge' }] });
  await client.chat.completions.create({ model: 'flaky-1', messages: [{ role: 'user', content: 'fails once' }] });
  const started = await acpRpc(a.url, ACP, 'session.start', {
    sessionId: 's-metdoc',
    taskPrompt: 'one turn',
    routing: { explicitExecutionTarget: 'gateway', preferredGatewayProviderId: 'gw' },
  });
  expect(started.result.success).toBe(true);
});

afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  cleanupDirs();
});

describe('docs/operations.md lists the metrics /metrics serves', () => {
  it('every scraped family is a documented row of the same type and labels, and every row is scraped', async () => {
    const docs = documentedFamilies(readFileSync(DOC, 'utf8'));
    // the turn's end is counted after its answer went out: wait for it, so its labels come from a sample too
    const text = await waitFor(async () => {
      const res = await fetch(`${a.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } });
      expect(res.status).toBe(200);
      const t = await res.text();
      return t.includes('switchyard_acp_turns_total{') ? t : undefined;
    }, 'the ACP turn counted');
    const types = scrapedTypes(text);
    const samples = parseProm(text);

    expect([...types.keys()].filter((n) => !docs.has(n)).sort(), 'scraped, not documented').toEqual([]);
    expect([...docs.keys()].filter((n) => !types.has(n)).sort(), 'documented, not scraped').toEqual([]);
    for (const [name, type] of types) expect(`${name}: ${docs.get(name)?.type}`).toBe(`${name}: ${type}`);

    // label names: from the samples where there are some, else from the registry's definition of the family
    const registered = new Map(
      a.obs.metrics.registry.getMetricsAsArray().map((m) => {
        // prom-client's metrics and hot-metrics.ts's both keep their label names in `labelNames` (not in their types)
        const def = m as unknown as { name: string; labelNames: readonly string[] };
        return [def.name, [...def.labelNames].sort()] as const;
      }),
    );
    const fromSamples: string[] = [];
    for (const [name, type] of types) {
      const seen = sampleLabels(samples, name, type);
      if (seen) fromSamples.push(name);
      const code = seen ? [...seen].sort() : registered.get(name);
      expect(`${name}: ${[...docs.get(name)!.labels].sort().join(',')}`).toBe(`${name}: ${code!.join(',')}`);
      // the samples never carry a label the registry does not define (a sanity check of the two sources)
      if (seen) for (const l of seen) expect(registered.get(name), `${name} defines ${l}`).toContain(l);
    }
    // the traffic above gave samples to the series this test is about; the rest (warm pools, ejections, probes,
    // transfers, panics) are checked against the registry alone
    for (const n of [
      'switchyard_requests_total',
      'switchyard_time_to_first_token_seconds',
      'switchyard_tokens_total',
      'switchyard_attempt_failures_total',
      'switchyard_failovers_total',
      'switchyard_candidate_inflight',
      'switchyard_peer_up',
      'switchyard_peer_rtt_seconds',
      'switchyard_peer_connects_total',
      'switchyard_sessions',
      'switchyard_acp_turns_total',
      'switchyard_acp_task_snapshots',
      'switchyard_acp_streams_cut_total',
    ])
      expect(fromSamples, `${n} has samples`).toContain(n);
  });
});
