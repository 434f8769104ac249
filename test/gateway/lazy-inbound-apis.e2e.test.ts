/**
 * The inbound APIs besides OpenAI chat (Anthropic Messages, OpenAI Responses, Gemini) load their route module,
 * translators and stream writers at their first request, not at start (issue 15, item 5: idle memory; ~0.6 MB of
 * idle RSS, docs/benchmarks.md). What the server needs before a handler runs is there from the start: a refused
 * credential is answered in the API's own format without loading it. A real gateway process whose module loads
 * are logged by module hooks (fixtures/module-log.mjs), and the official SDKs as clients.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupDirs, startProcess, tmpDir, type GatewayProcess } from '../helpers/env.js';
import { loadedUnder } from '../helpers/module-log.js';

const HOOKS = join(fileURLToPath(new URL('.', import.meta.url)), 'fixtures', 'module-log.mjs');
const TOKEN = 'sy-lazy-apis-token-5e1f';
const procs: GatewayProcess[] = [];
afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  cleanupDirs();
});

/** the gateway's own modules the process has loaded, as paths under dist/ */
const loadedBy = (file: string) => loadedUnder(file, '/dist/');

const MODULES = {
  anthropic: ['http/routes/messages.js', 'apis/anthropic/request.js', 'apis/anthropic/response.js', 'apis/anthropic/stream.js'],
  responses: ['http/routes/responses.js', 'apis/responses/request.js', 'apis/responses/response.js', 'apis/responses/stream.js', 'apis/responses/stored.js'],
  gemini: ['http/routes/gemini.js', 'apis/gemini/request.js', 'apis/gemini/response.js', 'apis/gemini/stream.js'],
};

describe('the inbound APIs load at their first request', () => {
  it('none is loaded at start; a refused credential is answered in its format without loading it; the first request loads it and is served', async () => {
    const dir = tmpDir();
    const log = join(dir, 'modules.log');
    const gw = await startProcess(
      { gateway: { auth: { tokens: [TOKEN] } }, channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }] },
      { NODE_OPTIONS: `--import ${HOOKS}`, MODULE_LOG_FILE: log },
      dir,
    );
    procs.push(gw);
    const atStart = loadedBy(log);
    expect(atStart).toContain('gateway.js'); // the log works
    for (const m of Object.values(MODULES).flat()) expect(atStart).not.toContain(m);

    // refused before any handler: each API's own error shape, still nothing of it loaded
    const anthropicBad = new Anthropic({ apiKey: 'wrong', baseURL: gw.url, maxRetries: 0 });
    await expect(anthropicBad.messages.create({ model: 'mock-1', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] })).rejects.toBeInstanceOf(
      Anthropic.AuthenticationError,
    );
    const gemBad = await fetch(`${gw.url}/v1beta/models/mock-1:generateContent?key=wrong`, { method: 'POST', body: '{}' });
    expect(gemBad.status).toBe(401);
    expect(await gemBad.json()).toMatchObject({ error: { code: 401, status: 'UNAUTHENTICATED' } });
    const afterRefusals = loadedBy(log);
    for (const m of Object.values(MODULES).flat()) expect(afterRefusals).not.toContain(m);

    // first requests, two of each API at once: one load, every request served
    const anthropic = new Anthropic({ apiKey: TOKEN, baseURL: gw.url, maxRetries: 0 });
    const openai = new OpenAI({ apiKey: TOKEN, baseURL: `${gw.url}/v1`, maxRetries: 0 });
    const gem = () =>
      fetch(`${gw.url}/v1beta/models/mock-1:generateContent`, {
        method: 'POST',
        headers: { 'x-goog-api-key': TOKEN, 'content-type': 'application/json' },
        body: JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }] }),
      }).then(async (r) => ({ status: r.status, json: (await r.json()) as { candidates?: unknown[] } }));
    const [m1, m2, r1, r2, g1, g2] = await Promise.all([
      anthropic.messages.create({ model: 'mock-1', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] }),
      anthropic.messages.create({ model: 'mock-1', max_tokens: 8, messages: [{ role: 'user', content: 'again' }] }),
      openai.responses.create({ model: 'mock-1', input: 'hi' }),
      openai.responses.create({ model: 'mock-1', input: 'again' }),
      gem(),
      gem(),
    ]);
    for (const m of [m1, m2]) expect(m).toMatchObject({ type: 'message', role: 'assistant' });
    for (const r of [r1, r2]) expect(r).toMatchObject({ object: 'response', status: 'completed' });
    for (const g of [g1, g2]) expect(g.status).toBe(200);
    for (const g of [g1, g2]) expect(g.json.candidates?.length).toBe(1);
    const after = loadedBy(log);
    for (const m of Object.values(MODULES).flat()) expect(after).toContain(m);
    for (const m of Object.values(MODULES).flat()) expect(after.filter((x) => x === m)).toHaveLength(1);
  });
});
