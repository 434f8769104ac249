import { readFileSync } from 'node:fs';

/**
 * The modules a process logged as loaded (MODULE_LOG_FILE: test/gateway/fixtures/module-log.mjs, require-log.mjs)
 * that lie under `dir` (`/dist/`: the gateway's own, `/node_modules/`: its dependencies'), each as its path below it.
 */
export const loadedUnder = (file: string, dir: string): string[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((p) => p.includes(dir))
    .map((p) => p.slice(p.lastIndexOf(dir) + dir.length));
