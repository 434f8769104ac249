/**
 * What a client names on `/acp` lands in logs and errors cut (`…` marking the cut):
 *
 * - A notification (no `id`) that fails is logged at debug with its `method`: a method name of any length was logged whole,
 *   over `POST /acp/rpc` and over the `/acp` WebSocket. Now its first 256 characters, as METHOD_NOT_FOUND quotes it.
 * - A disallowed `Origin` was quoted whole in the 403 (`/v1` quotes its first 100 characters; /acp now does too).
 *
 * Real gateway process (debug log), real HTTP and WebSocket clients.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startProcess, waitFor, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';

const ACP = 'text-bounds-acp-token-9b13';
const started = stopAfterAll();
let gw: GatewayProcess;

/** a name of `n` characters that tells its requests apart (`tag`) */
// 200 000 characters: the test reads the gateway's stderr, whose capture keeps 500 KB (a longer line is lost there)
const longName = (tag: string, n = 200_000): string => `${tag}.${'m'.repeat(n)}`;

/** the debug lines about failed notifications whose method starts with `tag` */
const notificationLines = (tag: string) =>
  gw
    .logs()
    .split('\n')
    .filter((l) => l.includes('acp notification failed') && l.includes(`"${tag}.`))
    .map((l) => JSON.parse(l) as { method: string });

beforeAll(async () => {
  gw = started.trackGateway(
    await startProcess(
      {
        gateway: { id: 'gw_text_bounds' },
        channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
        acp: { tokens: [ACP], gateways: [{ id: 'switchyard', label: 'Switchyard', kind: 'channels', model: 'mock-1' }] },
      },
      { SWITCHYARD_LOG: 'debug' },
    ),
  );
}, 60_000);

describe('a failed notification is logged with its method cut', () => {
  it('over POST /acp/rpc', async () => {
    const res = await fetch(`${gw.url}/acp/rpc`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ACP}`, 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', method: longName('http') }),
    });
    expect(res.status).toBe(204);
    const [line] = await waitFor(() => {
      const l = notificationLines('http');
      return l.length > 0 ? l : undefined;
    }, 'the debug line of the failed notification');
    expect(line!.method).toBe(`http.${'m'.repeat(251)}…`);
    expect(gw.logs()).not.toContain('m'.repeat(1000));
  });

  it('over the /acp WebSocket', async () => {
    const ws = new WebSocket(`${gw.url.replace(/^http/, 'ws')}/acp`, { headers: { authorization: `Bearer ${ACP}` } });
    await new Promise((r, j) => ws.once('open', r).once('error', j));
    ws.send(JSON.stringify({ jsonrpc: '2.0', method: longName('ws') }));
    const [line] = await waitFor(() => {
      const l = notificationLines('ws');
      return l.length > 0 ? l : undefined;
    }, 'the debug line of the failed notification');
    ws.close();
    expect(line!.method).toBe(`ws.${'m'.repeat(253)}…`);
    expect(gw.logs()).not.toContain('m'.repeat(1000));
  });
});

describe('a disallowed Origin is quoted cut in the 403', () => {
  it('its first 100 characters', async () => {
    const origin = `https://${'o'.repeat(8000)}.example`;
    const res = await fetch(`${gw.url}/acp/rpc`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ACP}`, 'content-type': 'application/json', origin },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'health' }),
    });
    expect(res.status).toBe(403);
    const body = (await res.json()) as any;
    expect(body.error.data.code).toBe('ORIGIN_NOT_ALLOWED');
    expect(body.error.message).toBe(`origin ${origin.slice(0, 100)}… is not allowed (acp.allowedOrigins)`);
  });
});
