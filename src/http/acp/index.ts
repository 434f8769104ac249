/**
 * The `/acp/rpc` (HTTP + SSE) and `/acp` (WebSocket) transports around the ACP core (src/acp/): JSON-RPC
 * envelopes, Origin and Bearer checks, keepalives. The core's method table is served unchanged by both. Also
 * the task-session REST routes under `/api/v1/sessions/` (sessions-route.ts), with the same access rules.
 */
import { createAcpCore, type AcpCore, type AcpCoreDeps } from '../../acp/index.js';
import type { RouteHandler, UpgradeHandler } from '../server.js';
import { acpHttpRoute, DEFAULT_KEEPALIVE_MS } from './route.js';
import { createAcpWs } from './ws.js';
import { SESSIONS_PREFIX, sessionsRoute } from './sessions-route.js';
import { AcpStreams } from './streams.js';
import { refuseUpgrade } from '../../util/refuse-upgrade.js';

export interface AcpDeps extends AcpCoreDeps {
  maxBodyBytes: number;
  /** SSE keepalive interval; default 20 s (env SWITCHYARD_ACP_KEEPALIVE_MS overrides, for tests and tuning) */
  keepaliveMs?: number;
}

export interface Acp {
  route: RouteHandler;
  upgrade: UpgradeHandler;
  /** graceful stop: new turns refused, running ones finish (bounded) */
  drain(graceMs: number): Promise<void>;
  /** config reload: builds the runtime table for the new `acp.agents` / `acp.gateways` (all that can throw);
   *  the returned commit swaps it in and cannot throw (AcpCore.prepare) */
  prepare: AcpCore['prepare'];
  /** the warm agent pools, for the operator's views (overview, `switchyard status`) */
  warmPools: AcpCore['warmPools'];
  /** what the task registry (`xworkmate.tasks.get`) holds in memory, for /metrics */
  tasksHeld: AcpCore['tasksHeld'];
  /** the open SSE and WebSocket streams' backlog and the streams cut for a slow client, for /metrics */
  streams: AcpStreams;
  /** a stop, before the listener closes: the `/acp` WebSockets are closed (1001), as the bridge's links are */
  closeSockets(): Promise<void>;
  /** `deadline`: the stop's (epoch ms), which the last session writes share (TurnRunner.shutdown) */
  close(deadline?: number): Promise<void>;
}

export function createAcp(deps: AcpDeps): Acp {
  const acp = deps.config.acp;
  const core = createAcpCore(deps);
  const { dispatch, log } = core;
  const envKeepalive = Number(process.env.SWITCHYARD_ACP_KEEPALIVE_MS);
  const keepaliveMs = deps.keepaliveMs ?? (Number.isFinite(envKeepalive) && envKeepalive >= 10 ? envKeepalive : DEFAULT_KEEPALIVE_MS);
  const streams = new AcpStreams();
  // how long a stream cut for a slow client may wait for it to take its end (env override: for tests)
  const envLinger = Number(process.env.SWITCHYARD_ACP_CUT_LINGER_MS);
  const cutLingerMs = Number.isFinite(envLinger) && envLinger >= 10 ? envLinger : undefined;
  const maxStreamBacklogBytes = acp.maxStreamBacklogBytes;
  const http = acpHttpRoute({
    tokens: acp.tokens,
    keys: deps.keys,
    allowedOrigins: acp.allowedOrigins,
    maxBodyBytes: deps.maxBodyBytes,
    dispatch,
    logger: log,
    keepaliveMs,
    maxStreamBacklogBytes,
    streams,
    cutLingerMs,
  });
  const ws = createAcpWs({
    tokens: acp.tokens,
    keys: deps.keys,
    allowedOrigins: acp.allowedOrigins,
    maxPayloadBytes: deps.maxBodyBytes,
    dispatch,
    follow: (sessionId, afterSeq, push, caller, flow) => core.follow(sessionId, afterSeq, push, caller, flow),
    logger: log,
    maxStreamBacklogBytes,
    streams,
  });

  const sessions = sessionsRoute({
    tokens: acp.tokens,
    keys: deps.keys,
    allowedOrigins: acp.allowedOrigins,
    maxBodyBytes: deps.maxBodyBytes,
    sessions: core.sessions,
  });
  const route: RouteHandler = (req, res, path, requestId) =>
    path.startsWith(SESSIONS_PREFIX) ? sessions(req, res, path, requestId) : http(req, res, path, requestId);

  return {
    route: acp.enabled ? route : () => false,
    upgrade: acp.enabled ? ws.upgrade : (_req, socket) => refuseUpgrade(socket, '404 Not Found'),
    drain: (graceMs) => core.drain(graceMs),
    prepare: (next) => core.prepare(next),
    warmPools: () => core.warmPools(),
    tasksHeld: () => core.tasksHeld(),
    streams,
    closeSockets: () => ws.close(),
    async close(deadline) {
      await ws.close();
      await core.close(deadline);
    },
  };
}
