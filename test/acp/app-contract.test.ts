/**
 * Issue 12: the xworkmate app's own request shapes (acp-rpc.md and the 2026-10 addendum, with its `/Users/...`
 * paths and `metadata`) against a real in-process gateway, over HTTP, SSE and WebSocket.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { cleanupDirs, startInProcess, tmpDir } from '../helpers/env.js';
import type { Gateway } from '../../src/gateway.js';

const TOKEN = 'app-contract-token-1';
const FAKE_AGENT = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const root = join(tmpDir('sy-app-ws-'), 'workspaces');

let gw: Gateway;
beforeAll(async () => {
  gw = await startInProcess({
    channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
    acp: {
      tokens: [TOKEN],
      workspaceRoot: root,
      agents: [{ id: 'fake', label: 'Fake Agent', command: process.execPath, args: [FAKE_AGENT], permissions: 'allow' }],
      gateways: [{ id: 'switchyard', label: 'Switchyard', kind: 'channels', model: 'mock-1' }],
    },
  });
});
afterAll(async () => {
  await gw?.close();
  cleanupDirs();
});

type Json = any;
let n = 0;
async function http(method: string, params: Record<string, unknown>): Promise<Json> {
  const res = await fetch(`${gw.url}/acp/rpc`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: `req-${++n}`, method, params }),
  });
  return res.json();
}
async function sse(method: string, params: Record<string, unknown>): Promise<{ final: Json; updates: Json[] }> {
  const res = await fetch(`${gw.url}/acp/rpc`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: `req-${++n}`, method, params }),
  });
  const text = await res.text();
  const msgs = text.split('\n\n').filter((b) => b.startsWith('data: ') && b !== 'data: [DONE]').map((b) => JSON.parse(b.slice(6)));
  return { final: msgs.find((m) => 'id' in m), updates: msgs.filter((m) => m.method === 'session.update').map((m) => m.params) };
}
async function ws(method: string, params: Record<string, unknown>): Promise<{ final: Json; updates: Json[] }> {
  const sock = new WebSocket(gw.url.replace(/^http/, 'ws') + '/acp', { headers: { authorization: `Bearer ${TOKEN}` } });
  await new Promise((r, j) => (sock.once('open', r), sock.once('error', j)));
  const updates: Json[] = [];
  const id = `ws-${++n}`;
  const final = await new Promise<Json>((resolve) => {
    sock.on('message', (d) => {
      const m = JSON.parse(d.toString());
      if (m.method === 'session.update') updates.push(m.params);
      else if (m.id === id) resolve(m);
    });
    sock.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
  });
  sock.close();
  return { final, updates };
}

/** session.start as the app sends it for a local agent task (acp-rpc.md; the app's routing object). */
const appStart = (sessionId: string, taskPrompt: string, workingDirectory: string) => ({
  sessionId,
  threadId: sessionId,
  taskPrompt,
  workingDirectory,
  provider: 'fake',
  requestedExecutionTarget: 'agent',
  routing: { routingMode: 'explicit', explicitExecutionTarget: 'agent', explicitProviderId: 'fake', preferredGatewayProviderId: 'switchyard', explicitModel: '' },
  metadata: { source: 'xworkmate-app', xworkmateProductCapability: { schemaVersion: 1, mode: 'code' } },
});

describe('working directories from the app (absolute client paths)', () => {
  it('an absolute /Users/... path maps to a stable folder under the root, echoed back; never used raw', async () => {
    const r = await http('session.start', appStart('wd-1', 'cwd', '/Users/me/project'));
    expect(r.error).toBeUndefined();
    expect(r.result).toMatchObject({ success: true, status: 'completed', remoteWorkspaceRefKind: 'remotePath' });
    const rel: string = r.result.remoteWorkingDirectory;
    expect(rel).toMatch(/^clients\/project-[0-9a-f]{12}$/);
    expect(r.result.output).toContain(join(root, rel));
    expect(r.result.output).not.toContain('/Users/me');
    expect(existsSync(join(root, rel))).toBe(true);

    // the same app folder → the same server folder, for a new session and for the next message
    const again = await sse('session.start', appStart('wd-2', 'cwd', '/Users/me/project'));
    expect(again.final.result.remoteWorkingDirectory).toBe(rel);
    const msg = await http('session.message', { sessionId: 'wd-1', threadId: 'wd-1', taskPrompt: 'cwd', workingDirectory: '/Users/me/project' });
    expect(msg.result).toMatchObject({ status: 'completed', remoteWorkingDirectory: rel });
    expect(msg.result.output).toContain(join(root, rel));

    // another app folder → another server folder; Windows paths too; over the WebSocket
    const other = await ws('session.start', appStart('wd-3', 'cwd', 'C:\\Users\\me\\other'));
    expect(other.final.result.remoteWorkingDirectory).toMatch(/^clients\/other-[0-9a-f]{12}$/);
    expect(other.final.result.remoteWorkingDirectory).not.toBe(rel);
  });

  it('the confinement rules stay: ".." and NUL are refused, absolute or not', async () => {
    for (const wd of ['/Users/me/../../etc', '../x', 'a/\u0000b']) {
      const r = await http('session.start', appStart('wd-bad', 'cwd', wd));
      expect(r.error).toMatchObject({ code: -32602, data: { code: 'INVALID_PARAMS', field: 'workingDirectory' } });
    }
  });

  it('gateway paths accept the app path too and echo the mapped folder', async () => {
    const r = await http('session.start', { sessionId: 'wd-gw', taskPrompt: 'hello', workingDirectory: '/Users/me/project', requestedExecutionTarget: 'gateway', gatewayProviderId: 'switchyard' });
    expect(r.result).toMatchObject({ status: 'completed', remoteWorkspaceRefKind: 'remotePath' });
    expect(r.result.remoteWorkingDirectory).toMatch(/^clients\/project-[0-9a-f]{12}$/);
  });
});
