/**
 * How CLI commands find a running gateway: --url/--token flags, then SWITCHYARD_URL /
 * SWITCHYARD_ADMIN_TOKEN, then the config file (--config or the default lookup). Failures become one line.
 */
import type { Command } from 'commander';
import { loadConfig, ConfigError, isLoopbackHost } from '../config/load.js';
import { BaseUrlError, gatewayBase } from './acp-client/base-url.js';
import { secrets } from '../util/redact.js';

export interface RemoteFlags {
  url?: string;
  token?: string;
  config?: string;
  json?: boolean;
}

export class CliError extends Error {
  /** `code`: the admin API's error code (`error.code`, e.g. `session_store_unavailable`) when the failure is its answer */
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

/**
 * resolveRemote's refusal to find the gateway from an invalid config file (`problems`: the ConfigError's text, every
 * problem); `config reload`, whose file is the one to apply, words it for its own case.
 */
export class InvalidRemoteConfig extends CliError {
  constructor(
    readonly problems: string,
    tokenVar: string,
  ) {
    super(`the gateway is found from the config file, which is invalid: ${problems}\n  (give --url and --token, or $SWITCHYARD_URL and ${tokenVar})`);
  }
}

/**
 * A command argument or option that names something (a key, a session, a peer): an empty one (`""`, an unset
 * shell variable) was sent as an empty path segment and came back as `no admin route GET /admin/keys/`.
 */
export const named = (what: string) => (v: string) => {
  if (v.trim() === '') throw new CliError(`${what} is empty: give an id or a name`);
  return v;
};

/** The flags every command that talks to a running gateway's admin API takes. */
export function remoteOptions(c: Command): Command {
  return c
    .option('-c, --config <file>', 'find the gateway (host, port, admin token) from this config')
    .option('--url <url>', 'gateway base URL (else $SWITCHYARD_URL, else the config)')
    .option('--token <token>', 'admin token (else $SWITCHYARD_ADMIN_TOKEN, else the config)')
    .option('--json', 'machine-readable output');
}

export function resolveRemote(flags: RemoteFlags, kind: 'admin' | 'acp' = 'admin'): { url: string; token: string | undefined } {
  // An empty variable counts as unset (shells and CI often export VAR= to clear it).
  const env = (v: string | undefined) => (v === undefined || v === '' ? undefined : v);
  const envToken = env(kind === 'admin' ? process.env.SWITCHYARD_ADMIN_TOKEN : process.env.SWITCHYARD_ACP_TOKEN);
  let url = flags.url ?? env(process.env.SWITCHYARD_URL);
  // a refusal of the URL names where it came from: a $SWITCHYARD_URL exported long ago is not the `--url` just typed
  const subject = flags.url !== undefined ? '--url' : url !== undefined ? '$SWITCHYARD_URL' : "the config file's gateway address";
  let token = flags.token ?? envToken;
  if (!url || token === undefined) {
    try {
      const { config } = loadConfig(flags.config);
      const host = config.gateway.host === '0.0.0.0' ? '127.0.0.1' : config.gateway.host === '::' ? '[::1]' : config.gateway.host;
      url ??= `${config.gateway.tls ? 'https' : 'http'}://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${config.gateway.port}`;
      token ??= kind === 'admin' ? config.gateway.admin.token : config.acp.tokens[0];
    } catch (err) {
      // as `config reload` says it: an invalid file cannot say where the gateway is nor which token it takes. Found
      // by $SWITCHYARD_CONFIG or ./switchyard.json5, it was ignored and the built-in address dialled ("cannot reach
      // the gateway at http://127.0.0.1:18789", or no token sent); named with --config, its first lines only
      if (!(err instanceof ConfigError)) throw err;
      throw new InvalidRemoteConfig(err.message, kind === 'admin' ? '$SWITCHYARD_ADMIN_TOKEN' : '$SWITCHYARD_ACP_TOKEN');
    }
  }
  // one rule set for what a base URL may be, the ACP client's first rules (acp-client/base-url.ts): the admin commands
  // append their path to this base, `task …`'s client normalises it further; a refusal never echoes the URL (a
  // password in it would land in the error line)
  let base: URL;
  try {
    base = gatewayBase(url, {
      subject,
      token: kind === 'admin' ? 'the admin token with --token or $SWITCHYARD_ADMIN_TOKEN' : 'the ACP token with --token or $SWITCHYARD_ACP_TOKEN',
    });
  } catch (err) {
    if (err instanceof BaseUrlError) throw new CliError(err.message);
    throw err;
  }
  url = base.href;
  // a token read with `"$(cat file)"` from a file with CRLF line endings keeps its `\r`: no HTTP header can carry it,
  // and the request failing before it is sent read "cannot reach the gateway … is it running?" (never the token here)
  // eslint-disable-next-line no-control-regex -- control characters are what is looked for
  if (token !== undefined && /[\u0000-\u001f\u007f]/.test(token)) {
    const name = kind === 'admin' ? 'admin' : 'ACP';
    throw new CliError(`the ${name} token contains a control character (a line ending from the file it was read from?); no HTTP header can carry it`);
  }
  // a reply that echoes the token (a proxy's error page, a misbehaving server) must not print it: every error line
  // and the admin commands' stdout go through the scrubber (index.ts, table.ts)
  secrets.register(token);
  // `task …` warns once its client accepted the base (a base it refuses gets no token: task.ts)
  if (token !== undefined && kind === 'admin') warnCleartext(url, kind);
  return { url: url.replace(/\/+$/, ''), token };
}

let warned = false;

/**
 * A token sent over plain http:// to a host that is not this machine crosses the network readable by anyone on
 * the path: said once on stderr (the command still runs: a trusted LAN may be the operator's choice). The host
 * is named, never the token.
 */
export function warnCleartext(url: string, kind: 'admin' | 'acp'): void {
  let host: string;
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:') return;
    host = u.hostname;
  } catch {
    return;
  }
  if (warned || isLoopbackHost(host)) return;
  warned = true;
  process.stderr.write(
    `switchyard: warning: sending the ${kind === 'admin' ? 'admin' : 'ACP'} token in clear text to ${host} (http://, not this machine); use https:// (gateway.tls) or reach the gateway through a tunnel\n`,
  );
}

/** What a successful reply must hold at its top level: field name → its JSON kind. */
export type ReplyShape = Record<string, 'array' | 'object' | 'string'>;

/**
 * The request's fields that a command's flags give, API field (as the API's `param` names it) → the flag, e.g.
 * `{ expiresAt: '--expires', 'limits.requestsPerMin': '--rpm', url: '--peer-url' }`: a refusal the API words
 * `<param>: …` is printed `<flag>: …`, naming what the operator typed (a field's own path below it, `models.0`,
 * is its flag's too).
 */
export type FlagFields = Record<string, string>;

function naming(message: string, param: unknown, fields: FlagFields): string {
  if (typeof param !== 'string' || !message.startsWith(`${param}: `)) return message;
  const flag = Object.entries(fields).find(([field]) => param === field || param.startsWith(`${field}.`))?.[1];
  return flag === undefined ? message : `${flag}: ${message.slice(param.length + 2)}`;
}

const kindOf = (v: unknown): string => (Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v);

/**
 * Calls the admin API; any failure (down, refused, 401, 4xx/5xx) becomes a CliError with one clear line, followed
 * by the error's `details.problems` one a line when it lists any (a refused config reload). `timeoutMs` bounds
 * the wait for the reply's headers and between its body's chunks. `expect` names the fields a successful reply
 * holds: a 2xx JSON reply without them (some other service on that port, a proxy's `{}`) is refused in one line,
 * not printed as `undefined` under `--json` with exit 0, nor failed with a TypeError's text. `fields`: the body's
 * or query's fields the command's flags give (FlagFields), so that a refusal names the flag.
 */
export async function adminCall<T>(
  flags: RemoteFlags,
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  body?: unknown,
  { timeoutMs = 10_000, expect = {}, fields = {} }: { timeoutMs?: number; expect?: ReplyShape; fields?: FlagFields } = {},
): Promise<T> {
  const { url, token } = resolveRemote(flags, 'admin');
  // undici at the first admin call, so `switchyard gateway` (which imports CliError from here) does not load it
  const { request } = await import('undici');
  let res;
  try {
    res = await request(url + path, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? null : JSON.stringify(body),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
  } catch (err) {
    const code = (err as { code?: string }).code;
    // connected, then silence: the gateway is there (or something is), so "is it running?" would mislead
    if (code === 'UND_ERR_HEADERS_TIMEOUT') throw new CliError(`${url} accepted the connection but did not answer within ${timeoutMs / 1000} s`);
    throw new CliError(`cannot reach the gateway at ${url} (${code ?? (err as Error).message}); is it running?`);
  }
  let text: string;
  try {
    text = await res.body.text();
  } catch (err) {
    const code = (err as { code?: string }).code;
    throw new CliError(
      code === 'UND_ERR_BODY_TIMEOUT'
        ? `${url} stopped sending its reply (HTTP ${res.statusCode}) for ${timeoutMs / 1000} s`
        : `the reply from ${url} was cut short (HTTP ${res.statusCode}, ${code ?? (err as Error).message})`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new CliError(`unexpected reply from ${url}${path} (HTTP ${res.statusCode}); is this a Switchyard gateway?`);
  }
  if (res.statusCode >= 400) {
    const error = (json as { error?: { message?: string; code?: unknown; param?: unknown; details?: { problems?: unknown } } }).error;
    const msg = error?.message === undefined ? `HTTP ${res.statusCode}` : naming(error.message, error.param, fields);
    if (res.statusCode === 401) throw new CliError(`admin token rejected by ${url}: ${msg}`);
    const code = typeof error?.code === 'string' ? error.code : undefined;
    const problems = Array.isArray(error?.details?.problems) ? error.details.problems : [];
    // a refusal (403) or a failure (500) is no answer to what was asked, and its text alone ("internal error") said
    // neither which nor who answered: the status, the API's code and the URL are given, as the 401's line names its
    // URL (every line passes the secret scrubber: the token is never printed)
    const head =
      res.statusCode === 403 || res.statusCode === 500
        ? `${url} answered HTTP ${res.statusCode}${code ? ` (${code})` : ''}${error?.message === undefined ? '' : `: ${msg}`}`
        : msg;
    throw new CliError(`${head}${problems.map((p) => `\n  ${String(p)}`).join('')}`, code);
  }
  const reply = json as Record<string, unknown>;
  for (const [field, kind] of Object.entries(expect)) {
    if (kindOf(json) !== 'object' || kindOf(reply[field]) !== kind) {
      throw new CliError(
        `unexpected reply from ${url}${path} (HTTP ${res.statusCode}, ${kindOf(json) === 'object' ? `no "${field}" ${kind}` : `a JSON ${kindOf(json)}`}); is this a Switchyard gateway?`,
      );
    }
  }
  return json as T;
}
