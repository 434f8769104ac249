/**
 * The trivial ACP agent of the `/acp/rpc` row: ACP v1 over stdio NDJSON (JSON-RPC 2.0), answering
 * `initialize` and `session/new`, and each `session/prompt` with ONE `agent_message_chunk` and then
 * `stopReason: end_turn`. It does no work, so what the harness measures on top of it is the gateway's.
 *
 * The chunk's text is a JSON timing record in epoch milliseconds with sub-millisecond precision
 * (`performance.timeOrigin + performance.now()`, comparable across processes on one machine):
 * `{ bench: 'acp-agent', start, initialize, prompt, update }` — process start, `initialize` received,
 * `session/prompt` received, first update written. `update − prompt` is the agent's own latency.
 * With `BENCH_ACP_READY_FILE` set, each process appends its pid there once it answered `initialize`.
 */
import { appendFileSync } from 'node:fs';

const now = () => performance.timeOrigin + performance.now();
/** the harness waits on this file (one line per agent past `initialize`) for the gateway's warm process */
const READY_FILE = process.env.BENCH_ACP_READY_FILE;
const start = performance.timeOrigin;
let initializeAt = 0;
let buf = '';

interface Msg {
  id?: number | string;
  method?: string;
  params?: { sessionId?: string };
}

const send = (msg: object): void => void process.stdout.write(JSON.stringify({ jsonrpc: '2.0', ...msg }) + '\n');

function handle(msg: Msg): void {
  if (msg.method === undefined || msg.id === undefined) return; // responses and notifications (session/cancel)
  switch (msg.method) {
    case 'initialize':
      initializeAt = now();
      send({
        id: msg.id,
        result: { protocolVersion: 1, agentCapabilities: { loadSession: false }, authMethods: [], agentInfo: { name: 'bench-agent', version: '1' } },
      });
      if (READY_FILE) appendFileSync(READY_FILE, `${process.pid}\n`);
      return;
    case 'session/new':
      return send({ id: msg.id, result: { sessionId: `bench-${process.pid}` } });
    case 'session/prompt': {
      const prompt = now();
      const text = JSON.stringify({ bench: 'acp-agent', start, initialize: initializeAt, prompt, update: now() });
      send({
        method: 'session/update',
        params: { sessionId: msg.params?.sessionId, update: { sessionUpdate: 'agent_message_chunk', content: { type: 'text', text } } },
      });
      return send({ id: msg.id, result: { stopReason: 'end_turn' } });
    }
    default:
      return send({ id: msg.id, error: { code: -32601, message: `method not found: ${msg.method}` } });
  }
}

process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  buf += chunk;
  let nl: number;
  while ((nl = buf.indexOf('\n')) !== -1) {
    const line = buf.slice(0, nl);
    buf = buf.slice(nl + 1);
    if (line.trim()) handle(JSON.parse(line) as Msg);
  }
});
process.stdin.on('end', () => process.exit(0));
