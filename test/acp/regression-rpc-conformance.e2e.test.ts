/**
 * Conformance gaps of `/acp/rpc` against its spec (acp-rpc.md and the 2026-10 addendum), each found by an audit
 * against a real gateway process and the fake ACP agent:
 *
 * - The routing fields (`provider`, `model`, `gatewayProviderId`, `requestedExecutionTarget`, `routing.*`) took
 *   strings of any length and lone UTF-16 surrogates, unlike every other id: a 1.5 MB `model` started a session
 *   whose record, results and `xworkmate.routing.resolve` answer all carried it, and a 1.5 MB `provider` came
 *   back inside the `unavailableMessage`. They are ids like the others now: at most 256 characters, well-formed,
 *   else -32602 naming the field, and nothing starts.
 */
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { acpRpc, startProcess, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';

const FAKE = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const ACP = 'rpc-conformance-acp-token-4410';
const started = stopAfterAll();
let gw: GatewayProcess;

beforeAll(async () => {
  gw = started.trackGateway(
    await startProcess({
      gateway: { id: 'gw_rpc_conformance', maxBodyBytes: 4 * 1024 * 1024 },
      channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
      acp: {
        tokens: [ACP],
        agents: [{ id: 'fake', label: 'Fake', command: process.execPath, args: [FAKE], permissions: 'allow' }],
        gateways: [{ id: 'switchyard', label: 'Switchyard', kind: 'channels', model: 'mock-1' }],
        roles: {
          policyVersion: 'p-1',
          roles: [{ role: 'engineer', models: [{ key: 'm1', model: 'mock-1' }], executors: ['switchyard'] }],
        },
      },
    }),
  );
}, 60_000);

const agent = { routingMode: 'explicit', explicitExecutionTarget: 'agent', explicitProviderId: 'fake' };
const LONG = 'm'.repeat(257);
const HUGE = 'p'.repeat(1_500_000);

async function expectAlive(): Promise<void> {
  const h = await acpRpc(gw.url, ACP, 'health', {});
  expect(h.result).toMatchObject({ status: 'ok' });
}

describe('routing fields are bounded ids', () => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['a model over 256 characters', { model: LONG, routing: agent }, 'model'],
    ['routing.explicitModel over 256 characters', { routing: { ...agent, explicitModel: LONG } }, 'routing.explicitModel'],
    ['a 1.5 MB provider', { provider: HUGE, requestedExecutionTarget: 'agent' }, 'provider'],
    ['a 1.5 MB gatewayProviderId', { gatewayProviderId: HUGE, requestedExecutionTarget: 'gateway' }, 'gatewayProviderId'],
    ['a lone surrogate in routing.explicitProviderId', { routing: { ...agent, explicitProviderId: 'fa\ud800ke' } }, 'routing.explicitProviderId'],
    ['a lone surrogate in model', { model: 'mock-\udc00', routing: agent }, 'model'],
    ['a 300-character requestedExecutionTarget', { requestedExecutionTarget: 'a'.repeat(300) }, 'requestedExecutionTarget'],
    ['a lone surrogate in routing.role', { routing: { role: 'engineer\ud800', roleMode: 'auto' } }, 'routing.role'],
  ];
  for (const [what, routing, field] of cases) {
    it(`${what}: -32602 naming ${field} from session.start and xworkmate.routing.resolve; no session`, async () => {
      const sessionId = `bounded-${field.replace(/\W/g, '-')}-${Math.random().toString(36).slice(2, 8)}`;
      const start = await acpRpc(gw.url, ACP, 'session.start', { sessionId, taskPrompt: 'hello', ...routing });
      expect(start.result).toBeUndefined();
      expect(start.error).toMatchObject({ code: -32602, data: { code: 'INVALID_PARAMS', field } });
      // the error names the field, and never carries the value back
      expect(JSON.stringify(start.error).length).toBeLessThan(1000);

      const resolve = await acpRpc(gw.url, ACP, 'xworkmate.routing.resolve', routing);
      expect(resolve.error).toMatchObject({ code: -32602, data: { code: 'INVALID_PARAMS', field } });

      // nothing was started under that id
      const msg = await acpRpc(gw.url, ACP, 'session.message', { sessionId, taskPrompt: 'again' });
      expect(msg.error).toMatchObject({ code: -32002, data: { code: 'SESSION_CONTINUATION_UNAVAILABLE' } });
    });
  }

  it('a 256-character model is still a model: the session starts and the result names it', async () => {
    const model = 'k'.repeat(256);
    const r = await acpRpc(gw.url, ACP, 'session.start', { sessionId: 'bounded-ok', taskPrompt: 'hello', model, routing: agent });
    expect(r.error).toBeUndefined();
    expect(r.result).toMatchObject({ success: true, status: 'completed', resolvedModel: model });
    await expectAlive();
  });
});
