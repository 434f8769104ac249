/**
 * How CLI commands find a running gateway: --url/--token flags, then SWITCHYARD_URL /
 * SWITCHYARD_ADMIN_TOKEN, then the config file (--config or the default lookup). Failures become one line.
 */
import type { Command } from 'commander';
import { z } from 'zod';
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
  /**
   * `code`: the admin API's error code (`error.code`, e.g. `session_store_unavailable`) when the failure is its answer;
   * `status`: the HTTP status of a non-2xx answer; `said`: that answer's own message (scrubbed), for a report that
   * lists many answers of one gateway (a drain's per-session lines)
   */
  constructor(
    message: string,
    readonly code?: string,
    readonly status?: number,
    readonly said?: string,
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
 * What a status says to the operator beyond the API's message: the hint the one line of a non-2xx answer ends with
 * (none where the message says it all: a 400 names the flag, a 403 or a 500 its cause). `retryAfter`: the answer's
 * Retry-After header.
 */
function statusHint(status: number, message: string | undefined, retryAfter: string | undefined): string | undefined {
  const retry = `retry ${retryAfter && /^\d+$/.test(retryAfter) ? `in ${retryAfter} s` : 'shortly'}`;
  if (status === 401) return "admin token rejected: give the gateway's gateway.admin.token with --token or $SWITCHYARD_ADMIN_TOKEN";
  // a route this CLI knows and the gateway does not: a gateway older than the CLI (or a proxy's path that leads elsewhere)
  if (status === 404 && (message === undefined || message.startsWith('no admin route')))
    return 'the gateway has no such admin route: is it older than this CLI (switchyard --version)? or is the URL a prefix that leads elsewhere?';
  if (status === 409) return 'it conflicts with what the gateway holds now (a name already taken, a session already moved): nothing was changed';
  if (status === 429) return `too many requests: ${retry}`;
  if (status === 502 || status === 504)
    return `the gateway, or a proxy in front of it, could not reach what answers (the gateway, its store, a peer): ${retry}, and check that they run`;
  if (status === 503) return message !== undefined && /retry/.test(message) ? undefined : `the gateway or its store is unavailable now: ${retry}`;
  return undefined;
}

/**
 * The one line for every non-2xx answer: who answered (the base URL), the HTTP status, the API's error code and
 * message (the flag named for a refused field), then what that status means for the operator (statusHint). The
 * API's message is scrubbed as error text (a proxy's page quoting the request's Authorization header, a key shape):
 * the whole line passes the secret scrubber too when printed (index.ts).
 */
function refusal(url: string, status: number, json: unknown, fields: FlagFields, retryAfter: string | undefined): CliError {
  const error =
    json !== undefined && kindOf(json) === 'object'
      ? (json as { error?: { message?: unknown; code?: unknown; param?: unknown; details?: { problems?: unknown } } }).error
      : undefined;
  const raw = typeof error?.message === 'string' ? error.message : undefined;
  const msg = raw === undefined ? undefined : secrets.scrubProblem(naming(raw, error?.param, fields));
  const code = typeof error?.code === 'string' && /^[a-z0-9_]{1,64}$/.test(error.code) ? error.code : undefined;
  const problems = Array.isArray(error?.details?.problems) ? error.details.problems : [];
  const hint = statusHint(status, raw, retryAfter);
  const what = json === undefined ? ', not a JSON reply (a proxy?)' : `${code ? ` (${code})` : ''}${msg === undefined ? '' : `: ${msg}`}`;
  return new CliError(
    `${url} answered HTTP ${status}${what}${hint ? `; ${hint}` : ''}${problems.map((p) => `\n  ${secrets.scrubProblem(String(p))}`).join('')}`,
    code,
    status,
    msg,
  );
}

/**
 * `schema` checked at its top level only: each field's kind (array, object, string, …), not what it holds. Under
 * `--json` a command prints a reply's top-level field as the gateway sent it and reads nothing inside it: an element
 * of another shape (a newer gateway's peer row) is printed, not refused.
 */
function topLevel(schema: z.ZodType): z.ZodType {
  if (!(schema instanceof z.ZodObject)) return schema;
  const kindOnly = (f: z.ZodType): z.ZodType => {
    if (f instanceof z.ZodOptional) return kindOnly(f.unwrap() as z.ZodType).optional();
    if (f instanceof z.ZodNullable) return kindOnly(f.unwrap() as z.ZodType).nullable();
    if (f instanceof z.ZodArray) return z.array(z.unknown());
    if (f instanceof z.ZodObject || f instanceof z.ZodRecord) return z.looseObject({});
    return f;
  };
  return z.looseObject(Object.fromEntries(Object.entries(schema.shape as Record<string, z.ZodType>).map(([k, f]) => [k, kindOnly(f)])));
}

/** what was wrong with a 2xx reply `json` that `schema` refused, in words: `no "peers" array`, `a JSON null`, … */
function shapeProblem(json: unknown, error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue || issue.path.length === 0) return kindOf(json) === 'object' ? (issue?.message ?? 'not the expected object') : `a JSON ${kindOf(json)}`;
  let value: unknown = json;
  for (const k of issue.path) value = value !== null && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[k] : undefined;
  const at = issue.path.map(String).join('.');
  if (issue.code === 'invalid_type')
    return value === undefined
      ? `no "${at}" ${issue.expected}`
      : `"${at}" is a JSON ${kindOf(value)}, not ${issue.expected === 'array' || issue.expected === 'object' ? 'an' : 'a'} ${issue.expected}`;
  return `"${at}": ${issue.message}`;
}

/**
 * Calls the admin API; any failure (down, refused, any non-2xx answer) becomes a CliError with one clear line
 * (refusal: the URL, the status, the API's code and message, a hint), followed by the error's `details.problems`
 * one a line when it lists any (a refused config reload). `timeoutMs` bounds the wait for the reply's headers and
 * between its body's chunks. `reply`: the zod schema of a successful reply (src/cli/replies.ts), holding what the
 * command reads (under `--json`, its top level only: topLevel): a 2xx reply of another shape (some other service on that port, a proxy's `{}` or HTML page, an
 * older or newer gateway) is refused in one line naming the URL and what was wrong, not printed as `undefined`
 * under `--json` with exit 0, nor failed with a TypeError's text. `fields`: the body's or query's fields the
 * command's flags give (FlagFields), so that a refusal names the flag.
 */
export async function adminCall<T>(
  flags: RemoteFlags,
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  body: unknown,
  { timeoutMs = 10_000, reply, fields = {} }: { timeoutMs?: number; reply: z.ZodType; fields?: FlagFields },
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
    json = undefined;
  }
  if (res.statusCode < 200 || res.statusCode > 299) {
    const retryAfter = res.headers['retry-after'];
    throw refusal(url, res.statusCode, json, fields, typeof retryAfter === 'string' ? retryAfter : undefined);
  }
  if (json === undefined) throw new CliError(`unexpected reply from ${url}${path} (HTTP ${res.statusCode}); is this a Switchyard gateway?`);
  const parsed = (flags.json ? topLevel(reply) : reply).safeParse(json);
  if (!parsed.success)
    throw new CliError(`unexpected reply from ${url}${path} (HTTP ${res.statusCode}, ${shapeProblem(json, parsed.error)}); is this a Switchyard gateway?`);
  return parsed.data as T;
}
