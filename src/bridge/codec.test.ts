import { describe, it, expect } from 'vitest';
import { encodeFrame, hasLoop, negotiateVersion, parseFrame, splitRelayFrame, withHop, type ParseOptions } from './codec.js';
import {
  BRIDGE_DEFAULT_LIMITS,
  BRIDGE_FRAME_TYPES,
  CLOSE_CODES,
  MAX_DIAL_NONCES,
  MAX_FRAME_DEPTH,
  MAX_HOPS,
  RETRY_FORBIDDEN_CLOSE_CODES,
  bridgeErrorFrame,
  isRetryForbiddenClose,
  speaksStreamPause,
  echoesPingNonce,
  type BridgeFrameType,
} from '../wire/bridge-frames.js';
import { bridgeErrorSpec } from '../wire/errors.js';

const POST: ParseOptions = { maxBytes: 1 << 20, authenticated: true };
const PRE: ParseOptions = { maxBytes: 64 * 1024, authenticated: false };
const PRE_INIT: ParseOptions = { ...PRE, role: 'initiator' };

const ch = '{"name":"local-llama","provider":"ollama","models":["llama3","codellama"]}';
const caps = '{"shareChannels":true,"acceptSessions":true,"loadBalance":false}';

/** One valid raw frame per type, with every field the protocol defines (so parse(raw) deep-equals JSON.parse(raw)). */
const VALID: Record<BridgeFrameType, string> = {
  'bridge-hello': `{"type":"bridge-hello","gatewayId":"gw_abc123","gatewayName":"Office Gateway","version":"1.0","token":"s3cret-token","capabilities":${caps},"sharedChannels":[{"name":"openai","provider":"openai","models":["gpt-4o-mini"]}],"sharedAgents":[{"id":"codex","label":"Codex","kind":"agent"}],"minVersion":"1.0","maxVersion":"1.0","nonce":"n-1"}`,
  'bridge-hello-ok': `{"type":"bridge-hello-ok","gatewayId":"gw_def456","gatewayName":"Datacenter Gateway","sharedChannels":[${ch}],"version":"1.0","capabilities":${caps},"policy":{"maxFrameBytes":16777216,"heartbeatIntervalMs":5000},"sharedAgents":[{"id":"switchyard","label":"Switchyard","kind":"gateway"}]}`,
  'bridge-error':
    '{"type":"bridge-error","requestId":"req_1","code":"UPSTREAM_ERROR","message":"upstream 500","retryable":true,"started":true,"retryAfterMs":1000,"gatewayCode":"UPSTREAM_STREAM_ERROR"}',
  'bridge-forward':
    '{"type":"bridge-forward","requestId":"req_789","targetChannel":"local-llama","payload":{"model":"llama3","messages":[{"role":"user","content":"Hello"}],"x_extra":1},"stream":true,"deadlineMs":60000,"hops":["gw_abc123"],"sessionId":"s1","kind":"chat"}',
  'bridge-response':
    '{"type":"bridge-response","requestId":"req_789","payload":{"model":"llama3","choices":[{"message":{"role":"assistant","content":"Hi there!"}}]}}',
  'bridge-stream':
    '{"type":"bridge-stream","requestId":"req_789","chunk":{"id":"c1","object":"chat.completion.chunk","created":1,"model":"llama3","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}}',
  'bridge-stream-end': '{"type":"bridge-stream-end","requestId":"req_789","usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}',
  'bridge-cancel': '{"type":"bridge-cancel","requestId":"req_789"}',
  'bridge-stream-pause': '{"type":"bridge-stream-pause","requestId":"req_789"}',
  'bridge-stream-resume': '{"type":"bridge-stream-resume","requestId":"req_789"}',
  'bridge-ping': '{"type":"bridge-ping","ts":1700000000000,"nonce":"Qm9vdHN0cmFwIG5vbmNl"}',
  'bridge-pong': '{"type":"bridge-pong","ts":1700000000000,"nonce":"Qm9vdHN0cmFwIG5vbmNl"}',
  'bridge-load':
    '{"type":"bridge-load","channels":{"local-llama":{"inflight":2,"queued":0,"maxConcurrent":64,"latencyMsEwma":812.5,"healthy":true}},"inflight":3}',
  'bridge-channels': `{"type":"bridge-channels","sharedChannels":[${ch}],"sharedAgents":[]}`,
  'bridge-session-transfer':
    '{"type":"bridge-session-transfer","transferId":"tr_1","session":{"id":"s1","owner":"gw_abc123","record":{"model":"llama3"},"history":[{"role":"user","content":"hi"}],"affinity":null}}',
  'bridge-session-transfer-ok': '{"type":"bridge-session-transfer-ok","transferId":"tr_1","sessionId":"s1"}',
  'bridge-rpc': '{"type":"bridge-rpc","requestId":"rpc_1","method":"session.start","params":{"sessionId":"s1","taskPrompt":"hi"},"hops":["gw_abc123"]}',
  'bridge-rpc-event': '{"type":"bridge-rpc-event","requestId":"rpc_1","method":"session.update","params":{"sessionId":"s1","seq":1,"type":"delta","text":"h"}}',
  'bridge-rpc-result': '{"type":"bridge-rpc-result","requestId":"rpc_1","result":{"success":true,"status":"completed"}}',
};

function optsFor(type: BridgeFrameType): ParseOptions {
  return type === 'bridge-hello' ? PRE : POST;
}

function err(raw: string | Uint8Array, opts: ParseOptions = POST) {
  const r = parseFrame(raw, opts);
  if (r.ok) throw new Error(`expected a parse error for ${String(raw).slice(0, 80)}`);
  return r.error;
}

describe('parseFrame: every frame type', () => {
  it('has a fixture for every type', () => {
    expect(Object.keys(VALID).sort()).toEqual([...BRIDGE_FRAME_TYPES].sort());
  });

  for (const type of BRIDGE_FRAME_TYPES) {
    it(`parses a valid ${type} with every field`, () => {
      const r = parseFrame(VALID[type], optsFor(type));
      expect(r).toEqual({ ok: true, frame: JSON.parse(VALID[type]) });
    });

    it(`round-trips ${type} through encodeFrame`, () => {
      const first = parseFrame(VALID[type], optsFor(type));
      if (!first.ok) throw new Error(first.error.message);
      const again = parseFrame(encodeFrame(first.frame), optsFor(type));
      expect(again).toEqual(first);
    });

    it(`rejects ${type} whose first field has the wrong type, naming the field`, () => {
      const obj = JSON.parse(VALID[type]) as Record<string, unknown>;
      const field = Object.keys(obj)[1] as string;
      obj[field] = typeof obj[field] === 'string' ? 42 : 'wrong';
      const e = err(JSON.stringify(obj), optsFor(type));
      expect(e.code).toBe(type === 'bridge-hello' ? 'BAD_HELLO' : 'BAD_FRAME');
      expect(e.message).toMatch(new RegExp(`^${type}\\.${field}: must be an? `));
    });
  }

  it('accepts the seed minimum: hello without the extension fields, forward without options', () => {
    const hello = parseFrame(`{"type":"bridge-hello","gatewayId":"gw_a","gatewayName":"A","version":"1.0","token":"t","capabilities":${caps}}`, PRE);
    expect(hello.ok && hello.frame).toEqual({
      type: 'bridge-hello',
      gatewayId: 'gw_a',
      gatewayName: 'A',
      version: '1.0',
      token: 't',
      capabilities: JSON.parse(caps),
    });
    const fwd = parseFrame('{"type":"bridge-forward","requestId":"r","targetChannel":"c","payload":{}}', POST);
    expect(fwd.ok && fwd.frame).toEqual({ type: 'bridge-forward', requestId: 'r', targetChannel: 'c', payload: {} });
    // absent optional fields are absent, not present as undefined (toEqual would not tell them apart)
    expect(fwd.ok && Object.keys(fwd.frame)).toEqual(['type', 'requestId', 'targetChannel', 'payload']);
    const full = parseFrame(VALID['bridge-forward'].replace(/}$/, ',"traceparent":"bad","originRequestId":"o-1"}'), POST);
    expect(full.ok && Object.keys(full.frame).sort()).toEqual(
      ['deadlineMs', 'hops', 'kind', 'originRequestId', 'payload', 'requestId', 'sessionId', 'stream', 'targetChannel', 'type'].sort(),
    );
  });

  it('drops unknown optional fields but passes opaque bodies through untouched', () => {
    const r = parseFrame('{"type":"bridge-forward","requestId":"r","targetChannel":"c","payload":{"model":"m","zz":[1]},"future":true}', POST);
    expect(r.ok && r.frame).toEqual({ type: 'bridge-forward', requestId: 'r', targetChannel: 'c', payload: { model: 'm', zz: [1] } });
    const h = parseFrame(
      `{"type":"bridge-hello-ok","gatewayId":"g","gatewayName":"G","sharedChannels":[{"name":"a","provider":"p","models":[],"extra":1}],"version":"1.0","capabilities":${caps},"policy":{"maxFrameBytes":1,"heartbeatIntervalMs":1,"x":2}}`,
      PRE_INIT,
    );
    expect(h.ok && h.frame.type === 'bridge-hello-ok' && h.frame.sharedChannels).toEqual([{ name: 'a', provider: 'p', models: [] }]);
    expect(h.ok && h.frame.type === 'bridge-hello-ok' && h.frame.policy).toEqual({ maxFrameBytes: 1, heartbeatIntervalMs: 1 });
  });
});

describe('bridge-hello-ok dialNonces', () => {
  const helloOk = (dialNonces: string) =>
    parseFrame(
      `{"type":"bridge-hello-ok","gatewayId":"g","gatewayName":"G","sharedChannels":[],"version":"1.1","capabilities":${caps},"policy":{"maxFrameBytes":1,"heartbeatIntervalMs":1},"dialNonces":${dialNonces}}`,
      PRE_INIT,
    );
  it('are read as a list of strings; absent stays absent', () => {
    const h = helloOk('["n_a","n_b"]');
    expect(h.ok && h.frame.type === 'bridge-hello-ok' && h.frame.dialNonces).toEqual(['n_a', 'n_b']);
    const none = parseFrame(VALID['bridge-hello-ok'], PRE_INIT);
    expect(none.ok && none.frame.type === 'bridge-hello-ok' && 'dialNonces' in none.frame).toBe(false);
  });
  it('refuse a non-list, a non-string, an over-long nonce and more than MAX_DIAL_NONCES, naming the field', () => {
    const many = JSON.stringify(Array.from({ length: MAX_DIAL_NONCES + 1 }, (_, i) => `n${i}`));
    for (const [v, why] of [
      ['"n_a"', 'dialNonces: must be an array'],
      ['[1]', 'dialNonces[0]'],
      [JSON.stringify(['x'.repeat(257)]), 'dialNonces[0]'],
      [many, `dialNonces: at most ${MAX_DIAL_NONCES} items`],
    ] as const) {
      const r = helloOk(v);
      expect(r.ok, v).toBe(false);
      expect(!r.ok && r.error.message).toContain(why);
    }
  });
});

describe('SharedChannel.pricing', () => {
  const hello = (pricing: string) =>
    parseFrame(
      `{"type":"bridge-hello-ok","gatewayId":"g","gatewayName":"G","sharedChannels":[{"name":"a","provider":"p","models":["m"],"pricing":${pricing}}],"version":"1.0","capabilities":${caps},"policy":{"maxFrameBytes":1,"heartbeatIntervalMs":1}}`,
      PRE_INIT,
    );
  it('is read with its numbers; cachedInput is optional; other keys are dropped', () => {
    const h = hello('{"input":2.5,"output":10,"cachedInput":1,"currency":"EUR"}');
    expect(h.ok && h.frame.type === 'bridge-hello-ok' && h.frame.sharedChannels[0]!.pricing).toEqual({ input: 2.5, output: 10, cachedInput: 1 });
    const g = hello('{"input":0,"output":0}');
    expect(g.ok && g.frame.type === 'bridge-hello-ok' && g.frame.sharedChannels[0]!.pricing).toEqual({ input: 0, output: 0 });
  });
  it('refuses negative, missing or non-numeric prices, naming the field', () => {
    for (const [p, why] of [
      ['{"input":-1,"output":1}', 'sharedChannels[0].pricing.input: must be ≥ 0'],
      ['{"input":1}', 'sharedChannels[0].pricing.output: required number'],
      ['{"input":1,"output":"2"}', 'sharedChannels[0].pricing.output: must be a finite number'],
      ['[1,2]', 'sharedChannels[0].pricing'],
    ] as const) {
      const r = hello(p);
      expect(r.ok, p).toBe(false);
      expect(!r.ok && r.error.message, p).toContain(why);
    }
  });
});

describe('parseFrame: field validation', () => {
  const bad: Array<[string, string, ParseOptions?]> = [
    ['{"type":"bridge-forward","requestId":"r","payload":{}}', 'bridge-forward.targetChannel: required string'],
    ['{"type":"bridge-forward","requestId":"r","targetChannel":7,"payload":{}}', 'bridge-forward.targetChannel: must be a string'],
    ['{"type":"bridge-forward","requestId":"r","targetChannel":"c"}', 'bridge-forward.payload: required object'],
    ['{"type":"bridge-forward","requestId":"r","targetChannel":"c","payload":[]}', 'bridge-forward.payload: must be an object'],
    ['{"type":"bridge-forward","requestId":"r","targetChannel":"c","payload":{},"stream":"yes"}', 'bridge-forward.stream: must be a boolean'],
    ['{"type":"bridge-forward","requestId":"r","targetChannel":"c","payload":{},"deadlineMs":-1}', 'bridge-forward.deadlineMs: must be a non-negative integer'],
    ['{"type":"bridge-forward","requestId":"r","targetChannel":"c","payload":{},"hops":["ok","bad id"]}', 'bridge-forward.hops[1]: must match'],
    ['{"type":"bridge-forward","requestId":"r","targetChannel":"c","payload":{},"kind":"images"}', 'bridge-forward.kind: must be "chat" or "embeddings"'],
    ['{"type":"bridge-forward","requestId":"","targetChannel":"c","payload":{}}', 'bridge-forward.requestId: must be 1..128 characters'],
    [`{"type":"bridge-forward","requestId":"${'x'.repeat(129)}","targetChannel":"c","payload":{}}`, 'bridge-forward.requestId: must be 1..128 characters'],
    ['{"type":"bridge-response","requestId":"r"}', 'bridge-response.payload: required object'],
    ['{"type":"bridge-stream","requestId":"r","chunk":"data: {}"}', 'bridge-stream.chunk: must be an object'],
    ['{"type":"bridge-stream-end"}', 'bridge-stream-end.requestId: required string'],
    ['{"type":"bridge-cancel","requestId":5}', 'bridge-cancel.requestId: must be a string'],
    ['{"type":"bridge-ping"}', 'bridge-ping.ts: required number'],
    ['{"type":"bridge-pong","ts":"now"}', 'bridge-pong.ts: must be a finite number'],
    ['{"type":"bridge-ping","ts":1,"nonce":7}', 'bridge-ping.nonce: must be a string'],
    ['{"type":"bridge-ping","ts":1,"nonce":""}', 'bridge-ping.nonce: must be 1..64 characters'],
    [`{"type":"bridge-pong","ts":1,"nonce":"${'n'.repeat(65)}"}`, 'bridge-pong.nonce: must be 1..64 characters'],
    ['{"type":"bridge-pong","ts":1,"nonce":null}', 'bridge-pong.nonce: must be a string'],
    ['{"type":"bridge-error","code":"OVERLOADED","message":"m"}', 'bridge-error.retryable: required boolean'],
    ['{"type":"bridge-error","message":"m","retryable":false}', 'bridge-error.code: required string'],
    ['{"type":"bridge-error","code":"INTERNAL","retryable":false}', 'bridge-error.message: required string'],
    [
      '{"type":"bridge-load","channels":{"a":{"inflight":1,"queued":0,"maxConcurrent":1,"latencyMsEwma":1}},"inflight":1}',
      'bridge-load.channels.a.healthy: required boolean',
    ],
    [
      '{"type":"bridge-load","channels":{"a":{"inflight":1.5,"queued":0,"maxConcurrent":1,"latencyMsEwma":1,"healthy":true}},"inflight":1}',
      'bridge-load.channels.a.inflight: must be a non-negative integer',
    ],
    ['{"type":"bridge-load","channels":{},"inflight":null}', 'bridge-load.inflight: must be a non-negative integer'],
    ['{"type":"bridge-load","channels":{"__proto__":{}},"inflight":0}', 'bridge-load.channels key: must match'],
    [
      '{"type":"bridge-channels","sharedChannels":[{"name":"a","provider":"p","models":["m",3]}]}',
      'bridge-channels.sharedChannels[0].models[1]: must be a string',
    ],
    ['{"type":"bridge-channels","sharedChannels":[{"name":"a","provider":"p"}]}', 'bridge-channels.sharedChannels[0].models: required array'],
    [
      '{"type":"bridge-channels","sharedChannels":[],"sharedAgents":[{"id":"a","label":"A","kind":"robot"}]}',
      'bridge-channels.sharedAgents[0].kind: must be "agent" or "gateway"',
    ],
    ['{"type":"bridge-session-transfer","transferId":"t","session":{"owner":"gw_a"}}', 'bridge-session-transfer.session.id: required string'],
    ['{"type":"bridge-session-transfer","transferId":"t","session":{"id":"s"}}', 'bridge-session-transfer.session.owner: required string'],
    ['{"type":"bridge-session-transfer","transferId":"t","session":{"id":"s","owner":"gw_a"},"events":{}}', 'bridge-session-transfer.events: must be an array'],
    [
      '{"type":"bridge-session-transfer","transferId":"t","session":{"id":"s","owner":"gw_a"},"events":[{"seq":2,"event":{}},{"seq":2,"event":{}}]}',
      'bridge-session-transfer.events[1].seq: must be greater than the entry before it',
    ],
    [
      '{"type":"bridge-session-transfer","transferId":"t","session":{"id":"s","owner":"gw_a"},"events":[{"seq":1.5,"event":{}}]}',
      'bridge-session-transfer.events[0].seq: must be a non-negative integer',
    ],
    [
      '{"type":"bridge-session-transfer","transferId":"t","session":{"id":"s","owner":"gw_a"},"events":[{"seq":1,"event":"x"}]}',
      'bridge-session-transfer.events[0].event: must be an object',
    ],
    [
      `{"type":"bridge-session-transfer","transferId":"t","session":{"id":"s","owner":"gw_a"},"events":[${Array.from({ length: 1001 }, (_, i) => `{"seq":${i + 1},"event":{}}`).join(',')}]}`,
      'bridge-session-transfer.events: at most 1000 items',
    ],
    [
      '{"type":"bridge-session-transfer","transferId":"t","session":{"id":"s","owner":"gw_a"},"droppedThroughSeq":-1}',
      'bridge-session-transfer.droppedThroughSeq: must be a non-negative integer',
    ],
    [
      '{"type":"bridge-session-transfer","transferId":"t","session":{"id":"s","owner":"gw_a"},"droppedThroughSeq":"7"}',
      'bridge-session-transfer.droppedThroughSeq: must be a non-negative integer',
    ],
    ['{"type":"bridge-session-transfer-ok","transferId":"t"}', 'bridge-session-transfer-ok.sessionId: required string'],
    ['{"type":"bridge-rpc","requestId":"r","method":"session.start"}', 'bridge-rpc.params: required object'],
    ['{"type":"bridge-rpc","requestId":"r","params":{}}', 'bridge-rpc.method: required string'],
    ['{"type":"bridge-rpc-event","requestId":"r","method":"session.update","params":[1]}', 'bridge-rpc-event.params: must be an object'],
    ['{"type":"bridge-rpc-result","requestId":"r"}', 'bridge-rpc-result: exactly one of result, error'],
    ['{"type":"bridge-rpc-result","requestId":"r","result":1,"error":{"code":1,"message":"m"}}', 'bridge-rpc-result: exactly one of result, error'],
    ['{"type":"bridge-rpc-result","requestId":"r","error":{"code":"x","message":"m"}}', 'bridge-rpc-result.error.code: required integer'],
    ['{"type":"bridge-rpc-result","requestId":"r","error":{"code":-32002}}', 'bridge-rpc-result.error.message: required string'],
  ];
  it('a ping or pong without a nonce (a peer before 1.2) parses without one', () => {
    expect(parseFrame('{"type":"bridge-ping","ts":5}', POST)).toEqual({ ok: true, frame: { type: 'bridge-ping', ts: 5 } });
    expect(parseFrame('{"type":"bridge-pong","ts":5}', POST)).toEqual({ ok: true, frame: { type: 'bridge-pong', ts: 5 } });
  });

  for (const [raw, message] of bad) {
    it(`after auth: ${message}`, () => {
      const e = err(raw);
      expect(e.code).toBe('BAD_FRAME');
      expect(e.message.startsWith(message)).toBe(true);
      expect(e.closeCode).toBeUndefined();
    });
  }

  it('carries a readable requestId into the error, and only a valid one', () => {
    expect(err('{"type":"bridge-forward","requestId":"req_9","payload":{}}').requestId).toBe('req_9');
    expect(err('{"type":"bridge-nope","requestId":"req_9"}').requestId).toBe('req_9');
    expect(err(`{"type":"bridge-forward","requestId":"${'x'.repeat(129)}"}`).requestId).toBeUndefined();
    expect(err('{"type":"bridge-forward","requestId":9}').requestId).toBeUndefined();
  });

  it('maps an unknown bridge-error code to INTERNAL and ignores an unknown gatewayCode', () => {
    const r = parseFrame('{"type":"bridge-error","code":"FROM_THE_FUTURE","message":"m","retryable":true,"gatewayCode":"NOPE"}', POST);
    expect(r.ok && r.frame).toEqual({ type: 'bridge-error', code: 'INTERNAL', message: 'm', retryable: true });
  });

  it('accepts rpc results that are null or errors with data', () => {
    const a = parseFrame('{"type":"bridge-rpc-result","requestId":"r","result":null}', POST);
    expect(a.ok && a.frame).toEqual({ type: 'bridge-rpc-result', requestId: 'r', result: null });
    const b = parseFrame(
      '{"type":"bridge-rpc-result","requestId":"r","error":{"code":-32002,"message":"gone","data":{"code":"SESSION_CONTINUATION_UNAVAILABLE"}}}',
      POST,
    );
    expect(b.ok && b.frame).toEqual({
      type: 'bridge-rpc-result',
      requestId: 'r',
      error: { code: -32002, message: 'gone', data: { code: 'SESSION_CONTINUATION_UNAVAILABLE' } },
    });
  });

  it('parses an embeddings forward', () => {
    const r = parseFrame('{"type":"bridge-forward","requestId":"r","targetChannel":"c","payload":{"model":"e","input":"x"},"kind":"embeddings"}', POST);
    expect(r.ok && r.frame.type === 'bridge-forward' && r.frame.kind).toBe('embeddings');
  });
});

describe('parseFrame: size, binary, garbage', () => {
  it('rejects a frame over maxBytes with PAYLOAD_TOO_LARGE / 4413, before and after auth', () => {
    const raw = JSON.stringify({ type: 'bridge-ping', ts: 1, pad: 'x'.repeat(200) });
    for (const authenticated of [true, false]) {
      expect(err(raw, { maxBytes: 100, authenticated })).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', closeCode: 4413 });
    }
    expect(err(Buffer.from(raw), { maxBytes: 100, authenticated: true })).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', closeCode: 4413 });
  });

  it('counts UTF-8 bytes, not characters', () => {
    const raw = `{"type":"bridge-ping","ts":1,"pad":"${'é'.repeat(40)}"}`;
    const bytes = Buffer.byteLength(raw);
    expect(raw.length).toBeLessThan(bytes - 30);
    expect(err(raw, { maxBytes: bytes - 1, authenticated: true }).code).toBe('PAYLOAD_TOO_LARGE');
    expect(parseFrame(raw, { maxBytes: bytes, authenticated: true }).ok).toBe(true);
    expect(err(raw, { maxBytes: raw.length, authenticated: true }).code).toBe('PAYLOAD_TOO_LARGE');
  });

  it('rejects binary frames with BAD_FRAME / 4400 even after auth', () => {
    expect(err(Buffer.from(VALID['bridge-ping']), { ...POST, isBinary: true })).toMatchObject({ code: 'BAD_FRAME', closeCode: 4400 });
    expect(err(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), POST)).toMatchObject({ code: 'BAD_FRAME', closeCode: 4400, message: 'frame is not UTF-8 text' });
  });

  it('refuses a frame nested deeper than MAX_FRAME_DEPTH (BAD_FRAME, its requestId and type kept), takes one at the limit', () => {
    const nest = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;
    // the frame object and `chunk` are two levels: the chunk's member holds the rest
    const frame = (levels: number) => `{"type":"bridge-stream","requestId":"r-deep","chunk":{"x":${nest(levels)}}}`;
    expect(parseFrame(frame(MAX_FRAME_DEPTH - 2), POST).ok).toBe(true);
    expect(err(frame(MAX_FRAME_DEPTH - 1), POST)).toEqual({
      code: 'BAD_FRAME',
      message: `frame nests deeper than ${MAX_FRAME_DEPTH} levels`,
      requestId: 'r-deep',
      type: 'bridge-stream',
    });
    expect(err(frame(100_000), POST).code).toBe('BAD_FRAME');
    expect(err(`{"type":"bridge-hello","x":${nest(5_000)}}`, PRE)).toMatchObject({ code: 'BAD_FRAME', closeCode: 4400 });
  });

  it('parses a text frame delivered as a UTF-8 Buffer', () => {
    expect(parseFrame(Buffer.from(VALID['bridge-cancel']), POST)).toEqual({ ok: true, frame: JSON.parse(VALID['bridge-cancel']) });
  });

  for (const raw of ['not json', '', '{"type":', '[]', '1', 'null', '"bridge-ping"', '{}', '{"type":7}']) {
    it(`BAD_FRAME for ${JSON.stringify(raw)}: closes before auth only`, () => {
      expect(err(raw, PRE)).toMatchObject({ code: 'BAD_FRAME', closeCode: 4400 });
      const post = err(raw, POST);
      expect(post.code).toBe('BAD_FRAME');
      expect(post.closeCode).toBeUndefined();
    });
  }
});

describe('parseFrame: handshake gate', () => {
  it('answers an unknown type after auth with UNKNOWN_TYPE and no close', () => {
    expect(err('{"type":"bridge-teleport","requestId":"r1"}')).toEqual({
      code: 'UNKNOWN_TYPE',
      message: 'unknown frame type "bridge-teleport"',
      requestId: 'r1',
    });
  });

  it('refuses anything but bridge-hello before auth with BAD_HELLO / 4400', () => {
    for (const raw of ['{"type":"bridge-teleport"}', VALID['bridge-forward'], VALID['bridge-ping'], VALID['bridge-hello-ok']]) {
      expect(err(raw, PRE)).toMatchObject({ code: 'BAD_HELLO', closeCode: 4400 });
    }
  });

  it('refuses an invalid hello with BAD_HELLO naming the field, never echoing the token', () => {
    const raw = VALID['bridge-hello'].replace('"loadBalance":false', '"loadBalance":"no"');
    const e = err(raw, PRE);
    expect(e).toMatchObject({ code: 'BAD_HELLO', closeCode: 4400, message: 'bridge-hello.capabilities.loadBalance: must be a boolean' });
    expect(JSON.stringify(e)).not.toContain('s3cret-token');
    expect(err(VALID['bridge-hello'].replace('gw_abc123', 'gw abc'), PRE).message).toMatch(/^bridge-hello\.gatewayId: must match/);
    expect(err(VALID['bridge-hello'].replace('"token":"s3cret-token",', ''), PRE).message).toBe('bridge-hello.token: required string');
  });

  it("takes the initiator's optional maxFrameBytes in bridge-hello (absent: an older peer), refusing one that is not a count", () => {
    const withLimit = VALID['bridge-hello'].replace('"nonce":"n-1"', '"nonce":"n-1","maxFrameBytes":8192');
    const h = parseFrame(withLimit, PRE);
    expect(h.ok && h.frame.type === 'bridge-hello' && h.frame.maxFrameBytes).toBe(8192);
    const old = parseFrame(VALID['bridge-hello'], PRE);
    expect(old.ok && old.frame.type === 'bridge-hello' && 'maxFrameBytes' in old.frame).toBe(false);
    for (const bad of ['-1', '"8192"', '1.5']) {
      expect(err(withLimit.replace('8192', bad), PRE)).toMatchObject({
        code: 'BAD_HELLO',
        message: 'bridge-hello.maxFrameBytes: must be a non-negative integer',
      });
    }
  });

  it('lets the initiator read bridge-hello-ok or bridge-error before auth, and nothing else', () => {
    expect(parseFrame(VALID['bridge-hello-ok'], PRE_INIT).ok).toBe(true);
    expect(parseFrame('{"type":"bridge-error","code":"AUTH_FAILED","message":"bridge token rejected","retryable":false}', PRE_INIT).ok).toBe(true);
    expect(err(VALID['bridge-hello'], PRE_INIT)).toMatchObject({ code: 'BAD_HELLO', closeCode: 4400 });
    expect(err(VALID['bridge-hello-ok'].replace('"policy":', '"policyX":'), PRE_INIT).message).toBe('bridge-hello-ok.policy: required object');
  });
});

describe('negotiateVersion', () => {
  const h = (version: string, minVersion?: string, maxVersion?: string) => ({ version, minVersion, maxVersion });
  it('picks the top of the overlap', () => {
    expect(negotiateVersion(h('1.0'))).toBe('1.0');
    expect(negotiateVersion(h('1.2', '1.0', '1.4'), { min: '1.1', max: '1.3' })).toBe('1.3');
    expect(negotiateVersion(h('1.0', '1.0', '2.0'), { min: '1.5', max: '1.9' })).toBe('1.9');
    expect(negotiateVersion(h('1.10'), { min: '1.2', max: '1.10' })).toBe('1.10');
    expect(negotiateVersion(h('1.0', '0.9', '1.3'), ['0.9', '1.0', '1.1', '2.0'])).toBe('1.1');
  });
  it("this build's list: a 1.0-only peer gets 1.0 (no stream pause), a 1.0–1.1 peer 1.1 (no ping nonce), a newer one 1.2", () => {
    expect(negotiateVersion(h('1.0'))).toBe('1.0');
    expect(negotiateVersion(h('1.1', '1.0', '1.1'))).toBe('1.1');
    expect(negotiateVersion(h('1.2', '1.0', '1.2'))).toBe('1.2');
    expect(negotiateVersion(h('1.1', '1.0', '1.4'))).toBe('1.2');
    expect(echoesPingNonce('1.0')).toBe(false);
    expect(echoesPingNonce('1.1')).toBe(false);
    expect(echoesPingNonce('1.2')).toBe(true);
    expect(echoesPingNonce('1.10')).toBe(true);
    expect(echoesPingNonce('2.0')).toBe(true);
    expect(speaksStreamPause('1.0')).toBe(false);
    expect(speaksStreamPause('1.1')).toBe(true);
    expect(speaksStreamPause('1.10')).toBe(true);
    expect(speaksStreamPause('2.0')).toBe(true);
  });
  it('returns null without overlap', () => {
    expect(negotiateVersion(h('2.0'))).toBeNull();
    expect(negotiateVersion(h('1.3'))).toBeNull();
    expect(negotiateVersion(h('0.9', '0.1', '0.9'))).toBeNull();
    expect(negotiateVersion(h('1.5', '1.4', '1.6'), ['1.0', '2.0'])).toBeNull();
    expect(negotiateVersion(h('2.0'), { min: '1.0', max: '1.5' })).toBeNull();
    expect(negotiateVersion(h('1.0', '1.0', '1.1'), { min: '1.2', max: '1.4' })).toBeNull();
  });
  it('returns null for malformed versions or an inverted range', () => {
    for (const bad of [h('1'), h('v1.0'), h('1.0.0'), h('1.0', 'x'), h('1.0', undefined, '1.a'), h(''), h('1.0', '1.2', '1.0')]) {
      expect(negotiateVersion(bad)).toBeNull();
    }
    expect(negotiateVersion(h('1.0'), { min: 'one', max: '1.0' })).toBeNull();
  });
});

describe('hops', () => {
  it('detects its own id and overly long paths', () => {
    expect(hasLoop(undefined, 'gw_a')).toBe(false);
    expect(hasLoop([], 'gw_a')).toBe(false);
    expect(hasLoop(['gw_b', 'gw_c'], 'gw_a')).toBe(false);
    expect(hasLoop(['gw_b', 'gw_a'], 'gw_a')).toBe(true);
    expect(
      hasLoop(
        Array.from({ length: MAX_HOPS }, (_, i) => `gw_${i}`),
        'gw_a',
      ),
    ).toBe(true);
    expect(
      hasLoop(
        Array.from({ length: MAX_HOPS - 1 }, (_, i) => `gw_${i}`),
        'gw_a',
      ),
    ).toBe(false);
  });
  it('appends this gateway for the next leg without mutating the input', () => {
    const hops = ['gw_b'];
    expect(withHop(hops, 'gw_a')).toEqual(['gw_b', 'gw_a']);
    expect(hops).toEqual(['gw_b']);
    expect(withHop(undefined, 'gw_a')).toEqual(['gw_a']);
  });
});

describe('tables and constants', () => {
  it('maps handshake codes to close codes (through the error catalogue) and stops reconnects only where nothing will change', () => {
    expect(bridgeErrorSpec('AUTH_FAILED')).toMatchObject({ retryable: false, closeCode: 4401 });
    expect(bridgeErrorSpec('VERSION_UNSUPPORTED')).toMatchObject({ retryable: false, closeCode: 4505 });
    expect(bridgeErrorSpec('MAX_PEERS')).toMatchObject({ retryable: true, closeCode: 4429 });
    expect(bridgeErrorSpec('DUPLICATE_PEER')).toMatchObject({ retryable: true, closeCode: 4409 });
    expect(bridgeErrorSpec('SELF_CONNECTION')).toMatchObject({ retryable: false, closeCode: 4403 });
    expect(bridgeErrorSpec('HANDSHAKE_TIMEOUT')).toMatchObject({ retryable: true, closeCode: 4408 });
    expect(bridgeErrorSpec('CHANNEL_NOT_SHARED')).toEqual({ retryable: false, gatewayCode: 'CHANNEL_NOT_SHARED' });
    expect([...RETRY_FORBIDDEN_CLOSE_CODES].sort()).toEqual([4401, 4403, 4505]);
    expect(isRetryForbiddenClose(CLOSE_CODES.HEARTBEAT_TIMEOUT)).toBe(false);
    expect(isRetryForbiddenClose(CLOSE_CODES.AUTH_FAILED)).toBe(true);
  });
  it('has the documented default limits', () => {
    expect(BRIDGE_DEFAULT_LIMITS).toEqual({
      handshakeTimeoutMs: 10_000,
      maxFrameBytes: 16_777_216,
      preAuthFrameBytes: 65_536,
      maxInflightPerPeer: 256,
      heartbeatIntervalMs: 5_000,
      deadPeerMisses: 3,
    });
  });
  it('builds bridge-error frames with the default retryable, which parse back', () => {
    const f = bridgeErrorFrame('OVERLOADED', 'busy', { requestId: 'r', retryAfterMs: 500 });
    expect(f).toEqual({ type: 'bridge-error', code: 'OVERLOADED', message: 'busy', retryable: true, requestId: 'r', retryAfterMs: 500 });
    expect(parseFrame(encodeFrame(f), POST)).toEqual({ ok: true, frame: f });
  });
});

describe('bridge-session-transfer: the update log', () => {
  it('carries the entries as sent, and a frame without them (an older sender) has none', () => {
    const events = [
      { seq: 3, event: { sessionId: 's', seq: 3, type: 'delta' } },
      { seq: 7, event: { sessionId: 's', seq: 7, type: 'done' } },
    ];
    const withLog = parseFrame(JSON.stringify({ type: 'bridge-session-transfer', transferId: 't', session: { id: 's', owner: 'gw_a' }, events }), {
      maxBytes: 1 << 20,
      authenticated: true,
    });
    expect(withLog.ok && withLog.frame.type === 'bridge-session-transfer' && withLog.frame.events).toEqual(events);
    const without = parseFrame('{"type":"bridge-session-transfer","transferId":"t","session":{"id":"s","owner":"gw_a"}}', {
      maxBytes: 1 << 20,
      authenticated: true,
    });
    expect(without.ok && without.frame.type === 'bridge-session-transfer' && 'events' in without.frame).toBe(false);
    expect(without.ok && without.frame.type === 'bridge-session-transfer' && 'droppedThroughSeq' in without.frame).toBe(false);
  });

  it('carries the highest seq the log does not carry (droppedThroughSeq)', () => {
    const f = parseFrame('{"type":"bridge-session-transfer","transferId":"t","session":{"id":"s","owner":"gw_a"},"droppedThroughSeq":41}', {
      maxBytes: 1 << 20,
      authenticated: true,
    });
    expect(f.ok && f.frame.type === 'bridge-session-transfer' && f.frame.droppedThroughSeq).toBe(41);
  });
});

describe('splitRelayFrame: a relayed answer or chunk, split without parsing', () => {
  const payload = '{"id":"c1","choices":[{"index":0,"message":{"role":"assistant","content":"a \\"b\\" }"}}]}';

  it('splits the layouts a serving gateway sends (each frame parses to the same id and body)', () => {
    const text = `{"type":"bridge-response","requestId":"fwd_1a_2","payload":${payload}}`;
    expect(splitRelayFrame(text)).toEqual({ type: 'bridge-response', requestId: 'fwd_1a_2', body: payload });
    const parsed = parseFrame(text, { maxBytes: 1 << 20, authenticated: true });
    expect(parsed.ok && parsed.frame.type === 'bridge-response' && [parsed.frame.requestId, parsed.frame.payload]).toEqual(['fwd_1a_2', JSON.parse(payload)]);
    // encodeFrame writes the same layout, so answers a peer built (not relayed) split too
    expect(splitRelayFrame(encodeFrame({ type: 'bridge-response', requestId: 'r', payload: JSON.parse(payload) }))).toEqual({
      type: 'bridge-response',
      requestId: 'r',
      body: payload,
    });
    const chunk = `{"type":"bridge-stream","requestId":"fwd_3","chunk":${payload}}`;
    expect(splitRelayFrame(chunk)).toEqual({ type: 'bridge-stream', requestId: 'fwd_3', body: payload });
    const parsedChunk = parseFrame(chunk, { maxBytes: 1 << 20, authenticated: true });
    expect(parsedChunk.ok && parsedChunk.frame.type === 'bridge-stream' && [parsedChunk.frame.requestId, parsedChunk.frame.chunk]).toEqual([
      'fwd_3',
      JSON.parse(payload),
    ]);
  });

  it.each([
    ['another frame type', `{"type":"bridge-stream-end","requestId":"r","usage":${payload}}`],
    ["a body under the other frame's key", `{"type":"bridge-stream","requestId":"r","payload":${payload}}`],
    ['another key order', `{"requestId":"r","type":"bridge-response","payload":${payload}}`],
    ['whitespace in the envelope', `{"type": "bridge-response","requestId":"r","payload":${payload}}`],
    ['an escaped id', `{"type":"bridge-stream","requestId":"r\\u0041","chunk":${payload}}`],
    ['an empty id', `{"type":"bridge-response","requestId":"","payload":${payload}}`],
    ['an over-long id', `{"type":"bridge-stream","requestId":"${'x'.repeat(300)}","chunk":${payload}}`],
    ['a field after the id', `{"type":"bridge-response","requestId":"r","extra":1,"payload":${payload}}`],
    ['trailing text', `{"type":"bridge-stream","requestId":"r","chunk":${payload}} `],
  ])('leaves %s to the parser', (_what, text) => {
    expect(splitRelayFrame(text)).toBeUndefined();
  });
});
