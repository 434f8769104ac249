/**
 * Two bridges of one gateway that reach the same peer gateway (two URLs of one gateway, or a bridge added at run
 * time to a peer already configured): one link carries the traffic and the other bridge waits, saying why, instead
 * of the two replacing each other's link for ever (each replacement failed every request on the link). When the
 * link in use goes, the waiting bridge takes over.
 */
import { describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { adminGet, startProcess, waitFor, wsUrl } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';

const TOKEN = 'two-bridges-one-peer-token-77';
const { trackGateway: track } = stopAfterAll();

interface Row {
  name: string;
  state: string;
  id: string | null;
  lastError: string | null;
}
const rows = async (url: string) => (await adminGet<{ peers: Row[] }>(url, '/admin/bridges')).peers;

describe('two bridges to one peer gateway', () => {
  it('keep one link (the other waits, saying why), serve a long stream whole, and the other takes over when it goes', async () => {
    const b = track(
      await startProcess({
        gateway: { id: 'gw_tb_b', name: 'peer', bridge: { enabled: true, allowedTokens: [TOKEN], shareChannels: ['slow'] } },
        channels: [{ name: 'slow', provider: 'mock', models: ['llama3'], options: { chunkDelayMs: 40 } }],
      }),
    );
    const bridge = (name: string) => ({ name, url: wsUrl(b.url), token: TOKEN, reconnectInterval: 100, maxReconnectInterval: 300 });
    const a = track(
      await startProcess({
        gateway: { id: 'gw_tb_a', name: 'office', bridges: [bridge('first'), bridge('second')] },
        channels: [],
      }),
    );
    const settled = await waitFor(async () => {
      const r = await rows(a.url);
      const open = r.filter((x) => x.state === 'open');
      const waiting = r.find((x) => x.state !== 'open' && /^DUPLICATE_PEER: already linked to gw_tb_b through bridge /.test(x.lastError ?? ''));
      return open.length === 1 && waiting ? { open: open[0]!, waiting } : undefined;
    }, 'one bridge open, the other waiting for it');
    expect(settled.waiting.lastError).toContain(`through bridge ${settled.open.name}`);

    // ~60 chunks 40 ms apart: a link replaced meanwhile would end the stream with an error
    const client = new OpenAI({ baseURL: `${a.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const words = Array.from({ length: 60 }, (_, i) => `w${i}`).join(' ');
    const stream = await client.chat.completions.create({ model: 'llama3', stream: true, messages: [{ role: 'user', content: words }] });
    let text = '';
    for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
    expect(text).toContain('w59');
    expect((await rows(a.url)).find((x) => x.name === settled.open.name)?.state).toBe('open');

    // the bridge in use goes: the waiting one links to the peer
    const del = await fetch(`${a.url}/admin/bridges/${settled.open.name}`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    await waitFor(
      async () => (await rows(a.url)).find((x) => x.name === settled.waiting.name && x.state === 'open' && x.id === 'gw_tb_b'),
      'the other bridge open',
    );
    const again = await client.chat.completions.create({ model: 'llama3', messages: [{ role: 'user', content: 'still here' }] });
    expect(again.choices[0]!.message.content).toContain('still here');
  });
});
