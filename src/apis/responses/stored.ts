/**
 * Stored Responses: a response created with `store` (the API's default) is kept in the session store's
 * expiring documents for `gateway.responses.storeTtlMs`, together with the conversation it ends (every
 * earlier item plus its own output), so `previous_response_id` continues from it with one read and
 * `GET /v1/responses/{id}` returns it. Any gateway sharing the store (Redis) can continue a conversation.
 *
 * A stored response belongs to the caller that made it (`owner`: its virtual key's id, see `ownerOf` in
 * src/http/routes/responses.ts): another caller reading it gets what an unknown id gets, so a response id that
 * leaks (a log, a shared transcript) does not open one key's conversation to another key.
 */
import type { SessionStore } from '../../sessions/store.js';
import type { Item } from './request.js';

export interface StoredResponse {
  response: Record<string, unknown>;
  /** the whole conversation up to and including this response's output, as input items */
  history: Item[];
  /** the virtual key that made it; absent when no key did (a static token or an open gateway) */
  owner?: string;
}

const key = (id: string) => `response:${id}`;

/** What a response id can look like (ours are `resp_` + 48 hex digits): any other is unknown without a store read. */
const RESPONSE_ID = /^[A-Za-z0-9_-]{1,128}$/;

export class ResponseStore {
  constructor(
    private readonly store: SessionStore,
    readonly ttlMs: number,
  ) {}

  /** The stored response `id` when `owner` made it (both absent, or the same key), else undefined. */
  async get(id: string, owner: string | undefined): Promise<StoredResponse | undefined> {
    if (this.ttlMs === 0 || !RESPONSE_ID.test(id)) return undefined;
    const text = await this.store.getExpiring(key(id));
    if (text === undefined) return undefined;
    const stored = JSON.parse(text) as StoredResponse;
    return stored.owner === owner ? stored : undefined;
  }

  async put(response: Record<string, unknown>, history: Item[], owner: string | undefined): Promise<void> {
    if (this.ttlMs === 0 || typeof response.id !== 'string') return;
    const stored: StoredResponse = { response, history, ...(owner !== undefined ? { owner } : {}) };
    await this.store.putExpiring(key(response.id), JSON.stringify(stored), this.ttlMs);
  }
}
