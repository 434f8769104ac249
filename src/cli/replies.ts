/**
 * The shapes of the admin API's successful replies, as the CLI reads them: zod schemas of what each command prints
 * (adminCall checks a 2xx reply against its command's schema). Only what the commands read is required; every object
 * is loose (a newer gateway's extra fields pass, and `--json` prints them), and a field an older gateway does not send
 * is optional where the command already says so (`acp`, `skippedModels`, `warmPools`, `estimated`, …). A reply of
 * another shape (an older or newer gateway, a proxy's page, another service on the port) is refused in one line that
 * names the URL and what was wrong (`no "keys.0.models" array`), never printed as `undefined` nor failed with a
 * TypeError's text.
 */
import { z } from 'zod';

const str = z.string();
const num = z.number();
const strs = z.array(z.string());
const nullable = <T extends z.ZodType>(t: T) => t.nullable();

/** a key as the admin API shows it (KeySummary): what `keys list` and `keys show` print */
const keySummary = z.looseObject({
  id: str,
  name: str,
  owner: str,
  hint: str,
  status: str,
  models: strs,
  limits: z.looseObject({ requestsPerMin: num.nullish(), tokensPerMin: num.nullish(), concurrent: num.nullish() }),
  budget: z.looseObject({ period: str, tokens: num.optional(), cost: num.optional() }).nullish(),
  expiresAt: nullable(str).optional(),
  acp: z.boolean().optional(),
  createdAt: str,
  rotatedAt: nullable(str).optional(),
});

export const KEY = z.looseObject({
  key: keySummary.extend({ spent: z.looseObject({ period: str, tokens: num, cost: num }).nullish() }),
});
/** a page of keys: `more` with the cursor of the next (`next`); a gateway older than paging sends neither, and every key */
export const KEYS = z.looseObject({ keys: z.array(keySummary), more: z.boolean().optional(), next: str.optional() });
/** a create's or a rotate's reply: the key and its secret, shown once */
export const KEY_SECRET = z.looseObject({ key: keySummary, secret: str });

/** a peer as `bridge list` prints it (PeerRow) */
const peerRow = z.looseObject({
  name: str,
  id: nullable(str),
  direction: str,
  state: str,
  since: str,
  protocol: nullable(str).optional(),
  sharedWithUs: strs,
  sharedByUs: strs,
  inflight: z.looseObject({ out: num, in: num }),
  health: z.record(z.string(), z.string()),
  lastError: nullable(str),
  /** a link still draining, or routing until its bridge's new link opens; a gateway older than it lists none */
  retiring: z.looseObject({ reason: str, since: str }).optional(),
});
export const PEERS = z.looseObject({ peers: z.array(peerRow) });
export const PEER = z.looseObject({ peer: peerRow });
export const DISCONNECTED = z.looseObject({ disconnected: str });

const sharedChannel = z.looseObject({ name: str, provider: str, models: strs });
export const SHARED_CHANNELS = z.looseObject({
  peers: z.array(z.looseObject({ peer: str, id: nullable(str), direction: str, theyShare: z.array(sharedChannel), weShare: z.array(sharedChannel) })),
});

const health = z.looseObject({ state: str, ejectedUntil: num.optional(), reason: nullable(str).optional() });
const channelRow = z.looseObject({
  channel: str,
  provider: str,
  peer: nullable(str),
  mock: z.boolean().optional(),
  models: strs,
  inflight: num,
  maxConcurrent: num,
  latencyMsEwma: num,
  health,
  skippedModels: z.array(z.looseObject({ model: str, until: num })).optional(),
});
export const CHANNELS = z.looseObject({ channels: z.array(channelRow) });

/** `switchyard status`: the overview's parts it prints */
export const OVERVIEW = z.looseObject({
  gateway: z.looseObject({ name: str, id: str, version: str, uptimeSec: num }),
  requests: z.looseObject({ requestsPerSec: num, errorsPerSec: num, inflight: num, waiting: num }),
  sessions: z.looseObject({
    byStatus: z.record(z.string(), num),
    running: z.array(z.looseObject({ id: str, turnId: nullable(str), startedAt: nullable(str) })),
  }),
  peers: z.array(
    z.looseObject({
      name: str,
      direction: str,
      state: str,
      rttMs: nullable(num),
      inflight: z.looseObject({ out: num, in: num }),
      sharedWithUs: strs,
      sharedByUs: strs,
      lastError: nullable(str),
    }),
  ),
  channels: z.array(channelRow.omit({ latencyMsEwma: true, skippedModels: true }).extend({ latencyMsEwma: num.optional() })),
  retiringLinks: z.looseObject({ retiring: num, handingOver: num, inflight: z.looseObject({ out: num, in: num }) }).optional(),
  warmPools: z.array(z.looseObject({ agentId: str })).optional(),
});

/** a session in a listing (sessionSummary) */
const sessionSummary = z.looseObject({
  id: str,
  kind: str,
  status: str,
  owner: str,
  movedTo: nullable(str).optional(),
  transfer: nullable(str).optional(),
  target: z.looseObject({ executionTarget: str }),
  turns: num,
  updatedAt: str,
});
/** `more`: the gateway holds others (a page, GET /admin/sessions?limit=), `next`: where they start (`?after=`); a gateway older than either sends none */
export const SESSIONS = z.looseObject({ sessions: z.array(sessionSummary), more: z.boolean().optional(), next: str.optional() });
export const SESSION = z.looseObject({
  session: z.looseObject({
    id: str,
    kind: str,
    status: str,
    ownerGatewayId: str,
    version: num,
    history: z.array(z.looseObject({ turnId: str, status: str })),
  }),
});
export const TRANSFERRED = z.looseObject({ to: z.looseObject({ id: str, name: str }) });
/** GET /admin/status, read by `sessions drain` for this gateway's id */
export const GATEWAY_STATUS = z.looseObject({ id: str });

const usageRow = z.looseObject({
  group: str,
  requests: num,
  inputTokens: num,
  outputTokens: num,
  cachedTokens: num,
  cost: num,
  estimated: num.optional(),
});
export const USAGE = z.looseObject({ since: nullable(str).optional(), rows: z.array(usageRow), total: usageRow });

/** a config reload's report */
export const RELOAD_REPORT = z.looseObject({ applied: strs, restartRequired: strs });
