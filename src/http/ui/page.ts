/**
 * The status page's HTML and CSS, served as they are (no build step, no asset from the internet). The page
 * holds no data: everything comes from /ui/events with the admin token the operator typed, which is kept
 * in sessionStorage only (gone when the tab closes). The script is app-script.ts.
 */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Switchyard status</title>
<link rel="stylesheet" href="/ui/app.css">
<script src="/ui/app.js" defer></script>
</head>
<body>
<header>
  <h1 id="title">Switchyard</h1>
  <span id="ident" class="muted"></span>
  <span id="conn" class="pill">not connected</span>
  <button id="logout" hidden>sign out</button>
</header>
<main>
  <section id="login" class="card" hidden>
    <h2>Sign in</h2>
    <p class="muted">The admin token (<code>gateway.admin.token</code>). It stays in this browser tab only.</p>
    <form id="login-form">
      <input id="token" type="password" autocomplete="off" placeholder="admin token" aria-label="admin token">
      <button type="submit">Open</button>
    </form>
    <p id="login-error" class="error"></p>
  </section>
  <div id="dash" hidden>
    <section class="row">
      <div class="card stat"><div class="label">uptime</div><div id="uptime" class="big">-</div></div>
      <div class="card stat"><div class="label">requests/s</div><div id="rps" class="big">-</div></div>
      <div class="card stat"><div class="label">errors/s</div><div id="eps" class="big">-</div></div>
      <div class="card stat"><div class="label">in flight</div><div id="inflight" class="big">-</div></div>
      <div class="card stat"><div class="label">sessions running</div><div id="running" class="big">-</div></div>
    </section>
    <section class="row">
      <div class="card grow"><h2>Requests, last minute</h2><svg id="chart-req" class="chart" viewBox="0 0 300 60" preserveAspectRatio="none"></svg></div>
      <div class="card grow"><h2>Errors, last minute</h2><svg id="chart-err" class="chart" viewBox="0 0 300 60" preserveAspectRatio="none"></svg></div>
    </section>
    <section class="row">
      <div class="card grow"><h2>Mesh</h2><svg id="mesh" viewBox="0 0 400 280"></svg></div>
      <div class="card grow"><h2>Peers and links</h2><table id="peers"><thead><tr><th>peer</th><th>direction</th><th>state</th><th>RTT</th><th>in flight</th><th>unmatched pongs</th><th>they share</th><th>we share</th></tr></thead><tbody></tbody></table><p id="retiring-links" class="muted" hidden></p></div>
    </section>
    <section class="card"><h2>Channels</h2><table id="channels"><thead><tr><th>channel</th><th>via</th><th>provider</th><th>models</th><th>load</th><th>latency</th><th>health</th></tr></thead><tbody></tbody></table></section>
    <section class="row">
      <div class="card grow"><h2>Models</h2><table id="models"><thead><tr><th>model</th><th>served by</th></tr></thead><tbody></tbody></table></div>
      <div class="card grow"><h2>Sessions</h2><p id="session-counts"></p><table id="turns"><thead><tr><th>session</th><th>turn</th><th>started</th></tr></thead><tbody></tbody></table></div>
    </section>
    <section id="warm-card" class="card" hidden><h2>Warm agents</h2><table id="warm"><thead><tr><th>agent</th><th>ready</th><th>booting</th><th>sessions warm/cold</th><th>failed</th><th>back-off until</th></tr></thead><tbody></tbody></table></section>
  </div>
</main>
</body>
</html>
`;

export const PAGE_CSS = `
:root { --bg:#0f1419; --card:#182028; --fg:#e6e6e6; --muted:#8a96a3; --ok:#3fb950; --warn:#d29922; --bad:#f85149; --line:#2b3640; --accent:#58a6ff; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.4 system-ui, sans-serif; background:var(--bg); color:var(--fg); }
header { display:flex; gap:12px; align-items:center; padding:12px 20px; border-bottom:1px solid var(--line); }
h1 { font-size:18px; margin:0; } h2 { font-size:13px; text-transform:uppercase; letter-spacing:.05em; color:var(--muted); margin:0 0 8px; }
main, #dash:not([hidden]) { display:flex; flex-direction:column; gap:16px; } main { padding:16px 20px; }
.row { display:flex; gap:16px; flex-wrap:wrap; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 14px; }
.grow { flex:1 1 380px; min-width:0; }
.stat { flex:1 1 140px; } .label { color:var(--muted); font-size:12px; } .big { font-size:24px; font-weight:600; }
.muted { color:var(--muted); } .error { color:var(--bad); }
.pill { border:1px solid var(--line); border-radius:999px; padding:2px 10px; font-size:12px; }
.pill.ok, .state-open, .state-healthy { color:var(--ok); } .pill.bad, .state-closed, .state-failed, .state-ejected { color:var(--bad); }
.state-backoff, .state-connecting, .state-probing { color:var(--warn); }
table { width:100%; border-collapse:collapse; } th, td { text-align:left; padding:4px 6px; border-bottom:1px solid var(--line); font-size:13px; }
th { color:var(--muted); font-weight:500; }
#peers td:nth-child(-n+6) { white-space:nowrap; }
.chart { width:100%; height:60px; } .chart polyline { fill:none; stroke-width:1.5; }
#chart-req polyline { stroke:var(--accent); } #chart-err polyline { stroke:var(--bad); }
#mesh { width:100%; height:280px; } #mesh text { fill:var(--fg); font-size:11px; } #mesh .sub { fill:var(--muted); font-size:10px; }
#mesh circle.self { fill:#1f6feb; } #mesh circle.peer { fill:#2b3640; stroke:var(--muted); }
#mesh line.open { stroke:var(--ok); stroke-width:2; } #mesh line.down { stroke:var(--bad); stroke-dasharray:4 3; }
input { background:#0b0f13; color:var(--fg); border:1px solid var(--line); border-radius:6px; padding:6px 8px; width:260px; }
button { background:#21262d; color:var(--fg); border:1px solid var(--line); border-radius:6px; padding:6px 12px; cursor:pointer; }
#logout { margin-left:auto; }
`;
