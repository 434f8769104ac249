/**
 * The seed's app-side routing rules, exhaustively: normalisation to `…/acp/rpc`, refusal of provider-direct and
 * gateway paths, and the managed-mode refusal of loopback / LAN / link-local hosts unless local use is allowed.
 */
import { describe, expect, it } from 'vitest';
import { AcpBaseUrlError, BaseUrlError, gatewayBase, isLocalHost, normaliseAcpBase } from './base-url.js';

const managed = { allowLocal: false };
const local = { allowLocal: true };
const norm = (s: string, o = managed) => normaliseAcpBase(s, o).href;

/** What `check` threw for `s`, an instance of `kind`; fails the test if it accepted `s`. */
function refusedBy<E extends BaseUrlError>(kind: new (...args: never[]) => E, s: string, check: (s: string) => unknown): E {
  try {
    check(s);
  } catch (err) {
    expect(err).toBeInstanceOf(kind);
    return err as E;
  }
  throw new Error(`expected ${s} to be refused`);
}

const refusal = (s: string, o = managed): AcpBaseUrlError => refusedBy(AcpBaseUrlError, s, (x) => normaliseAcpBase(x, o));

describe('normaliseAcpBase: normalisation', () => {
  it.each([
    ['https://bridge.example.com', 'https://bridge.example.com/acp/rpc'],
    ['https://bridge.example.com/', 'https://bridge.example.com/acp/rpc'],
    ['https://bridge.example.com/acp', 'https://bridge.example.com/acp/rpc'],
    ['https://bridge.example.com/acp/', 'https://bridge.example.com/acp/rpc'],
    ['https://bridge.example.com/acp/rpc', 'https://bridge.example.com/acp/rpc'],
    ['https://bridge.example.com/acp/rpc/', 'https://bridge.example.com/acp/rpc'],
    ['https://bridge.example.com/acp/rpc///', 'https://bridge.example.com/acp/rpc'],
    ['https://bridge.example.com//', 'https://bridge.example.com/acp/rpc'],
    ['  https://bridge.example.com/acp  ', 'https://bridge.example.com/acp/rpc'],
    ['http://bridge.example.com:8080', 'http://bridge.example.com:8080/acp/rpc'],
    ['https://bridge.example.com:443/', 'https://bridge.example.com/acp/rpc'],
    ['HTTPS://Bridge.Example.COM/acp', 'https://bridge.example.com/acp/rpc'],
    // a gateway behind a path prefix keeps its prefix
    ['https://example.com/switchyard', 'https://example.com/switchyard/acp/rpc'],
    ['https://example.com/switchyard/acp', 'https://example.com/switchyard/acp/rpc'],
    ['https://example.com/switchyard/acp/rpc/', 'https://example.com/switchyard/acp/rpc'],
    // only a trailing /acp or /acp/rpc is stripped, and only once
    ['https://example.com/acp/team', 'https://example.com/acp/team/acp/rpc'],
    ['https://example.com/acprpc', 'https://example.com/acprpc/acp/rpc'],
    ['https://example.com/my-acp', 'https://example.com/my-acp/acp/rpc'],
    ['https://example.com/rpc', 'https://example.com/rpc/acp/rpc'],
    ['https://example.com/acp/acp', 'https://example.com/acp/acp/rpc'],
    // fragments are dropped
    ['https://example.com/acp#frag', 'https://example.com/acp/rpc'],
    // segments that merely contain the refused words are fine
    ['https://example.com/my-gateway', 'https://example.com/my-gateway/acp/rpc'],
    ['https://example.com/gateways', 'https://example.com/gateways/acp/rpc'],
    ['https://example.com/acp-servers', 'https://example.com/acp-servers/acp/rpc'],
    ['https://gateway.example.com', 'https://gateway.example.com/acp/rpc'],
    ['https://acp-server.example.com', 'https://acp-server.example.com/acp/rpc'],
  ])('%s → %s', (input, want) => {
    expect(norm(input)).toBe(want);
  });

  it('returns a URL object that is idempotent under normalisation', () => {
    const u = normaliseAcpBase('https://example.com/x/acp', managed);
    expect(u).toBeInstanceOf(URL);
    expect(u.pathname).toBe('/x/acp/rpc');
    expect(normaliseAcpBase(u.href, managed).href).toBe(u.href);
  });
});

describe('normaliseAcpBase: malformed bases', () => {
  it.each([
    // not http(s):// text at all: the scheme is the mistake to name
    ['', 'scheme'],
    ['bridge.example.com', 'scheme'],
    ['://x', 'scheme'],
    ['127.0.0.1:9', 'scheme'],
    ['https://', 'invalid-url'],
    ['http://[::1', 'invalid-url'],
    ['https:///bridge.example.com', 'invalid-url'],
    ['ws://bridge.example.com/acp', 'scheme'],
    ['wss://bridge.example.com/acp', 'scheme'],
    ['ftp://bridge.example.com', 'scheme'],
    ['file:///tmp/acp', 'scheme'],
    ['https://user:secret@bridge.example.com', 'credentials'],
    ['https://token@bridge.example.com', 'credentials'],
    ['https://bridge.example.com/acp?token=x', 'query'],
  ])('%j is refused (%s)', (input, rule) => {
    expect(refusal(input).rule).toBe(rule);
  });

  it('never echoes credentials in the message', () => {
    const e = refusal('https://user:hunter2@bridge.example.com/acp');
    expect(e.message).not.toContain('hunter2');
    expect(e.message).toMatch(/credentials/);
  });

  it('never echoes the URL of a refused base: a password in a malformed one, a token in its query', () => {
    const malformed = refusal('http://user:hunter2@[::1/acp');
    expect(malformed.rule).toBe('invalid-url');
    expect(malformed.message).toBe('the ACP base URL is not a valid URL: expected http(s)://host[:port][/prefix]');
    const query = refusal('https://bridge.example.com/acp?token=sk-query-secret');
    expect(query.rule).toBe('query');
    expect(query.message).toBe('the ACP base URL: a gateway base URL carries no query string');
    const scheme = refusal('ws://user:hunter2@bridge.example.com/acp');
    expect(scheme.message).toBe("the ACP base URL must be a gateway's http:// or https:// URL (the WebSocket endpoint /acp is derived from it, not given)");
  });
});

describe('gatewayBase: the one rule set for a gateway base URL (the admin commands and the ACP client)', () => {
  const naming = { subject: '--url', token: 'the admin token with --token' };
  const refused = (s: string): BaseUrlError => refusedBy(BaseUrlError, s, (x) => gatewayBase(x, naming));

  it('keeps a base as it is but for its fragment', () => {
    expect(gatewayBase(' https://gw.example:18789/prefix/ ', naming).href).toBe('https://gw.example:18789/prefix/');
    expect(gatewayBase('HTTP://GW.example#top', naming).href).toBe('http://gw.example/');
  });

  it.each([
    ['ftp://gw.example', 'scheme', "--url must be a gateway's http:// or https:// URL"],
    ['gw.example:18789', 'scheme', "--url must be a gateway's http:// or https:// URL"],
    ['http://[::1', 'invalid-url', '--url is not a valid URL: expected http(s)://host[:port][/prefix]'],
    ['http://ops:pw-7f3a@gw.example', 'credentials', '--url: credentials do not belong in the URL; pass the admin token with --token'],
    ['http://gw.example/?token=tk-9e1c', 'query', '--url: a gateway base URL carries no query string'],
  ])('%j is refused (%s), the URL not echoed', (input, rule, message) => {
    const e = refused(input);
    expect(e.rule).toBe(rule);
    expect(e.message).toBe(message);
  });

  it('normaliseAcpBase refuses by the same rules, as AcpBaseUrlError', () => {
    for (const input of ['ftp://gw.example', 'http://[::1', 'http://ops:pw@gw.example', 'http://gw.example/?q=1']) {
      const e = refusal(input, local);
      expect(e.rule).toBe(refused(input).rule);
    }
  });
});

describe('normaliseAcpBase: provider-direct and gateway paths are refused', () => {
  it.each([
    'https://bridge.example.com/acp-server/codex',
    'https://bridge.example.com/acp-server/codex/acp/rpc',
    'https://bridge.example.com/acp-server',
    'https://bridge.example.com/acp-server/',
    'https://bridge.example.com/prefix/acp-server/gemini/acp',
    'https://bridge.example.com/ACP-SERVER/codex',
    'https://bridge.example.com/acp%2Dserver/codex',
    'https://bridge.example.com/x/../acp-server/codex',
  ])('%s (acp-server)', (input) => {
    const e = refusal(input);
    expect(e.rule).toBe('direct-path');
    expect(e.message).toMatch(/\/acp-server\/ are provider-direct routes/);
    // refused in local mode too: the path rule does not depend on the host
    expect(refusal(input, local).rule).toBe('direct-path');
  });

  it.each([
    'https://bridge.example.com/gateway/openclaw',
    'https://bridge.example.com/gateway/openclaw/acp/rpc',
    'https://bridge.example.com/gateway',
    'https://bridge.example.com/gateway/',
    'https://bridge.example.com/gateway/acp',
    'https://bridge.example.com/x/Gateway/openclaw',
    'https://bridge.example.com/%67ateway/openclaw',
  ])('%s (gateway)', (input) => {
    const e = refusal(input);
    expect(e.rule).toBe('direct-path');
    expect(e.message).toMatch(/\/gateway\/ .* not ACP endpoints/);
    expect(refusal(input, local).rule).toBe('direct-path');
  });

  it('the path rule wins over the host rule (the message names the path)', () => {
    expect(refusal('http://127.0.0.1:18789/gateway/openclaw').rule).toBe('direct-path');
  });
});

describe('normaliseAcpBase: managed mode refuses loopback / LAN hosts; local mode allows them', () => {
  const localBases = [
    'http://127.0.0.1:18789',
    'http://127.0.0.1',
    'http://127.1.2.3:8080/acp',
    'http://127.1/acp',
    'http://2130706433/',
    'http://0x7f000001/',
    'http://0.0.0.0:18789',
    'http://localhost:18789',
    'http://LOCALHOST:18789',
    'http://localhost.:18789',
    'http://app.localhost',
    'http://[::1]:18789',
    'http://[0:0:0:0:0:0:0:1]/',
    'http://[::]/',
    'http://[::ffff:127.0.0.1]:18789',
    'http://[::ffff:192.168.1.9]/',
    'http://10.0.0.5:18789',
    'http://10.255.255.255',
    'http://172.16.0.1',
    'http://172.20.3.4',
    'http://172.31.255.255',
    'http://192.168.1.10:18789/acp/rpc',
    'http://192.168.0.1',
    'http://169.254.169.254',
    'http://169.254.1.1',
    'http://[fc00::1]',
    'http://[fd12:3456:789a::1]:18789',
    'http://[fe80::1]',
    'http://[febf::1]',
    'http://printer.local',
    'http://my-mac.local.:18789',
    'http://nas:8080',
    'https://gpu-box/acp',
  ];

  it.each(localBases)('%s is refused in managed mode and allowed with allowLocal', (input) => {
    const e = refusal(input);
    expect(e.rule).toBe('local-address');
    expect(e.message).toMatch(/loopback\/LAN address, which managed mode never calls; opt in to local use \(--local\)/);
    expect(normaliseAcpBase(input, local).pathname).toMatch(/\/acp\/rpc$/);
  });

  const publicBases = [
    'https://bridge.example.com',
    'https://8.8.8.8',
    'http://11.0.0.1',
    'http://126.255.255.255',
    'http://128.0.0.1',
    'http://172.15.255.255',
    'http://172.32.0.1',
    'http://192.167.1.1',
    'http://192.169.1.1',
    'http://169.253.1.1',
    'http://169.255.1.1',
    'http://1.0.0.0',
    'http://[2001:db8::1]',
    'http://[2606:4700:4700::1111]',
    'http://[fbff::1]',
    'http://[fec0::1]',
    'http://[::2]',
    'http://[::ffff:8.8.8.8]',
    'https://localhost.example.com',
    'https://local.example.com',
    'https://example.localdomain.com',
  ];

  it.each(publicBases)('%s is allowed in managed mode', (input) => {
    expect(normaliseAcpBase(input, managed).pathname).toMatch(/\/acp\/rpc$/);
  });
});

describe('isLocalHost', () => {
  it.each([
    ['127.0.0.1', true],
    ['[::1]', true],
    ['::1', true],
    ['::ffff:10.1.2.3', true],
    ['::ffff:a01:203', true],
    ['fe80::1%eth0', true],
    ['localhost', true],
    ['foo.local', true],
    ['', true],
    ['example.com', false],
    ['1.1.1.1', false],
    ['::ffff:1.1.1.1', false],
    ['2001:db8::ff', false],
  ])('%s → %s', (h, want) => {
    expect(isLocalHost(h)).toBe(want);
  });
});
