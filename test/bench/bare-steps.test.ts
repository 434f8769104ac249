/**
 * The benchmark's bare pass-through and its steps (bench/bare-proxy.ts, `ab-builds --steps`): each is a
 * working proxy in front of the bench's mock, answering a chat request and a stream as the mock does, so a
 * figure measured on it is the cost of real work; from step 1 bad JSON is a 400, from step 2 a wrong token a
 * 401; from step 3 the answer carries a request id. Built code (dist-bench), child processes, real sockets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

type Proxy = { url: string; stop(): Promise<void> };
type Mock = { url: string; stop(): Promise<void> };
// dist-bench is plain JS built by `npm run build`, like the harness test uses it
const bare = (await import(new URL('../../dist-bench/bare-proxy.js', import.meta.url).href)) as {
  startBareProxy(upstream: string, timeoutMs?: number, step?: number): Promise<Proxy>;
};
const mockMod = (await import(new URL('../../dist-bench/mock-upstream.js', import.meta.url).href)) as {
  startMockUpstream(o: Record<string, number>): Promise<Mock>;
  MOCK_MODELS: { fast: string };
};

let mock: Mock;
const proxies = new Map<number, Proxy>();

beforeAll(async () => {
  mock = await mockMod.startMockUpstream({ chunks: 5, pacedChunkMs: 1, slowChunkMs: 1 });
  for (const step of [0, 1, 2, 3, 4, 5]) proxies.set(step, await bare.startBareProxy(mock.url, 10_000, step));
}, 30_000);

afterAll(async () => {
  for (const p of proxies.values()) await p.stop();
  await mock?.stop();
});

const post = (url: string, body: string, token = 'bench-key') =>
  fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body });
const ask = (stream: boolean) =>
  JSON.stringify({
    model: mockMod.MOCK_MODELS.fast,
    messages: [{ role: 'user', content: 'hi' }],
    ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
  });

describe('bare pass-through steps', () => {
  it.each([0, 1, 2, 3, 4, 5])('step %i answers a chat request and a stream as the mock does', async (step) => {
    const url = proxies.get(step)!.url;
    const direct = (await (await post(mock.url, ask(false))).json()) as { choices: unknown[]; usage: unknown };
    const res = await post(url, ask(false));
    expect(res.status).toBe(200);
    const body = (await res.json()) as { choices: unknown[]; usage: unknown };
    expect(body.choices).toEqual(direct.choices);
    expect(body.usage).toEqual(direct.usage);
    expect(res.headers.get('x-request-id') !== null).toBe(step >= 3);

    const s = await post(url, ask(true));
    expect(s.status).toBe(200);
    expect(s.headers.get('content-type')).toMatch(/text\/event-stream/);
    const text = await s.text();
    expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
    expect(text.match(/^data: \{/gm)!.length).toBeGreaterThanOrEqual(6);
  });

  it('from step 1 a body that is not JSON gets 400, from step 2 a wrong token 401', async () => {
    expect((await post(proxies.get(1)!.url, '{not json')).status).toBe(400);
    expect((await post(proxies.get(1)!.url, ask(false), 'wrong')).status).toBe(200);
    expect((await post(proxies.get(2)!.url, ask(false), 'wrong')).status).toBe(401);
    expect((await post(proxies.get(5)!.url, JSON.stringify({ model: 1 }))).status).toBe(400);
  });
});
