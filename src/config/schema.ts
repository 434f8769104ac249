/**
 * The one strict config schema (../shared/spec/config.md). Unknown keys, wrong types and bad values stop
 * startup; every problem is reported as `path.to.key: message`. Types are inferred from the schema.
 * Defaults live here too, so `Config` is always complete after parsing.
 */
import { z } from 'zod';
import { SUPPORTED_VERSIONS } from '../wire/bridge-frames.js';

/**
 * The longest a Node timer can wait (2^31 − 1 ms, about 24.8 days): a longer delay is taken as 1 ms (with only a
 * TimeoutOverflowWarning), so a duration the gateway arms a timer with is bounded here, where a wrong value is
 * refused with its path, instead of firing at once (a routing.timeoutMs of 30 days would cancel every request).
 */
export const TIMER_MAX_MS = 2 ** 31 - 1;

/** the least `maxFrameBytes` a gateway can be configured with; a peer announcing less is taken at this */
export const MIN_FRAME_BYTES = 1024;

/** the heartbeat interval a responder's policy may set for a link, whatever it announces (docs/bridge-protocol.md) */
export const HEARTBEAT_BOUNDS_MS = { min: 50, max: 600_000 } as const;

/** The shortest usage retention: a month budget (keys) is seeded at startup from the whole month's records. */
export const MIN_RETENTION_DAYS = 32;

/**
 * `channels[].maxResponseBytes`' default: above the largest legitimate answer, a full embeddings batch (2,048
 * inputs of 3,072 dimensions as JSON, ~126 MB).
 */
export const DEFAULT_MAX_RESPONSE_BYTES = 128 * 1024 * 1024;

/** Rate limits of a virtual key or a bridge peer (docs/keys.md). Absent = unlimited. */
export const rateLimitsSchema = z.strictObject({
  requestsPerMin: z.number().int().min(1).optional(),
  tokensPerMin: z.number().int().min(1).optional(),
  /** requests in flight at once */
  concurrent: z.number().int().min(1).optional(),
});

/** agents Switchyard knows how to launch and point at a model API (src/acp/runtimes/agent/presets.ts) */
export const AGENT_PRESETS = ['codex', 'claude', 'gemini', 'opencode', 'hermes'] as const;

/**
 * The config's schemas, built on each call. Built, they are ~1.6 MB of live heap (zod keeps a schema object, its
 * checks and their closures per key), which a gateway needs only while it reads a config: at startup and at each
 * reload. Kept as module constants they stayed in an idle gateway for good (docs/benchmarks.md, "Idle memory").
 */
function buildConfigSchemas() {
  /** a duration a timer is armed with: an integer number of ms from `min` to TIMER_MAX_MS */
  const timer = (min: number) => z.number().int().min(min).max(TIMER_MAX_MS, `at most ${TIMER_MAX_MS} ms (about 24.8 days): longer than a timer can wait`);
  const ms = (def: number) => timer(0).default(def);
  const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, . _ - (max 64), starting with a letter or digit');
  const shareList = z.union([z.boolean(), z.array(z.string().min(1))]);
  /**
   * a WebSocket URL the gateway dials (a bridge's, an OpenClaw gateway's). Refused unless it parses: its credentials
   * could not be found to register for scrubbing, nor be hidden where it is shown, and ws could not dial it anyway.
   * Never quoted in the message. A fragment is allowed, and dropped when dialling (src/util/dial-url.ts).
   */
  const wsUrl = z
    .string()
    // abort: text that is no ws URL at all gets one problem, not this one and the next
    .regex(/^wss?:\/\/.+/, { message: 'must be a ws:// or wss:// URL', abort: true })
    .refine((s) => URL.canParse(s), 'must be a ws:// or wss:// URL: this one does not parse');

  const bridgeLimitsSchema = z.strictObject({
    handshakeTimeoutMs: ms(10_000),
    maxFrameBytes: z
      .number()
      .int()
      .min(MIN_FRAME_BYTES)
      .default(16 * 1024 * 1024),
    preAuthFrameBytes: z
      .number()
      .int()
      .min(256)
      .default(64 * 1024),
    maxInflightPerPeer: z.number().int().min(1).default(256),
    heartbeatIntervalMs: z.number().int().min(HEARTBEAT_BOUNDS_MS.min).max(HEARTBEAT_BOUNDS_MS.max).default(5_000),
    deadPeerMisses: z.number().int().min(1).default(3),
  });

  /** Prices per million tokens, in any one currency (usage reports and cost budgets use it as is). */
  const pricingSchema = z.strictObject({
    input: z.number().min(0),
    output: z.number().min(0),
    /** cached input tokens; default: the input price */
    cachedInput: z.number().min(0).optional(),
  });

  const outboundBridgeSchema = z.strictObject({
    name,
    url: wsUrl,
    token: z.string().min(1),
    shareChannels: shareList.default(true),
    shareAgents: shareList.default(false),
    autoReconnect: z.boolean().default(true),
    reconnectInterval: timer(10).default(5_000),
    /** cap of the exponential back-off */
    maxReconnectInterval: timer(10).default(60_000),
    ca: z.string().optional(),
  });

  const channelSchema = z.strictObject({
    name,
    provider: z.enum(['openai', 'vllm', 'anthropic', 'ollama', 'mock']),
    /** http(s) only: the upstream pool speaks HTTP (any other scheme is refused here, not when the pool is made) */
    baseUrl: z
      .string()
      .url()
      .regex(/^https?:\/\/.+/i, 'must be an http:// or https:// URL')
      .optional(),
    apiKey: z.string().optional(),
    models: z.array(z.string().min(1)).min(1),
    modelMap: z.record(z.string(), z.string().min(1)).default({}),
    headers: z.record(z.string(), z.string()).default({}),
    /** names of `headers` whose values are credentials: scrubbed from every error, log line and stored text */
    secretHeaders: z.array(z.string().min(1)).default([]),
    timeoutMs: timer(1).optional(),
    /** the most of one upstream answer held at once: a whole non-streaming body, or one event of a stream */
    maxResponseBytes: z.number().int().min(1024).default(DEFAULT_MAX_RESPONSE_BYTES),
    maxConcurrent: z.number().int().min(1).default(64),
    weight: z.number().min(0).default(1),
    priority: z.number().int().min(0).default(0),
    /** provider-specific knobs, e.g. mock behaviour or anthropicVersion */
    options: z.record(z.string(), z.unknown()).default({}),
    pricing: pricingSchema.optional(),
  });

  const agentSchema = z
    .strictObject({
      id: name,
      label: z.string().min(1),
      /** launch defaults and model-API wiring of a known agent; `command` / `args` override its launch */
      preset: z.enum(AGENT_PRESETS).optional(),
      command: z.string().min(1).optional(),
      args: z.array(z.string()).optional(),
      /** added to the agent's minimal environment (PATH, HOME, locale); the gateway's own environment is not passed */
      env: z.record(z.string(), z.string()).default({}),
      /** run the agent on this gateway's model API, every request pinned to `model` (needs `preset`) */
      llm: z.strictObject({ model: z.string().min(1) }).optional(),
      permissions: z.enum(['allow', 'deny', 'ask']).default('ask'),
      /** agent processes kept started and initialized for the next sessions (runtimes/agent/warm-pool.ts); 0 = none */
      warm: z.number().int().min(0).max(8).default(0),
    })
    .superRefine((a, ctx) => {
      if (!a.command && !a.preset) ctx.addIssue({ code: 'custom', path: ['command'], message: 'required unless `preset` is set' });
      if (a.llm && !a.preset)
        ctx.addIssue({ code: 'custom', path: ['llm'], message: 'needs `preset`: the gateway must know how to point the agent at a model API' });
    });

  const gatewayProviderSchema = z.discriminatedUnion('kind', [
    z.strictObject({ id: name, label: z.string().min(1), kind: z.literal('channels'), model: z.string().min(1) }),
    z.strictObject({
      id: name,
      label: z.string().min(1),
      kind: z.literal('openclaw'),
      url: wsUrl,
      token: z.string().min(1),
    }),
  ]);

  /** Operations (docs/operations.md): metrics, traces, logs, shutdown. */
  const opsSchemas = {
    /** GET /metrics: this bearer token, else the admin token (same rules as /admin) */
    metrics: z.strictObject({ token: z.string().min(1).optional() }).prefault({}),
    tracing: z
      .strictObject({
        enabled: z.boolean().default(false),
        /** OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces */
        endpoint: z
          .string()
          .regex(/^https?:\/\/.+/, 'must be an http:// or https:// URL')
          .optional(),
        headers: z.record(z.string(), z.string()).default({}),
        serviceName: z.string().min(1).optional(),
        sampleRatio: z.number().min(0).max(1).default(1),
        exportIntervalMs: timer(10).default(1_000),
      })
      .prefault({})
      .refine((t) => !t.enabled || t.endpoint !== undefined, { message: 'endpoint: required when tracing is enabled', path: ['endpoint'] }),
    log: z.strictObject({ level: z.enum(['error', 'warn', 'info', 'debug']).optional() }).prefault({}),
    shutdown: z
      .strictObject({
        /** before closing, move every session this gateway owns to this peer (name or gateway id) */
        drainSessionsTo: z.string().min(1).optional(),
      })
      .prefault({}),
  };

  const effortLevel = z.enum(['low', 'medium', 'high', 'max']);
  /** `acp.roles`: which models (any model the mesh serves) and executors (ACP runtime ids) each role may use. */
  const rolePolicySchema = z.strictObject({
    enabled: z.boolean().default(true),
    policyVersion: z.string().min(1).max(64).default('1'),
    /** only `gateway_quota` dispatches (the gateway's own limits are the budget); anything else refuses role turns */
    budgetMode: z.enum(['gateway_quota', 'none']).default('gateway_quota'),
    roles: z
      .array(
        z.strictObject({
          role: z.enum(['chat', 'worker', 'engineer', 'architect', 'researcher', 'specialist']),
          enabled: z.boolean().default(true),
          /** in order of preference; `key` is what the app sends as roleModel, `model` a model name the mesh serves */
          models: z
            .array(
              z.strictObject({
                key: z.string().regex(/^[A-Za-z0-9_.:/-]{1,128}$/),
                model: z.string().min(1).max(256),
                displayName: z.string().min(1).max(128).optional(),
                /** the `routing.dataClass` values that may be sent to this model (egress); others exclude it */
                dataClasses: z.array(z.string().min(1).max(256)).min(1).default(['unclassified']),
              }),
            )
            .min(1),
          /** ids from acp.agents / acp.gateways, in order of preference */
          executors: z.array(z.string().min(1)).min(1),
          productModes: z.array(z.enum(['work', 'code'])).default([]),
          requiresWorkspace: z.boolean().default(false),
          requiresSpecialty: z.boolean().default(false),
          effort: z.strictObject({ start: effortLevel, min: effortLevel, max: effortLevel }).optional(),
        }),
      )
      .default([]),
  });

  const configSchema = z.strictObject({
    gateway: z
      .strictObject({
        id: z
          .string()
          .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - (max 64)')
          .optional(),
        name: z.string().min(1).max(128).default('Switchyard Gateway'),
        host: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(18789),
        tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional(),
        auth: z
          .strictObject({
            tokens: z.array(z.string().min(1)).default([]),
            /** require a virtual key (or a static token) even with no static token configured */
            requireKey: z.boolean().default(false),
          })
          .prefault({}),
        keys: z.strictObject({ refreshMs: timer(50).default(1000) }).prefault({}),
        limits: z
          .strictObject({
            /** the fraction of each limit one instance enforces alone while Redis is unreachable */
            limitShare: z.number().gt(0).max(1).default(1),
            redisTimeoutMs: timer(1).default(250),
          })
          .prefault({}),
        usage: z
          .strictObject({
            flushIntervalMs: timer(10).default(1000),
            maxBatch: z.number().int().min(1).default(500),
            /** usage records older than this many days are deleted (hourly); 0 keeps them all */
            retentionDays: z
              .number()
              .int()
              .min(0)
              .default(0)
              .refine((d) => d === 0 || d >= MIN_RETENTION_DAYS, {
                message: `must be 0 (keep every record) or at least ${MIN_RETENTION_DAYS}: a month's budget is seeded from that month's records`,
              }),
          })
          .prefault({}),
        admin: z.strictObject({ token: z.string().min(1).optional() }).prefault({}),
        /** max request body on /v1/* and /acp/rpc */
        maxBodyBytes: z
          .number()
          .int()
          .min(1024)
          .default(8 * 1024 * 1024),
        /** a request body must arrive completely within this long after its headers (slow senders are cut: 408) */
        bodyTimeoutMs: timer(100).default(30_000),
        /** bytes of request bodies being received, summed over all requests; past it a request gets 503 */
        maxBufferedBodyBytes: z
          .number()
          .int()
          .min(64 * 1024)
          .default(32 * 1024 * 1024),
        /** JSON request bodies nested deeper than this are refused (400 naming the field) */
        maxJsonDepth: z.number().int().min(8).max(1000).default(64),
        /** Host names (besides IP literals, localhost and gateway.host) this gateway answers to: `name`, `.domain`, or `*` */
        allowedHosts: z.array(z.string().min(1)).default([]),
        /** browser origins allowed to call /v1 and /admin (exact, `http://host:*`, or `*`); none by default */
        allowedOrigins: z.array(z.string().min(1)).default([]),
        /** graceful shutdown: how long in-flight requests may finish */
        shutdownGraceMs: ms(10_000),
        ...opsSchemas,
        /** OpenAI Responses API (/v1/responses): stored responses for previous_response_id and GET /v1/responses/{id} */
        responses: z
          .strictObject({
            /** how long a response created with `store` (default true) stays retrievable; 0 = never stored */
            storeTtlMs: z
              .number()
              .int()
              .min(0)
              .default(24 * 60 * 60_000),
          })
          .prefault({}),
        bridges: z.array(outboundBridgeSchema).default([]),
        bridge: z
          .strictObject({
            enabled: z.boolean().default(false),
            allowedTokens: z.array(z.string().min(1)).default([]),
            shareChannels: z.array(z.string().min(1)).default([]),
            shareAgents: z.array(z.string().min(1)).default([]),
            maxPeers: z.number().int().min(0).default(5),
            /** sockets on /bridge that have not completed the handshake, in total and per remote address */
            maxUnauthenticated: z.number().int().min(1).default(64),
            maxUnauthenticatedPerIp: z.number().int().min(1).default(8),
            acceptSessions: z.boolean().default(false),
            loadBalance: z.boolean().default(false),
            /**
             * the lowest bridge protocol version this gateway speaks, in both roles: '1.2' refuses peers whose pongs are
             * matched on the ping's time alone (docs/bridge-protocol.md, Version negotiation)
             */
            minProtocolVersion: z.enum(SUPPORTED_VERSIONS as [string, ...string[]]).default('1.0'),
            limits: bridgeLimitsSchema.prefault({}),
            /** what a peer may use of our shared channels: defaults, and per peer gateway id */
            peerLimits: rateLimitsSchema.extend({ peers: z.record(z.string(), rateLimitsSchema).default({}) }).prefault({}),
          })
          .prefault({}),
        routing: z
          .strictObject({
            strategy: z.enum(['least-loaded', 'weighted', 'priority']).default('least-loaded'),
            preferLocal: z.boolean().default(true),
            retries: z.number().int().min(0).max(10).default(2),
            timeoutMs: timer(1).default(600_000),
            firstByteTimeoutMs: timer(1).default(60_000),
            /** max silence between stream chunks before the stream is ended with an error */
            streamIdleTimeoutMs: timer(1).default(60_000),
            /** how long an X-Session-Id keeps routing to the same candidate after its last request */
            affinityTtlMs: z
              .number()
              .int()
              .min(0)
              .default(30 * 60_000),
            /** passive health (outlier detection), per candidate */
            health: z
              .strictObject({
                consecutiveFailures: z.number().int().min(1).default(5),
                failureRatio: z.number().gt(0).max(1).default(0.5),
                windowMs: timer(100).default(30_000),
                minRequests: z.number().int().min(1).default(10),
                baseEjectionMs: timer(10).default(30_000),
                maxEjectionMs: timer(10).default(300_000),
              })
              .prefault({}),
          })
          .prefault({}),
      })
      .prefault({}),
    channels: z.array(channelSchema).default([]),
    acp: z
      .strictObject({
        /** role routing policy (addendum 2026-10 §1–3); absent = role-routed turns are refused ROLE_POLICY_UNCONFIGURED */
        roles: rolePolicySchema.optional(),
        enabled: z.boolean().default(true),
        tokens: z.array(z.string().min(1)).default([]),
        allowedOrigins: z.array(z.string().min(1)).default([]),
        workspaceRoot: z.string().min(1).default('./workspaces'),
        /** a turn holds its session's lease this long, renewed while it runs; a crashed instance's lease expires after it */
        turnLeaseMs: timer(500).default(30_000),
        /** how long a turn waits for its session's lease held by another instance; absent: turnLeaseMs + 5 s, at least 30 s */
        turnLeaseWaitMs: timer(0).optional(),
        /** a permission prompt the app does not answer resolves as cancelled after this long */
        permissionTimeoutMs: timer(100).default(600_000),
        /** an SSE or WebSocket stream with more than this many bytes waiting for its client is cut (CLIENT_TOO_SLOW); the client resumes from the update log */
        maxStreamBacklogBytes: z
          .number()
          .int()
          .min(64 * 1024)
          .default(8 * 1024 * 1024),
        /**
         * a session's update log keeps its newest updates up to this many bytes (their JSON), and 1000 at most; older
         * ones are dropped, and a resume from before them gets UPDATE_LOG_TRUNCATED
         */
        updateLogMaxBytes: z
          .number()
          .int()
          .min(64 * 1024)
          .default(64 * 1024 * 1024),
        /** closed and moved-away sessions whose last update is older than this many days are deleted (at startup, then hourly); 0 keeps them */
        endedSessionRetentionDays: z.number().int().min(0).default(0),
        agents: z.array(agentSchema).default([]),
        /** live agent processes at most (all sessions together); past it an idle one that can be reloaded is stopped, else session starts are refused */
        maxAgentProcesses: z.number().int().min(1).default(16),
        /** an agent process idle this long is stopped (its session stays; the next turn starts a new process); 0 = never */
        agentIdleTimeoutMs: ms(10 * 60_000),
        /** private folders of agents run with `llm` (generated config, the agent's HOME), one per session, removed at close */
        agentHomeRoot: z.string().min(1).default('./agent-homes'),
        gateways: z.array(gatewayProviderSchema).default([]),
      })
      .prefault({}),
    store: z
      .discriminatedUnion('kind', [
        z.strictObject({ kind: z.literal('sqlite'), path: z.string().min(1).default('./data/switchyard.db') }),
        z.strictObject({
          kind: z.literal('redis'),
          url: z.string().regex(/^rediss?:\/\/.+/, 'must be a redis:// URL'),
          prefix: z.string().default('switchyard:'),
          /** this instance's stable name among those sharing the store: restarted with it, it owns its old leases at once */
          instanceId: z
            .string()
            .regex(/^[A-Za-z0-9_.-]{1,128}$/, 'letters, digits, _ . - (at most 128)')
            .optional(),
        }),
      ])
      .prefault({ kind: 'sqlite' }),
  });
  return {
    config: configSchema,
    rolePolicy: rolePolicySchema,
    channel: channelSchema,
    outboundBridge: outboundBridgeSchema,
    bridgeLimits: bridgeLimitsSchema,
    agent: agentSchema,
    pricing: pricingSchema,
  };
}

type ConfigSchemas = ReturnType<typeof buildConfigSchemas>;

/** The whole config's schema, built anew (see buildConfigSchemas): hold it only while parsing. */
export function configSchema(): ConfigSchemas['config'] {
  return buildConfigSchemas().config;
}

export type Config = z.infer<ConfigSchemas['config']>;
export type RolePolicyConfig = z.infer<ConfigSchemas['rolePolicy']>;
export type ChannelConfig = z.infer<ConfigSchemas['channel']>;
export type OutboundBridgeConfig = z.infer<ConfigSchemas['outboundBridge']>;
export type BridgeLimits = z.infer<ConfigSchemas['bridgeLimits']>;
export type AgentConfig = z.infer<ConfigSchemas['agent']>;
export type AgentPresetName = (typeof AGENT_PRESETS)[number];
export type RateLimits = z.infer<typeof rateLimitsSchema>;
export type PricingConfig = z.infer<ConfigSchemas['pricing']>;
