/**
 * Helpers for the /v1 end-to-end tests: an in-process gateway on port 0 over fake upstreams, the official
 * openai SDK pointed at it, and raw HTTP/SSE reads for what the SDK hides (headers, the exact event sequence).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { Agent } from 'undici';
import { expect } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { startGateway, type Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/util/log.js';
import type { FakeUpstream } from '../providers/conformance.js';

const dirs: string[] = [];

/** Starts a gateway in this process (port 0, store in a temp dir, logs kept in memory). */
export async function startGw(raw: { gateway?: Record<string, unknown>; channels: Array<Record<string, unknown>>; [k: string]: unknown }): Promise<Gateway & { logs: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'sy-v1-'));
  dirs.push(dir);
  const cfg = { ...raw, gateway: { port: 0, ...(raw.gateway ?? {}) }, store: { kind: 'sqlite', path: join(dir, 'data', 'switchyard.db') } };
  const logs: string[] = [];
  const gw = await startGateway({ config: validateConfig(cfg, 'test'), path: undefined, baseDir: dir }, { logger: createLogger({}, (l) => void logs.push(l)) });
  return Object.assign(gw, { logs });
}

export function cleanupDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** A channel config entry for a fake upstream (its provider, baseUrl and key). */
export function channelOf(up: FakeUpstream, name: string, models: string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  const c = up.channel;
  return { name, provider: c.provider, baseUrl: c.baseUrl, ...(c.apiKey ? { apiKey: c.apiKey } : {}), models, ...extra };
}

/** The official SDK against the gateway; no SDK retries so attempts can be counted. */
export function sdk(gw: Gateway, apiKey = 'sk-client-unused', extra: Record<string, unknown> = {}): OpenAI {
  return new OpenAI({ apiKey, baseURL: `${gw.url}/v1`, maxRetries: 0, timeout: 15_000, ...extra });
}

export interface RawResponse {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

/** POST (or any method) with a raw body; returns status, headers, text and parsed JSON (when it is JSON). */
export async function call(gw: Gateway, path: string, init: { method?: string; body?: unknown; headers?: Record<string, string>; dispatcher?: Agent } = {}): Promise<RawResponse> {
  const body = init.body === undefined ? undefined : typeof init.body === 'string' ? init.body : JSON.stringify(init.body);
  const res = await fetch(gw.url + path, {
    method: init.method ?? (body === undefined ? 'GET' : 'POST'),
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(init.headers ?? {}) },
    body,
    ...(init.dispatcher ? { dispatcher: init.dispatcher } : {}),
  } as RequestInit);
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** The `data:` payloads of an SSE body, in order. */
export function sseData(text: string): string[] {
  return text
    .split(/\n\n/)
    .map((block) =>
      block
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).replace(/^ /, ''))
        .join('\n'),
    )
    .filter((d) => d.length > 0);
}

/** Text content carried by chat.completion.chunk payloads (error / [DONE] events skipped). */
export function contentOf(events: string[]): string {
  let out = '';
  for (const e of events) {
    if (e === '[DONE]') continue;
    const j = JSON.parse(e) as { choices?: Array<{ delta?: { content?: string | null } }> };
    out += j.choices?.[0]?.delta?.content ?? '';
  }
  return out;
}

/** Asserts an OpenAI-style error body `{ error: { message, type, code, param } }`. */
export function expectOpenAiError(r: RawResponse, status: number, code: string, param?: string | null): void {
  expect(r.status, r.text).toBe(status);
  expect(r.headers.get('content-type')).toMatch(/^application\/json/);
  expect(r.json).toMatchObject({ error: { code, message: expect.any(String), type: expect.any(String) } });
  expect(Object.keys(r.json.error)).toEqual(expect.arrayContaining(['message', 'type', 'code', 'param']));
  expect(r.json.error.message.length).toBeGreaterThan(0);
  if (param !== undefined) expect(r.json.error.param).toBe(param);
}

/** Settles a promise: the value, or the thrown error. */
export async function settle<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: any }> {
  try {
    return { ok: true, value: await p };
  } catch (error) {
    return { ok: false, error };
  }
}

/** Rejects when `p` does not settle within `ms`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A fresh connection pool, so a request cannot ride on a kept-alive socket. */
export const freshAgent = () => new Agent({ keepAliveTimeout: 1, pipelining: 0 });

export const chatBody = (model: string, content = 'hello', extra: Record<string, unknown> = {}) => ({ model, messages: [{ role: 'user', content }], ...extra });
