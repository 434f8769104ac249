/**
 * Regression: a Host or Origin refusal on /v1/messages or /v1beta/* came back in OpenAI's error shape, because
 * the guard runs before the API surface is chosen; an Anthropic or Google client could not read it (the
 * Anthropic SDK's error had no `type`, a Gemini client no `status`). The refusal is now in the caller's
 * format, still before any body is read. The official SDKs where they can set the header (Origin); raw
 * node:http for Host, which fetch does not let a caller set.
 */
import { request } from 'node:http';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { call, cleanupDirs, startGw } from '../helpers/env.js';

const EVIL = 'http://evil.example';
let gw: Gateway;

beforeAll(async () => {
  gw = await startGw({ channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }] });
});
afterAll(async () => {
  await gw?.close();
  cleanupDirs();
});

/** POST with this exact Host header; the body is sent, never read by the gateway */
function withHost(path: string, host: string, body: unknown): Promise<{ status: number; json: any; requestId: unknown }> {
  return new Promise((resolve, reject) => {
    const text = JSON.stringify(body);
    const req = request(
      {
        host: '127.0.0.1',
        port: gw.port,
        method: 'POST',
        path,
        headers: { host, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) },
        agent: false,
      },
      (res) => {
        let out = '';
        res.on('data', (c) => (out += String(c)));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(out), requestId: res.headers['x-request-id'] }));
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

const message = { model: 'mock-1', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] };
const gemini = { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] };

describe('Host and Origin refusals are written in the API’s own error format', () => {
  it('/v1/messages: Anthropic’s shape, permission_error (the SDK raises PermissionDeniedError with its type)', async () => {
    const host = await withHost('/v1/messages', 'evil.example', message);
    expect(host.status).toBe(403);
    expect(host.json).toMatchObject({ type: 'error', error: { type: 'permission_error', code: 'host_not_allowed' } });
    expect(host.json.request_id).toBe(host.requestId);

    const client = new Anthropic({ apiKey: 'sk-ant-x', baseURL: gw.url, maxRetries: 0, defaultHeaders: { origin: EVIL } });
    const err = await client.messages.create(message as Anthropic.MessageCreateParamsNonStreaming).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.PermissionDeniedError);
    expect((err as InstanceType<typeof Anthropic.PermissionDeniedError>).error).toMatchObject({
      type: 'error',
      error: { type: 'permission_error', code: 'origin_not_allowed' },
    });
  });

  it('/v1beta/*: Google’s shape, 403 PERMISSION_DENIED with the code as the ErrorInfo reason; OpenAI surfaces keep theirs', async () => {
    const host = await withHost('/v1beta/models/mock-1:generateContent', 'evil.example', gemini);
    expect(host.status).toBe(403);
    expect(host.json.error).toMatchObject({ code: 403, status: 'PERMISSION_DENIED', details: [expect.objectContaining({ reason: 'HOST_NOT_ALLOWED' })] });
    const origin = await call(gw, '/v1beta/models/mock-1:generateContent', { body: gemini, headers: { origin: EVIL } });
    expect(origin.status).toBe(403);
    expect(origin.json.error).toMatchObject({ code: 403, status: 'PERMISSION_DENIED', details: [expect.objectContaining({ reason: 'ORIGIN_NOT_ALLOWED' })] });
    // a preflight from the refused origin too
    const pre = await call(gw, '/v1beta/models/mock-1:generateContent', {
      method: 'OPTIONS',
      headers: { origin: EVIL, 'access-control-request-method': 'POST' },
    });
    expect(pre.status).toBe(403);
    expect(pre.json.error.status).toBe('PERMISSION_DENIED');
    // the OpenAI surfaces beside them keep OpenAI's shape
    const client = new OpenAI({ apiKey: 'sk-x', baseURL: `${gw.url}/v1`, maxRetries: 0, defaultHeaders: { origin: EVIL } });
    const r = await client.responses.create({ model: 'mock-1', input: 'hi' }).catch((e: unknown) => e);
    expect(r).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect((r as InstanceType<typeof OpenAI.PermissionDeniedError>).code).toBe('origin_not_allowed');
    const chat = await withHost('/v1/chat/completions', 'evil.example', { model: 'mock-1', messages: [{ role: 'user', content: 'hi' }] });
    expect(chat.json.error).toMatchObject({ type: 'permission_error', code: 'host_not_allowed' });
  });
});
