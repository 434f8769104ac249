/**
 * A local fake OpenClaw Gateway (WebSocket on 127.0.0.1, port 0) that follows the documented protocol
 * (docs/gateway/protocol.md, packages/gateway-protocol/src/schema/{frames,logs-chat}.ts):
 *
 * - on open: event `connect.challenge { nonce, ts }`; the first frame must be a `connect` req (≤ 64 KiB), else
 *   an INVALID_REQUEST error and close 1008; params are checked like the server's closed schema (unknown fields
 *   rejected), the protocol window must include the server's protocol, client.id/mode from the closed enums,
 *   role operator, operator scopes only, `auth.token` must match (else INVALID_REQUEST with
 *   details.code AUTH_TOKEN_MISMATCH, close 1008). Device-less connects keep their scopes only on the trust path
 *   (client gateway-client + mode backend, loopback, shared token); otherwise scopes are cleared.
 * - hello-ok with protocol 4 (or 3 when configured), server/features/snapshot/auth/policy.
 * - `tick { ts }` every tickIntervalMs; per-connection monotonically increasing event `seq`.
 * - `chat.send` → ack `{ runId, status:"started" }` (a repeated idempotency key → same runId, "in_flight"), then
 *   `chat` events broadcast to every authenticated connection: `delta` (v4 `deltaText` and, as real v4 servers
 *   send it, the cumulative `message` so far; v3 the cumulative `message` only) … `final` | `error`;
 *   `chat.abort` → `aborted` event (without a runId: every run of the session key, as OpenClaw does).
 * Scriptable: per-send scripts (chunks, slow stream, replace, error, hang, drop mid-run), stop ticking, drop
 * connections, refuse chat.send by dropping before the ack, UNAVAILABLE at connect with retryAfterMs.
 * Misbehaving on purpose (for the fault tests): a handshake without a challenge or without an answer, a connect
 * refused with any error shape, a hello-ok naming another protocol, requests answered with raw frames of the
 * test's choosing (`answer`), raw text or binary frames sent to every authenticated connection (`sendRaw`; a
 * Buffer sent as text need not be UTF-8), connections no longer read (`stopReading`), a run started whose
 * `chat.send` is never acknowledged (`ackLost`), a huge frame before the challenge or instead of hello-ok
 * (`preAuthFrame`), recording whether all of it could be written before the client closed, and a hello-ok padded
 * to a size of the test's choosing (`helloBytes`).
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { wsSocket } from '../../src/util/ws-internals.js';

export interface FakeChunk {
  text: string;
  /** v4 only: send as a full-content refresh (`replace: true`, deltaText = whole text so far) */
  replace?: boolean;
}

export interface FakeRunScript {
  /** assistant text pieces, in order; default: the echo reply in three pieces */
  chunks?: Array<string | FakeChunk>;
  /** delay before each chunk and before the terminal event (slow stream); default 5 ms */
  delayMs?: number;
  /** how the run ends; default final */
  end?: 'final' | 'error' | 'hang' | 'drop';
  error?: { errorMessage?: string; errorKind?: 'refusal' | 'timeout' | 'rate_limit' | 'context_length' | 'unknown' };
  stopReason?: string;
}

export interface FakeOpenClawOptions {
  token?: string;
  /** the protocol this server speaks (4 = current, 3 = older gateway with cumulative deltas only) */
  protocol?: 3 | 4;
  tickIntervalMs?: number;
  /** answer this many connects with UNAVAILABLE (startup-sidecars) + retryAfterMs */
  unavailableConnects?: number;
  retryAfterMs?: number;
  /** put the presented token into the auth error message (to test that clients scrub it) */
  echoTokenInErrors?: boolean;
  /** per chat.send; default: `Echo: <message>` in three pieces */
  script?: (params: { sessionKey: string; message: string; idempotencyKey: string }) => FakeRunScript;
}

export interface RecordedRequest {
  connId: string;
  method: string;
  params: any;
}

interface Conn {
  id: string;
  ws: WebSocket;
  authed: boolean;
  scopes: string[];
  seq: number;
  tick?: NodeJS.Timeout;
}

interface ActiveRun {
  runId: string;
  sessionKey: string;
  text: string;
  seq: number;
  stopped: boolean;
  timers: NodeJS.Timeout[];
}

const CLIENT_IDS = new Set([
  'cli',
  'gateway-client',
  'webchat',
  'webchat-ui',
  'openclaw-control-ui',
  'openclaw-tui',
  'openclaw-macos',
  'openclaw-ios',
  'openclaw-android',
  'node-host',
  'test',
]);
const CLIENT_MODES = new Set(['webchat', 'cli', 'ui', 'backend', 'node', 'worker', 'probe', 'test']);
const OPERATOR_SCOPES = new Set([
  'operator.read',
  'operator.write',
  'operator.admin',
  'operator.approvals',
  'operator.pairing',
  'operator.talk',
  'operator.talk.secrets',
]);
const CONNECT_KEYS = new Set([
  'minProtocol',
  'maxProtocol',
  'client',
  'caps',
  'commands',
  'permissions',
  'pathEnv',
  'role',
  'scopes',
  'device',
  'auth',
  'locale',
  'userAgent',
]);
const CLIENT_KEYS = new Set(['id', 'displayName', 'version', 'platform', 'deviceFamily', 'modelIdentifier', 'mode', 'instanceId']);
const AUTH_KEYS = new Set(['token', 'bootstrapToken', 'deviceToken', 'password', 'approvalRuntimeToken', 'agentRuntimeIdentityToken']);
const CHAT_SEND_KEYS = new Set([
  'sessionKey',
  'agentId',
  'sessionId',
  'message',
  'thinking',
  'fastMode',
  'deliver',
  'attachments',
  'timeoutMs',
  'idempotencyKey',
]);
const CHAT_ABORT_KEYS = new Set(['sessionKey', 'agentId', 'runId']);
const PRE_AUTH_MAX = 64 * 1024;

const unknownKeys = (o: Record<string, unknown>, allowed: Set<string>): string[] => Object.keys(o).filter((k) => !allowed.has(k));
const nonEmpty = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

export class FakeOpenClaw {
  readonly token: string;
  protocol: 3 | 4;
  tickIntervalMs: number;
  ticking = true;
  unavailableConnects: number;
  retryAfterMs: number;
  echoTokenInErrors: boolean;
  script: NonNullable<FakeOpenClawOptions['script']>;
  /** chat.send frames to drop (close the socket without processing) before acknowledging */
  dropOnChatSend = 0;
  /** methods the fake records but never answers (request timeouts) */
  readonly unanswered = new Set<string>();
  /** delay before chat.send is acknowledged (and its run starts) */
  ackDelayMs = 0;
  /** chat.send starts its run but is never acknowledged (the client's request times out, the run goes on) */
  ackLost = false;
  /**
   * chat.send is acknowledged only after its run's first this many delta events (a real server's ack and its
   * first events can reach the client in either order); 0: before the run starts
   */
  ackAfterChunks = 0;
  /** v4 deltas also carry the cumulative `message` so far, as real v4 servers send them (default true) */
  deltaMessage = true;
  /**
   * Sends one text frame of this many bytes before the challenge (`before: "challenge"`) or instead of hello-ok
   * (`before: "hello"`), then nothing else on that connection. `preAuthFrameResult` says whether all of it was
   * written out (false: the client closed first).
   */
  preAuthFrame: { bytes: number; before: 'challenge' | 'hello' } | undefined;
  preAuthFrameResult: { flushed: boolean } | undefined;
  /** `silent`: no connect.challenge; `no-answer`: a challenge, then `connect` is never answered */
  handshake: 'normal' | 'silent' | 'no-answer' = 'normal';
  /** refuse every connect with this error shape (and close 1008) */
  connectError: Record<string, unknown> | undefined;
  /** the protocol hello-ok names, whatever the client asked for (default: `protocol`) */
  helloProtocol: number | undefined;
  /**
   * Pads hello-ok's `snapshot.presence` with entries until the frame is at least this many bytes (a real gateway
   * with many devices connected, or a large health report, sends a hello-ok well over 64 KiB)
   */
  helloBytes: number | undefined;
  /**
   * Answers a request (after connect) with these raw frames instead of the normal handling: a string goes out
   * as is, anything else JSON-encoded. Undefined: handled normally.
   */
  answer: ((req: { id: string; method: string; params: any }) => unknown[] | undefined) | undefined;

  /** every connect attempt's params, in order */
  readonly connects: any[] = [];
  /** every request after connect (chat.send, chat.abort, …) */
  readonly requests: RecordedRequest[] = [];
  /** close codes/reasons the server saw from clients */
  readonly clientCloses: Array<{ code: number; reason: string }> = [];
  /** the challenge nonces sent, per connection */
  readonly nonces: string[] = [];
  connections = 0;

  private wss!: WebSocketServer;
  private readonly conns = new Set<Conn>();
  private readonly runs = new Map<string, ActiveRun>();
  private readonly byIdem = new Map<string, string>();

  constructor(o: FakeOpenClawOptions = {}) {
    this.token = o.token ?? 'fake-openclaw-token';
    this.protocol = o.protocol ?? 4;
    this.tickIntervalMs = o.tickIntervalMs ?? 15_000;
    this.unavailableConnects = o.unavailableConnects ?? 0;
    this.retryAfterMs = o.retryAfterMs ?? 200;
    this.echoTokenInErrors = o.echoTokenInErrors ?? false;
    this.script = o.script ?? ((p) => ({ chunks: splitIn(`Echo: ${p.message}`, 3) }));
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.wss.address() as AddressInfo).port}`;
  }

  get chatSends(): RecordedRequest[] {
    return this.requests.filter((r) => r.method === 'chat.send');
  }

  get aborts(): RecordedRequest[] {
    return this.requests.filter((r) => r.method === 'chat.abort');
  }

  /** runs that are still streaming */
  get activeRuns(): number {
    return [...this.runs.values()].filter((r) => !r.stopped).length;
  }

  async start(): Promise<this> {
    this.wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 25 * 1024 * 1024 });
    this.wss.on('connection', (ws) => this.onConnection(ws));
    await new Promise<void>((resolve) => this.wss.once('listening', () => resolve()));
    return this;
  }

  /** Sends one raw frame (text, or binary when `binary`) to every authenticated connection. */
  sendRaw(data: string | Buffer, binary = false): void {
    for (const c of this.conns) if (c.authed && c.ws.readyState === c.ws.OPEN) c.ws.send(data, { binary });
  }

  /** The runId the server gave the run of this idempotency key (once chat.send was taken). */
  runIdOf(idempotencyKey: string): string | undefined {
    return this.byIdem.get(idempotencyKey);
  }

  /**
   * Stops reading from every client connection (a server that is stuck, or a proxy in between): what the client
   * sends, a close frame included, is never read, so a close handshake the client starts is never answered.
   */
  stopReading(): void {
    for (const c of this.conns) wsSocket(c.ws)?.pause();
  }

  /** Closes every client connection (as a crashed or restarted gateway would). */
  dropAll(code = 1012, reason = 'service restart'): void {
    for (const c of this.conns) c.ws.close(code, reason);
  }

  async close(): Promise<void> {
    for (const r of this.runs.values()) this.stopRun(r);
    for (const c of this.conns) {
      if (c.tick) clearInterval(c.tick);
      c.ws.terminate();
    }
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  // ------------------------------------------------------------------------------------------------------------

  private send(c: Conn, frame: unknown): void {
    if (c.ws.readyState === c.ws.OPEN) c.ws.send(JSON.stringify(frame));
  }

  private event(c: Conn, event: string, payload: unknown): void {
    this.send(c, { type: 'event', event, payload, seq: c.seq++ });
  }

  private res(c: Conn, id: string, ok: boolean, body: unknown): void {
    this.send(c, ok ? { type: 'res', id, ok: true, payload: body } : { type: 'res', id, ok: false, error: body });
  }

  private onConnection(ws: WebSocket): void {
    this.connections++;
    const c: Conn = { id: randomUUID(), ws, authed: false, scopes: [], seq: 0 };
    this.conns.add(c);
    const nonce = randomUUID();
    this.nonces.push(nonce);
    if (this.preAuthFrame?.before === 'challenge') this.sendHuge(c, this.preAuthFrame.bytes);
    else if (this.handshake !== 'silent') this.event(c, 'connect.challenge', { nonce, ts: Date.now() });
    ws.on('message', (data, isBinary) => {
      const raw = data.toString();
      if (!c.authed && (isBinary || Buffer.byteLength(raw) > PRE_AUTH_MAX)) {
        ws.close(1009, 'pre-auth frame too large');
        return;
      }
      let f: any;
      try {
        f = JSON.parse(raw);
      } catch {
        if (!c.authed) ws.close(1008, 'invalid frame');
        return;
      }
      if (!c.authed) this.onHandshakeFrame(c, f);
      else this.onRequest(c, f);
    });
    ws.on('close', (code, reason) => {
      this.clientCloses.push({ code, reason: reason.toString() });
      if (c.tick) clearInterval(c.tick);
      this.conns.delete(c);
    });
    ws.on('error', () => undefined);
  }

  /** one text frame of `bytes` bytes (a JSON event padded with spaces); records whether it all went out */
  private sendHuge(c: Conn, bytes: number): void {
    const head = JSON.stringify({ type: 'event', event: 'tick', payload: { ts: Date.now() } });
    const frame = head + ' '.repeat(Math.max(0, bytes - head.length));
    c.ws.send(frame, (err) => (this.preAuthFrameResult = { flushed: !err }));
  }

  private refuse(c: Conn, id: string, error: Record<string, unknown>, closeCode = 1008): void {
    this.res(c, id, false, error);
    setTimeout(() => c.ws.close(closeCode, String(error.code)), 5);
  }

  private onHandshakeFrame(c: Conn, f: any): void {
    const id = nonEmpty(f?.id) ? f.id : 'unknown';
    if (f?.type !== 'req' || f.method !== 'connect') {
      return this.refuse(c, id, { code: 'INVALID_REQUEST', message: 'first request must be connect' });
    }
    const p = f.params;
    this.connects.push(p);
    if (this.handshake !== 'normal') return;
    if (this.preAuthFrame?.before === 'hello') return this.sendHuge(c, this.preAuthFrame.bytes);
    if (this.connectError) return this.refuse(c, id, this.connectError);
    const invalid = (message: string) => this.refuse(c, id, { code: 'INVALID_REQUEST', message });
    if (typeof p !== 'object' || p === null) return invalid('connect params required');
    const extra = unknownKeys(p, CONNECT_KEYS);
    if (extra.length) return invalid(`invalid connect params: unexpected property ${extra[0]}`);
    if (!Number.isInteger(p.minProtocol) || !Number.isInteger(p.maxProtocol)) return invalid('invalid connect params: protocol');
    if (p.minProtocol > this.protocol || p.maxProtocol < this.protocol) {
      return this.refuse(c, id, { code: 'INVALID_REQUEST', message: 'protocol mismatch', details: { expectedProtocol: this.protocol } }, 1002);
    }
    const cl = p.client;
    if (typeof cl !== 'object' || cl === null || unknownKeys(cl, CLIENT_KEYS).length) return invalid('invalid connect params: client');
    if (!CLIENT_IDS.has(cl.id) || !CLIENT_MODES.has(cl.mode) || !nonEmpty(cl.version) || !nonEmpty(cl.platform))
      return invalid('invalid connect params: client');
    if (p.role !== undefined && p.role !== 'operator') return invalid('this fake only accepts operators');
    const scopes: unknown[] = Array.isArray(p.scopes) ? p.scopes : [];
    if (scopes.some((s) => typeof s !== 'string' || !OPERATOR_SCOPES.has(s))) return invalid('invalid connect params: scopes');
    if (p.caps !== undefined && !Array.isArray(p.caps)) return invalid('invalid connect params: caps');
    const auth = p.auth ?? {};
    if (typeof auth !== 'object' || unknownKeys(auth, AUTH_KEYS).length) return invalid('invalid connect params: auth');
    if (this.unavailableConnects > 0) {
      this.unavailableConnects--;
      return this.refuse(
        c,
        id,
        { code: 'UNAVAILABLE', message: 'gateway is starting', details: { reason: 'startup-sidecars' }, retryable: true, retryAfterMs: this.retryAfterMs },
        1013,
      );
    }
    if (auth.token !== this.token) {
      const message = this.echoTokenInErrors ? `unauthorized: gateway token mismatch (got ${String(auth.token)})` : 'unauthorized: gateway token mismatch';
      return this.refuse(c, id, { code: 'INVALID_REQUEST', message, details: { code: auth.token ? 'AUTH_TOKEN_MISMATCH' : 'AUTH_TOKEN_MISSING' } });
    }
    // device-less operators keep their scopes only on the loopback backend trust path
    const trusted = p.device === undefined && cl.id === 'gateway-client' && cl.mode === 'backend';
    c.scopes = trusted || p.device !== undefined ? (scopes as string[]) : [];
    c.authed = true;
    const presence: unknown[] = [];
    const hello = {
      type: 'hello-ok',
      protocol: this.helloProtocol ?? this.protocol,
      server: { version: '2026.0.0-fake', connId: c.id },
      features: { methods: ['chat.send', 'chat.abort', 'chat.history', 'health'], events: ['chat', 'agent', 'tick', 'shutdown'] },
      snapshot: { presence, health: {}, stateVersion: { presence: 0, health: 0 }, uptimeMs: 1, authMode: 'token' },
      auth: { role: 'operator', scopes: c.scopes },
      policy: { maxPayload: 25 * 1024 * 1024, maxBufferedBytes: 50 * 1024 * 1024, tickIntervalMs: this.tickIntervalMs },
    };
    if (this.helloBytes !== undefined) {
      const entry = (i: number) => ({ host: `device-${i}`, ip: '127.0.0.1', version: '2026.0.0', platform: 'linux', mode: 'node', text: 'x'.repeat(900) });
      const size = Buffer.byteLength(JSON.stringify({ type: 'res', id, ok: true, payload: hello }));
      const per = Buffer.byteLength(JSON.stringify(entry(0))) + 1;
      for (let i = 0; i < Math.ceil((this.helloBytes - size) / per); i++) presence.push(entry(i));
    }
    this.res(c, id, true, hello);
    c.tick = setInterval(() => {
      if (this.ticking) this.event(c, 'tick', { ts: Date.now() });
    }, this.tickIntervalMs);
  }

  private onRequest(c: Conn, f: any): void {
    if (f?.type !== 'req' || !nonEmpty(f.id) || !nonEmpty(f.method)) return; // unknown frame types (e.g. cancel) are ignored
    this.requests.push({ connId: c.id, method: f.method, params: f.params });
    if (this.unanswered.has(f.method)) return;
    const frames = this.answer?.({ id: f.id, method: f.method, params: f.params });
    if (frames) {
      for (const fr of frames) if (c.ws.readyState === c.ws.OPEN) c.ws.send(typeof fr === 'string' ? fr : JSON.stringify(fr));
      return;
    }
    const p = f.params ?? {};
    const invalid = (message: string) => this.res(c, f.id, false, { code: 'INVALID_REQUEST', message });
    const forbidden = (scope: string) =>
      this.res(c, f.id, false, {
        code: 'FORBIDDEN',
        message: `missing scope: ${scope}`,
        details: { code: 'MISSING_SCOPE', missingScope: scope, requiredScopes: [scope] },
      });
    switch (f.method) {
      case 'chat.send': {
        if (this.dropOnChatSend > 0) {
          this.dropOnChatSend--;
          c.ws.terminate();
          return;
        }
        if (!c.scopes.includes('operator.write')) return forbidden('operator.write');
        if (unknownKeys(p, CHAT_SEND_KEYS).length) return invalid(`invalid chat.send params: unexpected property ${unknownKeys(p, CHAT_SEND_KEYS)[0]}`);
        if (!nonEmpty(p.sessionKey) || typeof p.message !== 'string' || !nonEmpty(p.idempotencyKey)) return invalid('invalid chat.send params');
        const seen = this.byIdem.get(p.idempotencyKey);
        if (seen) return this.res(c, f.id, true, { runId: seen, status: 'in_flight' });
        const runId = randomUUID();
        this.byIdem.set(p.idempotencyKey, runId);
        const go = () => {
          const ack = () => {
            if (!this.ackLost) this.res(c, f.id, true, { runId, status: 'started' });
          };
          const ackAfter = this.ackAfterChunks;
          if (ackAfter === 0) ack();
          const script = this.script({ sessionKey: p.sessionKey, message: p.message, idempotencyKey: p.idempotencyKey });
          this.startRun(runId, p.sessionKey, script, ackAfter > 0 ? { after: ackAfter, then: ack } : undefined);
        };
        if (this.ackDelayMs > 0) setTimeout(go, this.ackDelayMs);
        else go();
        return;
      }
      case 'chat.abort': {
        if (!c.scopes.includes('operator.write')) return forbidden('operator.write');
        if (unknownKeys(p, CHAT_ABORT_KEYS).length || !nonEmpty(p.sessionKey)) return invalid('invalid chat.abort params');
        const hit = [...this.runs.values()].filter((r) => !r.stopped && r.sessionKey === p.sessionKey && (p.runId === undefined || r.runId === p.runId));
        for (const r of hit) {
          this.stopRun(r);
          this.broadcast({ runId: r.runId, sessionKey: r.sessionKey, seq: r.seq++, state: 'aborted', message: assistant(r.text), stopReason: 'aborted' });
        }
        this.res(c, f.id, true, { ok: true, aborted: hit.length > 0, runIds: hit.map((r) => r.runId) });
        return;
      }
      case 'health':
        this.res(c, f.id, true, { ok: true });
        return;
      default:
        this.res(c, f.id, false, { code: 'INVALID_REQUEST', message: `unknown method: ${f.method}` });
    }
  }

  /** chat events go to every authenticated connection that has operator.read (OpenClaw broadcasts them) */
  broadcast(payload: Record<string, unknown>): void {
    for (const c of this.conns) if (c.authed && c.scopes.includes('operator.read')) this.event(c, 'chat', payload);
  }

  private stopRun(r: ActiveRun): void {
    r.stopped = true;
    for (const t of r.timers) clearTimeout(t);
  }

  /** `hook`: called right after the run's `after`-th delta event */
  private startRun(runId: string, sessionKey: string, s: FakeRunScript, hook?: { after: number; then: () => void }): void {
    const r: ActiveRun = { runId, sessionKey, text: '', seq: 0, stopped: false, timers: [] };
    this.runs.set(runId, r);
    const delay = s.delayMs ?? 5;
    const steps: Array<() => void> = [];
    for (const raw of s.chunks ?? []) {
      const ch: FakeChunk = typeof raw === 'string' ? { text: raw } : raw;
      steps.push(() => {
        r.text = ch.replace ? ch.text : r.text + ch.text;
        const base = { runId, sessionKey, seq: r.seq++, state: 'delta' };
        const message = this.deltaMessage ? { message: assistant(r.text) } : {};
        if (this.protocol >= 4)
          this.broadcast(ch.replace ? { ...base, deltaText: r.text, replace: true, ...message } : { ...base, deltaText: ch.text, ...message });
        else this.broadcast({ ...base, message: assistant(r.text) });
        if (hook && r.seq === hook.after) hook.then();
      });
    }
    const end = s.end ?? 'final';
    steps.push(() => {
      if (end === 'hang') return;
      if (end === 'drop') {
        this.stopRun(r);
        for (const c of this.conns) c.ws.terminate();
        return;
      }
      this.stopRun(r);
      if (end === 'error')
        this.broadcast({
          runId,
          sessionKey,
          seq: r.seq++,
          state: 'error',
          errorMessage: s.error?.errorMessage ?? 'model failed',
          errorKind: s.error?.errorKind ?? 'unknown',
        });
      else this.broadcast({ runId, sessionKey, seq: r.seq++, state: 'final', message: assistant(r.text), stopReason: s.stopReason ?? 'stop' });
    });
    let at = 0;
    for (const step of steps) {
      at += delay;
      r.timers.push(
        setTimeout(() => {
          if (!r.stopped) step();
        }, at),
      );
    }
  }
}

function assistant(text: string): Record<string, unknown> {
  return { role: 'assistant', content: [{ type: 'text', text }], timestamp: Date.now() };
}

export function splitIn(text: string, n: number): string[] {
  const size = Math.ceil(text.length / n);
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

export async function startFakeOpenClaw(o: FakeOpenClawOptions = {}): Promise<FakeOpenClaw> {
  return new FakeOpenClaw(o).start();
}
