/**
 * The Messages request both tool-argument regression suites send (regression-broken-tool-arguments,
 * regression-tool-arguments-end): one `read_file` tool, and the arguments that break at offset 25 (an invalid escape).
 */
export const BROKEN = '{"mode": "r", "path": "a\\.b", "recursive": true}';

export const readFileBody = (model: string) => ({
  model,
  max_tokens: 100,
  messages: [{ role: 'user' as const, content: 'read it' }],
  tools: [
    {
      name: 'read_file',
      input_schema: { type: 'object' as const, properties: { mode: { type: 'string' }, path: { type: 'string' }, recursive: { type: 'boolean' } } },
    },
  ],
});
