/** Peers announce what their shared channels can do; the requester reads it instead of guessing from the provider name. */
import { describe, expect, it } from 'vitest';
import { parseFrame } from '../../src/bridge/codec.js';
import { legacyCapabilities, peerCandidate } from '../../src/bridge/peer-candidate.js';
import type { BridgeLink } from '../../src/bridge/link.js';

// peerCandidate reads only these fields of the link
const fakeLink = { peer: { id: 'gw_p', capabilities: { loadBalance: false } }, name: 'p', load: { channels: {} } } as unknown as BridgeLink;
const labels = { channel: 'c', peer: 'p', candidate: 'peer/gw_p/c' };

describe('channel capabilities over the bridge', () => {
  it('an announced capability wins over the provider name, both ways', () => {
    const anthropicWithEmbeddings = peerCandidate(
      fakeLink,
      {
        name: 'a',
        provider: 'anthropic',
        models: ['m'],
        capabilities: { embeddings: true, tools: true, vision: false, nativeResponses: false, synthetic: false },
      },
      labels,
    );
    expect(anthropicWithEmbeddings.capabilities.embeddings).toBe(true);
    const openaiWithout = peerCandidate(
      fakeLink,
      {
        name: 'o',
        provider: 'openai',
        models: ['m'],
        capabilities: { embeddings: false, tools: false, vision: false, nativeResponses: true, synthetic: false },
      },
      labels,
    );
    expect(openaiWithout.capabilities).toEqual({ embeddings: false, tools: false, vision: false, nativeResponses: true, synthetic: false });
  });

  it('a peer that announces nothing (older build, seed protocol) gets the documented fallback', () => {
    expect(peerCandidate(fakeLink, { name: 'a', provider: 'anthropic', models: ['m'] }, labels).capabilities).toEqual(legacyCapabilities('anthropic'));
    expect(legacyCapabilities('anthropic')).toMatchObject({ embeddings: false, synthetic: false });
    expect(legacyCapabilities('mock')).toMatchObject({ embeddings: true, synthetic: true });
    expect(legacyCapabilities('ollama')).toEqual({ embeddings: true, tools: true, vision: true, nativeResponses: false, synthetic: false });
  });

  it('the codec keeps known flags, treats absent ones as false, drops unknown ones, and refuses a non-boolean', () => {
    const frame = (caps: string) =>
      parseFrame(`{"type":"bridge-channels","sharedChannels":[{"name":"c","provider":"x","models":["m"],"capabilities":${caps}}]}`, {
        maxBytes: 1 << 20,
        authenticated: true,
      });
    const ok = frame('{"embeddings":true,"futureFlag":true}');
    expect(ok).toEqual({
      ok: true,
      frame: {
        type: 'bridge-channels',
        sharedChannels: [
          {
            name: 'c',
            provider: 'x',
            models: ['m'],
            capabilities: { embeddings: true, tools: false, vision: false, nativeResponses: false, synthetic: false },
          },
        ],
      },
    });
    // `refuses`: known contract fields kept (a newer peer's unknown ones dropped), none left = absent
    const refusing = frame('{"refuses":["n","from-the-future","tool_choice.required"]}');
    expect(refusing.ok && refusing.frame.type === 'bridge-channels' && refusing.frame.sharedChannels[0]!.capabilities).toEqual({
      embeddings: false,
      tools: false,
      vision: false,
      nativeResponses: false,
      synthetic: false,
      refuses: ['n', 'tool_choice.required'],
    });
    const unknownOnly = frame('{"refuses":["from-the-future"]}');
    expect(unknownOnly.ok && unknownOnly.frame.type === 'bridge-channels' && unknownOnly.frame.sharedChannels[0]!.capabilities).not.toHaveProperty('refuses');
    expect(frame('{"refuses":"n"}')).toMatchObject({ ok: false, error: { code: 'BAD_FRAME' } });
    expect(frame('{"refuses":[7]}')).toMatchObject({ ok: false, error: { code: 'BAD_FRAME' } });
    const bad = frame('{"embeddings":"yes"}');
    expect(bad).toMatchObject({ ok: false, error: { code: 'BAD_FRAME' } });
    expect(bad.ok === false && bad.error.message).toContain('sharedChannels[0].capabilities.embeddings');
  });
});
