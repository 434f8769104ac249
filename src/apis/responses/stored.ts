/**
 * Stored Responses: a response created with `store` (the API's default) is kept in the session store's
 * expiring documents for `gateway.responses.storeTtlMs`, together with the conversation it ends (every
 * earlier item plus its own output), so `previous_response_id` continues from it with one read and
 * `GET /v1/responses/{id}` returns it. Any gateway sharing the store (Redis) can continue a conversation.
 */
import type { SessionStore } from '../../sessions/store.js';
import type { Item } from './request.js';

export interface StoredResponse {
  response: Record<string, unknown>;
  /** the whole conversation up to and including this response's output, as input items */
  history: Item[];
}

const key = (id: string) => `response:${id}`;

export class ResponseStore {
  constructor(
    private readonly store: SessionStore,
    readonly ttlMs: number,
  ) {}

  async get(id: string): Promise<StoredResponse | undefined> {
    if (this.ttlMs === 0) return undefined;
    const text = await this.store.getExpiring(key(id));
    return text === undefined ? undefined : (JSON.parse(text) as StoredResponse);
  }

  async put(response: Record<string, unknown>, history: Item[]): Promise<void> {
    if (this.ttlMs === 0 || typeof response.id !== 'string') return;
    const stored: StoredResponse = { response, history };
    await this.store.putExpiring(key(response.id), JSON.stringify(stored), this.ttlMs);
  }
}
