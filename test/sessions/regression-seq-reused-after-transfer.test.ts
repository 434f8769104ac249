/**
 * No `seq` the sender hands out while a session is being offered is numbered again by the receiver (docs/sessions.md,
 * the seq rule and Transfer).
 *
 * The sender reads the update log for its offer once no take of the session's lease is live and its "offering" marker
 * is on the record; the receiver numbers the session's updates on from what it was sent. Takes made after that check
 * still numbered updates in the sender's log: a turn refused at its start by the marker numbered its failed end; a
 * brief take (a role turn's `task.rejected`) numbered its update; a revival numbered the end of what a previous holder
 * left open (an orphan permission prompt). Each of those `seq`s went to the client from the sender, and the receiver,
 * which never saw them, numbered its own next updates with the same ones: a client deduplicating by seq dropped the
 * receiver's, and one resuming on the receiver never got the sender's. Here each of those lands while the offer is
 * with the peer (its answer held), and one more reads the record before the marker and writes the log after the
 * sender's first check (the log write held until the transfer checks again or has offered). Gateway A a turn runner
 * and a transfer coordinator over one store, B the same over its own, the bridge between them a direct call; a real
 * store of each kind.
 */
import { describe, expect, it } from 'vitest';
import { TurnRunner } from '../../src/acp/turn-runner.js';
import { taskEventFields } from '../../src/acp/task-events.js';
import { TransferCoordinator } from '../../src/sessions/transfer.js';
import { mutateSession, type SessionStore } from '../../src/sessions/store.js';
import { memoryLogger, waitFor } from '../helpers/env.js';
import { wrapStore } from '../helpers/store-wrap.js';
import { bothStores } from './fixtures/both-stores.js';
import { directTransfer, echoRuntime, echoTarget } from '../helpers/echo-sessions.js';

const { backends, stores } = bothStores('xferseq');

type Update = Record<string, unknown>;

/** A point a store call or an offer stops at, once armed, until opened. */
class Hold {
  armed = false;
  reached = false;
  open!: () => void;
  private readonly gate = new Promise<void>((r) => (this.open = r));
  async pass(): Promise<void> {
    if (!this.armed) return;
    this.armed = false;
    this.reached = true;
    await this.gate;
  }
}

/**
 * A and B, with holds on A's side: `take` on the turn runner's next take of a lease, `log` on its next update-log
 * write, `check` on the coordinator's next lease check (the answer read, then held), `offer` on the offer before it
 * reaches B. `checks` counts the lease checks.
 */
async function gateways(b: (typeof backends)[number], tag: string) {
  const rawA = await b.open();
  const storeB = await b.open();
  stores.push(rawA, storeB);
  const holds = { log: new Hold(), check: new Hold(), offer: new Hold(), take: new Hold() };
  let checks = 0;
  let offered = false;
  const runnerStore = wrapStore(rawA, {
    acquireLease: async (...args: Parameters<SessionStore['acquireLease']>) => {
      await holds.take.pass();
      return rawA.acquireLease(...args);
    },
    appendEvents: async (...args: Parameters<SessionStore['appendEvents']>) => {
      await holds.log.pass();
      return rawA.appendEvents(...args);
    },
  });
  const coordinatorStore = wrapStore(rawA, {
    getLease: async (id: string) => {
      const lease = await rawA.getLease(id);
      checks++;
      await holds.check.pass();
      return lease;
    },
  });
  const { logger } = memoryLogger();
  const runner = (store: SessionStore, gatewayId: string, holder: string) =>
    new TurnRunner({ store, gatewayId, holderId: `${gatewayId}/${holder}`, logger, runtimeFor: async () => echoRuntime });
  const idA = `gw_${tag}_a`;
  const idB = `gw_${tag}_b`;
  const a: TransferCoordinator = new TransferCoordinator(
    coordinatorStore,
    idA,
    true,
    directTransfer(
      idA,
      () => gwB,
      () => ((offered = true), holds.offer.pass()),
    ),
    logger,
  );
  const gwB: TransferCoordinator = new TransferCoordinator(
    storeB,
    idB,
    true,
    directTransfer(idB, () => a),
    logger,
  );
  return {
    rawA,
    storeB,
    holds,
    checks: () => checks,
    offered: () => offered,
    a,
    idA,
    idB,
    rA: runner(runnerStore, idA, b.name),
    /** another runner of A (another instance sharing its store) */
    runner: () => runner(runnerStore, idA, `${b.name}-2`),
    rB: runner(storeB, idB, b.name),
  };
}

/**
 * What the client was sent from A (or could have read from A's log, following the session) and then from B after the
 * move: every update A numbered is in B's log at its seq (a resume on B gets it), and no seq B numbered is one A
 * handed out.
 */
async function expectNoSeqReused(storeA: SessionStore, storeB: SessionStore, sid: string, fromA: Update[], fromB: Update[]): Promise<void> {
  const logB = new Map((await storeB.readEvents(sid, 0, 1000)).events.map((e) => [e.seq, e.event]));
  const loggedA = (await storeA.readEvents(sid, 0, 1000)).events.map((e) => e.event);
  const numberedA = [...fromA, ...loggedA].filter((u) => typeof u.seq === 'number');
  for (const u of numberedA) expect(logB.get(u.seq as number), `A's seq ${String(u.seq)} in B's log: ${JSON.stringify(u)}`).toEqual(u);
  const seqsA = new Set(numberedA.map((u) => u.seq));
  const numberedB = fromB.filter((u) => typeof u.seq === 'number');
  expect(numberedB.length).toBeGreaterThan(0);
  for (const u of numberedB) expect(seqsA.has(u.seq), `B's seq ${String(u.seq)} was handed out by A: ${JSON.stringify(u)}`).toBe(false);
}

describe.each(backends)('updates of a session sent while it is being offered to a peer: $name', (b) => {
  it("a turn refused at its start by the offering marker: its end is not numbered among the sender's updates", async () => {
    const g = await gateways(b, 'xsa');
    const sid = `xferseq-turn-${b.name}`;
    const fromA: Update[] = [];
    const fromB: Update[] = [];
    try {
      await g.rA.start({ sessionId: sid, threadId: sid, prompt: 'one', workingDirectory: undefined, target: echoTarget }, (u) => void fromA.push(u));
      await g.rA.task({ sessionId: sid });
      g.holds.offer.armed = true;
      const moving = g.a.transfer(sid, g.idB);
      await waitFor(() => g.holds.offer.reached, 'the offer to reach the peer');
      expect(await g.rA.message(sid, 'two', (u) => void fromA.push(u))).toMatchObject({ status: 'failed', errorCode: 'OVERLOADED' });
      g.holds.offer.open();
      expect((await moving).status).toBe('moved');

      expect(await g.rB.message(sid, 'three', (u) => void fromB.push(u))).toMatchObject({ status: 'completed', output: 'echo: three' });
      await expectNoSeqReused(g.rawA, g.storeB, sid, fromA, fromB);
    } finally {
      g.holds.offer.open();
      await Promise.all([g.rA.shutdown(1_000), g.rB.shutdown(1_000)]);
    }
  }, 30_000);

  it('a brief take (a role turn rejected) during the offer: its update is not numbered', async () => {
    const g = await gateways(b, 'xsb');
    const sid = `xferseq-brief-${b.name}`;
    const fromA: Update[] = [];
    const fromB: Update[] = [];
    try {
      await g.rA.start({ sessionId: sid, threadId: sid, prompt: 'one', workingDirectory: undefined, target: echoTarget }, (u) => void fromA.push(u));
      await g.rA.task({ sessionId: sid });
      g.holds.offer.armed = true;
      const moving = g.a.transfer(sid, g.idB);
      await waitFor(() => g.holds.offer.reached, 'the offer to reach the peer');
      const ids = { sessionId: sid, threadId: sid, turnId: 'turn_rejected_1' };
      await g.rA.rejected(ids, taskEventFields('rejected', ids, {}, { code: 'ROLE_REJECTED' }), (u) => void fromA.push(u));
      expect(fromA.at(-1)).toMatchObject({ type: 'task', turnId: 'turn_rejected_1' });
      g.holds.offer.open();
      expect((await moving).status).toBe('moved');

      expect(await g.rB.message(sid, 'three', (u) => void fromB.push(u))).toMatchObject({ status: 'completed' });
      await expectNoSeqReused(g.rawA, g.storeB, sid, fromA, fromB);
    } finally {
      g.holds.offer.open();
      await Promise.all([g.rA.shutdown(1_000), g.rB.shutdown(1_000)]);
    }
  }, 30_000);

  it('a revival settling an orphan permission prompt during the offer: its updates are not numbered', async () => {
    const g = await gateways(b, 'xsc');
    const sid = `xferseq-revive-${b.name}`;
    const fromA: Update[] = [];
    const fromB: Update[] = [];
    // a second runner of A: its message revives the session from the record, settling what a gone holder left open
    const r2 = g.runner();
    try {
      await g.rA.start({ sessionId: sid, threadId: sid, prompt: 'one', workingDirectory: undefined, target: echoTarget }, (u) => void fromA.push(u));
      await g.rA.task({ sessionId: sid });
      const orphan = {
        requestId: 'perm_orphan_1',
        sessionId: sid,
        turnId: 'turn_gone',
        createdAt: new Date().toISOString(),
        toolCall: {},
        options: [],
        holder: `${g.idA}/gone`,
      };
      await mutateSession(g.rawA, sid, (s) => ({ ...s, metadata: { ...s.metadata, pendingPermissions: [orphan] } }));
      g.holds.offer.armed = true;
      const moving = g.a.transfer(sid, g.idB);
      await waitFor(() => g.holds.offer.reached, 'the offer to reach the peer');
      expect(await r2.message(sid, 'two', (u) => void fromA.push(u))).toMatchObject({ status: 'failed', errorCode: 'OVERLOADED' });
      g.holds.offer.open();
      expect((await moving).status).toBe('moved');

      expect(await g.rB.message(sid, 'three', (u) => void fromB.push(u))).toMatchObject({ status: 'completed' });
      await expectNoSeqReused(g.rawA, g.storeB, sid, fromA, fromB);
    } finally {
      g.holds.offer.open();
      await Promise.all([g.rA.shutdown(1_000), r2.shutdown(1_000), g.rB.shutdown(1_000)]);
    }
  }, 30_000);

  it("a brief take that read the record before the marker and logs after the sender's check: its update travels", async () => {
    const g = await gateways(b, 'xsd');
    const sid = `xferseq-window-${b.name}`;
    const fromA: Update[] = [];
    const fromB: Update[] = [];
    try {
      await g.rA.start({ sessionId: sid, threadId: sid, prompt: 'one', workingDirectory: undefined, target: echoTarget }, (u) => void fromA.push(u));
      await g.rA.task({ sessionId: sid });
      // the transfer found no take live; before it writes its marker, a brief take numbers an update (its log write held)
      g.holds.check.armed = true;
      const moving = g.a.transfer(sid, g.idB);
      await waitFor(() => g.holds.check.reached, "the transfer's check of the lease");
      const checked = g.checks();
      g.holds.log.armed = true;
      const ids = { sessionId: sid, threadId: sid, turnId: 'turn_rejected_2' };
      const rejecting = g.rA.rejected(ids, taskEventFields('rejected', ids, {}, { code: 'ROLE_REJECTED' }), (u) => void fromA.push(u));
      await waitFor(() => g.holds.log.reached, 'the brief take writing its update to the log');
      g.holds.check.open();
      // the transfer checks for a live take again, or (the bug) has read the log and offered without the update
      await waitFor(() => g.checks() > checked || g.offered() || undefined, 'the transfer past its marker');
      g.holds.log.open();
      await rejecting;
      expect((await moving).status).toBe('moved');

      expect(await g.rB.message(sid, 'three', (u) => void fromB.push(u))).toMatchObject({ status: 'completed' });
      expect(fromA.some((u) => u.turnId === 'turn_rejected_2' && typeof u.seq === 'number')).toBe(true);
      await expectNoSeqReused(g.rawA, g.storeB, sid, fromA, fromB);
    } finally {
      g.holds.check.open();
      g.holds.log.open();
      await Promise.all([g.rA.shutdown(1_000), g.rB.shutdown(1_000)]);
    }
  }, 30_000);

  it('a turn that takes the lease once the session moved, and a brief take then: their updates are not numbered', async () => {
    const g = await gateways(b, 'xse');
    const sid = `xferseq-moved-${b.name}`;
    const fromA: Update[] = [];
    const fromB: Update[] = [];
    try {
      await g.rA.start({ sessionId: sid, threadId: sid, prompt: 'one', workingDirectory: undefined, target: echoTarget }, (u) => void fromA.push(u));
      await g.rA.task({ sessionId: sid });
      // a message that came before the move takes the lease after it (its take held)
      g.holds.take.armed = true;
      const late = g.rA.message(sid, 'two', (u) => void fromA.push(u));
      await waitFor(() => g.holds.take.reached, "the message's take of the lease");
      expect((await g.a.transfer(sid, g.idB)).status).toBe('moved');
      g.holds.take.open();
      expect(await late).toMatchObject({ status: 'failed' });
      // a live session here the move did not end (another instance's, its end message lost): a role turn rejected
      const ids = { sessionId: sid, threadId: sid, turnId: 'turn_rejected_3' };
      await g.rA.rejected(ids, taskEventFields('rejected', ids, {}, { code: 'ROLE_REJECTED' }), (u) => void fromA.push(u));
      expect(fromA.at(-1)).toMatchObject({ type: 'task', turnId: 'turn_rejected_3' });

      expect(await g.rB.message(sid, 'three', (u) => void fromB.push(u))).toMatchObject({ status: 'completed' });
      await expectNoSeqReused(g.rawA, g.storeB, sid, fromA, fromB);
    } finally {
      g.holds.take.open();
      await Promise.all([g.rA.shutdown(1_000), g.rB.shutdown(1_000)]);
    }
  }, 30_000);
});
