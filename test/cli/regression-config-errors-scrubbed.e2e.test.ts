/**
 * Regression: the config's own checks (unique names, share lists naming real channels and runtimes) quote the
 * value they refuse, and `switchyard config check` and `switchyard gateway` printed those problems as they were:
 * a secret put where a name goes (a bridge token pasted into the share list beside `allowedTokens`, a key pasted as
 * a channel's name) was printed on stderr. The reload path already scrubbed a refused file's problems with a
 * scrubber of its own secrets; now every refusal of a file that passed the schema is scrubbed that way where it is
 * made (configRefusal), and every error the CLI prints goes through the process's scrubber. `config check`'s
 * summary of a valid file quotes names too (channels, the share list), and passes the same scrubber.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupDirs, tmpDir } from '../helpers/env.js';
import { runCli } from '../ops/cli-run.js';

afterAll(() => cleanupDirs());

const BRIDGE_TOKEN = 'bridge-token-3e9a1c7f5b2d8046';
const KEY = 'sk-channel-key-8b2f6d1a9c3e5074';

function writeConfig(): string {
  const file = join(tmpDir('sy-scrub-'), 'switchyard.json5');
  writeFileSync(
    file,
    JSON.stringify({
      gateway: {
        port: 0,
        // the token pasted twice: once where it belongs, once into the share list beside it
        bridge: { enabled: true, allowedTokens: [BRIDGE_TOKEN], shareChannels: [BRIDGE_TOKEN] },
      },
      // two channels given the same name, the second one the key's value (a key pasted on the wrong line)
      channels: [
        { name: 'openai', provider: 'openai', baseUrl: 'https://api.example.com/v1', apiKey: KEY, models: ['m'] },
        { name: KEY, provider: 'mock', models: ['m'] },
        { name: KEY, provider: 'mock', models: ['m'] },
      ],
    }),
  );
  return file;
}

describe('config check on a valid file', () => {
  it('prints its summary (names included) without a configured secret', async () => {
    const file = join(tmpDir('sy-scrub-'), 'switchyard.json5');
    // valid, if unwise: the key given as a channel's name too, and that channel shared with peers
    writeFileSync(
      file,
      JSON.stringify({
        gateway: { bridge: { enabled: true, allowedTokens: [BRIDGE_TOKEN], shareChannels: [KEY] } },
        channels: [{ name: KEY, provider: 'openai', baseUrl: 'https://api.example.com/v1', apiKey: KEY, models: ['m'] }],
      }),
    );
    const r = await runCli(['config', 'check', '-c', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('  channels  [REDACTED](openai)\n');
    expect(r.stdout).toContain('sharing [REDACTED]\n');
    expect(r.stdout + r.stderr).not.toContain(KEY);
  });
});

describe('config problems printed by the CLI', () => {
  for (const command of [['config', 'check'], ['gateway']]) {
    it(`switchyard ${command.join(' ')}: every problem listed, no configured secret in the output`, async () => {
      const r = await runCli([...command, '-c', writeConfig()]);
      expect(r.code, r.stderr).toBe(2);
      // the problems are all there, each naming its key path, the quoted values replaced
      expect(r.stderr).toContain('gateway.bridge.shareChannels.0: no channel named "[REDACTED]"');
      expect(r.stderr).toContain('channels.2.name: duplicate channel name "[REDACTED]"');
      const output = r.stdout + r.stderr;
      expect(output).not.toContain(BRIDGE_TOKEN);
      expect(output).not.toContain(KEY);
    });
  }
});
