/**
 * One read of a session's record shared by the steps of one `/acp/rpc` call (methods.ts: the caller check, the
 * owner check; turn-runner.ts: whether an idle live session was overtaken, or the revival of one), so that a
 * `session.message` reads the record once before its turn takes the lease, not up to three times (with Redis, each
 * read is a round trip on every turn).
 *
 * Why reusing it is safe: a later step that read again could see two kinds of change. A write the runner does not
 * coordinate with (another instance sharing the store, an admin request, a transfer's `moved` before it tells the
 * runner, `movedAway`) lands whenever the store and the network let it: the old code's second read could as well
 * have come before it, with nothing else in this process changed, so the earlier read is an answer the old code
 * could give too (and a turn re-checks the record under its lease anyway: TurnRunner.runTurn, wentOnWithout). What
 * the runner itself begins or ends on the session (a start replacing it, a close, a revival, a turn, a move away)
 * is different: it waits for some of it (`starting`, `closing`) on purpose so that its next read sees it, and its
 * own state (live sessions) must agree with the record it acts on: a close that ran between the two reads, say,
 * would leave the old record open and a revival from it would outlive the close. Each such step invalidates the
 * read (TurnRunner.touch) before its first write and again when it ends, and while a start or close is under way
 * (`busy`) nothing read is reused: the step reads anew, as it did.
 */
import type { Session } from '../sessions/model.js';

export class RecordRead {
  private held: { rec: Session | undefined } | undefined;
  /** bumped by every invalidation: a read under way when it comes is not kept */
  private gen = 0;

  constructor(
    readonly sessionId: string,
    /** whether a start or close of the session is under way in this process */
    private readonly busy: () => boolean,
  ) {}

  /** The record as read (`rec` undefined: none stored), if a later step may still use it; undefined: read anew. */
  get known(): { rec: Session | undefined } | undefined {
    return this.busy() ? undefined : this.held;
  }

  /** This process began or ended something on the session: what was read may not show it. */
  invalidate(): void {
    this.gen++;
    this.held = undefined;
  }

  /** Runs `read`, issued now, and keeps the record it gave (`recOf`) for the next step unless invalidated meanwhile. */
  async refresh<T>(read: () => Promise<T>, recOf: (v: T) => Session | undefined): Promise<T> {
    const gen = this.gen;
    const v = await read();
    if (this.gen === gen) this.held = { rec: recOf(v) };
    return v;
  }

  /** The record: the one read if still usable, else read now with `read` (and kept). */
  async get(read: () => Promise<Session | undefined>): Promise<Session | undefined> {
    const k = this.known;
    return k ? k.rec : this.refresh(read, (r) => r);
  }
}
