/**
 * `/v1/messages/count_tokens` after a reload: it asks the channel that serves now. The lookup it used was filled
 * once at start, so a changed Anthropic channel's count went to its old upstream (through the provider the reload
 * retired) and an added one got an estimate. A real gateway process, two fake Anthropic upstreams.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Anthropic from '@anthropic-ai/sdk';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { cleanupDirs, startProcess } from '../helpers/env.js';
import { startAnthropicUpstream } from '../fakes/anthropic-upstream.js';
import type { FakeUpstream } from '../providers/conformance.js';

const ADMIN = 'count-reload-admin-token-5c1e';
let g: GatewayProcess & { configPath: string };
let first: FakeUpstream;
let second: FakeUpstream;

const channel = (name: string, up: FakeUpstream, models: string[]) => ({
  name,
  provider: 'anthropic',
  baseUrl: up.channel.baseUrl,
  apiKey: 'sk-ant-fake',
  models,
});
const config = (channels: object[]) => ({
  gateway: { id: 'gw_countreload', port: 0, admin: { token: ADMIN } },
  channels,
  store: { kind: 'sqlite', path: './data/count.db' },
});

beforeAll(async () => {
  first = await startAnthropicUpstream({});
  second = await startAnthropicUpstream({});
  g = await startProcess(config([channel('claude', first, ['claude-a'])]));
}, 30_000);

afterAll(async () => {
  await g?.stop();
  await first?.close();
  await second?.close();
  cleanupDirs();
});

const messages = [{ role: 'user' as const, content: 'How many tokens is this?' }];

describe('count_tokens after a reload', () => {
  it('reaches the changed channel at its new upstream, and an added channel at its own', async () => {
    const client = new Anthropic({ apiKey: 'unused', baseURL: g.url, maxRetries: 0 });
    const before = await client.messages.countTokens({ model: 'claude-a', messages }).withResponse();
    expect(before.response.headers.get('x-switchyard-token-count')).toBe('upstream');
    expect(first.lastPath()).toBe('/v1/messages/count_tokens');

    writeFileSync(g.configPath, JSON.stringify(config([channel('claude', second, ['claude-a']), channel('claude-b', second, ['claude-b'])])));
    const res = await fetch(`${g.url}/admin/config/reload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(200);

    const changed = await client.messages.countTokens({ model: 'claude-a', messages }).withResponse();
    expect(changed.response.headers.get('x-switchyard-token-count')).toBe('upstream');
    expect(changed.data.input_tokens).toBe(1000 + JSON.stringify(messages).length);
    expect(second.lastPath()).toBe('/v1/messages/count_tokens');
    expect(second.lastRequest()?.model).toBe('claude-a');

    const added = await client.messages.countTokens({ model: 'claude-b', messages }).withResponse();
    expect(added.response.headers.get('x-switchyard-token-count')).toBe('upstream');
    expect(second.lastRequest()?.model).toBe('claude-b');
  });
});
