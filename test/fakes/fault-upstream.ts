/**
 * A fault-injecting OpenAI-compatible upstream for the fault suite (test/faults). It runs in the test
 * process on 127.0.0.1:0; the gateways under test are child processes that call it over loopback, so the
 * test switches its behaviour at run time with plain method calls (`setMode`).
 *
 * Modes (chat completions; the mode is read when a request arrives):
 * - `ok`: a `chat.completion` (non-stream), or SSE: role chunk, `chunks` content chunks `chunkDelayMs` apart,
 *   a finish chunk, the usage chunk (`choices: []`), `data: [DONE]`. `responseDelayMs` before the headers.
 * - `fail500`: 500 with an OpenAI error body.
 * - `fail429`: 429 with `Retry-After: retryAfterSec`.
 * - `stall`: accepts and never sends headers (first-byte timeout). With `faultAfterChunks > 0` a stream
 *   sends that many chunks first and then goes silent (stream idle timeout).
 * - `cutMidStream`: sends `faultAfterChunks` chunks, then destroys the socket (0 = before any header).
 * - `malformedChunk`: sends `faultAfterChunks` chunks, then `data: {not json` and ends the body.
 * - `inbandError`: sends `faultAfterChunks` chunks, then `data: {"error":{…}}` and ends the body (no [DONE]).
 * A non-stream request in a mid-stream mode gets the equivalent broken body (cut, not JSON, error object).
 *
 * Counters: `received` (total, and per mode in `byMode`), `completed` (answers sent in full in `ok` mode),
 * and the `x-request-id` of every request, so a test can prove a request never came back to this upstream.
 *
 * The second half of the file is the client side the fault tests share: raw chat calls through a gateway
 * (fetch, SSE read as text so a fake `[DONE]` cannot hide), a bounded concurrent runner and admin helpers.
 */
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { writeEndless } from './endless-body.js';

export type FaultMode = 'ok' | 'fail500' | 'fail429' | 'stall' | 'cutMidStream' | 'malformedChunk' | 'inbandError' | 'endless';

export const FAULT_MODES: readonly FaultMode[] = ['ok', 'fail500', 'fail429', 'stall', 'cutMidStream', 'malformedChunk', 'inbandError', 'endless'];

export interface FaultOptions {
  /** content chunks in an `ok` stream; default 3 */
  chunks: number;
  /** ms between stream chunks; default 10 */
  chunkDelayMs: number;
  /** ms before the response headers (every mode but `stall`); default 0 */
  responseDelayMs: number;
  /** `fail429`: the Retry-After header, seconds; default 1 */
  retryAfterSec: number;
  /** mid-stream modes: chunks sent (role chunk included) before the fault; 0 = fault before any byte; default 2 */
  faultAfterChunks: number;
}

const DEFAULTS: FaultOptions = { chunks: 3, chunkDelayMs: 10, responseDelayMs: 0, retryAfterSec: 1, faultAfterChunks: 2 };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class FaultUpstream {
  readonly name: string;
  mode: FaultMode = 'ok';
  opts: FaultOptions = { ...DEFAULTS };
  /** chat requests received, in any mode */
  received = 0;
  /** chat requests received per mode (the mode at arrival) */
  byMode: Record<FaultMode, number> = zeroModes();
  /** answers sent in full in `ok` mode */
  completed = 0;
  /** x-request-id of every chat request received, oldest first */
  readonly requestIds: string[] = [];
  /** arrival time (ms since epoch) of every chat request, with the mode it met */
  readonly arrivals: Array<{ at: number; mode: FaultMode }> = [];
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private port = 0;

  constructor(name: string) {
    this.name = name;
  }

  /** TCP connections from clients (the gateways' pools) open right now */
  get openSockets(): number {
    return this.sockets.size;
  }

  /** http://127.0.0.1:<port>/v1 */
  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}/v1`;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res).catch(() => res.destroy()));
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** Switches behaviour for every later request; options not given keep their current value. */
  setMode(mode: FaultMode, opts: Partial<FaultOptions> = {}): void {
    this.mode = mode;
    this.opts = { ...this.opts, ...opts };
  }

  resetCounters(): void {
    this.received = 0;
    this.completed = 0;
    this.byMode = zeroModes();
    this.requestIds.length = 0;
    this.arrivals.length = 0;
  }

  /** request ids this upstream saw more than once (a retry that came back to it) */
  repeatedRequestIds(): string[] {
    const seen = new Set<string>();
    const twice = new Set<string>();
    for (const id of this.requestIds) (seen.has(id) ? twice : seen).add(id);
    return [...twice];
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    if (this.server) await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const isChat = req.method === 'POST' && url.endsWith('/chat/completions');
    // counted when the headers arrive, so a request the gateway gives up on while its body is read still counts
    const mode = this.mode;
    const o = this.opts;
    if (isChat) {
      this.received++;
      this.byMode[mode]++;
      const rid = req.headers['x-request-id'];
      this.requestIds.push(typeof rid === 'string' ? rid : '');
      this.arrivals.push({ at: Date.now(), mode });
    }
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (req.method === 'GET' && url.endsWith('/models')) {
      return json(res, 200, { object: 'list', data: [{ id: 'fault-model', object: 'model', created: 0, owned_by: this.name }] });
    }
    if (!isChat) return json(res, 404, { error: { message: `no route ${req.method} ${url}`, type: 'invalid_request_error', param: null, code: null } });
    let body: { model?: string; stream?: boolean } = {};
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
    } catch {
      return json(res, 400, { error: { message: 'body is not JSON', type: 'invalid_request_error', param: null, code: null } });
    }
    const model = body.model ?? 'fault-model';
    const stream = body.stream === true;

    if (mode === 'stall' && !(stream && o.faultAfterChunks > 0)) return; // never answer; the socket stays open
    if (o.responseDelayMs > 0) await sleep(o.responseDelayMs);
    if (res.destroyed) return;
    if (mode === 'fail500')
      return json(res, 500, {
        error: { message: 'The server had an error while processing your request. Sorry about that!', type: 'server_error', param: null, code: null },
      });
    if (mode === 'fail429') {
      return json(
        res,
        429,
        {
          error: {
            message: 'Rate limit reached for requests per min (RPM). Please try again later.',
            type: 'requests',
            param: null,
            code: 'rate_limit_exceeded',
          },
        },
        { 'retry-after': String(o.retryAfterSec) },
      );
    }
    if (mode === 'cutMidStream' && o.faultAfterChunks === 0) return void res.destroy();

    const id = `chatcmpl-${this.name}-${this.received}`;
    const content = `reply from ${this.name}`;
    if (!stream) {
      if (mode === 'cutMidStream') {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '400' });
        res.write('{"id":"');
        await sleep(5);
        return void res.destroy();
      }
      if (mode === 'malformedChunk') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return void res.end('{"id": "broken", "choices": [');
      }
      if (mode === 'inbandError') return json(res, 200, { error: { message: 'upstream model crashed', type: 'server_error', param: null, code: null } });
      if (mode === 'endless') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return this.endless(res, `{"id":"${id}","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"`);
      }
      const completion = {
        id,
        object: 'chat.completion',
        created: Math.floor(Date.now() / 1000),
        model,
        choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: 'stop' }],
        usage: { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 },
      };
      json(res, 200, completion);
      if (mode === 'ok') this.completed++;
      return;
    }

    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const chunk = (delta: Record<string, unknown>, finish: string | null) =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created: 0, model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], usage: null })}\n\n`;
    const pieces = [chunk({ role: 'assistant', content: '' }, null)];
    for (let i = 0; i < o.chunks; i++) pieces.push(chunk({ content: i === 0 ? content : ` #${i}` }, null));
    pieces.push(chunk({}, 'stop'));
    pieces.push(
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created: 0, model, choices: [], usage: { prompt_tokens: 5, completion_tokens: o.chunks, total_tokens: 5 + o.chunks } })}\n\n`,
    );
    const faulty = mode !== 'ok';
    for (let i = 0; i < pieces.length; i++) {
      if (faulty && i === o.faultAfterChunks) return this.fault(mode, res);
      if (res.destroyed) return;
      res.write(pieces[i]);
      if (o.chunkDelayMs > 0) await sleep(o.chunkDelayMs);
    }
    if (faulty) return this.fault(mode, res);
    res.end('data: [DONE]\n\n');
    this.completed++;
  }

  /** `endless`: `prefix`, then text that never ends (no closing quote, no newline), until the reader lets go. */
  private endless(res: ServerResponse, prefix: string): void {
    void writeEndless(res, prefix, 'x'.repeat(16 * 1024)).then((written) => endlessWritten.push(written));
  }

  private fault(mode: FaultMode, res: ServerResponse): void {
    switch (mode) {
      case 'stall':
        return; // silent, body never ends
      case 'cutMidStream':
        return void res.destroy();
      case 'malformedChunk':
        return void res.end('data: {"id": "chatcmpl-broken", "choices": [{"delta": {"content": "x"\n\n');
      case 'inbandError':
        return void res.end(
          `data: ${JSON.stringify({ error: { message: 'upstream model crashed mid-stream', type: 'server_error', param: null, code: null } })}\n\n`,
        );
      case 'endless':
        return this.endless(res, 'data: {"id":"chatcmpl-endless","choices":[{"index":0,"delta":{"content":"');
      default:
        return void res.destroy();
    }
  }
}

/** How much an `endless` answer wrote before the reader let go of it, per request (bytes). */
export const endlessWritten: number[] = [];

function zeroModes(): Record<FaultMode, number> {
  return Object.fromEntries(FAULT_MODES.map((m) => [m, 0])) as Record<FaultMode, number>;
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

export async function startFaultUpstream(name: string): Promise<FaultUpstream> {
  return new FaultUpstream(name).start();
}

// ---- client side of the fault harness ------------------------------------------------------------------

export interface ChatResult {
  /** HTTP status; 0 when the request itself failed (connection refused or reset) */
  status: number;
  requestId: string | null;
  /** x-switchyard-channel */
  channel: string | null;
  /** x-switchyard-peer (null = a local channel served it) */
  peer: string | null;
  /** non-stream: the parsed body */
  body: any;
  /** stream: the raw SSE text as received */
  raw: string;
  /** stream: data payloads in order (JSON text or `[DONE]`) */
  events: string[];
  /** stream: content deltas received before the end */
  contentChunks: number;
  /** stream: the body ended with `data: [DONE]` */
  done: boolean;
  /** stream: the error event's `error` object, when the stream ended with one */
  errorEvent: { message: string; type: string; code: string | null } | null;
  /** the transport failure, when status is 0 */
  transportError: string | null;
}

/** One chat completion through a gateway, with raw SSE for streams. Never throws for HTTP or stream errors. */
export async function chat(
  baseUrl: string,
  o: { model: string; stream?: boolean; sessionId?: string; text?: string; timeoutMs?: number },
): Promise<ChatResult> {
  const out: ChatResult = {
    status: 0,
    requestId: null,
    channel: null,
    peer: null,
    body: undefined,
    raw: '',
    events: [],
    contentChunks: 0,
    done: false,
    errorEvent: null,
    transportError: null,
  };
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (o.sessionId) headers['x-session-id'] = o.sessionId;
  try {
    const res = await fetch(`${baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ model: o.model, stream: o.stream === true, messages: [{ role: 'user', content: o.text ?? 'hello' }] }),
      signal: AbortSignal.timeout(o.timeoutMs ?? 20_000),
    });
    out.status = res.status;
    out.requestId = res.headers.get('x-request-id');
    out.channel = res.headers.get('x-switchyard-channel');
    out.peer = res.headers.get('x-switchyard-peer');
    const text = await res.text();
    if (!o.stream || !(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
      out.raw = text;
      try {
        out.body = JSON.parse(text);
      } catch {
        out.body = text;
      }
      return out;
    }
    out.raw = text;
    for (const block of text.split('\n\n')) {
      const line = block.split('\n').find((l) => l.startsWith('data: '));
      if (!line) continue;
      const data = line.slice(6);
      out.events.push(data);
      if (data === '[DONE]') {
        out.done = true;
        continue;
      }
      try {
        const j = JSON.parse(data) as { error?: ChatResult['errorEvent']; choices?: Array<{ delta?: { content?: string } }> };
        if (j.error) out.errorEvent = j.error;
        else if (j.choices?.[0]?.delta?.content) out.contentChunks++;
      } catch {
        /* a malformed chunk relayed to the client would show up in events and fail the checks */
      }
    }
    return out;
  } catch (err) {
    out.transportError = String((err as Error).message ?? err);
    return out;
  }
}

/** Runs `total` calls of `fn` with at most `concurrency` at once; results in call order. */
export async function runConcurrent<T>(total: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(total);
  let next = 0;
  const worker = async () => {
    while (next < total) {
      const i = next++;
      results[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
  return results;
}

/** A stream "ended normally" only with [DONE] and no error event; an abnormal end must be an error event without [DONE]. */
export function streamVerdict(r: ChatResult): 'completed' | 'error-event' | 'fake-success' | 'other' {
  if (r.status !== 200) return 'other';
  if (r.done && !r.errorEvent) return 'completed';
  if (r.errorEvent && !r.done) return 'error-event';
  return r.done ? 'fake-success' : 'other';
}

export interface ChannelRow {
  id: string;
  channel: string;
  peer: string | null;
  inflight: number;
  health: {
    state: 'healthy' | 'ejected' | 'probing';
    ejections: number;
    ejectedUntil: number;
    reason: string | null;
    lastError: string | null;
    consecutiveFailures: number;
  };
}

export async function channelRows(baseUrl: string): Promise<ChannelRow[]> {
  const res = await fetch(`${baseUrl}/admin/channels`);
  if (!res.ok) throw new Error(`/admin/channels: HTTP ${res.status}`);
  return ((await res.json()) as { channels: ChannelRow[] }).channels;
}

export async function channelRow(baseUrl: string, id: string): Promise<ChannelRow | undefined> {
  return (await channelRows(baseUrl)).find((r) => r.id === id);
}

/** Short summary of results for failure messages. */
export function summarize(rs: ChatResult[]): string {
  const by = new Map<string, number>();
  for (const r of rs) {
    const httpError = r.status !== 200 && r.body && typeof r.body === 'object' ? (r.body as { error?: { message?: string } }).error?.message : undefined;
    const k = `${r.status} ${r.peer ? `${r.peer}/` : ''}${r.channel ?? '-'}${r.errorEvent ? ` err:${r.errorEvent.code ?? r.errorEvent.type} (${r.errorEvent.message})` : ''}${httpError ? ` (${httpError})` : ''}${r.transportError ? ` transport:${r.transportError}` : ''}`;
    by.set(k, (by.get(k) ?? 0) + 1);
  }
  return [...by.entries()].map(([k, n]) => `${n}× ${k}`).join('; ');
}
