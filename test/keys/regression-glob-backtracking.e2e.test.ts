/**
 * Regression: a key's model globs were matched as regular expressions (`*` → `.*`), which backtrack: a key with
 * `*-*-*-mini` asking for a model of a few thousand dashes (the caller picks the name; nothing bounds it) kept the
 * gateway's event loop busy for tens of seconds (4000 characters: 22 s), holding up every other request. The globs
 * are now matched without backtracking; what they match is unchanged. A real gateway process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupDirs, startProcess, within, type GatewayProcess } from '../helpers/env.js';
import { ask, chat, createKey } from './helpers.js';

let gw: GatewayProcess;

beforeAll(async () => {
  gw = await startProcess({ channels: [{ name: 'mock', provider: 'mock', models: ['a-b-c-mini', 'a-b-mini', 'ab?-x'] }] });
});

afterAll(async () => {
  await gw?.stop(1000);
  cleanupDirs();
});

describe('model globs of a key', () => {
  it('a long model name outside a many-star glob is refused at once (the glob never backtracks)', async () => {
    const k = await createKey(gw.url, { name: 'stars', models: ['*-*-*-mini', 'ab??x'] });
    const long = await within(chat(gw.url, k.secret, ask('-'.repeat(20_000) + 'x')), 5000, 'the 403 for a 20,000-character model');
    expect(long.status).toBe(403);
    expect(long.json.error.code).toBe('model_not_allowed');
    // what the globs match is unchanged: `*` any run (empty too), `?` one character, the rest literally. A model
    // allowed but not served here is 404, so "allowed" is anything but 403.
    const cases: Array<[string, boolean]> = [
      ['a-b-c-mini', true],
      ['---mini', true],
      ['--mini', false],
      ['a-b-mini', false],
      ['a-b-c-mini2', false],
      ['ab?-x', true],
      ['ab12x', true],
      ['abx', false],
      ['ab123x', false],
    ];
    for (const [model, allowed] of cases) expect((await chat(gw.url, k.secret, ask(model))).status !== 403, model).toBe(allowed);
    expect((await chat(gw.url, k.secret, ask('a-b-c-mini'))).status).toBe(200);
  });
});
