/**
 * Regression: a bridge peer's name goes into the `x-switchyard-peer` answer header, and an inbound peer names
 * itself (its `gateway.name`: free text, e.g. "東京 GPU"). A name with a character an HTTP header cannot carry
 * made Node throw while the answer's headers were written: a non-streaming request served by that peer got a
 * 500 `internal_error` instead of its answer, and a streaming one also left its attempt running, so the
 * peer's channel kept one request "in flight" for good (its `maxConcurrent` slot leaked). Two real gateway
 * processes: "東京" dials the front gateway and shares its channel with it.
 */
import { describe, expect, it } from 'vitest';
import { adminGet, startProcess, waitFor, wsUrl } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { chat } from '../fakes/fault-upstream.js';

const TOKEN = 'peer-name-header-token';
const { procs } = stopAfterAll({ graceMs: 2000 });

describe('a peer whose name is not header-safe', () => {
  it('serves streaming and non-streaming requests through it, names it percent-encoded, and holds no slot after', async () => {
    const front = await startProcess({
      gateway: { id: 'gw_front', name: 'front', bridge: { enabled: true, allowedTokens: [TOKEN] } },
      channels: [],
    });
    procs.push(front);
    const tokyo = await startProcess({
      gateway: {
        id: 'gw_tokyo',
        name: '東京 GPU\u0007',
        bridge: { shareChannels: ['gpu'] },
        bridges: [{ name: 'front', url: wsUrl(front.url), token: TOKEN, reconnectInterval: 100 }],
      },
      channels: [{ name: 'gpu', provider: 'mock', models: ['tokyo-model'], options: { chunks: 4 } }],
    });
    procs.push(tokyo);
    await waitFor(async () => (await adminGet<{ models: string[] }>(front.url, '/admin/status')).models.includes('tokyo-model'), 'the peer channel on front');

    const plain = await chat(front.url, { model: 'tokyo-model' });
    expect(plain.status, JSON.stringify(plain.body)).toBe(200);
    expect(plain.body.choices[0].message.content).toContain('[mock tokyo-model]');
    expect(plain.peer).toBe(encodeURIComponent('東京 GPU\u0007'));

    const streamed = await chat(front.url, { model: 'tokyo-model', stream: true });
    expect(streamed.status, streamed.raw).toBe(200);
    expect(streamed.done).toBe(true);
    expect(streamed.peer).toBe(encodeURIComponent('東京 GPU\u0007'));

    // nothing stays in flight on the peer's channel once both answers are in
    await waitFor(
      async () =>
        (await adminGet<{ channels: Array<{ id: string; inflight: number }> }>(front.url, '/admin/channels')).channels.find((c) => c.id === 'peer/gw_tokyo/gpu')
          ?.inflight === 0,
      'no request in flight on the peer channel',
      3_000,
    );
  });
});
