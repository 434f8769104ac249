/**
 * Regression: a JSON request body that began with a UTF-8 byte-order mark (EF BB BF, as some Windows tools
 * write files) was refused as 400 invalid_json "Unexpected token '\uFEFF'" on every route that reads JSON. RFC 8259
 * §8.1 lets a parser ignore one; JSON.parse does not. The one body parser every JSON route shares
 * (src/http/body.ts parseJsonBody) now skips one leading BOM, so each surface takes such a body as it takes the
 * same body without it, while a body that is only a BOM, or has a second one, is still invalid_json.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupDirs, expectOpenAiError, startProcess, type GatewayProcess } from '../helpers/env.js';

const ACP = 'acp-token-bom-5e21';
let gw: GatewayProcess;

beforeAll(async () => {
  gw = await startProcess({ channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }], acp: { tokens: [ACP] } });
}, 30_000);
afterAll(async () => {
  await gw?.stop();
  cleanupDirs();
});

const BOM = Buffer.from([0xef, 0xbb, 0xbf]);
const withBom = (o: object) => Buffer.concat([BOM, Buffer.from(JSON.stringify(o))]);

async function send(path: string, body: Buffer, headers: Record<string, string> = {}) {
  const res = await fetch(gw.url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: JSON.parse(text) };
}

const chat = { model: 'mock-1', messages: [{ role: 'user', content: 'hi' }] };

describe('a JSON body that begins with a UTF-8 byte-order mark', () => {
  it('is taken on /v1/chat/completions, streamed or not, and /v1/embeddings', async () => {
    const r = await send('/v1/chat/completions', withBom(chat));
    expect(r.status, r.text).toBe(200);
    expect(r.json.choices[0].message.content).toContain('hi');

    const streamed = await fetch(gw.url + '/v1/chat/completions', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: withBom({ ...chat, stream: true }),
    });
    const sse = await streamed.text();
    expect(streamed.status, sse).toBe(200);
    expect(sse).toContain('data: [DONE]');

    const emb = await send('/v1/embeddings', withBom({ model: 'mock-1', input: 'hello' }));
    expect(emb.status, emb.text).toBe(200);
    expect(emb.json.data).toHaveLength(1);
  });

  it('is taken by the Messages, Responses and Gemini surfaces', async () => {
    const msg = await send('/v1/messages', withBom({ ...chat, max_tokens: 16 }));
    expect(msg.status, msg.text).toBe(200);
    expect(msg.json).toMatchObject({ type: 'message', role: 'assistant' });

    const resp = await send('/v1/responses', withBom({ model: 'mock-1', input: 'hi' }));
    expect(resp.status, resp.text).toBe(200);
    expect(resp.json).toMatchObject({ object: 'response', status: 'completed' });

    const gem = await send('/v1beta/models/mock-1:generateContent', withBom({ contents: [{ parts: [{ text: 'hi' }] }] }));
    expect(gem.status, gem.text).toBe(200);
    expect(gem.json.candidates).toHaveLength(1);
  });

  it('is taken by /acp/rpc and the admin API', async () => {
    const rpc = await send('/acp/rpc', withBom({ jsonrpc: '2.0', id: 1, method: 'acp.capabilities', params: {} }), { authorization: `Bearer ${ACP}` });
    expect(rpc.status, rpc.text).toBe(200);
    expect(rpc.json).toMatchObject({ jsonrpc: '2.0', id: 1, result: expect.any(Object) });

    const key = await send('/admin/keys', withBom({ name: 'bom-key' }));
    expect(key.status, key.text).toBe(201);
    expect(key.json).toMatchObject({ key: { name: 'bom-key' } });
  });

  it('only one BOM is skipped: a body that is only a BOM, or has two, is still invalid_json', async () => {
    expectOpenAiError(await send('/v1/chat/completions', BOM), 400, 'invalid_json');
    expectOpenAiError(await send('/v1/chat/completions', Buffer.concat([BOM, withBom(chat)])), 400, 'invalid_json');
  });
});
