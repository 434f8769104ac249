// Module hooks (see acp-build-fault.mjs): the compiled launch module's resolveAgent, which the ACP runtime-table
// build calls for every agent entry, throws for an id starting with `fault-`, with a message that quotes the
// entry's `env` (`; env NAME=value` each), as an error from a library might quote what it was given: a secret of
// the file being loaded. A launch module whose resolveAgent is not where this expects it stops the gateway at
// start, so the seam cannot silently stop working.
const TARGET = '/dist/acp/runtimes/agent/launch.js';
const HEAD = 'export function resolveAgent(a) {';

export async function load(url, context, nextLoad) {
  const r = await nextLoad(url, context);
  if (!url.endsWith(TARGET)) return r;
  const source = String(r.source);
  if (!source.includes(HEAD)) throw new Error(`acp-build-fault: "${HEAD}" not found in ${url}`);
  const fault =
    "if (a.id.startsWith('fault-')) throw new Error(`acp.agents \"${a.id}\": injected build fault (test)` + Object.entries(a.env ?? {}).map(([k, v]) => `; env ${k}=${v}`).join(''));";
  return { ...r, source: source.replace(HEAD, `${HEAD} ${fault}`) };
}
