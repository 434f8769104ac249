import type { EventEmitter } from 'node:events';

/**
 * Resolves at the writable's next 'drain' or 'close', whichever comes first, and leaves no listener behind
 * (`Promise.race` of two `once()` would leave the loser's listeners on it until it closes: one pair per wait,
 * past Node's listener limit within a dozen waits of one slow reader).
 */
export function drainOrClose(w: EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      w.off('drain', done);
      w.off('close', done);
      resolve();
    };
    w.on('drain', done);
    w.on('close', done);
  });
}
