/**
 * The layers of the house style (arrows only point down), checked by `npm run lint:deps` (dependency-cruiser).
 * Layers, bottom to top (a layer may import only layers below it, and its own folder):
 *
 *   0 src/wire                 wire types and error codes: imports nothing from the project
 *   1 src/util, src/version.ts helpers with no project knowledge
 *   2 src/config               the config schema and loader
 *   3 src/providers            one adapter per upstream kind
 *   4 src/router, src/sessions the core: routing/health, the session store (neither imports the other);
 *     src/keys, src/usage      virtual keys and their limits, usage records (keys uses usage; neither knows
 *                              HTTP, the bridge or ACP)
 *   5 src/bridge, src/acp,     gateway-to-gateway links; the ACP core (may use the bridge mesh to reach
 *     src/apis                 peers; the bridge never imports ACP); the inbound API translators (Messages,
 *                              Responses, Gemini) and their exchange helper (uses the router and keys).
 *                              None knows HTTP: transports live in src/http (src/http/acp/ for the JSON-RPC
 *                              transports).
 *   6 src/obs                  metrics, traces, rate window: observe the core through its hook interfaces
 *   7 src/http                 HTTP server, /v1, admin, transports, /metrics, /ui
 *   8 src/gateway*.ts          composition root (gateway.ts) and its lifecycle: reload, graceful stop
 *   9 src/cli                  the command line (and its ACP client library, src/cli/acp-client/)
 *
 * Tests (`*.test.ts` beside the code) may import across layers; the product never imports tests or bench/.
 * bench/ is a consumer of the built gateway (dist/), never of src/.
 */
const layers = [
  ['^src/wire/'],
  ['^src/util/', '^src/version\\.ts$'],
  ['^src/config/'],
  ['^src/providers/'],
  ['^src/router/', '^src/sessions/', '^src/keys/', '^src/usage/'],
  ['^src/bridge/', '^src/acp/', '^src/apis/'],
  ['^src/obs/'],
  ['^src/http/'],
  ['^src/gateway[a-z-]*\\.ts$'],
  ['^src/cli/'],
];
const names = ['wire', 'util', 'config', 'providers', 'router/sessions/keys/usage', 'bridge/acp/apis', 'obs', 'http', 'gateway', 'cli'];
const TEST = '\\.test\\.ts$';
const either = (patterns) => `(${patterns.join('|')})`;

const layerRules = layers.slice(0, -1).map((from, i) => ({
  name: `layer-${names[i].replaceAll('/', '-')}-looks-down`,
  comment: `${names[i]} may not import a layer above it (${names.slice(i + 1).join(', ')})`,
  severity: 'error',
  from: { path: either(from), pathNot: TEST },
  to: { path: either(layers.slice(i + 1).flat()) },
}));

module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: 'wire-imports-nothing',
      comment: 'src/wire is the bottom: no imports from the rest of the project',
      severity: 'error',
      from: { path: '^src/wire/', pathNot: TEST },
      to: { path: '^src/', pathNot: '^src/wire/' },
    },
    {
      name: 'bridge-not-acp',
      comment: 'ACP uses the bridge mesh to reach peers; the bridge never knows ACP',
      severity: 'error',
      from: { path: '^src/bridge/', pathNot: TEST },
      to: { path: '^src/acp/' },
    },
    {
      name: 'router-sessions-apart',
      comment: 'the router and the session store are independent parts of the core',
      severity: 'error',
      from: { path: '^src/(router|sessions)/', pathNot: TEST },
      to: { path: '^src/(router|sessions)/', pathNot: '^src/$1/' },
    },
    {
      name: 'no-circular',
      comment: 'no import cycles anywhere in the product',
      severity: 'error',
      from: { path: '^src/', pathNot: TEST },
      to: { circular: true },
    },
    {
      name: 'product-not-tests',
      comment: 'the product never imports tests, fakes or the benchmark harness',
      severity: 'error',
      from: { path: '^src/', pathNot: TEST },
      to: { path: ['^test/', '^bench/'] },
    },
    {
      name: 'bench-uses-the-build',
      comment: 'bench/ measures the built gateway: it imports ../dist, never ../src',
      severity: 'error',
      from: { path: '^bench/' },
      to: { path: '^src/' },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'an import that does not resolve is a typo or a missing dependency',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: ['node_modules', '^dist/'] },
    exclude: { path: ['^dist/', '^dist-bench/', '^node_modules/'] },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.test.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.d.ts'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
