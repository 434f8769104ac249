/**
 * Regression (issue 10.10, second part): a refused symlink's error named the absolute workspace path (the
 * server's directory layout) to the client. Errors now name the path relative to the workspace root. Through
 * /acp/rpc with the fake ACP agent (which sends absolute paths, as real agents do), and a symlinked
 * workingDirectory.
 */
import { mkdirSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupDirs, startInProcess, tmpDir } from '../helpers/env.js';
import type { Gateway } from '../../src/gateway.js';

const TOKEN = 'symlink-test-acp-token';
const FAKE_AGENT = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
let gw: Gateway;
let root: string;

beforeAll(async () => {
  root = realpathSync(tmpDir('sy-ws-root-'));
  const outside = realpathSync(tmpDir('sy-outside-'));
  writeFileSync(join(outside, 'secret.txt'), 'do not read');
  mkdirSync(join(root, 'proj'));
  symlinkSync(join(outside, 'secret.txt'), join(root, 'proj', 'link.txt'));
  symlinkSync(outside, join(root, 'link-out'));
  gw = await startInProcess({
    channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
    acp: { tokens: [TOKEN], workspaceRoot: root, agents: [{ id: 'fake', label: 'Fake', command: process.execPath, args: [FAKE_AGENT], permissions: 'allow' }] },
  });
});
afterAll(async () => {
  await gw?.close();
  cleanupDirs();
});

async function rpc(method: string, params: Record<string, unknown>): Promise<string> {
  const res = await fetch(`${gw.url}/acp/rpc`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  return res.text();
}

describe('refused symlinks are named relative to the workspace', () => {
  it('an agent reading through a symlink that leaves the workspace: the error names "link.txt", not the absolute path', async () => {
    const text = await rpc('session.start', {
      sessionId: 's-link-1',
      taskPrompt: 'read link.txt',
      executionTarget: 'agent',
      provider: 'fake',
      workingDirectory: 'proj',
    });
    expect(text).toContain('read error: path \\"link.txt\\" is outside the session workspace');
    expect(text).not.toContain(root);
    expect(text).not.toContain('do not read');
    await rpc('session.close', { sessionId: 's-link-1' });
  });

  it('a symlinked workingDirectory is refused naming "link-out"', async () => {
    const text = await rpc('session.start', {
      sessionId: 's-link-2',
      taskPrompt: 'hello',
      executionTarget: 'agent',
      provider: 'fake',
      workingDirectory: 'link-out',
    });
    expect(text).toContain('workingDirectory \\"link-out\\" is outside the session workspace');
    expect(text).not.toContain(root);
  });
});
