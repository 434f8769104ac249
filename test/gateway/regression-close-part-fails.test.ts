/**
 * Regression: `Gateway.close` closed its parts one after the other with no error tolerance, so a part whose close
 * threw skipped every part after it (the listener stayed open, the key and session stores were never closed) and
 * the stop rejected; a start whose listen failed closed the same parts in another order with each failure
 * swallowed unlogged. Now both run one sequence (closeParts, src/gateway-stop.ts): a failure is logged, scrubbed of
 * secrets, and the other parts are closed all the same.
 *
 * The one thing not real here: no part of a running gateway fails to close on demand, so the bridge mesh's close
 * (the first part) is replaced on the instance by one that throws, with a configured token in its message.
 */
import { connect } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupDirs, memoryLogger, startInProcess } from '../helpers/env.js';

afterAll(() => cleanupDirs());

const TOKEN = 'tok-close-part-fails-5f3a9c1e7b';

/** Whether something accepts a TCP connection at `url`'s port. */
function accepts(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const s = connect({ host: hostname, port: Number(port) }, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

describe('Gateway.close when one part fails to close', () => {
  it('closes every other part, logs the failure by part without the secret, and resolves', async () => {
    const { logger, lines } = memoryLogger();
    const gw = await startInProcess({ gateway: { auth: { tokens: [TOKEN] } }, channels: [{ name: 'm', provider: 'mock', models: ['m-1'] }] }, logger);
    expect(await accepts(gw.url)).toBe(true);
    gw.mesh.close = () => Promise.reject(new Error(`bridge close failed (token ${TOKEN})`));

    await expect(gw.close()).resolves.toBeUndefined();

    // the parts after the failed one: the listener, the key store, the session store
    expect(await accepts(gw.url)).toBe(false);
    await expect(gw.keys.page(undefined, 1)).rejects.toThrow(/not open/);
    await expect(gw.store.list()).rejects.toThrow(/not open/);
    const failed = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'closing a part of the gateway failed; the other parts are closed all the same');
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ level: 'error', part: 'bridge', error: 'bridge close failed (token [REDACTED])' });
    expect(lines.join('\n')).not.toContain(TOKEN);
  });
});
