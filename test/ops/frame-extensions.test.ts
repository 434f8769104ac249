/** The bridge-forward frame's optional tracing and request-id fields: kept when well-formed, dropped otherwise. */
import { describe, expect, it } from 'vitest';
import { parseFrame } from '../../src/bridge/codec.js';

const forward = (extra: Record<string, unknown>) =>
  Buffer.from(JSON.stringify({ type: 'bridge-forward', requestId: 'r1', targetChannel: 'c', kind: 'chat', payload: { model: 'm', messages: [] }, ...extra }));

function parsed(extra: Record<string, unknown>): Record<string, unknown> {
  const p = parseFrame(forward(extra), { maxBytes: 1 << 20, authenticated: true, isBinary: false });
  if (!p.ok) throw new Error(p.error.message);
  return p.frame as unknown as Record<string, unknown>;
}

describe('bridge-forward traceparent / originRequestId', () => {
  it('keeps well-formed values', () => {
    const f = parsed({ traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', originRequestId: 'req_abc.1:2-3' });
    expect(f.traceparent).toBe('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
    expect(f.originRequestId).toBe('req_abc.1:2-3');
  });
  it.each([
    ['a number', 42],
    ['upper-case hex', '00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01'],
    ['a short trace id', '00-4bf92f35-00f067aa0ba902b7-01'],
    ['trailing junk', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x'],
  ])('drops a malformed traceparent (%s) without refusing the frame', (_why, v) => {
    const f = parsed({ traceparent: v });
    expect(f.traceparent).toBeUndefined();
    expect(f.requestId).toBe('r1');
  });
  it('drops an originRequestId with other characters or over 128', () => {
    expect(parsed({ originRequestId: 'has space' }).originRequestId).toBeUndefined();
    expect(parsed({ originRequestId: 'x'.repeat(129) }).originRequestId).toBeUndefined();
    expect(parsed({ originRequestId: '<script>' }).originRequestId).toBeUndefined();
  });
});
