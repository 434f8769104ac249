/**
 * The decided ids a session's record keeps (permissions.ts, `metadata.decidedPermissions`): a second answer to a
 * resolved prompt gets PERMISSION_ALREADY_DECIDED from a broker that never saw the prompt (another instance, a
 * restarted process), for the session's last DECIDED_IN_RECORD resolved prompts; older ones drop out of the
 * record (then NOT_FOUND), so the record stays bounded however many prompts a session raises.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/sessions/sqlite-store.js';
import { newSession } from '../../src/sessions/model.js';
import { DECIDED_IN_RECORD, PermissionBroker, type PermissionEvents, type PermissionPrompt } from '../../src/acp/permissions.js';
import { cleanupDirs, memoryLogger, tmpDir, waitFor } from '../helpers/env.js';

afterAll(() => cleanupDirs());

const target = { executionTarget: 'gateway' as const, providerId: '', gatewayProviderId: 'switchyard', model: 'mock-1' };
const req = { toolCall: { toolCallId: 'c1', title: 'Edit' }, options: [{ optionId: 'ok', name: 'Allow', kind: 'allow_once' }] };

describe('decided permission ids in the record', () => {
  it(`a broker that never saw a prompt answers ALREADY_DECIDED for the session's last ${DECIDED_IN_RECORD} resolved ones; the list stays bounded`, async () => {
    const store = new SqliteStore({ path: join(tmpDir(), 'data', 'switchyard.db') });
    try {
      await store.create(newSession({ id: 's-dec', kind: 'agent', ownerGatewayId: 'gw_dec', target }));
      const here = new PermissionBroker({ store, holder: 'gw_dec/here', timeoutMs: 60_000, logger: memoryLogger().logger });
      const ids: string[] = [];
      const total = DECIDED_IN_RECORD + 6;
      for (let i = 0; i < total; i++) {
        let asked: PermissionPrompt | undefined;
        const events: PermissionEvents = { requested: (p) => void (asked = p), resolved: () => undefined };
        const outcome = here.ask({ sessionId: 's-dec', turnId: 't1' }, req, new AbortController().signal, events);
        // requested once the prompt is stored and pending here
        await waitFor(() => asked, 'the prompt raised', 10_000, 2);
        ids.push(asked!.requestId);
        await here.respond('s-dec', asked!.requestId, { optionId: 'ok' });
        expect(await outcome).toEqual({ outcome: 'selected', optionId: 'ok' });
      }
      const last = ids[ids.length - 1]!;
      const decided = await waitFor(async () => {
        const d = (await store.get('s-dec'))?.metadata.decidedPermissions as string[] | undefined;
        return d?.[d.length - 1] === last ? d : undefined;
      }, 'the last decided id in the record');
      expect(decided).toEqual(ids.slice(-DECIDED_IN_RECORD));

      const elsewhere = new PermissionBroker({ store, holder: 'gw_dec/elsewhere', timeoutMs: 60_000, logger: memoryLogger().logger });
      await expect(elsewhere.respond('s-dec', last, { optionId: 'ok' })).rejects.toMatchObject({ code: 'PERMISSION_ALREADY_DECIDED' });
      await expect(elsewhere.respond('s-dec', ids[total - DECIDED_IN_RECORD]!, { optionId: 'ok' })).rejects.toMatchObject({
        code: 'PERMISSION_ALREADY_DECIDED',
      });
      // dropped out of the record (older than the last DECIDED_IN_RECORD): not found there
      await expect(elsewhere.respond('s-dec', ids[0]!, { optionId: 'ok' })).rejects.toMatchObject({ code: 'PERMISSION_REQUEST_NOT_FOUND' });
      // the id of another session's record is not decided in this one
      await store.create(newSession({ id: 's-other', kind: 'agent', ownerGatewayId: 'gw_dec', target }));
      await expect(elsewhere.respond('s-other', last, { optionId: 'ok' })).rejects.toMatchObject({ code: 'PERMISSION_REQUEST_NOT_FOUND' });
      await Promise.all([here.close(), elsewhere.close()]);
    } finally {
      await store.close();
    }
  });
});
