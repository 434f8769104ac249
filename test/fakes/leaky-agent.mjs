#!/usr/bin/env node
// An ACP agent that fails the way real ones do when their provider key is wrong: it prints a diagnostic with
// the key on stdout (not JSON-RPC) and on stderr, then exits before answering `initialize`.
const key = process.env.AGENT_API_KEY ?? '';
process.stdout.write(`provider auth failed with AGENT_API_KEY=${key}\n`);
process.stderr.write(`fatal: the provider refused key ${key}\n`);
setTimeout(() => process.exit(3), 100);
