/**
 * A long upstream error message through a bridge peer, end to end. The upstream behind peer B answers with a
 * 5,000-character message that echoes B's channel key: as an error status (400), as an error object in a 200
 * answer, and as an in-band error before its stream's first chunk. B scrubs the key and cuts the message to
 * RELAYED_TEXT_MAX (1000) characters (docs/errors.md, "Upstream messages"), answers A with that error
 * (bridge-error), and A, which bounds a peer's text at 1200 characters (the upstream's 1000 plus room for the
 * prefixes), relays it whole to its client as `via peer dc: channel …: …`. Both gateway processes stay up and
 * keep serving. Two real gateway processes, fake OpenAI upstreams speaking the real wire format, the official
 * SDK and plain fetch as clients. This pins behaviour that held before it was written (no fix behind it).
 */
import OpenAI from 'openai';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, cleanupDirs, rejectionOf, startProcess, startRequesterProcess, type GatewayProcess } from '../helpers/env.js';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';

const BRIDGE_TOKEN = 'peer-long-error-bridge-token-7c2e9a';
const ADMIN = 'peer-long-error-admin-token-3f8b1d';
// B's channel key, echoed by its upstream at the start of the message and again past the cut: no generic key
// shape, so only B's knowledge of its configured secrets can redact it
const KEY = 'peer-long-error-key-4a9d2c7e1b5f8036';
const LONG = `Incorrect API key provided: ${KEY}. ${'The request was rejected by the upstream provider. '.repeat(60)}key again: ${KEY} END`;
/** B's bound of the upstream's text: the key redacted, then cut to 1000 characters with `…` */
const CUT = `${LONG.replace(KEY, '[REDACTED]').slice(0, 1000)}…`;

let a: GatewayProcess;
let b: GatewayProcess;
let status400: Server;
let twoHundred: OpenAiFake;
let inband: OpenAiFake;
let ok: OpenAiFake;
let openai: OpenAI;

beforeAll(async () => {
  expect(LONG.length).toBeGreaterThan(3_000);
  // an OpenAI-compatible upstream that answers every request 400 with the long message, as the API shapes its errors
  status400 = createServer((req, res) => {
    req.resume();
    req.on('end', () =>
      res
        .writeHead(400, { 'content-type': 'application/json' })
        .end(JSON.stringify({ error: { message: LONG, type: 'invalid_request_error', param: null, code: null } })),
    );
  });
  await new Promise<void>((resolve) => status400.listen(0, '127.0.0.1', resolve));
  twoHundred = await startOpenAiUpstream({ errorInReply: { message: LONG, type: 'invalid_request_error', param: null, code: null } }, { apiKey: KEY });
  inband = await startOpenAiUpstream(
    { reply: 'x', inbandError: true, inbandErrorFirst: true, inbandErrorBody: { message: LONG, type: 'server_error', param: null, code: 'server_error' } },
    { apiKey: KEY },
  );
  ok = await startOpenAiUpstream({ reply: 'served by the peer' }, { apiKey: KEY });
  const ch = (name: string, baseUrl: string) => ({ name, provider: 'openai', baseUrl, apiKey: KEY, models: [name] });
  b = await startProcess({
    gateway: {
      id: 'gw_b',
      name: 'dc',
      admin: { token: ADMIN },
      routing: { retries: 0 },
      bridge: { enabled: true, allowedTokens: [BRIDGE_TOKEN], shareChannels: ['up-400', 'up-200', 'up-inband', 'up-ok'], acceptSessions: false },
    },
    channels: [
      ch('up-400', `http://127.0.0.1:${(status400.address() as AddressInfo).port}/v1`),
      ch('up-200', twoHundred.baseUrl),
      ch('up-inband', inband.baseUrl),
      ch('up-ok', ok.baseUrl),
    ],
  });
  a = await startRequesterProcess(b.url, { token: BRIDGE_TOKEN, admin: ADMIN });
  openai = new OpenAI({ apiKey: 'x', baseURL: `${a.url}/v1`, maxRetries: 0 });
});
afterAll(async () => {
  await a?.stop();
  await b?.stop();
  await new Promise<void>((resolve) => (status400 ? status400.close(() => resolve()) : resolve()));
  await twoHundred?.close();
  await inband?.close();
  await ok?.close();
  cleanupDirs();
});

const chat = (model: string) => ({ model, messages: [{ role: 'user' as const, content: 'hi' }] });

describe('a 5,000-character upstream error message behind a bridge peer', () => {
  it('an error status (400): the client of A gets B’s bounded message whole, behind `via peer dc:`, the key redacted', async () => {
    const err = await rejectionOf(openai.chat.completions.create(chat('up-400')));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err).toMatchObject({ status: 400, code: 'upstream_client_error' });
    const message = (err as Error).message;
    expect(message).toBe(`400 via peer dc: channel up-400: upstream answered 400: ${CUT}`);
    expect(message).not.toContain(KEY);
    // streamed: the same error, before any chunk
    const s = await call(a, '/v1/chat/completions', { body: { ...chat('up-400'), stream: true } });
    expect(s.status).toBe(400);
    expect((s.json as { error: { message: string } }).error.message).toBe(`via peer dc: channel up-400: upstream answered 400: ${CUT}`);
  });

  it('an error object as a 200 answer: the same bound', async () => {
    const err = await rejectionOf(openai.chat.completions.create(chat('up-200')));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as Error).message).toBe(`400 via peer dc: channel up-200: upstream reported invalid_request_error in a 2xx reply: ${CUT}`);
  });

  it('an in-band error before the stream’s first chunk: the same bound, as an HTTP error of its status', async () => {
    const r = await call(a, '/v1/chat/completions', { body: { ...chat('up-inband'), stream: true } });
    expect(r.status).toBe(502);
    expect(r.text).not.toContain(KEY);
    expect((r.json as { error: { message: string } }).error.message).toBe(`via peer dc: channel up-inband: upstream reported server_error mid-stream: ${CUT}`);
  });

  it('both gateways stay up and keep serving through the link', async () => {
    const out = await openai.chat.completions.create(chat('up-ok'));
    expect(out.choices[0]?.message.content).toBe('served by the peer');
    for (const g of [a, b]) {
      expect(g.proc.exitCode).toBeNull();
      expect((await fetch(`${g.url}/healthz`)).status).toBe(200);
    }
    expect(a.logs()).not.toContain(KEY);
    expect(b.logs()).not.toContain(KEY);
  });
});
