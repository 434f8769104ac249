/**
 * Session transfer between gateways, with exactly one owner at all times (docs/sessions.md, "Transfer").
 *
 * Sender: the session must be owned here, idle (or we wait for its turn to end, its last updates logged), and the
 * peer must accept sessions. It is marked `metadata.transfer = { id, to, state: "offering" }` (refused when a turn
 * started meanwhile; no turn starts while it is there: `offeredNow`), offered with bridge-session-transfer, and
 * marked `moved` only after the peer's ok. Then
 * the sender confirms (`bridge.session.commit`). Any failure before the ok clears the marker: the session
 * stays here and the caller is told why.
 *
 * Receiver: validates the offer (accepts sessions, the offering peer is the session's owner, it never
 * overwrites a session it owns), stores the record durably as PROVISIONAL (`metadata.transfer.state =
 * "provisional"`), then answers ok. A provisional copy is not an owner: it becomes one when the sender
 * confirms, or when asked about it (`ensureOwned`) and the sender's record says moved-to-us. If the sender's
 * record says it still owns the session (the ok was lost: link drop, receiver crash before the ack), the copy
 * is deleted. If the sender cannot be reached, nobody is guessed to be the owner: the error names it.
 */
import { GatewayError, toGatewayError } from '../wire/errors.js';
import { newId } from '../util/ids.js';
import { secrets } from '../util/redact.js';
import type { Logger } from '../util/log.js';
import { adoptTransferred, markMoved, parseSession, runningTurn, type Session, type Turn } from './model.js';
import { MAX_TRANSFER_EVENT_BYTES, MAX_TRANSFER_EVENTS } from '../wire/bridge-frames.js';
import { PerKeyQueue } from '../util/per-key-queue.js';
import { liveLease, mutateSession, TransferConflictError, UPDATE_LOG_KEEP, type SessionEvent, type SessionStore } from './store.js';

export interface TransferMarker {
  id: string;
  state: 'offering' | 'provisional';
  /** offering: the receiver; provisional: the sender */
  peer: string;
  since: number;
}

export function transferMarker(s: Session): TransferMarker | undefined {
  const t = s.metadata.transfer as TransferMarker | undefined;
  return t && typeof t === 'object' && typeof t.id === 'string' ? t : undefined;
}

/**
 * The transfer of `s` being offered now, if one is: no turn may start meanwhile (TurnRunner refuses one), or it would
 * run here while the session moves, its updates past the log the offer carried. A marker older than any offer may
 * take (TRANSFER_TIMEOUT_MS, and the writes around it) is one its sender never cleared (it stopped mid-transfer;
 * `reconcile` clears it once the peer's link opens again): it keeps no turn from starting.
 */
export function offeredNow(s: Session, now: number = Date.now()): TransferMarker | undefined {
  const m = transferMarker(s);
  return m?.state === 'offering' && now - m.since < TRANSFER_TIMEOUT_MS + OFFER_MARKER_SLACK_MS ? m : undefined;
}

/**
 * Whether `s`, read under its lease, is leaving this gateway (an offer of it under way: `offeredNow`) or has left it
 * (`moved`): then the take that read it numbers no update (the seq rule, docs/sessions.md). The receiver numbers the
 * session's updates on from the log the offer carried, so a `seq` handed out here after that log was read would be
 * handed out twice. A take that read the record before the marker was written is one the transfer waits for (`move`).
 */
export function leavingHere(s: Session, now: number = Date.now()): boolean {
  return s.status === 'moved' || offeredNow(s, now) !== undefined;
}

/** what a transfer's marker may outlive its offer by: the store writes that clear it or mark the session moved */
const OFFER_MARKER_SLACK_MS = 10_000;

const withMarker = (s: Session, m: TransferMarker | undefined): Session => {
  const { transfer: _old, ...rest } = s.metadata;
  return { ...s, metadata: m ? { ...rest, transfer: m } : rest };
};

/** What the coordinator needs from the bridge (implemented by the mesh). */
export interface TransferTransport {
  /** undefined when the peer is not connected */
  peerAcceptsSessions(peerId: string): boolean | undefined;
  /**
   * Offers the session with the newest entries of its update log (`events`, oldest first; the transport may carry
   * only the newest of them) and the highest seq of the log not among them (`droppedThrough`: what the log's bounds
   * dropped or what was not read, 0: none; the transport raises it past what it leaves out);
   * resolves on bridge-session-transfer-ok; rejects with a GatewayError on bridge-error, link loss or timeout
   */
  offer(
    peerId: string,
    transferId: string,
    snapshot: Record<string, unknown>,
    events: readonly SessionEvent[],
    droppedThrough: number,
    timeoutMs: number,
  ): Promise<void>;
  /** an internal bridge.* call on the peer */
  call(peerId: string, method: string, params: Record<string, unknown>): Promise<unknown>;
}

/**
 * Provisional copies (offers stored, not yet confirmed) one sending peer may have here at once: past it its offers of
 * further sessions are refused (TRANSFER_REJECTED) until some are settled (docs/sessions.md). Counted by this process
 * from the copies it stored; those from before a restart are settled when the peer's next link opens (`reconcile`).
 */
export const MAX_PROVISIONAL_PER_PEER = 64;

/** How long a transfer waits for a running turn to end and for the peer's answer, unless told (`TransferOptions.timeoutMs`). */
export const TRANSFER_TIMEOUT_MS = 30_000;

export interface TransferOptions {
  /** a turn is running: wait for it to end (default) or refuse */
  whenRunning?: 'wait' | 'refuse';
  timeoutMs?: number;
}

export class TransferCoordinator {
  constructor(
    private readonly store: SessionStore,
    private readonly selfId: string,
    private readonly acceptSessions: boolean,
    private readonly transport: TransferTransport,
    private readonly logger: Logger,
  ) {}

  /** per sending peer, the ids of the provisional copies this process stored and has not seen settled */
  private readonly provisional = new Map<string, Set<string>>();
  /** one sending peer's offers are stored one at a time: its count of copies is never read while a copy is being stored */
  private readonly offers = new PerKeyQueue();

  /** false once this gateway drains for shutdown (`stopReceiving`): offers are refused, sending goes on */
  private receiving = true;

  /**
   * Graceful stop: peers' offers are refused from now on (TRANSFER_REJECTED), so a session never moves to a gateway
   * that is going away (it takes no new turn, and its own drain of sessions already ran). Its own transfers out
   * (`drainSessionsTo`) and the settling of transfers left half-way go on.
   */
  stopReceiving(): void {
    this.receiving = false;
  }

  /** metrics hook (src/obs): every transfer's outcome, `moved`/`accepted` or the error code */
  onOutcome: ((direction: 'out' | 'in', outcome: string) => void) | undefined;

  /**
   * Called once a session is marked moved away from here (after the commit), before the transfer resolves: whoever runs sessions
   * (the ACP turn runner) ends what it keeps of it (its agent process); a failure is logged, the move stands.
   */
  onMovedAway: ((sessionId: string) => Promise<void>) | undefined;

  private observed<T>(direction: 'out' | 'in', ok: string, run: Promise<T>): Promise<T> {
    if (!this.onOutcome) return run;
    return run.then(
      (v) => (this.onOutcome?.(direction, ok), v),
      (err: unknown) => {
        this.onOutcome?.(direction, toGatewayError(err).code);
        throw err;
      },
    );
  }

  // ---- sender --------------------------------------------------------------------------------------------

  transfer(sessionId: string, peerId: string, opts: TransferOptions = {}): Promise<Session> {
    return this.observed('out', 'moved', this.move(sessionId, peerId, opts));
  }

  private async move(sessionId: string, peerId: string, opts: TransferOptions): Promise<Session> {
    const timeoutMs = opts.timeoutMs ?? TRANSFER_TIMEOUT_MS;
    const until = Date.now() + timeoutMs;
    let s = await this.owned(sessionId);
    const accepts = this.transport.peerAcceptsSessions(peerId);
    if (accepts === undefined) throw new GatewayError('PEER_UNAVAILABLE', `peer ${peerId} is not connected`);
    if (!accepts)
      throw new GatewayError('FORBIDDEN', `peer ${peerId} does not accept sessions (its gateway.bridge.acceptSessions is false)`, {
        details: { reason: 'TRANSFER_REJECTED' },
      });
    let waiting = false;
    let running = false;
    // The record saying no turn runs is not enough: a turn stores its result before it numbers and logs its last
    // updates (its task event, its final status; the record's `seq` already counts them), and gives the session's
    // lease back only once they are in the log (the seq rule, docs/sessions.md). So the log is read for the offer
    // only once no take of the lease is live, whoever holds it (a turn here or on another instance sharing the
    // store, a brief take). Waiting for that, rather than taking the lease here for the read and the offer, needs
    // no holder id of the coordinator's own beside the turn runner's (a take by the runner's id would end a live
    // take of the runner at once, and this layer does not see its OwnTakes), and no lease to renew while the peer
    // answers (a turn that takes the lease after this check is either in the record before the marker's write
    // below, which then refuses the transfer, or refused itself by the marker, its end unnumbered: `leavingHere`;
    // any other take since is waited for again once the marker is written). A holder that stopped
    // without giving the lease back holds the transfer up for at most its ttl (past its expiry its fenced writes
    // land no more), and never past its deadline.
    await this.pollUntil(
      async () => {
        if (waiting) s = await this.owned(sessionId);
        running = runningTurn(s) !== undefined || s.status === 'running';
        if (!running && !(await liveLease(this.store, sessionId))) return true;
        if (running && opts.whenRunning === 'refuse')
          throw new GatewayError('INVALID_REQUEST', `session ${sessionId} has a turn running; transfer it after the turn ends (or wait for it)`, {
            details: { reason: 'TURN_RUNNING' },
          });
        if (!waiting) this.logger.info('session transfer waits for the running turn to end', { sessionId, to: peerId });
        waiting = true;
        return false;
      },
      until,
      () =>
        new GatewayError(
          'UPSTREAM_TIMEOUT',
          running
            ? `session ${sessionId} still had a turn running after ${timeoutMs} ms; not transferred`
            : `session ${sessionId}'s last turn had not logged its last updates (its lease still held) after ${timeoutMs} ms; not transferred: retry the transfer`,
        ),
    );
    const transferId = newId('xfer', 10);
    s = await mutateSession(this.store, sessionId, (cur) => {
      // read again where the marker is written: the session may have been closed, or moved by a transfer that ran
      // meanwhile (a second call here, another instance sharing the store), since the reads above; offered anyway, it
      // would be open on two gateways
      this.transferable(cur);
      if (transferMarker(cur)) throw new GatewayError('INVALID_REQUEST', `session ${sessionId} is already being transferred`);
      if (runningTurn(cur)) throw new GatewayError('INVALID_REQUEST', `session ${sessionId} started a turn; retry the transfer`);
      return withMarker(cur, { id: transferId, state: 'offering', peer: peerId, since: Date.now() });
    });
    try {
      // A take of the lease made since the check above read the record without the marker and numbers its updates
      // (a role turn's task.rejected, a REST queued status): the log is read once it gave the lease back, its updates
      // in the log. A take made after this check reads the marker under it and numbers nothing (`leavingHere`).
      await this.pollUntil(
        async () => !(await liveLease(this.store, sessionId)),
        until,
        () =>
          new GatewayError(
            'UPSTREAM_TIMEOUT',
            `session ${sessionId}'s lease was still held after ${timeoutMs} ms (an update of it being logged): retry the transfer`,
          ),
      );
      const { metadata, history, ...rest } = withMarker(s, undefined);
      // the update log as stored (no turn runs, and the last one's updates are all in it: its lease was given back,
      // above): only its newest entries that an offer can carry (a superset of them: the store counts each entry's
      // JSON, the offer its `{seq, event}`); what lies below them is not carried, as what the log's bounds dropped is not
      const { events, before } = await this.store.readNewestEvents(sessionId, MAX_TRANSFER_EVENTS, MAX_TRANSFER_EVENT_BYTES);
      const dropped = Math.max(before, await this.store.droppedThrough(sessionId));
      const offered = { ...rest, history: history.map(withoutErrorCode), metadata, owner: this.selfId };
      await this.transport.offer(peerId, transferId, offered, events, dropped, Math.max(1000, until - Date.now()));
    } catch (err) {
      await this.clearOffering(sessionId, transferId);
      // the transport rejects with GatewayErrors only: anything else is the session store's failure (reading the log),
      // whose text (an address, a path, the client's error) is logged, never sent
      if (!(err instanceof GatewayError)) this.logger.warn('session transfer: the session store failed', { sessionId, err: secrets.scrubError(String(err)) });
      const e = err instanceof GatewayError ? err : new GatewayError('SESSION_STORE_UNAVAILABLE', 'the session store cannot be reached now: retry shortly');
      throw new GatewayError(e.code, `session ${sessionId} stays on this gateway: ${e.message}`, {
        details: e.details,
        retryable: e.retryable,
        retryAfterSec: err instanceof GatewayError ? undefined : 1,
      });
    }
    const moved = await this.commitMoved(sessionId, transferId, peerId);
    this.logger.info('session transferred', { sessionId, to: peerId, transferId });
    return moved;
  }

  /** Asks `ready` every 100 ms until it says so (what it throws ends the wait); past `until`, throws what `late` makes. */
  private async pollUntil(ready: () => Promise<boolean>, until: number, late: () => GatewayError): Promise<void> {
    while (!(await ready())) {
      if (Date.now() > until) throw late();
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private async owned(sessionId: string): Promise<Session> {
    const s = await this.store.get(sessionId);
    if (!s) throw new GatewayError('NOT_FOUND', `no session ${sessionId}`);
    this.transferable(s);
    if (transferMarker(s)?.state === 'provisional') await this.ensureOwned(sessionId);
    return (await this.store.get(sessionId))!;
  }

  /** Throws unless `s` is an open session this gateway owns: only such a session is offered. */
  private transferable(s: Session): void {
    if (s.status === 'moved') throw new GatewayError('INVALID_REQUEST', `session ${s.id} already moved to ${s.movedTo}`, { details: { owner: s.movedTo } });
    if (s.ownerGatewayId !== this.selfId) throw new GatewayError('FORBIDDEN', `session ${s.id} is owned by ${s.ownerGatewayId}, not this gateway`);
    if (s.status === 'closed') throw new GatewayError('INVALID_REQUEST', `session ${s.id} is closed; only open sessions are transferred`);
  }

  private async clearOffering(sessionId: string, transferId: string): Promise<void> {
    await mutateSession(this.store, sessionId, (cur) => (transferMarker(cur)?.id === transferId ? withMarker(cur, undefined) : cur)).catch(() => undefined);
  }

  /** After the ok: moved for good here, then tell the receiver (best effort: it can also ask). */
  private async commitMoved(sessionId: string, transferId: string, peerId: string): Promise<Session> {
    const moved = await mutateSession(this.store, sessionId, (cur) => markMoved(withMarker(cur, undefined), peerId));
    await this.transport.call(peerId, 'bridge.session.commit', { sessionId, transferId }).catch((err) => {
      this.logger.warn('transfer commit not delivered; the receiver will ask', { sessionId, peer: peerId, err: String(err) });
    });
    await this.onMovedAway?.(sessionId).catch((err: unknown) =>
      this.logger.warn('the moved session could not be ended here', { sessionId, peer: peerId, err: String(err) }),
    );
    return moved;
  }

  // ---- receiver ------------------------------------------------------------------------------------------

  /** A peer's offer. Resolves when the copy is durable (→ ok); throws a GatewayError (→ TRANSFER_REJECTED…). */
  receive(fromPeer: string, transferId: string, snapshot: Record<string, unknown>, events: readonly SessionEvent[] = [], droppedThrough = 0): Promise<string> {
    return this.observed('in', 'accepted', this.accept(fromPeer, transferId, snapshot, events, droppedThrough));
  }

  private async accept(
    fromPeer: string,
    transferId: string,
    snapshot: Record<string, unknown>,
    events: readonly SessionEvent[],
    droppedThrough: number,
  ): Promise<string> {
    if (!this.acceptSessions)
      throw new GatewayError('FORBIDDEN', 'this gateway does not accept sessions (gateway.bridge.acceptSessions is false)', {
        details: { reason: 'TRANSFER_REJECTED' },
      });
    if (!this.receiving)
      throw new GatewayError('FORBIDDEN', 'this gateway is shutting down; it takes no session', { details: { reason: 'TRANSFER_REJECTED' } });
    const { owner, ...record } = snapshot;
    if (owner !== fromPeer)
      throw new GatewayError('FORBIDDEN', `peer ${fromPeer} offered a session it does not own (owner ${String(owner)})`, { details: { reason: 'NOT_OWNER' } });
    const s = parseSession(record);
    if (s.ownerGatewayId !== fromPeer)
      throw new GatewayError('FORBIDDEN', `peer ${fromPeer} offered a session owned by ${s.ownerGatewayId}`, { details: { reason: 'NOT_OWNER' } });
    const base = adoptTransferred(s, this.selfId);
    // transferredFrom: the previous owner may keep reaching the session over the bridge (forwarding)
    const adopted = withMarker(
      { ...base, metadata: { ...base.metadata, transferredFrom: fromPeer } },
      { id: transferId, state: 'provisional', peer: fromPeer, since: Date.now() },
    );
    return this.offers.run(fromPeer, () => this.storeOffer(fromPeer, transferId, adopted, events, droppedThrough));
  }

  /** A valid offer's copy, stored as provisional; run one at a time per sending peer (`offers`). */
  private async storeOffer(fromPeer: string, transferId: string, adopted: Session, events: readonly SessionEvent[], droppedThrough: number): Promise<string> {
    const s = adopted;
    // A provisional copy an earlier offer of this sender left here, settled by nothing while the link lasts (our ok
    // reached the sender after it had given up: it timed out). The sender owns the session, since it offers it
    // again, so the copy is stale, as `ensureOwned` would find: it gives way to this offer.
    const held = await this.store.get(s.id);
    const m = held && transferMarker(held);
    if (m?.state === 'provisional' && m.peer === fromPeer && m.id !== transferId) {
      await this.store.delete(s.id);
      this.logger.info('dropped a provisional session copy: its sender offers the session again', { sessionId: s.id, owner: fromPeer });
    }
    const copies = await this.roomForCopy(fromPeer, s.id);
    try {
      await this.store.importTransferred(transferId, adopted);
      await this.importEvents(s.id, events, droppedThrough);
      // Failpoint for the crash-recovery test: die after the durable store, before the ok leaves.
      if (process.env.SWITCHYARD_FAILPOINT === 'transfer-receiver-crash-after-store') process.kill(process.pid, 'SIGKILL');
    } catch (err) {
      // the place taken for it is given back unless a copy of this id is stored (the copy an earlier offer left)
      if (!(await this.isProvisionalFrom(s.id, fromPeer).catch(() => false))) copies.delete(s.id);
      if (err instanceof TransferConflictError)
        throw new GatewayError('FORBIDDEN', `session ${s.id} is owned by this gateway; a peer cannot overwrite it`, { details: { reason: 'NOT_OWNER' } });
      throw err;
    }
    return s.id;
  }

  /**
   * Takes a place for a provisional copy of `sessionId` from `peer` (before the store; a peer's offers are stored
   * one at a time), or refuses the offer at MAX_PROVISIONAL_PER_PEER. At the bound, the places
   * are checked against the store first: a copy settled otherwise (deleted, or confirmed on another instance
   * sharing the store) gives its place back.
   */
  private async roomForCopy(peer: string, sessionId: string): Promise<Set<string>> {
    let copies = this.provisional.get(peer);
    if (!copies) this.provisional.set(peer, (copies = new Set()));
    if (copies.has(sessionId)) return copies;
    if (copies.size >= MAX_PROVISIONAL_PER_PEER) {
      for (const id of [...copies]) if (!(await this.isProvisionalFrom(id, peer))) copies.delete(id);
    }
    if (copies.size >= MAX_PROVISIONAL_PER_PEER)
      throw new GatewayError(
        'FORBIDDEN',
        `peer ${peer} has ${copies.size} sessions here whose transfer it has not confirmed (limit ${MAX_PROVISIONAL_PER_PEER}); ` +
          'more are taken once those are settled',
        { details: { reason: 'TRANSFER_REJECTED' } },
      );
    copies.add(sessionId);
    return copies;
  }

  private async isProvisionalFrom(sessionId: string, peer: string): Promise<boolean> {
    const s = await this.store.get(sessionId);
    const m = s && transferMarker(s);
    return m?.state === 'provisional' && m.peer === peer;
  }

  /** A provisional copy is settled (confirmed, or dropped): its place is free. */
  private settled(peer: string, sessionId: string): void {
    this.provisional.get(peer)?.delete(sessionId);
  }

  /**
   * The sender's update log, stored before the ok: a client reading what it missed (`afterSeq`) gets it here.
   * Only entries above what this gateway already logged for the session (it may have run it before) are added.
   * What the sender did not carry (`droppedThrough`: its log's bounds dropped it, or it did not fit the offer) is
   * marked dropped here too, so a cursor below it gets UPDATE_LOG_TRUNCATED here as it would there, not a gap.
   */
  private async importEvents(sessionId: string, events: readonly SessionEvent[], droppedThrough: number): Promise<void> {
    if (events.length > 0) {
      const last = await this.store.lastEventSeq(sessionId);
      const fresh = events.filter((e) => e.seq > last);
      if (fresh.length > 0) await this.store.appendEvents(sessionId, fresh, UPDATE_LOG_KEEP);
    }
    if (droppedThrough > 0) await this.store.dropThrough(sessionId, droppedThrough);
  }

  /** bridge.session.commit from the sender: the provisional copy becomes ours. */
  async confirm(fromPeer: string, sessionId: string, transferId: string): Promise<boolean> {
    const s = await this.store.get(sessionId);
    const m = s && transferMarker(s);
    if (!s || !m || m.state !== 'provisional' || m.id !== transferId || m.peer !== fromPeer) return false;
    await mutateSession(this.store, sessionId, (cur) => (transferMarker(cur)?.id === transferId ? withMarker(cur, undefined) : cur));
    this.settled(fromPeer, sessionId);
    return true;
  }

  /**
   * bridge.session.status from a peer: who owns `sessionId` according to this gateway's record? With the id of our
   * offer of it when one is open to the asking peer; never the id of an offer made to another peer.
   */
  async status(askingPeer: string, sessionId: string): Promise<{ owner: 'me' | 'you' | 'unknown'; transferId?: string }> {
    const s = await this.store.get(sessionId);
    if (!s) return { owner: 'unknown' };
    if (s.status === 'moved') return { owner: s.movedTo === askingPeer ? 'you' : 'unknown' };
    const m = transferMarker(s);
    if (m?.state === 'provisional') return { owner: 'unknown' };
    // We own it. An offer still open to the asking peer (its ok never arrived) is named to that peer only: the id of
    // a transfer to another gateway is not this peer's to see (nothing it may do with it: a commit checks the peer)
    return { owner: 'me', ...(m && m.peer === askingPeer ? { transferId: m.id } : {}) };
  }

  /**
   * Before serving a session: a provisional copy is resolved with its sender. Returns the record we own, or
   * throws a GatewayError naming the owner. `known`: the record as the caller just read it (`rec` undefined: none),
   * instead of reading it here.
   */
  async ensureOwned(sessionId: string, known?: { rec: Session | undefined }): Promise<Session | undefined> {
    const s = known ? known.rec : await this.store.get(sessionId);
    const m = s && transferMarker(s);
    if (!s || !m || m.state !== 'provisional') return s;
    let answer: { owner?: string };
    try {
      answer = (await this.transport.call(m.peer, 'bridge.session.status', { sessionId })) as { owner?: string };
    } catch {
      throw new GatewayError(
        'PEER_UNAVAILABLE',
        `session ${sessionId} is being transferred from ${m.peer}, which cannot be reached to confirm it; retry when it is back`,
        { details: { owner: m.peer } },
      );
    }
    if (answer.owner === 'you') {
      const adopted = await mutateSession(this.store, sessionId, (cur) => withMarker(cur, undefined));
      this.settled(m.peer, sessionId);
      return adopted;
    }
    if (answer.owner === 'me') {
      await this.store.delete(sessionId);
      this.settled(m.peer, sessionId);
      this.logger.info('dropped a provisional session copy: the transfer did not complete', { sessionId, owner: m.peer });
      throw new GatewayError('INVALID_REQUEST', `session ${sessionId} is owned by ${m.peer} (its transfer here did not complete)`, {
        details: { owner: m.peer },
      });
    }
    throw new GatewayError('PEER_UNAVAILABLE', `session ${sessionId}: ${m.peer} does not confirm the transfer`, { details: { owner: m.peer } });
  }

  /**
   * When a link to `peerId` comes up: settle every transfer left half-way with it (either side crashed or the
   * link dropped between the offer and the commit).
   */
  async reconcile(peerId: string, linkSince: number): Promise<void> {
    for (const s of await this.store.listMarked('transfer')) {
      const m = transferMarker(s);
      // markers from before this link existed only: an offer made on this link is still settling by itself
      if (!m || m.peer !== peerId || m.since >= linkSince) continue;
      try {
        if (m.state === 'provisional') await this.ensureOwned(s.id).catch(() => undefined);
        else {
          const answer = (await this.transport.call(peerId, 'bridge.session.status', { sessionId: s.id })) as { owner?: string };
          if (answer.owner === 'unknown' || answer.owner === 'me') {
            // The peer holds nothing it owns for this id: the offer failed; we keep the session.
            await this.clearOffering(s.id, m.id);
          }
        }
      } catch (err) {
        this.logger.warn('could not reconcile a transfer', { sessionId: s.id, peer: peerId, err: String(err) });
      }
    }
  }
}

/**
 * A turn as an offer carries it: without `errorCode`, which a gateway older than the field refuses (its record
 * check takes no unknown key, so the transfer would fail with TRANSFER_REJECTED during a rolling upgrade). The
 * receiver reads a failed turn's code back as before the field: from its task.failed event, which the session's
 * metadata carries while it is among the last 100, or from its text. Once no supported version refuses it, the
 * field can travel (this version already takes it).
 */
function withoutErrorCode(t: Turn): Turn {
  if (t.errorCode === undefined) return t;
  const { errorCode: _code, ...rest } = t;
  return rest;
}
