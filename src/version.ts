/**
 * The gateway's version, read once from package.json. Every surface that reports a version (admin status,
 * `acp.capabilities`, the ACP `clientInfo`, OpenClaw's `connect`, the CLI's `--version`) imports it from here.
 */
import { createRequire } from 'node:module';

export const VERSION: string = (() => {
  try {
    // dist/version.js and src/version.ts both sit one level below the package root
    return (createRequire(import.meta.url)('../package.json') as { version: string }).version;
  } catch {
    return '0.0.0';
  }
})();
