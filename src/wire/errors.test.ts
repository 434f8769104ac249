/**
 * docs/errors.md against the error catalogue, both ways: every catalogue code is documented (on /v1 by its
 * lowercase name, on /acp/rpc by its `data.code`, on the bridge by its bridge code), every documented code is
 * in the catalogue, and the documented status / retryable / JSON-RPC / close / mapping columns are the
 * catalogue's.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ERROR_TABLE, RELAYED_TEXT_MAX, cutText, describeError, isErrorCode, stackOf, toGatewayError, type ErrorCode } from './errors.js';
import { BRIDGE_ERROR_CODES, isBridgeErrorCode } from './bridge-codes.js';

const doc = readFileSync(fileURLToPath(new URL('../../docs/errors.md', import.meta.url)), 'utf8');
const ALL = Object.keys(ERROR_TABLE).filter(isErrorCode);

/** The rows of the first table after `heading` (a markdown heading line), as cells without backticks. */
function table(heading: string): string[][] {
  const at = doc.indexOf(`\n${heading}\n`);
  if (at < 0) throw new Error(`docs/errors.md has no "${heading}"`);
  const lines = doc.slice(at + heading.length + 2).split('\n');
  const start = lines.findIndex((l) => l.startsWith('|'));
  const rows: string[][] = [];
  for (const l of lines.slice(start + 2)) {
    if (!l.startsWith('|')) break;
    rows.push(
      l
        .slice(1, -1)
        .split(' | ')
        .map((c) => c.trim()),
    );
  }
  return rows;
}
const codesIn = (cell: string) => [...cell.matchAll(/`([A-Za-z_]+)`/g)].map((m) => m[1]!);
const yesNo = (cell: string) => (cell.startsWith('yes') ? true : cell.startsWith('no') ? false : undefined);

const main = table('## Error codes');
const acp = table('## Errors on /acp/rpc');
const bridge = table('### Bridge error codes');
const toBridge = table('### From a gateway error to a bridge error (serving a peer)');

describe('docs/errors.md matches the error catalogue', () => {
  it('documents every catalogue code somewhere', () => {
    const onV1 = new Set(main.map((r) => codesIn(r[0]!)[0]!.toUpperCase()));
    const onAcp = new Set(acp.map((r) => codesIn(r[0]!)[0]!));
    const onBridge = new Set(bridge.map((r) => codesIn(r[0]!)[0]!));
    const missing = ALL.filter((c) => !onV1.has(c) && !onAcp.has(describeError(c).data) && !onBridge.has(c));
    expect(missing).toEqual([]);
    expect(BRIDGE_ERROR_CODES.filter((c) => !onBridge.has(c))).toEqual([]);
  });

  it('the /v1 table: every code exists, with its status, retryable and JSON-RPC code', () => {
    expect(main.length).toBeGreaterThan(20);
    for (const [codeCell, http, type, retryable, rpc] of main) {
      const code = codesIn(codeCell!)[0]!.toUpperCase();
      expect(isErrorCode(code), `${code} is documented but not in ERROR_TABLE`).toBe(true);
      const spec = describeError(code as ErrorCode);
      expect([code, Number(/^\d+/.exec(http!)?.[0])]).toEqual([code, spec.status]);
      expect([code, codesIn(type!)[0]]).toEqual([code, spec.type]);
      expect([code, yesNo(retryable!)]).toEqual([code, spec.retryable]);
      expect([code, Number(rpc)]).toEqual([code, spec.rpc]);
    }
  });

  it('the /acp/rpc table: every data.code is a catalogue row with that JSON-RPC code', () => {
    expect(acp.length).toBeGreaterThan(10);
    for (const [codeCell, rpc] of acp) {
      const data = codesIn(codeCell!)[0]!;
      const rows = ALL.map(describeError).filter((r) => r.data === data);
      expect(rows.length, `data.code ${data} is documented but no catalogue row sends it`).toBeGreaterThan(0);
      if (rpc !== 'as sent')
        expect(
          rows.map((r) => r.rpc),
          data,
        ).toContain(Number(rpc));
    }
  });

  it('the bridge table: every bridge code, with its default retryable and close code', () => {
    for (const [codeCell, retryable, closes] of bridge) {
      const code = codesIn(codeCell!)[0]!;
      expect(isBridgeErrorCode(code), `${code} is documented but not a bridge code`).toBe(true);
      const spec = describeError(code as ErrorCode);
      expect([code, yesNo(retryable!)]).toEqual([code, spec.retryable]);
      const close = /^\d{4}/.exec(closes!)?.[0];
      expect([code, close === undefined ? undefined : Number(close)]).toEqual([code, spec.close]);
    }
  });

  it("the gateway → bridge code table is the catalogue's `bridge` column", () => {
    let listed = 0;
    for (const [from, to] of toBridge) {
      if (from === 'anything else') {
        const others = ALL.filter((c) => !toBridge.some((r) => codesIn(r[0]!).includes(c)) && !isBridgeErrorCode(c));
        for (const c of others) expect([c, describeError(c).bridge]).toEqual([c, codesIn(to!)[0]]);
        continue;
      }
      for (const c of codesIn(from!)) {
        listed++;
        expect(isErrorCode(c), c).toBe(true);
        expect([c, describeError(c as ErrorCode).bridge]).toEqual([c, codesIn(to!)[0]]);
      }
    }
    expect(listed).toBeGreaterThan(10);
  });
});

describe('one code per failure across surfaces', () => {
  it('a body that is not JSON is INVALID_JSON: invalid_json on /v1, -32700 PARSE_ERROR on /acp/rpc, BAD_FRAME to a peer', () => {
    expect(describeError('INVALID_JSON')).toMatchObject({ status: 400, rpc: -32700, data: 'PARSE_ERROR', bridge: 'BAD_FRAME' });
  });
  it('an old-format row (status, type, retryable, rpc) is complete: the other columns default from the code', () => {
    expect(describeError('FORBIDDEN')).toMatchObject({ data: 'FORBIDDEN', bridge: 'INTERNAL', close: undefined, fromPeer: 'FORBIDDEN', failover: true });
    expect(describeError('CHANNEL_NOT_SHARED')).toMatchObject({ bridge: 'CHANNEL_NOT_SHARED', fromPeer: 'CHANNEL_NOT_SHARED' });
  });
  it('AGENT_NOT_SHARED is not retryable, and a requester reports it as FORBIDDEN', () => {
    expect(describeError('AGENT_NOT_SHARED')).toMatchObject({ retryable: false, fromPeer: 'FORBIDDEN' });
  });
});

describe('stackOf', () => {
  it('logs what was thrown under the wrapper toGatewayError puts around it, and survives odd throwables', () => {
    let thrown: unknown;
    try {
      thrown = (undefined as unknown as { function: { name: string } }).function.name;
    } catch (e) {
      thrown = e;
    }
    const text = stackOf(toGatewayError(thrown));
    expect(text).toMatch(/^GatewayError/);
    expect(text).toContain('\ncaused by: TypeError: Cannot read properties of undefined');
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(stackOf(toGatewayError(cyclic))).toContain('caused by: object');
    expect(stackOf('plain')).toBe('plain');
  });
});

describe('cutText: the one bound of another party’s text in an error', () => {
  it('keeps a text up to RELAYED_TEXT_MAX whole, cuts a longer one there with …, never between a surrogate pair’s halves', () => {
    expect(RELAYED_TEXT_MAX).toBe(1000);
    const whole = 'a'.repeat(RELAYED_TEXT_MAX);
    expect(cutText(whole)).toBe(whole);
    expect(cutText(whole + 'b')).toBe(`${whole}…`);
    expect(cutText('abcdef', 3)).toBe('abc…');
    // an emoji (two UTF-16 units) straddling the cut is left out whole
    expect(cutText('ab\u{1F600}cd', 3)).toBe('ab…');
    expect(cutText('ab\u{1F600}cd', 4)).toBe('ab\u{1F600}…');
  });
});
