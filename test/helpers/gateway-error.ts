/** What a promise rejected with, asserted to be a GatewayError: a promise that fulfils fails the assertion. */
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
