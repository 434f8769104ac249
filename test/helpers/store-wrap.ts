import type { SessionStore } from '../../src/sessions/store.js';

/** `store` with some of its methods replaced (the rest bound to the real store) */
export function wrapStore(store: SessionStore, over: Partial<SessionStore>): SessionStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop in over) return over[prop as keyof SessionStore];
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}
