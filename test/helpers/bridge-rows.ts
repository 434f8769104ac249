/** A row of `GET /admin/bridges` (`peers`), as the bridge and reload suites read it (docs/operations.md). */
export interface BridgeRow {
  name: string;
  id: string | null;
  direction: string;
  state: string;
  since: string;
  url?: string | null;
  inflight: { out: number; in: number };
  /** a link a reload or a newer link let go (state `retiring` or `handing-over`) */
  retiring?: { reason: string; since: string };
}
