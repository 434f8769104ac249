/**
 * Reading request bodies, bounded three ways for every route that reads one through `readBody`:
 * - size: the caller's `limit` (`gateway.maxBodyBytes` on /v1 and /acp/rpc) → PAYLOAD_TOO_LARGE (413);
 * - time: the server's body deadline (`gateway.bodyTimeoutMs`, counted from when the request's headers were
 *   in) → REQUEST_TIMEOUT (408), the connection is closed;
 * - type: on paths where the guard requires it, a body not sent as application/json → UNSUPPORTED_MEDIA_TYPE (415);
 * - memory: one byte budget shared by every body being received (`gateway.maxBufferedBodyBytes`); the request
 *   whose bytes would overflow it → BODY_BUFFER_FULL (503, Retry-After 1), its connection is closed.
 * Bytes are released from the budget as soon as the body is complete (or refused): what is bounded is what
 * slow or stalled senders can make the gateway hold, not the parsed requests being served. A body with a
 * `content-length` that came in the same network read as its headers (the usual small request) is taken whole
 * and never charged; a chunked one is charged as it arrives (`received` says why).
 *
 * The server attaches the policy to each request (`attachBodyPolicy`); a request without one (a test that
 * calls a route directly) gets the size limit only.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { GatewayError } from '../wire/errors.js';
import { pathDeeperThan } from '../wire/json-depth.js';
import { jsonContentTypeError } from './guard.js';

export const DEFAULT_MAX_JSON_DEPTH = 64;

/** The gateway-wide count of buffered body bytes. */
export class BodyBudget {
  private used = 0;
  constructor(readonly capBytes: number) {}

  /** Reserves n bytes; false (nothing reserved) when that would pass the cap. */
  take(n: number): boolean {
    if (this.used + n > this.capBytes) return false;
    this.used += n;
    return true;
  }

  give(n: number): void {
    this.used = Math.max(0, this.used - n);
  }

  get inUse(): number {
    return this.used;
  }
}

export interface BodyPolicy {
  /** the body must be sent as application/json (the guard's verdict for this path) */
  requireJson: boolean;
  /** epoch ms by which the whole body must have arrived */
  deadline: number;
  timeoutMs: number;
  budget: BodyBudget;
  maxJsonDepth: number;
}

const policies = new WeakMap<IncomingMessage, BodyPolicy>();

export function attachBodyPolicy(req: IncomingMessage, p: BodyPolicy): void {
  policies.set(req, p);
}

/** Reads the body within the size limit, the server's deadline and the shared byte budget (see top). */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    // refused before a byte of it is read: what comes is discarded, and the connection lingers for the client to
    // finish sending and read the 413
    req.resume();
    lingerOnClose(req);
    throw new GatewayError('PAYLOAD_TOO_LARGE', `request body is ${declared} bytes; the limit is ${limit}`);
  }
  const policy = policies.get(req);
  // a request that says it has no body and names no type is a missing body (invalid_json), not a wrong type:
  // there is nothing a page could smuggle in it
  const noBody = req.headers['transfer-encoding'] === undefined && (req.headers['content-length'] === undefined || declared === 0);
  const declaredEmpty = noBody && req.headers['content-type'] === undefined;
  if (policy?.requireJson && !declaredEmpty) {
    const bad = jsonContentTypeError(req);
    if (bad) throw bad;
  }
  let whole = received(req, declared);
  if (whole === undefined) {
    // A route runs inside the HTTP parser's callback for the request's headers, before the parser has handed
    // over the body bytes that came in the same network read; it hands them over before it returns, and a
    // microtask runs only after that. So look once more then, and wait with listeners only for what is really
    // still to come (docs/benchmarks.md, "Eighth pass").
    await Promise.resolve();
    whole = received(req, declared);
  }
  if (whole === undefined) return await receive(req, limit, declared, policy);
  // nothing left to wait for, so no listeners, no deadline timer and nothing held against the byte budget
  // (which bounds bodies still being received); the size limit applies all the same
  if (whole.length > limit) throw new GatewayError('PAYLOAD_TOO_LARGE', `request body exceeds the limit of ${limit} bytes`);
  return whole;
}

/** The listeners' path: a body still (partly) to come, within the size limit, the deadline and the budget. */
function receive(req: IncomingMessage, limit: number, declared: number, policy: BodyPolicy | undefined): Promise<Buffer> {
  const full = () =>
    new GatewayError(
      'BODY_BUFFER_FULL',
      `the gateway is holding its limit of ${policy!.budget.capBytes} bytes of request bodies being received (gateway.maxBufferedBodyBytes); retry shortly`,
      { retryAfterSec: 1 },
    );
  // a declared length is reserved up front (a body that cannot fit is refused before a byte is read);
  // a chunked body is charged as it arrives
  const reserved = policy && Number.isFinite(declared) ? declared : 0;
  if (reserved > 0 && !policy!.budget.take(reserved)) {
    req.pause();
    return Promise.reject(full());
  }
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    let charged = reserved;
    let timer: NodeJS.Timeout | undefined;
    const detach = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      if (timer) clearTimeout(timer);
      policy?.budget.give(charged);
    };
    const finish = (err: GatewayError | undefined) => {
      detach();
      if (!err) return resolve(parts.length === 1 ? parts[0]! : Buffer.concat(parts, size));
      parts.length = 0;
      // Too large: discard the rest so the client can read the 413. Out of budget or out of time: stop reading
      // (draining a flood of stalled or slow bodies is work and garbage), answer, and close the connection.
      if (err.code === 'PAYLOAD_TOO_LARGE') {
        req.resume();
        lingerOnClose(req);
      } else req.pause();
      reject(err);
    };
    const onData = (b: Buffer) => {
      if (size + b.length > limit) return finish(new GatewayError('PAYLOAD_TOO_LARGE', `request body exceeds the limit of ${limit} bytes`));
      if (policy && size + b.length > charged) {
        const more = size + b.length - charged;
        if (!policy.budget.take(more)) return finish(full());
        charged += more;
      }
      size += b.length;
      parts.push(b);
    };
    const onEnd = () => finish(undefined);
    // the client went away mid-body (error or close before end): release its bytes, nobody reads the answer
    const onError = (err?: Error) => {
      detach();
      charged = 0;
      parts.length = 0;
      reject(new GatewayError('INVALID_REQUEST', 'request body could not be read', err ? { cause: err } : {}));
    };
    const onClose = () => onError();
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onError);
    req.once('close', onClose);
    if (policy) {
      const left = policy.deadline - Date.now();
      const expire = () => finish(new GatewayError('REQUEST_TIMEOUT', `request body not received within ${policy.timeoutMs} ms (gateway.bodyTimeoutMs)`));
      if (left <= 0) expire();
      else timer = setTimeout(expire, left);
    }
  });
}

/**
 * The whole body when Node already holds all of it and nobody has read from it yet; undefined when some of it
 * is still to come (or it was read elsewhere: the listeners' path then handles it). A small request usually
 * arrives in the same network read as its headers, so once the parser is through that read its bytes are
 * buffered: all of them when the buffered length is the declared `content-length` (the parser frames the body
 * by it, so no more can follow), even before the parser has reported the message complete. A chunked body
 * has no declared length, and Node reports it complete only after the read that carried its end.
 */
function received(req: IncomingMessage, declared: number): Buffer | undefined {
  if (req.readableFlowing === true || req.readableDidRead || req.readableEnded) return undefined;
  const n = req.readableLength;
  if (!req.complete && n !== declared) return undefined;
  return n === 0 ? EMPTY : ((req.read() as Buffer | null) ?? EMPTY);
}

const EMPTY = Buffer.alloc(0);

/**
 * Parses a JSON body. One leading UTF-8 byte-order mark is skipped (RFC 8259 §8.1 lets a parser ignore it;
 * JSON.parse does not): a body without one costs one byte compare. Nesting deeper than `maxDepth` is
 * INVALID_REQUEST naming the field (deep nesting in a pass-through field would otherwise overflow the stack when
 * the request is serialised for the upstream).
 */
export function parseJsonBody(buf: Buffer, maxDepth = DEFAULT_MAX_JSON_DEPTH): unknown {
  if (buf.length === 0) throw new GatewayError('INVALID_JSON', 'request body is empty; expected a JSON object');
  let value: unknown;
  try {
    value = JSON.parse(buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? buf.toString('utf8', 3) : buf.toString('utf8'));
  } catch (err) {
    throw new GatewayError('INVALID_JSON', `request body is not valid JSON: ${(err as Error).message}`);
  }
  const path = pathDeeperThan(value, maxDepth);
  if (path) {
    const param = fieldPath(path.slice(0, 6));
    throw new GatewayError('INVALID_REQUEST', `${param}${path.length > 6 ? '…' : ''}: JSON nested deeper than ${maxDepth} levels`, { param });
  }
  return value;
}

/** The JSON depth limit the server set for this request (`gateway.maxJsonDepth`). */
export function jsonDepthFor(req: IncomingMessage): number {
  return policies.get(req)?.maxJsonDepth ?? DEFAULT_MAX_JSON_DEPTH;
}

/** `readBody` then `parseJsonBody` with the server's depth limit for this request. */
export async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  return parseJsonBody(await readBody(req, limit), jsonDepthFor(req));
}

/** `readJson`, plus the body's size in bytes (the inbound APIs estimate tokens from it). */
export async function readJsonSized(req: IncomingMessage, limit: number): Promise<{ body: unknown; bytes: number }> {
  const buf = await readBody(req, limit);
  return { body: parseJsonBody(buf, jsonDepthFor(req)), bytes: buf.length };
}

function fieldPath(p: Array<string | number>): string {
  if (p.length === 0) return 'body';
  return p.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');
}

/** How long, and for how many more bytes, a connection refused with a 413 lingers before it is closed. */
export const LINGER_MS = 3000;
export const LINGER_BYTES = 16 * 1024 * 1024;

/**
 * A 413 is answered while the client is still sending its body, and the connection is then closed. Closed at once,
 * it would be reset under the client's next write, and a reset can discard the answer before the client has read
 * it: the client sees EPIPE or ECONNRESET, never the 413. So the close lingers, as nginx's `lingering_close` does:
 * when the server closes the connection after the answer (Node's `destroySoon`), it ends its side and goes on
 * reading, and discarding, until the client closes, LINGER_MS pass or LINGER_BYTES more arrive; then it destroys
 * the socket. Only a refused body's connection lingers: a stalled or flooding sender's (408, 503) is cut at once.
 */
function lingerOnClose(req: IncomingMessage): void {
  const s = req.socket as Socket & { destroySoon?: () => void };
  if (!s || s.destroyed || lingering.has(s)) return;
  lingering.add(s);
  s.destroySoon = () => {
    let seen = 0;
    const done = () => {
      clearTimeout(timer);
      s.destroy();
    };
    const timer = setTimeout(done, LINGER_MS);
    timer.unref();
    s.on('data', (b: Buffer) => {
      seen += b.length;
      if (seen > LINGER_BYTES) done();
    });
    s.once('end', done);
    s.once('close', () => clearTimeout(timer));
    s.end();
    s.resume();
  };
}
const lingering = new WeakSet<Socket>();
