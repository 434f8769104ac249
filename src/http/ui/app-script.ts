/**
 * The status page's script (plain ES2020, served as /ui/app.js; no template literals inside so it can live
 * in this string). It reads /ui/events with fetch (EventSource cannot send an Authorization header),
 * parses the SSE stream, and re-renders from each snapshot. Every value from the gateway or its peers is
 * written with textContent / SVG text nodes, never as HTML. On a lost stream it reconnects after 1 s; a
 * 401 brings the login form back.
 */
export const APP_JS = `
'use strict';
(function () {
  var KEY = 'switchyard-admin-token';
  var $ = function (id) { return document.getElementById(id); };
  var SVG = 'http://www.w3.org/2000/svg';
  var current = null;

  function token() { return sessionStorage.getItem(KEY); }
  function el(tag, text, cls) { var e = document.createElement(tag); if (text !== undefined && text !== null) e.textContent = String(text); if (cls) e.className = cls; return e; }
  function svg(tag, attrs, text) { var e = document.createElementNS(SVG, tag); for (var k in attrs) e.setAttribute(k, String(attrs[k])); if (text !== undefined) e.textContent = String(text); return e; }
  function dur(s) { if (s < 60) return s + 's'; if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's'; return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm'; }
  function conn(text, ok) { var c = $('conn'); c.textContent = text; c.className = 'pill ' + (ok ? 'ok' : 'bad'); }

  function showLogin(message) {
    $('login').hidden = false; $('dash').hidden = true; $('logout').hidden = true;
    $('login-error').textContent = message || '';
  }

  function fillTable(id, rows, attrs) {
    var body = $(id).tBodies[0];
    while (body.firstChild) body.removeChild(body.firstChild);
    rows.forEach(function (cells, i) {
      var tr = document.createElement('tr');
      var a = attrs ? attrs(i) : null;
      if (a) for (var k in a) tr.setAttribute(k, a[k]);
      cells.forEach(function (c) {
        var td = typeof c === 'object' && c !== null ? el('td', c.text, c.cls) : el('td', c);
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    if (rows.length === 0) { var tr = document.createElement('tr'); var td = el('td', 'none', 'muted'); td.colSpan = $(id).tHead.rows[0].cells.length; tr.appendChild(td); body.appendChild(tr); }
  }

  function chart(id, values) {
    var s = $(id);
    while (s.firstChild) s.removeChild(s.firstChild);
    var max = Math.max.apply(null, values.concat([1]));
    var pts = values.map(function (v, i) { return (i * 300 / Math.max(1, values.length - 1)).toFixed(1) + ',' + (58 - v * 54 / max).toFixed(1); }).join(' ');
    s.appendChild(svg('polyline', { points: pts }));
    s.appendChild(svg('text', { x: 2, y: 10, 'font-size': 9, fill: '#8a96a3' }, 'max ' + max + '/s'));
  }

  function mesh(o) {
    var s = $('mesh');
    while (s.firstChild) s.removeChild(s.firstChild);
    var cx = 200, cy = 145, r = 80, n = o.peers.length;
    o.peers.forEach(function (p, i) {
      var a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(1, n);
      var x = cx + r * Math.cos(a), y = cy + r * Math.sin(a);
      var up = p.state === 'open';
      s.appendChild(svg('line', { x1: cx, y1: cy, x2: x, y2: y, 'class': up ? 'open' : 'down', 'data-peer': p.name }));
      var g = svg('g', { 'data-peer-node': p.name, 'data-state': p.state });
      g.appendChild(svg('circle', { cx: x, cy: y, r: 16, 'class': 'peer' }));
      var above = y < cy - 1;
      g.appendChild(svg('text', { x: x, y: above ? y - 36 : y + 30, 'text-anchor': 'middle' }, p.name + (up ? '' : ' (' + p.state + ')')));
      var shares = (p.sharedWithUs.length ? 'shares ' + p.sharedWithUs.join(', ') : 'shares nothing') + (p.rttMs !== null ? ' · ' + p.rttMs + ' ms' : '');
      g.appendChild(svg('text', { x: x, y: above ? y - 24 : y + 42, 'text-anchor': 'middle', 'class': 'sub' }, shares));
      s.appendChild(g);
    });
    s.appendChild(svg('circle', { cx: cx, cy: cy, r: 20, 'class': 'self' }));
    s.appendChild(svg('text', { x: cx, y: cy + 34, 'text-anchor': 'middle' }, o.gateway.name + ' (this gateway)'));
  }

  function render(o) {
    current = o;
    $('login').hidden = true; $('dash').hidden = false; $('logout').hidden = false;
    $('title').textContent = o.gateway.name;
    $('ident').textContent = o.gateway.id + ' · v' + o.gateway.version + (o.gateway.draining ? ' · DRAINING' : '');
    $('uptime').textContent = dur(o.gateway.uptimeSec);
    $('rps').textContent = o.requests.requestsPerSec.toFixed(1);
    $('eps').textContent = o.requests.errorsPerSec.toFixed(1);
    $('inflight').textContent = String(o.requests.inflight);
    $('running').textContent = o.sessions.storeReadable === false || (typeof o.sessions.readingMs === 'number' && !o.sessions.readAt) ? '?' : String(o.sessions.byStatus.running || 0);
    chart('chart-req', o.requests.series.map(function (p) { return p.requests; }));
    chart('chart-err', o.requests.series.map(function (p) { return p.errors; }));
    mesh(o);
    fillTable('peers', o.peers.map(function (p) {
      return [p.name, p.direction, { text: p.state, cls: 'state-' + p.state }, p.rttMs === null ? '-' : p.rttMs + ' ms', p.inflight.out + ' out / ' + p.inflight.in + ' in', String(p.unmatchedPongs || 0), p.sharedWithUs.join(', ') || '-', p.sharedByUs.join(', ') || '-'];
    }), function (i) { return { 'data-peer': o.peers[i].name, 'data-state': o.peers[i].state }; });
    // the links a reload or a newer link let go, counted under the current ones (as switchyard status does): a peer
    // holding two connections from this gateway after a reload is one of them
    var held = o.retiringLinks;
    var heldLine = $('retiring-links');
    heldLine.hidden = held.retiring + held.handingOver === 0;
    heldLine.textContent = heldLine.hidden ? '' : 'retiring links: ' + held.retiring + ' draining, ' + held.handingOver + ' handing over, in flight ' + held.inflight.out + ' out / ' + held.inflight.in + ' in (see switchyard bridge list)';
    heldLine.setAttribute('data-retiring', String(held.retiring));
    heldLine.setAttribute('data-handing-over', String(held.handingOver));
    fillTable('channels', o.channels.map(function (c) {
      return [c.channel, c.peer || 'local', c.provider + (c.mock ? ' (mock)' : ''), c.models.map(function (m) { return (c.skippedModels || []).some(function (k) { return k.model === m; }) ? m + ' (missing)' : m; }).join(', '), c.inflight + '/' + c.maxConcurrent, c.latencyMsEwma ? c.latencyMsEwma + ' ms' : '-', { text: c.health.state, cls: 'state-' + c.health.state }];
    }), function (i) { return { 'data-channel': o.channels[i].channel, 'data-via': o.channels[i].peer || 'local' }; });
    fillTable('models', o.models.map(function (m) {
      return [m.id, m.servedBy.map(function (s) { return s.channel + (s.peer ? ' @ ' + s.peer : ' (local)'); }).join(', ')];
    }));
    var b = o.sessions.byStatus;
    var counts = (b.active || 0) + ' active, ' + (b.running || 0) + ' running, ' + (b.closed || 0) + ' closed, ' + (b.moved || 0) + ' moved';
    // readingMs with storeReadable: a read under way, slower than a snapshot waits: the store is slow, not failing
    var reading = typeof o.sessions.readingMs === 'number' ? 'the session store is slow: a read under way for ' + (o.sessions.readingMs / 1000).toFixed(1) + ' s' : '';
    // unreadableReason: why it cannot be read (not connected: connection refused, no answer within 5 s, a read failed)
    var why = o.sessions.unreadableReason ? ' (' + o.sessions.unreadableReason + ')' : '';
    $('session-counts').textContent = o.sessions.storeReadable === false
      ? (o.sessions.readAt ? counts + ' as read at ' + o.sessions.readAt + ': the session store cannot be read now' + why : 'unknown: the session store cannot be read now' + why)
      : !reading ? counts : o.sessions.readAt ? counts + ' as read at ' + o.sessions.readAt + ' (' + reading + ')' : 'not read yet (' + reading + ')';
    $('session-counts').setAttribute('data-store', o.sessions.storeReadable === false ? 'unreadable' : reading ? 'slow' : 'fresh');
    fillTable('turns', o.sessions.running.map(function (t) { return [t.id, t.turnId || '-', t.startedAt || '-']; }));
    var warm = o.warmPools || [];
    $('warm-card').hidden = warm.length === 0;
    fillTable('warm', warm.map(function (w) {
      return [w.agentId, w.ready + '/' + w.target, w.booting + (w.claimed ? ' (' + w.claimed + ' claimed)' : ''), w.taken + '/' + w.cold,
        { text: w.failed + (w.consecutiveFailures ? ' (' + w.consecutiveFailures + ' in a row)' : ''), cls: w.retryAt ? 'state-backoff' : '' }, w.retryAt || '-'];
    }), function (i) { return { 'data-agent': warm[i].agentId, 'data-ready': String(warm[i].ready), 'data-booting': String(warm[i].booting) }; });
  }

  var ctrl = null;
  async function connect() {
    if (ctrl) ctrl.abort();
    ctrl = new AbortController();
    var t = token();
    var headers = t ? { authorization: 'Bearer ' + t } : {};
    var res;
    try {
      res = await fetch('/ui/events', { headers: headers, signal: ctrl.signal, cache: 'no-store' });
    } catch (e) { conn('disconnected, retrying', false); setTimeout(connect, 1000); return; }
    if (res.status === 401 || res.status === 403) {
      var msg = 'HTTP ' + res.status;
      try { msg = (await res.json()).error.message; } catch (e) {}
      sessionStorage.removeItem(KEY);
      conn('not connected', false);
      showLogin(t ? msg : '');
      return;
    }
    if (!res.ok || !res.body) { conn('HTTP ' + res.status + ', retrying', false); setTimeout(connect, 1000); return; }
    conn('live', true);
    var reader = res.body.getReader();
    var dec = new TextDecoder();
    var buf = '';
    try {
      for (;;) {
        var r = await reader.read();
        if (r.done) break;
        buf += dec.decode(r.value, { stream: true });
        var i;
        while ((i = buf.indexOf('\\n\\n')) !== -1) {
          var block = buf.slice(0, i); buf = buf.slice(i + 2);
          var data = block.split('\\n').filter(function (l) { return l.indexOf('data:') === 0; }).map(function (l) { return l.slice(5).trim(); }).join('');
          if (data) render(JSON.parse(data));
        }
      }
    } catch (e) { if (ctrl.signal.aborted) return; }
    conn('disconnected, retrying', false);
    setTimeout(connect, 1000);
  }

  $('login-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var v = $('token').value.trim();
    if (v) sessionStorage.setItem(KEY, v); else sessionStorage.removeItem(KEY);
    $('token').value = '';
    connect();
  });
  $('logout').addEventListener('click', function () { sessionStorage.removeItem(KEY); if (ctrl) ctrl.abort(); showLogin(''); });
  connect();
})();
`;
