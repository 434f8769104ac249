/**
 * A fake Ollama server speaking the real native wire format (ollama docs/api.md): `POST /api/chat` (JSON, or
 * NDJSON when `stream` is true or omitted, as on the real server), `POST /api/embed`, `GET /api/tags`, errors
 * as `{"error": "..."}` with a status, mid-stream errors as an `{"error": "..."}` line. A message's `images`
 * (any role) must be bare standard base64, as the server's Go binding requires, else 400. Driven by the shared
 * conformance Scenario, plus `scripts`: answers written exactly as given, for the wire's edge cases (error bodies,
 * in-band error lines, done reasons, malformed, split or long lines). Listens on 127.0.0.1, port chosen by the OS.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FakeUpstream, Scenario } from '../providers/conformance.js';

export interface OllamaScenario extends Scenario {
  /** pause between NDJSON lines, to observe that the gateway relays lines as they come */
  lineDelayMs?: number;
  /** model name the fake serves (listed by /api/tags); default "llama3.2:latest" */
  modelName?: string;
  /**
   * leave `prompt_eval_count` out of the final line and the embed answer, as Ollama does when the prompt was a
   * prompt-cache hit (its metrics are `omitempty`: nothing evaluated, nothing sent); read per request
   */
  omitPromptEvalCount?: boolean;
  /**
   * Scripted answers to `/api/chat` and `/api/embed`, by the model the request names (a function gets the
   * request's body): written exactly as given. A model without a script gets the scenario's usual answer.
   */
  scripts?: Record<string, OllamaScript | ((body: Record<string, unknown>) => OllamaScript)>;
  /**
   * The models the server has pulled: a chat or embed request naming another one is answered as the real server
   * answers it, 404 `{"error":"model \"x\" not found, try pulling it first"}`. Read per request, so a test may
   * "pull" one later. None: every model is served.
   */
  pulled?: string[];
}

/** One scripted answer: its status and headers, and its body as a list of writes, each flushed before the next. */
export interface OllamaScript {
  /** default 200 */
  status?: number;
  /** default `content-type: application/x-ndjson` */
  headers?: Record<string, string>;
  /** the body's writes in order (a Buffer may end inside a UTF-8 character) */
  writes: Array<string | Buffer>;
}

/** The fake as a test drives it: the FakeUpstream, and how many requests named each model. */
export interface OllamaFake extends FakeUpstream {
  requestsFor(model: string): number;
}

/** Ollama's lines as the server writes them: one JSON object, then a newline. */
export const ndjson = (...objects: unknown[]): string => objects.map((o) => JSON.stringify(o) + '\n').join('');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const words = (s: string) => s.split(/\s+/).filter(Boolean).length;
/** Ollama's timestamps: RFC 3339 with nanoseconds */
const stamp = () => new Date().toISOString().replace('Z', '123456Z');
const ns = (ms: number) => Math.round(ms * 1e6);

/** Deterministic, L2-normalised 16-dim vector from the text (as /api/embed returns normalised vectors). */
export function fakeVector(text: string): number[] {
  const h = createHash('sha256').update(text).digest();
  const raw = Array.from({ length: 16 }, (_, i) => (h[i]! - 127.5) / 127.5);
  const norm = Math.hypot(...raw) || 1;
  return raw.map((x) => x / norm);
}

function promptTokens(body: Record<string, unknown>): number {
  const msgs = Array.isArray(body.messages) ? (body.messages as Array<{ content?: unknown }>) : [];
  return msgs.reduce((n, m) => n + (typeof m.content === 'string' ? words(m.content) : 0) + 4, 0);
}

/**
 * The server's refusal of a message's `images`, as Go's JSON binding gives it (the field is `[]ImageData`, each a
 * `[]byte`: standard base64 with padding, no data: prefix), on a message of any role; undefined when they bind.
 */
function badImages(body: Record<string, unknown>): string | undefined {
  const msgs = Array.isArray(body.messages) ? (body.messages as Array<{ images?: unknown }>) : [];
  for (const m of msgs) {
    if (m.images === undefined || m.images === null) continue;
    if (!Array.isArray(m.images)) return 'json: cannot unmarshal string into Go struct field Message.messages.images of type []api.ImageData';
    for (const img of m.images) {
      if (typeof img !== 'string') return 'json: cannot unmarshal number into Go struct field Message.messages.images of type api.ImageData';
      const at = /[^A-Za-z0-9+/=]/.exec(img)?.index ?? (img.length % 4 === 0 ? -1 : img.length - (img.length % 4));
      if (at >= 0) return `illegal base64 data at input byte ${at}`;
    }
  }
  return undefined;
}

export async function startOllamaUpstream(scenario: OllamaScenario): Promise<OllamaFake> {
  const requests = new Map<string, number>();
  let lastRequest: Record<string, unknown> | undefined;
  let lastPath: string | undefined;
  let lastHeaders: IncomingMessage['headers'] | undefined;
  let markAborted!: () => void;
  const abortedP = new Promise<void>((r) => (markAborted = r));
  const modelName = scenario.modelName ?? 'llama3.2:latest';

  const json = (res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...extra });
    res.end(JSON.stringify(body));
  };

  async function chat(body: Record<string, unknown>, res: ServerResponse, cut: () => void): Promise<void> {
    const model = typeof body.model === 'string' ? body.model : modelName;
    const reply = scenario.reply ?? 'Hello from the fake Ollama.';
    const tc = scenario.toolCall;
    const pieces = tc ? [] : (reply.match(/\s*\S+/g) ?? [reply]);
    const evalCount = scenario.usage?.output ?? (tc ? 12 : pieces.length);
    const final = {
      done: true,
      done_reason: 'stop',
      total_duration: ns(850),
      load_duration: ns(3.7),
      ...(scenario.omitPromptEvalCount ? {} : { prompt_eval_count: scenario.usage?.input ?? promptTokens(body), prompt_eval_duration: ns(120) }),
      eval_count: evalCount,
      eval_duration: ns(700),
    };
    const toolCalls = tc ? [{ function: { name: tc.name, arguments: JSON.parse(tc.arguments) as unknown } }] : undefined;
    if (body.stream === false) {
      const message = { role: 'assistant', content: tc ? '' : reply, ...(toolCalls ? { tool_calls: toolCalls } : {}) };
      return json(res, 200, { model, created_at: stamp(), message, ...final });
    }
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    let flushed: Promise<void> = Promise.resolve();
    const line = (o: unknown) => (flushed = new Promise<void>((r) => res.write(JSON.stringify(o) + '\n', () => r())));
    const msgLine = (content: string, extra: Record<string, unknown> = {}) =>
      line({ model, created_at: stamp(), message: { role: 'assistant', content, ...extra }, done: false });
    if (toolCalls) void msgLine('', { tool_calls: toolCalls });
    for (let i = 0; i < pieces.length; i++) {
      if (scenario.cutAfterChunks !== undefined && i === scenario.cutAfterChunks) {
        await flushed; // the lines sent so far reach the client, then the connection dies
        return cut();
      }
      void msgLine(pieces[i]!);
      if (i === 0 && scenario.inbandError) {
        void line({ error: 'an error was encountered while running the model: unexpected EOF' });
        return void res.end();
      }
      if (i === 0 && scenario.malformedChunk) {
        res.write(`{"model":"${model}","created_at":"${stamp()}","message":{"role":"assistant","content":"tw\n`);
        return void res.end();
      }
      if (scenario.lineDelayMs) await sleep(scenario.lineDelayMs);
    }
    void line({ model, created_at: stamp(), message: { role: 'assistant', content: '' }, ...final });
    res.end();
  }

  function embed(body: Record<string, unknown>, res: ServerResponse): void {
    const input = body.input;
    const texts = typeof input === 'string' ? [input] : Array.isArray(input) && input.every((s) => typeof s === 'string') ? input : undefined;
    if (!texts) return json(res, 400, { error: 'invalid input type' });
    const model = typeof body.model === 'string' ? body.model : modelName;
    const count = texts.reduce((n, t) => n + words(t) + 1, 0);
    const counted = scenario.omitPromptEvalCount ? {} : { prompt_eval_count: count };
    json(res, 200, { model, embeddings: texts.map(fakeVector), total_duration: ns(14), load_duration: ns(1.2), ...counted });
  }

  async function play(script: OllamaScript, res: ServerResponse): Promise<void> {
    res.writeHead(script.status ?? 200, script.headers ?? { 'content-type': 'application/x-ndjson' });
    for (const w of script.writes) await new Promise<void>((r) => res.write(w, () => r()));
    res.end();
  }

  const tags = () => ({
    models: [
      {
        name: modelName,
        model: modelName,
        modified_at: '2025-05-01T10:00:00.000000000Z',
        size: 2019393189,
        digest: createHash('sha256').update(modelName).digest('hex'),
        details: { parent_model: '', format: 'gguf', family: 'llama', families: ['llama'], parameter_size: '3.2B', quantization_level: 'Q4_K_M' },
      },
    ],
  });

  const server = createServer((req, res) => {
    let cutByUs = false;
    res.on('close', () => {
      if (!res.writableEnded && !cutByUs) markAborted();
    });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = (req.url ?? '/').split('?')[0]!;
      lastPath = path;
      lastHeaders = req.headers;
      let body: Record<string, unknown> = {};
      try {
        const text = Buffer.concat(chunks).toString('utf8');
        body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
      } catch {
        return json(res, 400, { error: 'invalid character looking for beginning of value' });
      }
      if (path !== '/api/tags') lastRequest = body;
      const model = String(body.model);
      requests.set(model, (requests.get(model) ?? 0) + 1);
      const script = path === '/api/tags' ? undefined : scenario.scripts?.[model];
      if (script) return void play(typeof script === 'function' ? script(body) : script, res);
      if (scenario.pulled && path !== '/api/tags' && !scenario.pulled.includes(model))
        return json(res, 404, { error: `model ${JSON.stringify(model)} not found, try pulling it first` });
      if (scenario.hang) return;
      if (scenario.failStatus) {
        const msg =
          scenario.failStatus === 429
            ? 'server busy, please try again. maximum pending requests exceeded'
            : 'llama runner process has terminated: exit status 2';
        return json(res, scenario.failStatus, { error: msg }, scenario.retryAfter ? { 'retry-after': scenario.retryAfter } : {});
      }
      if (scenario.garbage) {
        res.writeHead(200, { 'content-type': 'text/html' });
        return void res.end('<html><body>502 Bad Gateway</body></html>');
      }
      if (req.method === 'GET' && path === '/api/tags') return json(res, 200, tags());
      if (req.method === 'POST' && path === '/api/embed') return embed(body, res);
      if (req.method === 'POST' && path === '/api/chat') {
        const bad = badImages(body);
        if (bad) return json(res, 400, { error: bad });
        const cut = () => {
          cutByUs = true;
          res.socket?.destroy();
        };
        return void chat(body, res, cut).catch(cut);
      }
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('404 page not found');
    });
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    channel: { name: 'ollama-fake', provider: 'ollama', baseUrl: `http://127.0.0.1:${port}`, timeoutMs: 10_000 },
    requestsFor: (model) => requests.get(model) ?? 0,
    lastRequest: () => lastRequest,
    lastPath: () => lastPath,
    lastHeaders: () => lastHeaders,
    aborted: () => abortedP,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
