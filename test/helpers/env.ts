/**
 * The one test helper module: temp dirs, config files, in-process and child-process gateways, bounded waits,
 * and for the /v1 end-to-end tests the official openai SDK pointed at a gateway plus raw HTTP/SSE reads for
 * what the SDK hides (headers, the exact event sequence).
 */
import http from 'node:http';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig } from '../../src/config/load.js';
import { startGateway, type Gateway } from '../../src/gateway.js';
import { createLogger, type Logger } from '../../src/util/log.js';
import OpenAI from 'openai';
import { Agent } from 'undici';
import { afterAll, expect } from 'vitest';
import { spawnGateway, type GatewayProcess } from '../../src/util/gateway-process.js';
import type { FakeUpstream } from '../providers/conformance.js';

export { BIN, spawnGateway, type GatewayProcess } from '../../src/util/gateway-process.js';

const dirs: string[] = [];

export function tmpDir(prefix = 'sy-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

export function cleanupDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}
// every file that imports this module loses its temp dirs when it ends, whether or not it calls cleanupDirs itself:
// registered at import, so it runs after the file's own afterAll hooks (vitest runs them in reverse), once its
// gateways have stopped
afterAll(() => cleanupDirs());

/** A logger that keeps lines in memory (and lets tests assert that no secret was logged). */
export function memoryLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: createLogger({}, (l) => void lines.push(l)), lines };
}

/** Starts a gateway in this process from a raw config object (port 0 unless set). */
export async function startInProcess(raw: Record<string, any>, logger?: Logger): Promise<Gateway> {
  const dir = tmpDir();
  const cfg = structuredClone(raw);
  cfg.gateway ??= {};
  cfg.gateway.port ??= 0;
  cfg.store ??= { kind: 'sqlite', path: join(dir, 'data', 'switchyard.db') };
  return startGateway({ config: validateConfig(cfg, 'test'), path: undefined, baseDir: dir }, { logger: logger ?? memoryLogger().logger });
}

/** Writes a JSON config file and starts a real gateway process on it. */
export async function startProcess(
  raw: Record<string, any>,
  env: NodeJS.ProcessEnv = {},
  dir = tmpDir(),
): Promise<GatewayProcess & { dir: string; configPath: string }> {
  const cfg = structuredClone(raw);
  cfg.gateway ??= {};
  cfg.gateway.port ??= 0;
  cfg.store ??= { kind: 'sqlite', path: './data/switchyard.db' };
  const configPath = join(dir, `${cfg.gateway.id ?? 'gw'}-${Math.random().toString(36).slice(2, 8)}.json5`);
  writeFileSync(configPath, JSON.stringify(cfg, null, 2));
  const p = await spawnGateway(configPath, { SWITCHYARD_LOG: 'info', ...env });
  return Object.assign(p, { dir, configPath });
}

export async function waitFor<T>(fn: () => T | Promise<T>, what: string, timeoutMs = 10_000, everyMs = 50): Promise<NonNullable<T>> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < until) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
}

export const wsUrl = (httpUrl: string) => httpUrl.replace(/^http/, 'ws') + '/bridge';

/** Waits until the gateway at `baseUrl` has a bridge link open (`/admin/bridges`, with its admin `token` if it has one). */
export function waitForBridgeOpen(baseUrl: string, token?: string): Promise<{ state: string }> {
  return waitFor(
    async () => (await adminGet<{ peers: Array<{ state: string }> }>(baseUrl, '/admin/bridges', token)).peers.find((p) => p.state === 'open'),
    'bridge A→B open',
  );
}

export async function adminGet<T = any>(baseUrl: string, path: string, token?: string): Promise<T> {
  const res = await fetch(baseUrl + path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/**
 * "The request is in flight", observed: waits until the gateway's /admin/channels shows at least `n` requests
 * in flight on the channel named `channel` (loopback admin, no token unless given).
 */
/** A local channel's health record as `/admin/channels` shows it (`channel`: the channel's name). */
export interface ChannelHealth {
  consecutiveFailures: number;
  windowRequests: number;
  lastError: string | null;
}
export async function channelHealth(baseUrl: string, channel: string, token?: string): Promise<ChannelHealth> {
  const { channels } = await adminGet<{ channels: Array<{ id: string; health: ChannelHealth }> }>(baseUrl, '/admin/channels', token);
  return channels.find((c) => c.id === `local/${channel}`)!.health;
}

export function waitForInflight(baseUrl: string, channel: string, n = 1, token?: string, timeoutMs = 10_000): Promise<true> {
  return waitFor(
    async () =>
      (await adminGet<{ channels: Array<{ channel: string; inflight: number }> }>(baseUrl, '/admin/channels', token)).channels.some(
        (c) => c.channel === channel && c.inflight >= n,
      )
        ? true
        : undefined,
    `${n} request(s) in flight on channel ${channel}`,
    timeoutMs,
    20,
  );
}

/** "The turn is running", observed: waits until session `sessionId` (read through a gateway's admin API) has a running turn. */
/** Moves a session to the peer `to` (its id or name) through the admin API; the transfer must succeed. */
export async function transferSession(baseUrl: string, sessionId: string, to: string): Promise<void> {
  const r = await fetch(`${baseUrl}/admin/sessions/${sessionId}/transfer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ to }),
  });
  expect(r.status, await r.clone().text()).toBe(200);
}

export function waitForRunningTurn(baseUrl: string, sessionId: string, token?: string, timeoutMs = 10_000): Promise<{ turnId: string; prompt: string }> {
  return waitFor(
    async () =>
      (
        await adminGet<{ session: { history: Array<{ turnId: string; prompt: string; status: string }> } }>(
          baseUrl,
          `/admin/sessions/${encodeURIComponent(sessionId)}`,
          token,
        )
      ).session.history.find((t) => t.status === 'running'),
    `a running turn in session ${sessionId}`,
    timeoutMs,
    20,
  );
}

export async function writeFileIn(dir: string, name: string, text: string): Promise<string> {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

/** A port that was free a moment ago (for a gateway that must come back on the same port). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A process is alive when it exists and is not a zombie (PID 1 in some containers does not reap). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * Two gateways in this process: B shares its one channel (`channel`, named `up`) with A over a bridge dialled
 * with `token`; A's admin API takes `admin`. Resolves once the link is open. Ids and names are `gw_<prefix>_a`,
 * `<prefix>-a` (and b).
 */
export async function startBridgedPair(
  prefix: string,
  channel: Record<string, unknown>,
  o: { token: string; admin: string },
): Promise<{ a: Gateway & { logs: string[] }; b: Gateway & { logs: string[] } }> {
  const b = await startGw({
    gateway: { id: `gw_${prefix}_b`, name: `${prefix}-b`, bridge: { enabled: true, allowedTokens: [o.token], shareChannels: ['up'] } },
    channels: [{ ...channel, name: 'up' }],
  });
  const a = await startGw({
    gateway: {
      id: `gw_${prefix}_a`,
      name: `${prefix}-a`,
      admin: { token: o.admin },
      bridges: [{ name: 'b', url: wsUrl(b.url), token: o.token, reconnectInterval: 100 }],
    },
    channels: [],
  });
  await waitForBridgeOpen(a.url, o.admin);
  return { a, b };
}

/**
 * A requesting gateway process (`gw_a`, "office"): one mock channel of its own, no retries, and one bridge `dc`
 * dialled to `peerUrl` with `o.token` (sharing nothing); its admin API takes `o.admin`. Resolves once the link is open.
 */
export async function startRequesterProcess(peerUrl: string, o: { token: string; admin: string }): Promise<GatewayProcess> {
  const a = await startProcess({
    gateway: {
      id: 'gw_a',
      name: 'office',
      admin: { token: o.admin },
      routing: { retries: 0 },
      bridges: [{ name: 'dc', url: wsUrl(peerUrl), token: o.token, shareChannels: false, reconnectInterval: 200 }],
    },
    channels: [{ name: 'office-mock', provider: 'mock', models: ['mock-1'] }],
  });
  await waitForBridgeOpen(a.url, o.admin);
  return a;
}

/** Starts a gateway in this process (port 0, store in a temp dir, logs kept in memory). */
export async function startGw(raw: {
  gateway?: Record<string, unknown>;
  channels: Array<Record<string, unknown>>;
  [k: string]: unknown;
}): Promise<Gateway & { logs: string[] }> {
  const dir = tmpDir('sy-v1-');
  const cfg = { ...raw, gateway: { port: 0, ...(raw.gateway ?? {}) }, store: { kind: 'sqlite', path: join(dir, 'data', 'switchyard.db') } };
  const logs: string[] = [];
  const gw = await startGateway({ config: validateConfig(cfg, 'test'), path: undefined, baseDir: dir }, { logger: createLogger({}, (l) => void logs.push(l)) });
  return Object.assign(gw, { logs });
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
export async function call(
  gw: Pick<Gateway, 'url'>,
  path: string,
  init: { method?: string; body?: unknown; headers?: Record<string, string>; dispatcher?: Agent } = {},
): Promise<RawResponse> {
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

/**
 * A slow client: opens a streaming chat request for `model` (prompt `content`) on `baseUrl` and stops reading
 * its answer at once (its socket buffers fill, then the gateway's queue for the stream). `readAll` reads the rest.
 */
export async function slowClient(baseUrl: string, model: string, content: string): Promise<http.IncomingMessage> {
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: new URL(baseUrl).port, path: '/v1/chat/completions', method: 'POST', headers: { 'content-type': 'application/json' } },
      resolve,
    );
    req.on('error', reject);
    req.end(JSON.stringify({ model, stream: true, messages: [{ role: 'user', content }] }));
  });
  expect(res.statusCode).toBe(200);
  res.pause();
  return res;
}

/** Reads the rest of a paused answer (`slowClient`): its SSE data lines. */
export async function readAll(res: http.IncomingMessage): Promise<string[]> {
  let body = '';
  res.setEncoding('utf8');
  res.on('data', (d: string) => (body += d));
  res.resume();
  await once(res, 'end');
  return sseData(body);
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

/** A 400 invalid_request in Anthropic's error format whose message names the client's field `param` first. */
export function expectAnthropicInvalid(r: RawResponse, param: string): void {
  expect(r.status, r.text).toBe(400);
  expect(r.json).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', code: 'invalid_request' } });
  expect(r.json.error.message.startsWith(`${param}: `), r.json.error.message).toBe(true);
}

/** A 400 INVALID_ARGUMENT in Gemini's error format naming the client's field `param` (in its details and first in its message). */
export function expectGeminiInvalid(r: RawResponse, param: string): void {
  expect(r.status, r.text).toBe(400);
  expect(r.json).toMatchObject({ error: { code: 400, status: 'INVALID_ARGUMENT', details: [{ reason: 'INVALID_REQUEST', metadata: { param } }] } });
  expect(r.json.error.message.startsWith(`${param}: `), r.json.error.message).toBe(true);
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
/** What `p` rejected with, or undefined when it resolved (an SDK call expected to fail, its error inspected). */
export const rejectionOf = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A fresh connection pool, so a request cannot ride on a kept-alive socket. */
export const freshAgent = () => new Agent({ keepAliveTimeout: 1, pipelining: 0 });

export const chatBody = (model: string, content = 'hello', extra: Record<string, unknown> = {}) => ({ model, messages: [{ role: 'user', content }], ...extra });

/** The answer of one `/acp/rpc` call: its result or error, and (with `sse`) the session.update params streamed first. */
export interface AcpAnswer {
  result?: any;
  error?: any;
  updates: any[];
}

/** One JSON-RPC call to a gateway's `/acp/rpc` with `token`; `sse` asks for the streamed form and collects the updates. */
export async function acpRpc(baseUrl: string, token: string, method: string, params: Record<string, unknown>, sse = false): Promise<AcpAnswer> {
  const res = await fetch(`${baseUrl}/acp/rpc`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(sse ? { accept: 'text/event-stream' } : {}) },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  const text = await res.text();
  if (!sse) return { ...(JSON.parse(text) as Omit<AcpAnswer, 'updates'>), updates: [] };
  const msgs = text
    .split('\n\n')
    .filter((b) => b.startsWith('data: ') && b !== 'data: [DONE]')
    .map((b) => JSON.parse(b.slice(6)) as Record<string, any>);
  const final = msgs.find((m) => 'id' in m);
  return { result: final?.result, error: final?.error, updates: msgs.filter((m) => m.method === 'session.update').map((m) => m.params) };
}
