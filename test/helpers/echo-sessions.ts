/**
 * Pieces the session tests (turns, leases, transfers) share: a runtime that echoes each turn, the routing target
 * that names it, a direct bridge between two transfer coordinators, and a store whose answer to a completed turn's
 * result write is held (the window between a turn's result and its last updates).
 */
import type { Runtime } from '../../src/acp/runtime.js';
import type { SessionStore } from '../../src/sessions/store.js';
import type { TransferCoordinator, TransferTransport } from '../../src/sessions/transfer.js';
import { wrapStore } from './store-wrap.js';

/** A gateway provider's runtime that answers each turn with one delta and the output `echo: <prompt>`. */
export const echoRuntime: Runtime = {
  async prompt(turn, emit) {
    emit({ type: 'delta', event: 'delta', delta: `echo: ${turn.text}`, text: `echo: ${turn.text}` });
    return { output: `echo: ${turn.text}`, stopReason: 'end_turn' };
  },
  async close() {},
};

/** The routing target of a turn on `echoRuntime`. */
export const echoTarget = { executionTarget: 'gateway', gatewayProviderId: 'echo', providerId: '', model: '' } as const;

/**
 * The bridge from `self` to the one peer `to()`: an offer and the commit are that coordinator's own calls.
 * `beforeOffer`, when given, is awaited before the offer reaches the peer (a test holding the peer's answer).
 */
export const directTransfer = (self: string, to: () => TransferCoordinator, beforeOffer?: () => Promise<void>): TransferTransport => ({
  peerAcceptsSessions: () => true,
  offer: async (_peer, transferId, snapshot, events, droppedThrough) => {
    await beforeOffer?.();
    await to().receive(self, transferId, snapshot, events, droppedThrough);
  },
  call: async (_peer, method, params) => {
    const sessionId = params.sessionId as string;
    if (method === 'bridge.session.commit') return to().confirm(self, sessionId, params.transferId as string);
    return to().status(self, sessionId);
  },
});

/**
 * `raw` with the store's answer to the first write that stores a completed turn held (the write itself is made)
 * until `release()`: the record says the turn ended while its last updates are not numbered yet.
 */
export function holdingResultWrite(raw: SessionStore): { store: SessionStore; held: () => boolean; release: () => void } {
  let held = false;
  let holding = true;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const store = wrapStore(raw, {
    update: async (...args: Parameters<SessionStore['update']>) => {
      const stored = await raw.update(...args);
      if (holding && stored.history.some((t) => t.status === 'completed')) {
        holding = false;
        held = true;
        await gate;
      }
      return stored;
    },
  });
  return { store, held: () => held, release };
}
