/**
 * Regression: `switchyard config check` and `switchyard gateway` (a start) printed the problems of what providers
 * and the TLS check reported scrubbed of the file's declared secrets only (configRefusal's `scrub`), not by the
 * strict error-text rules a refused reload's problems get (`scrubProblem`: credential shapes such as `api_key=…`,
 * provider key shapes `sk-…`, pieces of secrets). A secret-looking value in an unreadable TLS key path or in a
 * provider's refusal (it quotes the channel's name) was printed as it was. The three now apply one scrub
 * (scrubConfigProblems in src/config/secrets.ts).
 *
 * The real CLI (dist) on a config file written here; nothing is mocked.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupDirs, tmpDir } from '../helpers/env.js';
import { runCli } from '../ops/cli-run.js';

afterAll(() => cleanupDirs());

/** a credential in a TLS key path (a directory named after what it holds) and a provider key shape as a name */
const PATH_SECRET = '9f8e7d6c5b4a3210fedcba98';
const NAME_SECRET = 'sk-proj-4b9c1e7a2d8f3065aa71';

function writeConfig(): string {
  const dir = tmpDir('sy-strict-scrub-');
  const file = join(dir, 'switchyard.json5');
  writeFileSync(
    file,
    JSON.stringify({
      gateway: { port: 0, tls: { cert: join(dir, 'cert.pem'), key: join(dir, `api_key=${PATH_SECRET}`, 'key.pem') } },
      channels: [{ name: NAME_SECRET, provider: 'openai', baseUrl: 'https://api.example.com/v1', options: { responsesApi: 'yes' }, models: ['m'] }],
    }),
  );
  writeFileSync(join(dir, 'cert.pem'), 'not read: the key is missing\n');
  return file;
}

describe('config problems from the TLS check and the providers, printed by the CLI', () => {
  for (const command of [['config', 'check'], ['gateway']]) {
    it(`switchyard ${command.join(' ')}: listed by key path, every secret-looking value cut`, async () => {
      const r = await runCli([...command, '-c', writeConfig()]);
      expect(r.code, r.stderr).toBe(2);
      const lines = r.stderr.split('\n');
      // the problems are there, each under its key path, what looked like a credential replaced
      expect(lines.find((l) => l.startsWith('  gateway.tls.key: cannot read '))).toMatch(/api_key=\[REDACTED\]/);
      expect(r.stderr).toContain('  channels.0.options.responsesApi: channel [REDACTED]: options.responsesApi must be a boolean\n');
      const output = r.stdout + r.stderr;
      expect(output).not.toContain(PATH_SECRET);
      expect(output).not.toContain(NAME_SECRET);
      expect(output).not.toContain(NAME_SECRET.slice(8));
    }, 30_000);
  }
});
