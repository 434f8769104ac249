/** Shared by the key tests: admin calls, a chat call that returns status + headers, key creation, the peer-limit pair. */
import { expect } from 'vitest';
import { call, channelOf, startProcess, waitFor, wsUrl, type GatewayProcess, type RawResponse } from '../helpers/env.js';
import type { OpenAiFake } from '../fakes/openai-upstream.js';

export async function admin<T = any>(url: string, method: 'GET' | 'POST', path: string, body?: unknown, token?: string): Promise<{ status: number; json: T }> {
  const res = await fetch(url + path, {
    method,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as T };
}

export async function createKey(url: string, body: Record<string, unknown>, token?: string): Promise<{ id: string; secret: string }> {
  const r = await admin(url, 'POST', '/admin/keys', body, token);
  expect(r.status, JSON.stringify(r.json)).toBe(201);
  return { id: r.json.key.id, secret: r.json.secret };
}

export type ChatResult = RawResponse;

export function chat(url: string, secret: string | undefined, body: Record<string, unknown>, headerName = 'authorization'): Promise<ChatResult> {
  const headers: Record<string, string> = {};
  if (secret !== undefined) headers[headerName] = headerName === 'authorization' ? `Bearer ${secret}` : secret;
  return call({ url }, '/v1/chat/completions', { body, headers });
}

export const ask = (model: string, extra: Record<string, unknown> = {}) => ({ model, messages: [{ role: 'user', content: 'hi' }], ...extra });

/**
 * Two real gateway processes for the peer-limit tests: B shares its channel `oa-b` (on `upB`, priced 1/2, tier
 * 0) with A and holds A to `peerLimits`; A bridges to B and has its own `oa-a` (on `upA`, tier 1) for model `m`.
 * Resolves once A sees B's channel.
 */
export async function startPeerPair(o: {
  token: string;
  upA: OpenAiFake;
  upB: OpenAiFake;
  peerLimits: Record<string, unknown>;
}): Promise<{ a: GatewayProcess; b: GatewayProcess }> {
  const b = await startProcess({
    gateway: {
      id: 'gw_b',
      usage: { flushIntervalMs: 50 },
      bridge: { enabled: true, loadBalance: true, allowedTokens: [o.token], shareChannels: ['oa-b'], peerLimits: o.peerLimits },
    },
    channels: [channelOf(o.upB, 'oa-b', ['m'], { pricing: { input: 1, output: 2 } })],
  });
  const a = await startProcess({
    gateway: { id: 'gw_a', usage: { flushIntervalMs: 50 }, bridges: [{ name: 'b', url: wsUrl(b.url), token: o.token }] },
    channels: [channelOf(o.upA, 'oa-a', ['m'], { priority: 1 })],
  });
  await waitFor(
    async () => (await admin(a.url, 'GET', '/admin/bridges/channels')).json.peers.some((p: any) => JSON.stringify(p).includes('oa-b')),
    "A sees B's shared channel",
  );
  return { a, b };
}
