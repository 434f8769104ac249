/**
 * The code of a failed turn read back from the store (turn-failures.ts): the `errorCode` its record keeps; for a
 * turn stored before that field, its `task.failed` event's code when the session still keeps it, else the code of
 * a failure the store itself wrote.
 */
import { describe, expect, it } from 'vitest';
import { adoptTransferred, appendTurn, newSession, newTurn } from '../sessions/model.js';
import { failInterrupted } from './live-session.js';
import { storedFailureCode } from './turn-failures.js';
import { taskEventFields } from './task-events.js';

const ids = (turnId: string) => ({ sessionId: 's', threadId: 's', turnId });
const failedEvent = (turnId: string, code: string | null) => ({ ...ids(turnId), ...taskEventFields('failed', ids(turnId), {}, { status: 'failed', code }) });

describe('storedFailureCode', () => {
  it('the code the turn record keeps comes first, whatever the events say', () => {
    expect(storedFailureCode({ turnId: 't1', error: 'boom', errorCode: 'UPSTREAM_CLIENT_ERROR' }, [failedEvent('t1', 'UPSTREAM_ERROR')])).toBe(
      'UPSTREAM_CLIENT_ERROR',
    );
    expect(storedFailureCode({ turnId: 't1', error: 'boom', errorCode: 'UPSTREAM_CLIENT_ERROR' }, undefined)).toBe('UPSTREAM_CLIENT_ERROR');
  });

  it("a turn stored without a code: its own task.failed event, not another turn's", () => {
    const events = [failedEvent('t1', 'UPSTREAM_ERROR'), failedEvent('t2', 'MODEL_NOT_ADVERTISED')];
    expect(storedFailureCode({ turnId: 't1', error: 'boom' }, events)).toBe('UPSTREAM_ERROR');
    expect(storedFailureCode({ turnId: 't2', error: 'boom' }, events)).toBe('MODEL_NOT_ADVERTISED');
    expect(storedFailureCode({ turnId: 't3', error: 'boom' }, events)).toBeUndefined();
  });

  it('a turn interrupted by a restart or by a transfer is stored with its code; one stored without it, or without output, is known by its text', () => {
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
    expect(restarted).toMatchObject({ status: 'failed', errorCode: 'TURN_INTERRUPTED' });
    expect(transferred).toMatchObject({ status: 'failed', errorCode: 'TURN_INTERRUPTED' });
    expect(storedFailureCode(restarted, undefined)).toBe('TURN_INTERRUPTED');
    // as a version before errorCode stored them: the text tells
    expect(storedFailureCode({ turnId: restarted.turnId, error: restarted.error }, undefined)).toBe('TURN_INTERRUPTED');
    expect(storedFailureCode({ turnId: transferred.turnId, error: transferred.error }, [])).toBe('TURN_INTERRUPTED');
    expect(storedFailureCode({ turnId: 't', error: 'provider returned no displayable output' }, [failedEvent('t', null)])).toBe('NO_DISPLAYABLE_OUTPUT');
  });
});
