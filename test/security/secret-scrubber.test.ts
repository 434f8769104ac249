/** The one scrubber (src/util/redact.ts), from strings: what it replaces, and what it leaves alone. */
import { describe, expect, it } from 'vitest';
import { INVALID_URL, KEY_RUN_MIN, REDACTED, SecretScrubber, keyStartTail, redactUrl } from '../../src/util/redact.js';
import { newSecret } from '../../src/keys/model.js';
import { ModelTokens } from '../../src/util/model-tokens.js';
import { registerConfigSecrets } from '../../src/config/secrets.js';
import { validateConfig } from '../../src/config/load.js';

/** `text` through one stream's delta scrubber in pieces of `n` characters: what each push gave, then the flush */
function inPieces(s: SecretScrubber, text: string, n: number): string[] {
  const d = s.deltas();
  const outs: string[] = [];
  for (let i = 0; i < text.length; i += n) outs.push(d.push(text.slice(i, i + n)));
  outs.push(d.flush());
  return outs;
}

describe('SecretScrubber', () => {
  it('replaces every registered secret, its JSON-escaped and URL-encoded forms; longest first', () => {
    const s = new SecretScrubber();
    s.register('abc"def/ghi');
    s.register('tok-123456');
    s.register('tok-123456-longer');
    expect(s.scrub('a tok-123456-longer b tok-123456 c')).toBe(`a ${REDACTED} b ${REDACTED} c`);
    expect(s.scrub(JSON.stringify({ k: 'abc"def/ghi' }))).toBe(`{"k":"${REDACTED}"}`);
    expect(s.scrub(`?t=${encodeURIComponent('abc"def/ghi')}`)).toBe(`?t=${REDACTED}`);
  });

  it('ignores secrets too short to be real, and leaves text without secrets untouched', () => {
    const s = new SecretScrubber();
    s.register('abc');
    s.register('');
    s.register(undefined);
    expect(s.scrub('abc abc')).toBe('abc abc');
    s.register('real-secret-value');
    const plain = 'nothing to see: max_tokens: 100, tokens: 5';
    expect(s.scrub(plain)).toBe(plain);
    expect(s.scrubError(plain)).toBe(plain);
  });

  it('registerUrl takes userinfo and token-like query values, not ordinary ones', () => {
    const s = new SecretScrubber();
    s.registerUrl('wss://alice:p%40ssw0rd-long@peer.example:443/bridge?token=qtok-abcdef&region=eu-west-1&api_key=kkkkkkkk');
    const text = 'p@ssw0rd-long p%40ssw0rd-long qtok-abcdef kkkkkkkk eu-west-1';
    expect(s.scrub(text)).toBe(`${REDACTED} ${REDACTED} ${REDACTED} ${REDACTED} eu-west-1`);
  });

  it("leaves the placeholders of the gateway's own help texts readable", () => {
    const s = new SecretScrubber();
    for (const help of [
      'missing admin token (send Authorization: Bearer <admin token>)',
      'missing API key (send Authorization: Bearer <key>)',
      'missing metrics token (send Authorization: Bearer <gateway.metrics.token>)',
      'missing bearer token (send Authorization: Bearer <token>)',
    ])
      expect(s.scrubError(help)).toBe(help);
    expect(s.scrubError('Authorization: Bearer sy-realvalue123456')).toBe(`Authorization: Bearer ${REDACTED}`);
  });

  it('scrubError also removes credential shapes nobody configured', () => {
    const s = new SecretScrubber();
    const echoed = [
      'Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig',
      '"x-api-key":"ak-unconfigured-999999"',
      'api_key=zzzzzzzzzzzz&model=m',
      'Incorrect API key provided: sk-proj-AbCdEfGhIjKlMnOpQrStUv',
      'password: hunter2-long',
    ].join(' | ');
    const out = s.scrubError(echoed);
    for (const leaked of ['eyJhbGciOiJIUzI1NiJ9', 'ak-unconfigured-999999', 'zzzzzzzzzzzz', 'sk-proj-AbCdEfGhIjKlMnOpQrStUv', 'hunter2-long'])
      expect(out).not.toContain(leaked);
    expect(out).toContain('Authorization: Bearer [REDACTED]');
    expect(out).toContain('model=m');
    // already-redacted text is left as it is
    expect(s.scrubError('token: [redacted]')).toBe('token: [redacted]');
  });

  it('scrubError also removes pieces of a long secret: its tail, its head, its base64 form at any offset; scrub leaves them', () => {
    const s = new SecretScrubber();
    const key = 'sk-proj-Zq8v3Kd0pXr7mW2nB5tY9cA1eF4gH6jLmN0pQ2rS4tU6';
    s.register(key);
    const echoes = [
      `Incorrect API key provided: ...${key.slice(-22)}.`,
      `key starts ${key.slice(0, 16)} and`,
      `Basic ${Buffer.from(`api:${key}`).toString('base64')}`,
      `x-auth ${Buffer.from(key).toString('base64')}`,
      `(${Buffer.from(`ab:${key}`).toString('base64')})`,
    ];
    for (const e of echoes) {
      const out = s.scrubError(e);
      expect(out, e).toContain(REDACTED);
      for (let i = 0; i + 16 <= key.length; i++) expect(out, e).not.toContain(key.slice(i, i + 16));
    }
    expect(s.scrubError(`Incorrect API key provided: ...${key.slice(-22)}.`)).toBe('Incorrect API key provided: [REDACTED]'); // the run holds the dots
    // 15 characters in common is not a piece; ordinary ids and paths are left alone
    const near = `id ${key.slice(-15)}XYZ /v1/chat/completions req_01JB2X3Y4Z5A6B7C8D9E0F`;
    expect(s.scrubError(near)).toBe(near);
    // user data (scrub) is touched only by whole secrets
    expect(s.scrub(`tail ${key.slice(-22)}`)).toBe(`tail ${key.slice(-22)}`);
    // a secret under 20 characters gives no pieces (they would be too close to ordinary text)
    const t = new SecretScrubber();
    t.register('short-token-123456');
    expect(t.scrubError('xx short-token-1234 yy')).toBe('xx short-token-1234 yy');
    // a forgotten secret's pieces go with it
    s.forget(key);
    expect(s.scrubError(`...${key.slice(-22)}`)).toBe(`...${key.slice(-22)}`);
  });

  it('deltas(): a secret split across stream deltas at every boundary goes out as [REDACTED], and nothing else changes', () => {
    const s = new SecretScrubber();
    const secret = 'sk-split-0123456789abcdef';
    s.register(secret);
    s.register('zz-other-secret-42');
    const text = `key is ${secret}, again ${secret}s and sk-not-it, ends with s`;
    const expected = text.split(secret).join(REDACTED);
    // every way of cutting the text in two, and in pieces of each size
    for (let cut = 0; cut <= text.length; cut++) {
      const d = s.deltas();
      const out = d.push(text.slice(0, cut)) + d.push(text.slice(cut)) + d.flush();
      expect(out, `cut at ${cut}`).toBe(expected);
    }
    for (let n = 1; n <= 9; n++) {
      const outs = inPieces(s, text, n);
      expect(outs.join(''), `pieces of ${n}`).toBe(expected);
      // no piece that went out holds more than the secret's public-looking start
      for (const o of outs) expect(o.includes('0123')).toBe(false);
    }
  });

  it('deltas(): holds only while the text matches the start of a secret, and gives a held start back when it stops matching', () => {
    const s = new SecretScrubber();
    s.register('sk-split-0123456789abcdef');
    const d = s.deltas();
    expect(d.push('plain words ')).toBe('plain words ');
    expect(d.holding).toBe(0);
    expect(d.push('thanks')).toBe('thank'); // `s` may start the key
    expect(d.holding).toBe(1);
    expect(d.push('k-spl')).toBe('');
    expect(d.holding).toBe(6);
    expect(d.push('endid')).toBe('sk-splendid'); // it did not become the key
    expect(d.push(' sk-split-0123')).toBe(' ');
    expect(d.flush()).toBe('sk-split-0123'); // the stream ended: a start of a key is not the key
    expect(d.flush()).toBe('');
    // the JSON-escaped and URL-encoded forms are held too
    const e = new SecretScrubber();
    e.register('pa ss/word"long');
    const de = e.deltas();
    expect(de.push('x pa%20ss%2Fwo')).toBe('x ');
    expect(de.push('rd%22long y')).toBe(`${REDACTED} y`);
  });

  it('deltas(): among a thousand secrets sharing a start, the end of a delta is held only while it starts one of them', () => {
    const s = new SecretScrubber();
    const tokens = Array.from({ length: 1000 }, (_, i) => `sy-agent-${String(i).padStart(4, '0')}-${(i * 7919).toString(36)}xyzw`);
    for (const t of tokens) s.register(t);
    const t = tokens[617]!;
    expect(s.heldTail(`see ${t.slice(0, 14)}`)).toBe(14);
    expect(s.heldTail(`see ${t.slice(0, -1)}`)).toBe(t.length - 1);
    expect(s.heldTail(`see sy-agent-0617-x`)).toBe(0); // starts none of them
    expect(s.heldTail(`see ${t}`)).toBe(0); // whole: scrub's, not held
    expect(s.heldTail('')).toBe(0);
    const d = s.deltas();
    const out = [d.push(`a ${t.slice(0, 9)}`), d.push(t.slice(9, 20)), d.push(`${t.slice(20)} b`), d.flush()];
    expect(out).toEqual(['a ', '', `${REDACTED} b`, '']);
  });

  it('replaces Switchyard key secrets nobody registered, by their shape, in scrub, scrubError and scrubProblem', () => {
    const s = new SecretScrubber();
    const key = newSecret();
    const agent = new ModelTokens().mint({ model: 'm', sessionId: 's', agentId: 'a' });
    expect(agent.startsWith('sy-agent-')).toBe(true);
    for (const secret of [key, agent, 'sy-' + '-'.repeat(43), 'sy-' + '_'.repeat(43)]) {
      const echoes = [
        secret,
        `model "${secret}" is not served here`,
        JSON.stringify({ error: { message: `The model \`${secret}\` does not exist` } }),
        `no route GET /v1beta/models/${secret}:generateContent`,
        `GET /v1/x?key=${secret}&alt=sse`,
        `(${secret}),${secret}.`,
        `${secret}-and-more-of-the-same-run`,
        // a key cut short (a quoted name cut at 256 characters) down to KEY_RUN_MIN characters after `sy-`
        `…${secret.slice(0, 3 + KEY_RUN_MIN)}…`,
      ];
      for (const e of echoes) {
        for (const out of [s.scrub(e), s.scrubError(e), s.scrubProblem(`gateway.x: ${e}`)]) {
          expect(out, e).toContain(REDACTED);
          expect(out, e).not.toContain(secret.slice(3, 3 + KEY_RUN_MIN));
          expect(out, e).not.toContain(secret.slice(-KEY_RUN_MIN));
        }
      }
    }
    expect(s.scrub(`model "${key}" is not served here`)).toBe(`model "${REDACTED}" is not served here`);
    expect(s.scrub(`${key}-and-more`)).toBe(REDACTED); // the whole run
    expect(s.scrubValue({ a: [`x ${agent}`] })).toEqual({ a: [`x ${REDACTED}`] });
  });

  it('leaves words, model names, hints, paths and runs too short to be a key secret alone', () => {
    const s = new SecretScrubber();
    const key = newSecret();
    const plain = [
      'sy-',
      'sy-1',
      'sy-mock',
      'model "sy-mock-model-large-v2-0" is not served here', // 21 after `sy-`
      `API key ${key.slice(0, 7)}… may not use model "gpt-4o"`, // a key's hint
      `${key.slice(0, 3 + KEY_RUN_MIN - 1)}`,
      '/tmp/sy-opencode-home-AbC123/work/file.ts',
      'easy-to-read-configuration-files-for-everyone', // `sy-` inside a word
      'busy-' + 'x'.repeat(60),
      'x_sy-' + 'A'.repeat(43), // not at a word's start
      'sy_' + 'A'.repeat(43),
      'SY-' + 'A'.repeat(43),
      'nothing to see: max_tokens: 100',
    ];
    for (const p of plain) {
      expect(s.scrub(p), p).toBe(p);
      expect(s.scrubError(p), p).toBe(p);
    }
  });

  it('deltas(): a key secret nobody registered, split across deltas at every boundary, goes out as [REDACTED] and in no piece', () => {
    const s = new SecretScrubber();
    const key = newSecret();
    const agent = new ModelTokens().mint({ model: 'm', sessionId: 's', agentId: 'a' });
    const text = `use ${key} or "${agent}"; it's sy-mock, busy-sy days`;
    const expected = `use ${REDACTED} or "${REDACTED}"; it's sy-mock, busy-sy days`;
    for (let cut = 0; cut <= text.length; cut++) {
      const d = s.deltas();
      const outs = [d.push(text.slice(0, cut)), d.push(text.slice(cut)), d.flush()];
      expect(outs.join(''), `cut at ${cut}`).toBe(expected);
      for (const o of outs)
        for (const secret of [key, agent]) expect(o.includes(secret.slice(-8)) || o.includes(secret.slice(3, 11)), `cut at ${cut}`).toBe(false);
    }
    for (let n = 1; n <= 9; n++) {
      const outs = inPieces(s, text, n);
      expect(outs.join(''), `pieces of ${n}`).toBe(expected);
    }
    // a whole key at a delta's end is not held; a stream that ends with a key cut short gives it scrubbed
    const d = s.deltas();
    expect(d.push(`the key is ${key}`)).toBe(`the key is ${REDACTED}`);
    expect(d.holding).toBe(0);
    expect(d.push(` and ${key.slice(0, 30)}`)).toBe(' and ');
    expect(d.holding).toBe(30);
    expect(d.flush()).toBe(REDACTED);
  });

  it('deltas(): holds the end of a delta only while it may start a key secret, and only until it is a whole one', () => {
    expect(keyStartTail('a s')).toBe(1);
    expect(keyStartTail('a sy')).toBe(2);
    expect(keyStartTail('a sy-AbC')).toBe(6);
    expect(keyStartTail('thanks')).toBe(0); // `s` inside a word
    expect(keyStartTail('a sx')).toBe(0);
    expect(keyStartTail('a sy-AbC.')).toBe(0);
    expect(keyStartTail('a busy-sy-AbC')).toBe(6);
    expect(keyStartTail('a sy-' + 'A'.repeat(42))).toBe(45);
    expect(keyStartTail('a sy-' + 'A'.repeat(43))).toBe(0); // a whole key: scrub's
    expect(keyStartTail('a sy-agent-' + 'A'.repeat(42))).toBe(51);
    expect(keyStartTail('a sy-agent-' + 'A'.repeat(43))).toBe(0); // a whole agent token
    expect(keyStartTail('a sy-agentx' + 'A'.repeat(38))).toBe(0); // 43 long, and no agent token
    const s = new SecretScrubber();
    const d = s.deltas();
    expect(d.push("it's")).toBe("it'");
    expect(d.push(' fine')).toBe('s fine');
    const long = 'sy-' + 'A'.repeat(60);
    expect(d.push(` ${long}`)).toBe(` ${REDACTED}`); // longer than any key: scrubbed at once, not held
    expect(d.holding).toBe(0);
  });

  it('registerConfigSecrets covers every secret key of the config', () => {
    const cfg = validateConfig(
      {
        gateway: {
          auth: { tokens: ['client-token-1'] },
          admin: { token: 'admin-token-1' },
          bridge: { enabled: true, allowedTokens: ['inbound-bridge-1'] },
          bridges: [{ name: 'p', url: 'ws://u:userpass-1@127.0.0.1:1/bridge?token=query-token-1', token: 'outbound-bridge-1' }],
        },
        channels: [
          {
            name: 'c',
            provider: 'openai',
            baseUrl: 'http://127.0.0.1:1/v1?key=url-key-0001',
            apiKey: 'channel-key-1',
            models: ['m'],
            headers: { 'x-org': 'org-visible', 'x-custom': 'marked-secret-1' },
            secretHeaders: ['x-custom'],
          },
        ],
        acp: {
          tokens: ['acp-token-1'],
          gateways: [{ id: 'oc', label: 'OC', kind: 'openclaw', url: 'ws://127.0.0.1:1/?auth=oc-query-1', token: 'openclaw-token-1' }],
        },
      },
      'test',
      {},
    );
    const s = new SecretScrubber();
    registerConfigSecrets(cfg, s);
    const all = [
      'client-token-1',
      'admin-token-1',
      'inbound-bridge-1',
      'userpass-1',
      'query-token-1',
      'outbound-bridge-1',
      'url-key-0001',
      'channel-key-1',
      'marked-secret-1',
      'acp-token-1',
      'oc-query-1',
      'openclaw-token-1',
    ];
    expect(s.scrub(all.join(' '))).toBe(all.map(() => REDACTED).join(' '));
    expect(s.scrub('org-visible')).toBe('org-visible');
  });
});

describe('redactUrl', () => {
  it('hides userinfo and every query value, keeps the rest', () => {
    expect(redactUrl('wss://u:p@peer.example:8443/bridge?token=abc&x=1#frag')).toBe(
      `wss://${REDACTED}@peer.example:8443/bridge?token=${REDACTED}&x=${REDACTED}`,
    );
    expect(redactUrl('ws://127.0.0.1:9/bridge')).toBe('ws://127.0.0.1:9/bridge');
    expect(redactUrl(null)).toBeNull();
  });

  it('replaces a query parameter without `=` whole: it may be a token where a name goes', () => {
    expect(redactUrl('wss://peer.example/bridge?bare-token-5e2a9c&region=eu')).toBe(`wss://peer.example/bridge?${REDACTED}&region=${REDACTED}`);
  });

  it('shows none of text that does not parse: its credentials were never found, so never registered', () => {
    for (const url of ['ws://u:unparsed-pass-71c3@127.0.0.1:99999/bridge?token=unparsed-query-2b8d', 'wss://open claw:18789/?unparsed-bare-4f6e']) {
      expect(redactUrl(url)).toBe(INVALID_URL);
    }
    expect(INVALID_URL).toBe('<invalid url>');
  });
});

describe('config problems (scrubProblem)', () => {
  const s = new SecretScrubber();
  s.register('problem-secret-value-7c1d2e');

  it('keep the message of a key named like a credential; upstream text of that shape is still cut', () => {
    for (const p of [
      'gateway.admin.token: Invalid input: expected string, received number',
      'channels.0.headers.x-api-key: Invalid option: expected one of "a"',
      'gateway.bridges.0.password: unknown key',
    ]) {
      expect(s.scrubProblem(p)).toBe(p);
      // the same text as error text (an upstream's) keeps the credential rule
      expect(s.scrubError(p)).toContain(REDACTED);
    }
  });

  it('still cut secrets, key shapes and credentials the message quotes', () => {
    expect(s.scrubProblem('gateway.bridge.shareChannels.0: no channel named "problem-secret-value-7c1d2e"')).toBe(
      `gateway.bridge.shareChannels.0: no channel named "${REDACTED}"`,
    );
    expect(s.scrubProblem('channels.0.sk-proj-abcdefghijklmnopqrstuv: unknown key')).toBe(`channels.0.${REDACTED}: unknown key`);
    expect(s.scrubProblem('channels.0.options.x: refused authorization: hunter2hunter2')).toBe(`channels.0.options.x: refused authorization: ${REDACTED}`);
  });

  it('in a JSON text, only the problems given are scrubbed as problems', () => {
    const problem = 'gateway.metrics.token: Invalid input: expected string, received number';
    const json = JSON.stringify({ problems: [problem], echo: 'token: Invalid123 problem-secret-value-7c1d2e' });
    expect(JSON.parse(s.scrubError(json, [problem]))).toEqual({ problems: [problem], echo: `token: ${REDACTED} ${REDACTED}` });
    expect(JSON.parse(s.scrubError(json)).problems).toEqual([`gateway.metrics.token: ${REDACTED} input: expected string, received number`]);
  });
});
