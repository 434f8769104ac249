/**
 * The code of a failed turn read back from the store (turn-failures.ts): its `task.failed` event's code when the
 * session still keeps it, else the code of a failure the store itself wrote; a turn record keeps no code.
 */
import { describe, expect, it } from 'vitest';
import { adoptTransferred, appendTurn, newSession, newTurn } from '../sessions/model.js';
import { failInterrupted } from './live-session.js';
import { storedFailureCode } from './turn-failures.js';
import { taskEventFields } from './task-events.js';

const ids = (turnId: string) => ({ sessionId: 's', threadId: 's', turnId });
const failedEvent = (turnId: string, code: string | null) => ({ ...ids(turnId), ...taskEventFields('failed', ids(turnId), {}, { status: 'failed', code }) });

describe('storedFailureCode', () => {
  it("reads the turn's own task.failed event, not another turn's", () => {
    const events = [failedEvent('t1', 'UPSTREAM_ERROR'), failedEvent('t2', 'MODEL_NOT_ADVERTISED')];
    expect(storedFailureCode('t1', 'boom', events)).toBe('UPSTREAM_ERROR');
    expect(storedFailureCode('t2', 'boom', events)).toBe('MODEL_NOT_ADVERTISED');
    expect(storedFailureCode('t3', 'boom', events)).toBeUndefined();
  });

  it('a turn interrupted by a restart or by a transfer, or without output, has its code without an event', () => {
    const running = appendTurn(
      newSession({
        id: 's',
        kind: 'agent',
        ownerGatewayId: 'a',
        target: { executionTarget: 'agent', providerId: 'x', gatewayProviderId: '', model: '' },
        threadId: 's',
      }),
      newTurn('p', []),
    );
    const restarted = failInterrupted(running).history[0]!;
    const transferred = adoptTransferred(running, 'b').history[0]!;
    expect(storedFailureCode(restarted.turnId, restarted.error, undefined)).toBe('TURN_INTERRUPTED');
    expect(storedFailureCode(transferred.turnId, transferred.error, [])).toBe('TURN_INTERRUPTED');
    expect(storedFailureCode('t', 'provider returned no displayable output', [failedEvent('t', null)])).toBe('NO_DISPLAYABLE_OUTPUT');
  });
});
