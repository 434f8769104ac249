/**
 * Every failed turn the app sees carries a `code` from the error catalogue. A turn whose runtime answered no text
 * ("provider returned no displayable output") had none: no `code` / `errorCode` in its result, `code: null` in its
 * `task.failed` event, nothing in its final status update; and `xworkmate.tasks.get` answered from the store (after
 * a restart) gave no code for any failed turn, whatever its result had said. Now: NO_DISPLAYABLE_OUTPUT, the code
 * in the final status update, and the store's answer reads the code back from the turn's `task.failed` event.
 * Real gateway processes (SQLite store), restarted on the same config.
 */
import { describe, expect, it } from 'vitest';
import { acpRpc, spawnGateway, startProcess, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';

const ACP = 'failure-codes-acp-token-5e02';
const { procs } = stopAfterAll();
type Json = any;

const final = (updates: Json[]) => updates.filter((u) => u.type === 'status').at(-1);
const failedEvent = (updates: Json[]) => updates.find((u) => u.event === 'task.failed');

describe('failed turns carry a code', () => {
  it('no displayable output and an upstream refusal: in the result, the updates, and tasks.get from memory and from the store', async () => {
    const first = await startProcess({
      gateway: { id: 'gw_failure_codes' },
      channels: [
        { name: 'empty', provider: 'mock', models: ['empty-1'], options: { reply: '' } },
        { name: 'broken', provider: 'mock', models: ['broken-1'], options: { failEvery: 1, failStatus: 400 } },
      ],
      acp: {
        tokens: [ACP],
        gateways: [
          { id: 'emptygw', label: 'Empty', kind: 'channels', model: 'empty-1' },
          { id: 'brokengw', label: 'Broken', kind: 'channels', model: 'broken-1' },
        ],
      },
    });
    procs.push(first);
    const start = (gw: GatewayProcess, sessionId: string, gatewayProviderId: string) =>
      acpRpc(gw.url, ACP, 'session.start', { sessionId, taskPrompt: 'p', executionTarget: 'gateway', gatewayProviderId }, true);

    const empty = await start(first, 'codes-empty', 'emptygw');
    expect(empty.result).toMatchObject({
      success: false,
      status: 'failed',
      error: 'provider returned no displayable output',
      code: 'NO_DISPLAYABLE_OUTPUT',
      errorCode: 'NO_DISPLAYABLE_OUTPUT',
    });
    expect(final(empty.updates)).toMatchObject({ event: 'failed', code: 'NO_DISPLAYABLE_OUTPUT' });
    expect(failedEvent(empty.updates).task.detail).toMatchObject({ status: 'failed', code: 'NO_DISPLAYABLE_OUTPUT' });
    const broken = await start(first, 'codes-broken', 'brokengw');
    expect(broken.result).toMatchObject({ status: 'failed', code: 'UPSTREAM_CLIENT_ERROR' });
    expect(final(broken.updates)).toMatchObject({ event: 'failed', code: 'UPSTREAM_CLIENT_ERROR' });

    const get = async (gw: GatewayProcess, params: Record<string, unknown>) => (await acpRpc(gw.url, ACP, 'xworkmate.tasks.get', params)).result;
    expect(await get(first, { sessionId: 'codes-empty' })).toMatchObject({ status: 'failed', code: 'NO_DISPLAYABLE_OUTPUT' });

    // a restart: what tasks.get says now comes from the store
    await first.stop();
    const second = await spawnGateway(first.configPath, { SWITCHYARD_LOG: 'info' });
    procs.push(second);
    const stored = await get(second, { sessionId: 'codes-empty' });
    expect(stored).toMatchObject({ status: 'failed', sessionStatus: 'active', code: 'NO_DISPLAYABLE_OUTPUT' });
    expect(stored.result).toBeUndefined(); // the store's answer, not a snapshot in memory
    expect(await get(second, { runId: empty.result.runId })).toMatchObject({ status: 'failed', code: 'NO_DISPLAYABLE_OUTPUT' });
    expect(await get(second, { sessionId: 'codes-broken' })).toMatchObject({ status: 'failed', code: 'UPSTREAM_CLIENT_ERROR' });
  }, 60_000);
});
