/**
 * Regression: an `openai` channel with `responsesApi` (the native Responses pass-through) whose upstream answers a
 * non-streaming request with a valid Response of `status: "failed"` and an `error` object (`{code, message}`,
 * as the API reference's Response has it, `output` holding what came before) was relayed to the client as a
 * success. Now it is the error it reports, mapped by its code as every reported error is
 * (src/providers/reported-error.ts, `answerError`): a rate limit is rate_limited, a server_error is retried on
 * another candidate, and the client gets the error in the Responses format. A Response of `status: "incomplete"`
 * is an answer cut short (`incomplete_details`), still relayed as sent. One real gateway process, upstreams that
 * answer 200 with such Responses, the official SDK as the client.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channelHealth, cleanupDirs, rejectionOf, startProcess, type GatewayProcess } from '../helpers/env.js';
import { startFixedReplyUpstream, type FixedReplyUpstream } from '../fakes/fixed-reply-upstream.js';
import { startResponsesUpstream, type ResponsesFake } from '../fakes/responses-upstream.js';

const RATE_MESSAGE = 'Rate limit reached for gpt-4.1 in organization org-fake on tokens per min (TPM). Please try again in 2s.';

/** A Response as the API sends it (the API reference's Response object), with `extra` over its fields. */
const response = (extra: Record<string, unknown>) =>
  JSON.stringify({
    id: 'resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b',
    object: 'response',
    created_at: 1741476542,
    status: 'completed',
    error: null,
    incomplete_details: null,
    instructions: null,
    max_output_tokens: null,
    model: 'gpt-4.1-2025-04-14',
    output: [],
    parallel_tool_calls: true,
    previous_response_id: null,
    store: true,
    temperature: 1.0,
    text: { format: { type: 'text' } },
    tool_choice: 'auto',
    tools: [],
    top_p: 1.0,
    truncation: 'disabled',
    usage: null,
    user: null,
    metadata: {},
    ...extra,
  });

const PARTIAL = [
  {
    id: 'msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b',
    type: 'message',
    status: 'incomplete',
    role: 'assistant',
    content: [{ type: 'output_text', text: 'Once upon', annotations: [] }],
  },
];

let gw: GatewayProcess;
const fixed: FixedReplyUpstream[] = [];
let spare: ResponsesFake;
let openai: OpenAI;

beforeAll(async () => {
  const fake = async (body: string) => {
    const f = await startFixedReplyUpstream(() => body);
    fixed.push(f);
    return f.baseUrl;
  };
  spare = await startResponsesUpstream();
  const ch = (name: string, baseUrl: string, model: string, priority = 0) => ({
    name,
    provider: 'openai',
    baseUrl,
    apiKey: 'sk-x',
    models: [model],
    priority,
    options: { responsesApi: true },
  });
  gw = await startProcess({
    // one retry, so a retryable failure reaches the spare; no ejections, so each test reads the channel's failure count
    gateway: { routing: { retries: 1, health: { consecutiveFailures: 100, minRequests: 1000 } } },
    channels: [
      ch('rs-rate', await fake(response({ status: 'failed', error: { code: 'rate_limit_exceeded', message: RATE_MESSAGE } })), 'rs-rate'),
      ch('rs-busy', await fake(response({ status: 'failed', error: { code: 'server_error', message: 'The model failed' }, output: PARTIAL })), 'rs-busy'),
      ch('rs-busy-spare', spare.baseUrl, 'rs-busy', 1),
      ch('rs-bare', await fake(response({ status: 'failed' })), 'rs-bare'),
      ch(
        'rs-cut',
        await fake(response({ status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' }, output: PARTIAL, max_output_tokens: 16 })),
        'rs-cut',
      ),
    ],
  });
  openai = new OpenAI({ apiKey: 'x', baseURL: `${gw.url}/v1`, maxRetries: 0 });
});
afterAll(async () => {
  await gw?.stop();
  for (const f of fixed) await f.close();
  await spare?.close();
  cleanupDirs();
});

describe('native Responses pass-through: a 200 Response with status "failed"', () => {
  it('rate_limit_exceeded: rate_limited (429) with the upstream’s message, not a success', async () => {
    const err = await rejectionOf(openai.responses.create({ model: 'rs-rate', input: 'hi' }));
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err).toMatchObject({ status: 429 });
    expect((err as Error).message).toContain(`channel rs-rate: upstream reported rate_limit_exceeded in a 2xx reply: ${RATE_MESSAGE}`);
  });

  it('server_error (with partial output): counted against the channel and retried on the spare, whose answer the client gets', async () => {
    const before = (await channelHealth(gw.url, 'rs-busy')).consecutiveFailures;
    const out = await openai.responses.create({ model: 'rs-busy', input: 'hi' });
    expect(out.status).toBe('completed');
    expect(out.output_text.length).toBeGreaterThan(0);
    expect(spare.count()).toBe(1);
    const after = await channelHealth(gw.url, 'rs-busy');
    expect(after.consecutiveFailures).toBe(before + 1);
    expect(after.lastError).toContain('upstream reported server_error in a 2xx reply: The model failed');
  });

  it('no error object: upstream_error (502), saying the Response failed', async () => {
    const err = await rejectionOf(openai.responses.create({ model: 'rs-bare', input: 'hi' }));
    expect(err).toMatchObject({ status: 502 });
    expect((err as Error).message).toContain('channel rs-bare: upstream reported an error in a 2xx reply: response status "failed"');
  });
});

describe('native Responses pass-through: a 200 Response with status "incomplete"', () => {
  it('is an answer cut short: relayed as the upstream sent it', async () => {
    const out = await openai.responses.create({ model: 'rs-cut', input: 'hi' });
    expect(out.status).toBe('incomplete');
    expect(out.incomplete_details).toEqual({ reason: 'max_output_tokens' });
    expect(out.output_text).toBe('Once upon');
  });
});
