/**
 * Regression: the CLI checked an admin reply's top-level fields only (ReplyShape, hand-written kind checks): a reply
 * whose fields held something else (an older or newer gateway, another service answering on the port) failed with a
 * TypeError's words (`Cannot read properties of undefined (reading 'join')`) or printed `undefined` in a table.
 * Each command's reply is now a zod schema (src/cli/replies.ts) of what it prints: such a reply is refused in one line
 * naming the URL and the field that was wrong, nothing on stdout, exit 1. Under `--json` (which prints the reply's
 * top-level field as sent) only that level is checked.
 *
 * A real HTTP server on port 0 answers each path prefix with its body; the real CLI (dist).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../ops/cli-run.js';

const TOKEN = 'deep-shape-admin-token-3c8e';
let server: Server;
let base: string;

const BODIES: Record<string, unknown> = {
  // a key without its name or models (a store written by something else)
  keys: { keys: [{ id: 'key_1', hint: 'sy-abc…', status: 'active' }] },
  // a usage row whose numbers are strings
  usage: { rows: [{ group: 'm', requests: '3', inputTokens: 1, outputTokens: 1, cachedTokens: 0, cost: 0 }], total: {} },
  // a channel without its health
  channels: { channels: [{ channel: 'c', provider: 'mock', peer: null, models: ['m'], inflight: 0, maxConcurrent: 1, latencyMsEwma: 0 }] },
  // a session show whose history is no list
  session: { session: { id: 's1', kind: 'acp', status: 'active', ownerGatewayId: 'g', version: 1, history: 'none' } },
};

beforeAll(async () => {
  server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(BODIES[req.url!.split('/')[1]!]));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
});

describe('a 2xx reply whose fields hold the wrong shape', () => {
  it.each([
    ['keys', ['keys', 'list'], '/admin/keys', 'no "keys.0.name" string'],
    ['usage', ['usage'], '/admin/usage?by=model', '"rows.0.requests" is a JSON string, not a number'],
    ['channels', ['channels', 'list'], '/admin/channels', 'no "channels.0.health" object'],
    ['session', ['sessions', 'show', 's1'], '/admin/sessions/s1', '"session.history" is a JSON string, not an array'],
  ])('%s: refused in one line naming the URL and the field', async (prefix, args, path, what) => {
    const r = await runCli([...args, '--url', `${base}/${prefix}`, '--token', TOKEN]);
    expect(r.stderr).toBe(`switchyard: unexpected reply from ${base}/${prefix}${path} (HTTP 200, ${what}); is this a Switchyard gateway?\n`);
    expect(r.stdout).toBe('');
    expect(r.code).toBe(1);
  });

  it('--json prints the top-level field as sent (nothing inside it is read)', async () => {
    const r = await runCli(['keys', 'list', '--json', '--url', `${base}/keys`, '--token', TOKEN]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual((BODIES.keys as { keys: unknown }).keys);
  });
});
