/**
 * The README's main command, `switchyard demo`, run as a real process: two gateways bridged, the openai SDK and
 * the Anthropic Messages API through A, answers served by B's channel across the bridge — and every process it
 * started gone when it ends.
 */
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { BIN } from '../helpers/env.js';

describe('switchyard demo', () => {
  it('completes: local answer, bridged stream, bridged Anthropic Messages stream', async () => {
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [BIN, 'demo'], { timeout: 90_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/served by: local channel office-mock/);
    expect(stdout).toMatch(/\d+ chunks streamed; served by: peer gateway "datacenter", channel gpu-llama/);
    expect(stdout).toMatch(
      /events: message_start×1, content_block_start×1, .*content_block_delta×\d+, content_block_stop×1, message_delta×1, message_stop×1; served by: peer gateway "datacenter"/,
    );
    expect(stdout).toContain('✔ demo complete');
    // both gateways were stopped: their ports no longer answer
    const urls = [...stdout.matchAll(/listening on (http:\/\/127\.0\.0\.1:\d+)/g)].map((m) => m[1]!);
    expect(urls).toHaveLength(2);
    for (const u of urls) await expect(fetch(`${u}/healthz`)).rejects.toThrow();
  });
});
