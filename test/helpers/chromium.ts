/** Debian's Chromium (or $SWITCHYARD_CHROMIUM) driven by playwright-core, headless, for the status page's tests. */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

function chromiumPath(): string {
  const fromEnv = process.env.SWITCHYARD_CHROMIUM;
  if (fromEnv && existsSync(fromEnv)) return fromEnv;
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    try {
      return execFileSync('which', [name], { encoding: 'utf8' }).trim();
    } catch {
      /* next */
    }
  }
  throw new Error('no Chromium found: install the Debian package `chromium` (.ci/run does) or set SWITCHYARD_CHROMIUM');
}

/** A headless Chromium with the flags this machine needs (no sandbox as root, no GPU, no background traffic). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}
