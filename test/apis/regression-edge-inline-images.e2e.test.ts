/**
 * Regression: an inline image on /v1/messages (`source: {type: "base64", media_type, data}`) or /v1beta
 * (`inlineData: {mimeType, data}`) became a `data:` URL from the client's strings unchecked. Data that is not
 * base64 went upstream as is (the upstream's 400 came back as upstream_client_error), and a media type with a
 * `;` or `,` (`image/png;x`) made a URL the anthropic channel then refused under the chat form's field name
 * (`messages[0].content[0].image_url`), which the client never sent. Both are now 400 invalid_request naming the
 * client's own field, before anything is routed. A valid image still reaches the upstream as its data: URL,
 * and Gemini's URL-safe base64 (proto JSON bytes) arrives as standard base64.
 */
import Anthropic from '@anthropic-ai/sdk';
import { beforeAll, describe, expect, it } from 'vitest';
import { call, channelOf, startProcess, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';

let gw: GatewayProcess;
let up: OpenAiFake;
const started = stopAfterAll();

beforeAll(async () => {
  up = started.track(await startOpenAiUpstream({ reply: 'a red dot' }));
  gw = started.trackGateway(await startProcess({ channels: [channelOf(up, 'oai', ['m'])] }));
}, 30_000);

const PNG = 'iVBORw0KGgo=';
/** the image_url the upstream got in the last request's first user message */
const lastImageUrl = (): string => {
  const body = up.requests.at(-1)!.body as { messages: Array<{ content: unknown }> };
  const parts = body.messages.find((m) => Array.isArray(m.content))!.content as Array<{ type: string; image_url?: { url: string } }>;
  return parts.find((p) => p.type === 'image_url')!.image_url!.url;
};

describe('inline images are checked at the edge', () => {
  it('/v1/messages: media_type and data', async () => {
    const sdk = new Anthropic({ apiKey: 'unused', baseURL: gw.url, maxRetries: 0 });
    const ask = (media_type: string, data: string) =>
      sdk.messages
        .create({
          model: 'm',
          max_tokens: 16,
          messages: [
            {
              role: 'user',
              content: [
                { type: 'image', source: { type: 'base64', media_type: media_type as 'image/png', data } },
                { type: 'text', text: 'what is it?' },
              ],
            },
          ],
        })
        .then(
          () => undefined,
          (e: unknown) => e as InstanceType<typeof Anthropic.APIError>,
        );
    const before = up.count();
    for (const [media, data, field] of [
      ['image/png', 'not base64!', 'data'],
      ['image/png', '', 'data'],
      ['image/png;x', PNG, 'media_type'],
      ['image/png,', PNG, 'media_type'],
    ] as const) {
      const err = await ask(media, data);
      expect(err, `${media} ${data}`).toBeInstanceOf(Anthropic.BadRequestError);
      expect(err!.message).toContain(`messages.0.content.0.source.${field}: `);
    }
    expect(up.count()).toBe(before);
    expect(await ask('image/png', PNG)).toBeUndefined();
    expect(lastImageUrl()).toBe(`data:image/png;base64,${PNG}`);
  });

  it('/v1beta: inlineData mimeType and data; URL-safe base64 arrives as standard', async () => {
    const gen = (inlineData: Record<string, unknown>) =>
      call(gw, '/v1beta/models/m:generateContent', { body: { contents: [{ role: 'user', parts: [{ inlineData }, { text: 'what is it?' }] }] } });
    const before = up.count();
    for (const [inline, param] of [
      [{ mimeType: 'image/png', data: 'a b' }, 'contents[0].parts[0].inlineData.data'],
      [{ mimeType: 'image/png;x', data: PNG }, 'contents[0].parts[0].inlineData.mimeType'],
      [{ mimeType: 5, data: PNG }, 'contents[0].parts[0].inlineData.mimeType'],
    ] as const) {
      const r = await gen(inline);
      expect(r.status, r.text).toBe(400);
      expect(r.json).toMatchObject({ error: { status: 'INVALID_ARGUMENT', details: [{ reason: 'INVALID_REQUEST', metadata: { param } }] } });
    }
    expect(up.count()).toBe(before);
    expect((await gen({ mimeType: 'image/jpeg', data: '_9j-4AAQ' })).status).toBe(200);
    expect(lastImageUrl()).toBe('data:image/jpeg;base64,/9j+4AAQ');
  });
});
