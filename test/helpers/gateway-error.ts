/** What a promise rejected with (or a call threw), asserted to be a GatewayError: one that succeeds fails the assertion. */
import { expect } from 'vitest';
import { GatewayError } from '../../src/wire/errors.js';

export async function gatewayErrorOf(p: Promise<unknown>): Promise<GatewayError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GatewayError);
  return err as GatewayError;
}

/** The same for a synchronous call: what `fn` threw, asserted to be a GatewayError. */
export function gatewayErrorOfCall(fn: () => unknown): GatewayError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(GatewayError);
    return e as GatewayError;
  }
  throw new Error('expected a GatewayError, but the call returned');
}
