/**
 * Across the bridge, chunk by chunk: a model only peer B serves (one word every 60 ms) streamed through A in
 * each inbound format. Deltas must reach the client spread over time as B produces them, not in one burst
 * at the end (which is what buffering a whole response, on either gateway, would look like).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMesh, type Mesh } from './mesh.js';

let mesh: Mesh;
beforeAll(async () => void (mesh = await startMesh()), 60_000);
afterAll(async () => mesh?.close());

const PROMPT = 'one two three four five six seven eight';

/** POSTs and records, per received network read, the time and how many delta markers it carried */
async function arrivals(path: string, body: unknown, marker: RegExp): Promise<{ times: number[]; text: string }> {
  const res = await fetch(mesh.a.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  const times: number[] = [];
  let text = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const s = dec.decode(value, { stream: true });
    text += s;
    const n = s.match(marker)?.length ?? 0;
    for (let i = 0; i < n; i++) times.push(Date.now());
  }
  return { times, text };
}

function expectSpread(times: number[]): void {
  expect(times.length).toBeGreaterThanOrEqual(8);
  // 8+ words 60 ms apart: the first and last delta are several hundred ms apart when relayed one by one
  expect(times.at(-1)! - times[0]!).toBeGreaterThan(250);
}

describe('streams from a bridged peer arrive chunk by chunk in every format', () => {
  it('Anthropic Messages', async () => {
    const r = await arrivals(
      '/v1/messages',
      { model: 'peer-slow', max_tokens: 64, stream: true, messages: [{ role: 'user', content: PROMPT }] },
      /"type":"text_delta"/g,
    );
    expectSpread(r.times);
    expect(r.text).toContain('event: message_stop');
  });

  it('OpenAI Responses', async () => {
    const r = await arrivals('/v1/responses', { model: 'peer-slow', input: PROMPT, stream: true }, /event: response\.output_text\.delta/g);
    expectSpread(r.times);
    expect(r.text).toContain('event: response.completed');
  });

  it('Gemini', async () => {
    const r = await arrivals('/v1beta/models/peer-slow:streamGenerateContent?alt=sse', { contents: [{ parts: [{ text: PROMPT }] }] }, /"text":/g);
    expectSpread(r.times);
    expect(r.text).toContain('"finishReason":"STOP"');
  });
});
