/**
 * `ws`, loaded at its first use: a bridge dialled or an upgrade on /bridge or /acp. A gateway that uses
 * none of them never loads it (a few MiB of idle RSS; docs/benchmarks.md, "Idle memory").
 *
 * Contract: `withWs(use, fail)` calls `use` synchronously once the module is loaded (so every upgrade after
 * the first is handled exactly as with a static import), else after the one shared `import()` settles;
 * `fail` only if that import fails (a broken install), so the caller can close its socket.
 */
import type { WebSocket, WebSocketServer } from 'ws';

export interface WsModule {
  WebSocket: typeof WebSocket;
  WebSocketServer: typeof WebSocketServer;
}

let loaded: WsModule | undefined;
let loading: Promise<WsModule> | undefined;

export function loadWs(): Promise<WsModule> {
  loading ??= import('ws').then((m) => (loaded = { WebSocket: m.WebSocket, WebSocketServer: m.WebSocketServer }));
  return loading;
}

export function withWs(use: (ws: WsModule) => void, fail: (err: unknown) => void): void {
  if (loaded) return use(loaded);
  loadWs().then(use, fail);
}
