/**
 * A session lease's take token (SessionStore.acquireLease): what the lease records for one take, kept by its
 * renewals, and what renewals, releases and the update log's fence (appendEvents) must name. Every take gets a new
 * one, also a take by the holder id that holds the lease (a restarted process, or a second one misconfigured with the
 * same `store.instanceId`): the earlier take's renewals, release and buffered writes are then refused, so a process
 * paused across its own restart cannot land updates numbered under its old take.
 *
 * `<holder id>#<nonce>`, the nonce 8 random bytes in hex. Random rather than a fencing epoch counted in the store:
 * the fence is checked inside the store against the lease in force, so equality is all it needs (no order), and
 * a counter would have to outlive the lease (a release deletes the row, Redis expires the key) or it would start
 * again and hand out a token an earlier take had; keeping it would be a key or row more per session, written on
 * every take. The holder id stays readable in the token: Redis keeps the lease as one string, `getLease` reads the
 * holder from it, and a take by the same holder is told by it in the take's one script.
 *
 * A lease written before tokens (by an older Switchyard: the holder id alone; SQLite's migration 7 gives such a row
 * its holder id as its token) is read as a take whose token is its holder id: its holder is that id, it is taken
 * over by that holder at once and by another once it expires, and no token `acquireLease` hands out names it, so no
 * fenced write of this version lands under it.
 */
import { randomBytes } from 'node:crypto';

/** parts a token: holder ids never hold it (the config's ids are letters, digits, `_ . - /`) */
export const LEASE_TOKEN_SEP = '#';

/** A new take's token for `holderId` (which must not hold LEASE_TOKEN_SEP: the holder could not be read back). */
export function newLeaseToken(holderId: string): string {
  if (holderId.includes(LEASE_TOKEN_SEP)) throw new Error(`a lease holder id cannot hold "${LEASE_TOKEN_SEP}": ${holderId}`);
  return `${holderId}${LEASE_TOKEN_SEP}${randomBytes(8).toString('hex')}`;
}

/** The holder id of a lease's token (the token itself for a lease written before tokens). */
export function leaseHolderOf(token: string): string {
  const at = token.indexOf(LEASE_TOKEN_SEP);
  return at < 0 ? token : token.slice(0, at);
}
