/**
 * Role routing on an agent executor binds the agent to the model the policy chose (addendum 2026-10 §3):
 * through the agent's ACP model config option (`session/set_config_option`, then the `currentValue` read back).
 * A bound turn reports `modelBindingVerified: true` and the agent runs on that model; an agent that does not
 * offer the model fails the turn with MODEL_NOT_ADVERTISED, one that does not read it back with
 * MODEL_BINDING_UNVERIFIED — nothing is prompted in either case. The fake agent speaks ACP over real stdio.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { cleanupDirs, startInProcess, tmpDir } from '../helpers/env.js';

const FAKE_AGENT = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const TOKEN = 'role-binding-acp-token';
const agent = (id: string, env: Record<string, string>) => ({ id, label: id, command: process.execPath, args: [FAKE_AGENT], env, permissions: 'allow' });

let gw: Gateway;
beforeAll(async () => {
  gw = await startInProcess({
    channels: [{ name: 'mock', provider: 'mock', models: ['model-a', 'model-b'] }],
    acp: {
      tokens: [TOKEN],
      workspaceRoot: tmpDir('sy-role-binding-'),
      agents: [
        agent('offers-both', { FAKE_ACP_MODELS: 'model-b,model-a' }),
        agent('offers-b-only', { FAKE_ACP_MODELS: 'model-b' }),
        agent('sticky', { FAKE_ACP_MODELS: 'model-b,model-a', FAKE_ACP_MODEL_STICKY: '1' }),
      ],
      roles: {
        policyVersion: 'bind-1',
        roles: [
          { role: 'engineer', models: [{ key: 'a', model: 'model-a' }], executors: ['offers-both'], productModes: ['code'] },
          { role: 'worker', models: [{ key: 'a', model: 'model-a' }], executors: ['offers-b-only'], productModes: ['code'] },
          { role: 'researcher', models: [{ key: 'a', model: 'model-a' }], executors: ['sticky'], productModes: ['code'] },
        ],
      },
    },
  });
});
afterAll(async () => {
  await gw?.close();
  cleanupDirs();
});

type Json = any;
async function start(sessionId: string, role: string, taskPrompt: string): Promise<Json> {
  const res = await fetch(`${gw.url}/acp/rpc`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'session.start',
      params: { sessionId, taskPrompt, workingDirectory: 'demo', routing: { role, roleMode: 'auto' } },
    }),
  });
  const body = (await res.json()) as { result?: Json; error?: Json };
  expect(body.error, JSON.stringify(body.error)).toBeUndefined();
  return body.result;
}

describe('role routing binds an agent executor to the chosen model', () => {
  it('the agent offers the model: it is set, read back, and the turn runs on it (modelBindingVerified)', async () => {
    const r = await start('bind-ok', 'engineer', 'model');
    expect(r).toMatchObject({ success: true, status: 'completed', resolvedRole: 'engineer', resolvedModelId: 'model-a', modelBindingVerified: true });
    // the agent started on model-b (its first option); the gateway switched it before the prompt
    expect(r.output).toBe('model: model-a');
  });

  it('the agent does not offer the model: MODEL_NOT_ADVERTISED, nothing prompted', async () => {
    const r = await start('bind-missing', 'worker', 'model');
    expect(r).toMatchObject({ success: false, status: 'failed', errorCode: 'MODEL_NOT_ADVERTISED', modelBindingVerified: false });
    expect(r.output ?? '').not.toContain('model:');
  });

  it('the agent does not read the model back: MODEL_BINDING_UNVERIFIED, nothing prompted', async () => {
    const r = await start('bind-sticky', 'researcher', 'model');
    expect(r).toMatchObject({ success: false, status: 'failed', errorCode: 'MODEL_BINDING_UNVERIFIED', modelBindingVerified: false });
    expect(r.output ?? '').not.toContain('model:');
  });
});
