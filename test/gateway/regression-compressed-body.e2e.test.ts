/**
 * Regression: a body sent with `content-encoding: gzip` (or br, deflate) was read as it came: a 400
 * invalid_json "request body is not valid JSON: Unexpected token '\u001f', "\u001f�\b…"", quoting the
 * compressed bytes back and not saying why. The gateway takes bodies uncompressed; such a body is now
 * 415 unsupported_media_type naming `content-encoding`, in the format of the API it was sent to (the one check
 * every JSON-body route makes: guard.ts jsonContentTypeError). `identity` is no encoding and still passes.
 */
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupDirs, expectOpenAiError, startProcess, type GatewayProcess } from '../helpers/env.js';

let gw: GatewayProcess;

beforeAll(async () => {
  gw = await startProcess({ channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }], acp: { tokens: ['acp-token-19be'] } });
}, 30_000);
afterAll(async () => {
  await gw?.stop();
  cleanupDirs();
});

const chat = { model: 'mock-1', messages: [{ role: 'user', content: 'hi' }] };
const gz = (o: object) => gzipSync(JSON.stringify(o));
async function send(path: string, body: Buffer | string, headers: Record<string, string>) {
  const res = await fetch(gw.url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: JSON.parse(text) };
}

describe('a compressed request body', () => {
  it('is 415 naming content-encoding, in each API’s format, and does not quote the bytes back', async () => {
    const v1 = await send('/v1/chat/completions', gz(chat), { 'content-encoding': 'gzip' });
    expectOpenAiError(v1, 415, 'unsupported_media_type', 'content-encoding');
    expect(v1.json.error.message).toContain('content-encoding "gzip"');
    expect(v1.text).not.toContain('\\u001f');

    const msg = await send('/v1/messages', gz({ ...chat, max_tokens: 8 }), { 'content-encoding': 'br' });
    expect(msg.status).toBe(415);
    expect(msg.json).toMatchObject({ type: 'error', error: { code: 'unsupported_media_type' } });

    const gem = await send('/v1beta/models/mock-1:generateContent', gz({ contents: [{ parts: [{ text: 'hi' }] }] }), { 'content-encoding': 'deflate' });
    expect(gem.status).toBe(415);
    expect(gem.json).toMatchObject({ error: { code: 415, details: [{ reason: 'UNSUPPORTED_MEDIA_TYPE', metadata: { param: 'content-encoding' } }] } });

    const sess = await send('/api/v1/sessions/s1/messages', gz({ clientRequestId: 'c1', text: 'hi' }), {
      'content-encoding': 'gzip',
      authorization: 'Bearer acp-token-19be',
    });
    expectOpenAiError(sess, 415, 'unsupported_media_type', 'content-encoding');
  });

  it('identity is no encoding', async () => {
    const r = await send('/v1/chat/completions', JSON.stringify(chat), { 'content-encoding': 'identity' });
    expect(r.status, r.text).toBe(200);
  });
});
