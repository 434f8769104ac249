/**
 * `switchyard demo`: an honest end-to-end run. Two real gateway processes — "office" (A) and "datacenter"
 * (B, whose mock channel stands in for Ollama's llama3) — bridged from A's config. It shows `bridge list`,
 * sends a non-streaming and a streaming request with the official openai SDK to A, and prints what came
 * back and which gateway/channel produced it (from the response headers, not from assumptions).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { spawnGateway, type GatewayProcess } from '../util/gateway-process.js';
import { adminCall } from './remote.js';
import { PEERS } from './replies.js';
import { renderPeers } from './bridge.js';
import type { PeerRow } from '../bridge/mesh.js';

const say = (s: string) => process.stdout.write(s);

export async function runDemo(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-demo-'));
  const env = {
    DEMO_BRIDGE_TOKEN: randomBytes(16).toString('hex'),
    DEMO_ADMIN_TOKEN: randomBytes(16).toString('hex'),
    DEMO_CLIENT_TOKEN: randomBytes(16).toString('hex'),
    SWITCHYARD_LOG: 'warn',
  };
  const procs: GatewayProcess[] = [];
  try {
    writeFileSync(
      join(dir, 'datacenter.json5'),
      `// Gateway B: a GPU box. Its mock channel stands in for Ollama's llama3 (no GPU here).
{
  gateway: {
    id: "gw_datacenter", name: "datacenter", port: 0,
    admin: { token: "\${DEMO_ADMIN_TOKEN}" },
    bridge: { enabled: true, allowedTokens: ["\${DEMO_BRIDGE_TOKEN}"], shareChannels: ["gpu-llama"], maxPeers: 5 },
  },
  channels: [ { name: "gpu-llama", provider: "mock", models: ["llama3"], options: { chunkDelayMs: 60 } } ],
  store: { kind: "sqlite", path: "./datacenter-data/switchyard.db" },
}
`,
    );
    say('▶ starting gateway B "datacenter" (mock channel gpu-llama serving llama3)…\n');
    const b = await spawnGateway(join(dir, 'datacenter.json5'), env);
    procs.push(b);
    say(`  B listening on ${b.url} (id ${b.id})\n`);

    writeFileSync(
      join(dir, 'office.json5'),
      `// Gateway A: the office laptop. It has only its own mock model and bridges to B.
{
  gateway: {
    id: "gw_office", name: "office", port: 0,
    auth: { tokens: ["\${DEMO_CLIENT_TOKEN}"] },
    admin: { token: "\${DEMO_ADMIN_TOKEN}" },
    bridges: [ { name: "datacenter", url: "${b.url.replace(/^http/, 'ws')}/bridge", token: "\${DEMO_BRIDGE_TOKEN}", shareChannels: false, reconnectInterval: 500 } ],
  },
  channels: [ { name: "office-mock", provider: "mock", models: ["mock-1"] } ],
  store: { kind: "sqlite", path: "./office-data/switchyard.db" },
}
`,
    );
    say('▶ starting gateway A "office" with a bridge to B in its config…\n');
    const a = await spawnGateway(join(dir, 'office.json5'), env);
    procs.push(a);
    say(`  A listening on ${a.url} (id ${a.id})\n`);

    const flags = { url: a.url, token: env.DEMO_ADMIN_TOKEN };
    let peers: PeerRow[] = [];
    const until = Date.now() + 10_000;
    while (Date.now() < until) {
      peers = (await adminCall<{ peers: PeerRow[] }>(flags, 'GET', '/admin/bridges', undefined, { reply: PEERS })).peers;
      if (peers.some((p) => p.state === 'open' && p.sharedWithUs.includes('gpu-llama'))) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    say('\n$ switchyard bridge list   (on A)\n' + renderPeers(peers));
    if (!peers.some((p) => p.state === 'open')) throw new Error('the bridge did not come up within 10 s');

    const { default: OpenAI } = await import('openai'); // loaded on demand: only the demo needs the SDK
    const client = new OpenAI({ baseURL: `${a.url}/v1`, apiKey: env.DEMO_CLIENT_TOKEN });
    const models = await client.models.list();
    say(`\n▶ GET /v1/models on A: ${models.data.map((m) => m.id).join(', ')}\n`);

    say("\n▶ non-streaming chat on A, model mock-1 (A's own channel):\n");
    const local = await client.chat.completions.create({ model: 'mock-1', messages: [{ role: 'user', content: 'Hello from the office' }] }).withResponse();
    say(`  answer: ${local.data.choices[0]?.message.content}\n  served by: ${via(local.response.headers)}; usage ${JSON.stringify(local.data.usage)}\n`);

    say('\n▶ streaming chat on A, model llama3 (only B has it: the request crosses the bridge):\n  ');
    const { data: stream, response } = await client.chat.completions
      .create({
        model: 'llama3',
        stream: true,
        stream_options: { include_usage: true },
        messages: [{ role: 'user', content: 'Explain the bridge in one line' }],
      })
      .withResponse();
    let chunks = 0;
    let usage: unknown;
    for await (const chunk of stream) {
      const text = chunk.choices[0]?.delta?.content;
      if (text) {
        chunks++;
        say(text);
      }
      if (chunk.usage) usage = chunk.usage;
    }
    say(`\n  ${chunks} chunks streamed; served by: ${via(response.headers)}; usage ${JSON.stringify(usage)}\n`);

    // What Claude Code sends: Anthropic's Messages API, translated once at A, served by B's channel.
    say('\n▶ Anthropic Messages API on A (POST /v1/messages, streaming), model llama3 — translated at A, served by B:\n  ');
    const msg = await fetch(`${a.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': env.DEMO_CLIENT_TOKEN, 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: 'llama3', max_tokens: 256, stream: true, messages: [{ role: 'user', content: 'Hello in Anthropic format' }] }),
    });
    if (!msg.ok || !msg.body) throw new Error(`/v1/messages answered ${msg.status}: ${await msg.text()}`);
    const events = new Map<string, number>();
    let buffered = '';
    for await (const bytes of msg.body) {
      buffered += Buffer.from(bytes).toString('utf8');
      let nl: number;
      while ((nl = buffered.indexOf('\n\n')) !== -1) {
        const block = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 2);
        const event = /^event: (.+)$/m.exec(block)?.[1];
        const data = /^data: (.+)$/m.exec(block)?.[1];
        if (!event || !data) continue;
        events.set(event, (events.get(event) ?? 0) + 1);
        const parsed = JSON.parse(data) as { delta?: { type?: string; text?: string } };
        if (parsed.delta?.type === 'text_delta' && parsed.delta.text) say(parsed.delta.text);
      }
    }
    say(`\n  events: ${[...events].map(([e, n]) => `${e}×${n}`).join(', ')}; served by: ${via(msg.headers)}\n`);
    say("\n✔ demo complete: A answered llama3 with B's channel over the bridge, streaming chunk by chunk, in OpenAI and Anthropic format.\n");
  } finally {
    await Promise.all(procs.reverse().map((p) => p.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}

function via(h: Headers): string {
  const peer = h.get('x-switchyard-peer');
  const channel = h.get('x-switchyard-channel');
  const mock = h.get('x-switchyard-mock') === 'true' ? ' (mock provider)' : '';
  return peer ? `peer gateway "${peer}", channel ${channel}${mock}` : `local channel ${channel}${mock}`;
}

export function registerDemo(program: Command): void {
  program.command('demo').description('start two bridged gateways and send real requests through them with the openai SDK').action(runDemo);
}
