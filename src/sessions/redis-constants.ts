/** Shared by open-store.ts (always loaded) and redis-store.ts (loaded on demand). */
export const DEFAULT_REDIS_PREFIX = 'switchyard:';
