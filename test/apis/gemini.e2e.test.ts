/**
 * The Gemini API (v1beta) driven by raw HTTP calls (fetch, as the REST reference shows them) over every
 * channel kind and a model only the bridged peer (a real second gateway process) serves: generateContent,
 * streamGenerateContent with alt=sse and as a JSON array, function declarations / calls / responses,
 * systemInstruction, generationConfig, countTokens, the model list, stream cuts and errors in Google's shape.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call } from '../helpers/env.js';
import { parseSse } from '../../src/util/lines.js';
import { KINDS, REPLY, TOOL, USAGE, startMesh, type Mesh } from './mesh.js';

let mesh: Mesh;
beforeAll(async () => void (mesh = await startMesh()), 60_000);
afterAll(async () => mesh?.close());

const tools = [
  {
    functionDeclarations: [
      { name: TOOL.name, description: 'Weather for a city', parameters: { type: 'OBJECT', properties: { city: { type: 'STRING' } }, required: ['city'] } },
    ],
  },
];
const conversation = {
  systemInstruction: { parts: [{ text: 'Be brief.' }] },
  contents: [
    { role: 'user', parts: [{ text: 'Hi' }] },
    { role: 'model', parts: [{ text: 'Hello.' }] },
    { role: 'user', parts: [{ text: 'Tell me about foxes' }] },
  ],
  generationConfig: { temperature: 0.2, maxOutputTokens: 256, stopSequences: ['END'] },
};
/** SSE data payloads by the WHATWG rules (Google frames events with \r\n\r\n) */
async function sseJson(text: string): Promise<any[]> {
  const out: any[] = [];
  for await (const e of parseSse(once(text))) out.push(JSON.parse(e.data));
  return out;
}
async function* once(text: string): AsyncGenerator<string> {
  yield text;
}
const textOf = (chunks: any[]) => chunks.map((c) => (c.candidates?.[0]?.content?.parts ?? []).map((p: any) => p.text ?? '').join('')).join('');

describe.each(KINDS)('Gemini API over %s', (kind) => {
  it('generateContent: systemInstruction, multi-turn, generationConfig, text, finishReason, real usage', async () => {
    const r = await call(mesh.a, `/v1beta/models/${kind}:generateContent`, { body: conversation });
    expect(r.status, r.text).toBe(200);
    expect(r.json.candidates[0]).toMatchObject({ content: { role: 'model', parts: [{ text: REPLY }] }, finishReason: 'STOP', index: 0 });
    expect(r.json.usageMetadata.candidatesTokenCount).toBe(USAGE.output);
    expect(r.json.usageMetadata.promptTokenCount).toBeGreaterThan(0);
    if (kind !== 'anthropic') {
      const sent = mesh.fakes[kind]!.lastRequest() as Record<string, unknown>;
      expect(JSON.stringify(sent)).toContain('Be brief.');
    }
  });

  it('streamGenerateContent?alt=sse: text chunk by chunk, finishReason and usage in the last chunk', async () => {
    const r = await call(mesh.a, `/v1beta/models/${kind}:streamGenerateContent?alt=sse`, { body: conversation });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const chunks = await sseJson(r.text);
    expect(chunks.length).toBeGreaterThan(2);
    expect(textOf(chunks)).toBe(REPLY);
    expect(chunks.at(-1).candidates[0].finishReason).toBe('STOP');
    expect(chunks.at(-1).usageMetadata.candidatesTokenCount).toBe(USAGE.output);

    const arr = await call(mesh.a, `/v1beta/models/${kind}:streamGenerateContent`, { body: conversation });
    expect(Array.isArray(arr.json)).toBe(true);
    expect(textOf(arr.json)).toBe(REPLY);
  });

  it('function calling: functionCall back (stream and not), then a functionResponse turn reaches the upstream', async () => {
    const model = `${kind}-tools`;
    const ask = { contents: [{ role: 'user', parts: [{ text: 'Weather in Paris?' }] }], tools, toolConfig: { functionCallingConfig: { mode: 'AUTO' } } };
    const r = await call(mesh.a, `/v1beta/models/${model}:generateContent`, { body: ask });
    const part = r.json.candidates[0].content.parts.find((p: any) => p.functionCall);
    expect(part.functionCall).toMatchObject({ name: TOOL.name, args: JSON.parse(TOOL.arguments) });

    const s = await call(mesh.a, `/v1beta/models/${model}:streamGenerateContent?alt=sse`, { body: ask });
    const last = (await sseJson(s.text)).at(-1);
    expect(last.candidates[0].content.parts[0].functionCall).toMatchObject({ name: TOOL.name, args: JSON.parse(TOOL.arguments) });

    const next = await call(mesh.a, `/v1beta/models/${model}:generateContent`, {
      body: {
        tools,
        contents: [
          ...ask.contents,
          { role: 'model', parts: [{ functionCall: { name: TOOL.name, args: { city: 'Paris' } } }] },
          { role: 'user', parts: [{ functionResponse: { name: TOOL.name, response: { forecast: '18 C, sunny' } } }] },
        ],
      },
    });
    expect(next.status, next.text).toBe(200);
    expect(JSON.stringify(mesh.fakes[model]!.lastRequest())).toContain('18 C, sunny');
  });

  it('an upstream cut mid-stream ends with a Google error object, never a finishReason', async () => {
    const r = await call(mesh.a, `/v1beta/models/${kind}-cut:streamGenerateContent?alt=sse`, { body: { contents: [{ parts: [{ text: 'go' }] }] } });
    const chunks = await sseJson(r.text);
    expect(chunks.at(-1)).toMatchObject({ error: { code: expect.any(Number), status: expect.any(String), message: expect.any(String) } });
    expect(chunks.some((c) => c.candidates?.[0]?.finishReason)).toBe(false);
  });
});

describe('Gemini API models, countTokens and errors', () => {
  it('lists models as models/<id>, and one model by name', async () => {
    const r = await call(mesh.a, '/v1beta/models');
    expect(r.json.models.map((m: any) => m.name)).toEqual(expect.arrayContaining(['models/openai', 'models/peer']));
    const one = await call(mesh.a, '/v1beta/models/ollama');
    expect(one.json).toMatchObject({ name: 'models/ollama', supportedGenerationMethods: expect.arrayContaining(['generateContent']) });
  });

  it('countTokens is an estimate and says so', async () => {
    const r = await call(mesh.a, '/v1beta/models/openai:countTokens', { body: { contents: [{ parts: [{ text: 'How many tokens is this?' }] }] } });
    expect(r.json.totalTokens).toBeGreaterThan(0);
    expect(r.headers.get('x-switchyard-token-count')).toBe('estimate');
  });

  it('bad input, unknown model, wrong method: Google error JSON', async () => {
    const bad = await call(mesh.a, '/v1beta/models/openai:generateContent', { body: { contents: [] } });
    expect(bad.status).toBe(400);
    expect(bad.json).toMatchObject({ error: { code: 400, status: 'INVALID_ARGUMENT', message: expect.stringContaining('contents') } });
    const broken = await call(mesh.a, '/v1beta/models/openai:generateContent', { body: '{"contents":' });
    expect(broken.json.error.status).toBe('INVALID_ARGUMENT');
    const missing = await call(mesh.a, '/v1beta/models/nope:generateContent', { body: { contents: [{ parts: [{ text: 'x' }] }] } });
    expect(missing.status).toBe(404);
    expect(missing.json.error.status).toBe('NOT_FOUND');
    const enc = await call(mesh.a, '/v1beta/models/%E0%A4%A:generateContent', { body: { contents: [{ parts: [{ text: 'x' }] }] } });
    expect(enc.status).toBe(400);
    expect(enc.json.error.status).toBe('INVALID_ARGUMENT');
    const get = await call(mesh.a, '/v1beta/models/openai:generateContent');
    expect(get.status).toBe(405);
    expect(get.json.error.code).toBe(405);
    // a client's mistake the table has no Google name for is still the client's: never INTERNAL
    const plain = await call(mesh.a, '/v1beta/models/openai:generateContent', { body: '{}', headers: { 'content-type': 'text/plain' } });
    expect(plain.status).toBe(415);
    expect(plain.json.error.status).toBe('INVALID_ARGUMENT');
  });
});
