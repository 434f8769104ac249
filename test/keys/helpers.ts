/** Shared by the key tests: admin calls, a chat call that returns status + headers, key creation. */
import { expect } from 'vitest';
import { call, type RawResponse } from '../helpers/env.js';

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
