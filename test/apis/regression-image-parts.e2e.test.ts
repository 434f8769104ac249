/**
 * Regression: image parts in a chat request, on the channels that translate them.
 * - Ollama: an image on a `system` or `tool` message was dropped without a word (only user and assistant
 *   messages got `images`), though Ollama's `/api/chat` takes `images` on a message of any role and puts them
 *   into the prompt where their message is (its own /v1 layer carries such parts so too). Now they go on
 *   their message.
 * - `"image_url": "data:…"` (a bare string, not `{"url": …}`, which OpenAI's API refuses with 400
 *   invalid_type) was "content part type image_url is not supported" (`unsupported`) on an Ollama channel and
 *   "…image_url.url: expected a base64 data: URL or an http(s) URL" on an Anthropic one. Now both say what is
 *   wrong, in OpenAI's words, naming `…image_url`; so does a text part whose `text` is not a string (Ollama:
 *   "type text is not supported"; Anthropic: dropped). On /v1/responses the mirror mistake (`image_url` an
 *   object, where that API takes the URL string) was "required".
 * - Anthropic: an image in a `tool` message was refused (`unsupported`, "only text parts are allowed here"),
 *   though the Messages API takes images inside a `tool_result` block's content. Now the tool_result carries
 *   them as image blocks after its text (a base64 data: URL → a `base64` source, an http(s) URL → a `url`
 *   source, as on a user turn).
 * One real gateway process, fake Ollama and Anthropic upstreams speaking their wire formats, the official
 * openai SDK as the client.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channelOf, cleanupDirs, startProcess, type GatewayProcess } from '../helpers/env.js';
import { startOllamaUpstream } from '../fakes/ollama-upstream.js';
import { startAnthropicUpstream } from '../fakes/anthropic-upstream.js';
import type { FakeUpstream } from '../providers/conformance.js';

const PNG_B64 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
const DATA_URL = `data:image/png;base64,${PNG_B64}`;

let gw: GatewayProcess;
let ollama: FakeUpstream;
let anthropic: FakeUpstream;
let openai: OpenAI;

beforeAll(async () => {
  ollama = await startOllamaUpstream({ reply: 'a red pixel' });
  anthropic = await startAnthropicUpstream({ reply: 'a red pixel' });
  gw = await startProcess({
    gateway: { routing: { retries: 0 } },
    channels: [channelOf(ollama, 'ol', ['llava']), channelOf(anthropic, 'an', ['claude-v'])],
  });
  openai = new OpenAI({ apiKey: 'x', baseURL: `${gw.url}/v1`, maxRetries: 0 });
});
afterAll(async () => {
  await gw?.stop();
  await ollama?.close();
  await anthropic?.close();
  cleanupDirs();
});

/** The error the SDK raised for a request, with the fields of the gateway's body. */
async function refusal(p: Promise<unknown>): Promise<{ status: number; code: unknown; param: unknown; message: string }> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(OpenAI.BadRequestError);
  const e = err as InstanceType<typeof OpenAI.BadRequestError>;
  const body = e.error as { message: string };
  return { status: e.status, code: e.code, param: e.param, message: body.message };
}

describe('ollama: images on system and tool messages', () => {
  it('reach /api/chat on their own messages (bare base64), as Ollama takes them on any role', async () => {
    const r = await openai.chat.completions.create({
      model: 'llava',
      messages: [
        {
          role: 'system',
          content: [
            { type: 'text', text: 'Compare what the user shows with this reference.' },
            { type: 'image_url', image_url: { url: DATA_URL } },
          ],
        } as never,
        { role: 'user', content: 'What colour is the screenshot?' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'screenshot', arguments: '{}' } }] },
        {
          role: 'tool',
          tool_call_id: 'call_1',
          content: [
            { type: 'text', text: 'screenshot taken' },
            { type: 'image_url', image_url: { url: DATA_URL } },
          ],
        } as never,
      ],
    });
    expect(r.choices[0]!.message.content).toBe('a red pixel');
    const sent = ollama.lastRequest()!.messages as Array<Record<string, unknown>>;
    expect(sent[0]).toEqual({ role: 'system', content: 'Compare what the user shows with this reference.', images: [PNG_B64] });
    expect(sent[3]).toEqual({ role: 'tool', content: 'screenshot taken', images: [PNG_B64], tool_name: 'screenshot', tool_call_id: 'call_1' });
  });
});

describe('anthropic: images in tool messages', () => {
  const SHOT_URL = 'https://example.com/screenshots/1.png';
  const asked = (tool: Record<string, unknown>) => ({
    model: 'claude-v',
    messages: [
      { role: 'user', content: 'What colour is the screen?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'toolu_1', type: 'function', function: { name: 'screenshot', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'toolu_1', ...tool },
    ],
  });

  it('reach /v1/messages inside the tool_result, after its text: a data: URL as a base64 source, an http(s) URL as a url source', async () => {
    const r = await openai.chat.completions.create(
      asked({
        content: [
          { type: 'text', text: 'screenshot taken' },
          { type: 'image_url', image_url: { url: DATA_URL } },
          { type: 'image_url', image_url: { url: SHOT_URL, detail: 'low' } },
        ],
      }) as never,
    );
    expect(r.choices[0]!.message.content).toBe('a red pixel');
    const sent = anthropic.lastRequest()!.messages as Array<Record<string, unknown>>;
    expect(sent[2]).toEqual({
      role: 'user',
      content: [
        {
          type: 'tool_result',
          tool_use_id: 'toolu_1',
          content: [
            { type: 'text', text: 'screenshot taken' },
            { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG_B64 } },
            { type: 'image', source: { type: 'url', url: SHOT_URL } },
          ],
        },
      ],
    });
  });

  it('an image alone is the tool_result’s only block; a text-only tool message is still its string content', async () => {
    await openai.chat.completions.create(asked({ content: [{ type: 'image_url', image_url: { url: DATA_URL } }] }) as never);
    const imageOnly = (anthropic.lastRequest()!.messages as Array<{ content: unknown }>)[2]!.content;
    expect(imageOnly).toEqual([
      { type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG_B64 } }] },
    ]);
    await openai.chat.completions.create(
      asked({
        content: [
          { type: 'text', text: 'a' },
          { type: 'text', text: 'b' },
        ],
      }) as never,
    );
    const textOnly = (anthropic.lastRequest()!.messages as Array<{ content: unknown }>)[2]!.content;
    expect(textOnly).toEqual([{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'a\nb' }]);
  });

  it('a malformed image or another part type there is refused as on a user turn, naming the part; nothing sent upstream', async () => {
    const before = anthropic.lastRequest();
    const badUrl = await refusal(openai.chat.completions.create(asked({ content: [{ type: 'image_url', image_url: { url: 'ftp://x/y.png' } }] }) as never));
    expect(badUrl).toEqual({
      status: 400,
      code: 'invalid_request',
      param: 'messages[2].content[0].image_url.url',
      message: 'messages[2].content[0].image_url.url: expected a base64 data: URL or an http(s) URL',
    });
    const audio = await refusal(
      openai.chat.completions.create(asked({ content: [{ type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } }] }) as never),
    );
    expect(audio).toMatchObject({ code: 'unsupported', param: 'messages[2].content[0].type' });
    expect(anthropic.lastRequest()).toBe(before);
  });
});

describe('a malformed part: the same clear 400 on every translating channel, nothing sent upstream', () => {
  const withImage = (model: string, part: Record<string, unknown>) => ({
    model,
    messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this?' }, part] }],
  });

  it.each(['llava', 'claude-v'])('%s: `image_url` as a bare string is "expected an object", on …image_url', async (model) => {
    const up = model === 'llava' ? ollama : anthropic;
    const before = up.lastRequest();
    const r = await refusal(openai.chat.completions.create(withImage(model, { type: 'image_url', image_url: DATA_URL }) as never));
    expect(r).toEqual({
      status: 400,
      code: 'invalid_request',
      param: 'messages[0].content[1].image_url',
      message: `Invalid type for 'messages[0].content[1].image_url': expected an object {"url": …}, but got a string instead.`,
    });
    // the image as an object without its url, and a text part without text: each named as precisely
    const noUrl = await refusal(openai.chat.completions.create(withImage(model, { type: 'image_url', image_url: { detail: 'low' } }) as never));
    expect(noUrl).toMatchObject({
      param: 'messages[0].content[1].image_url.url',
      message: "Missing required parameter: 'messages[0].content[1].image_url.url' (a string).",
    });
    const badText = await refusal(openai.chat.completions.create(withImage(model, { type: 'text', text: 42 }) as never));
    expect(badText).toMatchObject({
      code: 'invalid_request',
      param: 'messages[0].content[1].text',
      message: "Invalid type for 'messages[0].content[1].text': expected a string, but got a number instead.",
    });
    expect(up.lastRequest()).toBe(before);
  });

  it('/v1/responses: `input_image.image_url` as an object (the chat form) is "expected a string", on …image_url', async () => {
    const before = ollama.lastRequest();
    const r = await refusal(
      openai.responses.create({
        model: 'llava',
        input: [
          {
            role: 'user',
            content: [
              { type: 'input_text', text: 'what is this?' },
              { type: 'input_image', image_url: { url: DATA_URL } },
            ],
          },
        ],
      } as never),
    );
    expect(r).toEqual({
      status: 400,
      code: 'invalid_request',
      param: 'input[0].content[1].image_url',
      message: 'input[0].content[1].image_url: expected a string (a URL or data: URL), but got an object instead',
    });
    expect(ollama.lastRequest()).toBe(before);
  });
});
