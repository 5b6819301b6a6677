// tickbridge dashboard page: one EventSource on /events, charts drawn as
// plain SVG. Nothing is loaded from anywhere but this server.
'use strict';

const MAX_WINDOW_S = 180;      // seconds of history on the time charts, at most
let WINDOW_S = 30;             // grows with the history, up to MAX_WINDOW_S
const PRICE_POINTS = 300;      // trades kept per symbol for its line
const COLORS = ['#58a6ff', '#3fb950', '#d29922', '#bc8cff', '#ff7b72', '#39c5cf', '#f778ba', '#a5d6ff'];
const SVGNS = 'http://www.w3.org/2000/svg';
const $ = (id) => document.getElementById(id);

// Everything the page knows, also read by the browser test.
const tb = {
  es: null,
  lastId: null,          // last SSE id seen: the Kafka position to resume from
  expected: {},          // partition -> next offset this page should receive
  messages: 0, events: 0, gaps: 0, dups: 0, resumes: 0, connections: 0,
  delays: [],            // ms from the event leaving the server to arriving here
  status: null,          // last status event
  hist: [],              // status history: {t, dash, targets}
  prices: {},            // symbol -> {text, points: [number], dir}
  colorOf: {},
};
window.tb = tb;

function color(name) {
  if (!(name in tb.colorOf)) tb.colorOf[name] = COLORS[Object.keys(tb.colorOf).length % COLORS.length];
  return tb.colorOf[name];
}

function parseCursor(id) {
  const slash = id.lastIndexOf('/');
  const next = {};
  for (const part of id.slice(slash + 1).split(',')) {
    if (!part) continue;
    const [p, o] = part.split(':');
    next[p] = Number(o);
  }
  return { topic: id.slice(0, slash), next };
}

function fmt(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  if (Math.abs(n) >= 100) return Math.round(n).toLocaleString('en-US');
  return (Math.round(n * 10) / 10).toLocaleString('en-US');
}

// ---------- the stream

function streamQuery() {
  if (tb.lastId) return '?last_event_id=' + encodeURIComponent(tb.lastId);
  const from = new URLSearchParams(location.search).get('from');
  return from ? '?from=' + encodeURIComponent(from) : '';
}

function connect() {
  const es = new EventSource('/events' + streamQuery());
  tb.es = es;
  tb.connections += 1;
  tb.isLive = false;
  setConn('connecting…', '');
  es.onopen = () => setConn('live', 'up');
  es.onerror = (e) => {
    if (e.data) return; // the server's own `error` event, handled below
    setConn(es.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting…', 'down');
    tb.reconnecting = true;
  };
  es.addEventListener('replay', (e) => {
    const c = parseCursor(e.lastEventId);
    if (Object.keys(tb.expected).length === 0) tb.expected = { ...c.next };
    tb.lastId = e.lastEventId;
  });
  es.addEventListener('live', (e) => {
    const c = parseCursor(e.lastEventId);
    if (Object.keys(tb.expected).length === 0) {
      tb.expected = { ...c.next };
    } else {
      // The server registered this stream at c: it must be where we are.
      for (const p of Object.keys(c.next)) {
        const want = tb.expected[p] ?? c.next[p];
        if (c.next[p] > want) tb.gaps += c.next[p] - want;
        if (c.next[p] < want) tb.dups += want - c.next[p];
        tb.expected[p] = Math.max(want, c.next[p]);
      }
    }
    if (tb.connections > 1 || tb.reconnecting) tb.resumes += 1;
    tb.reconnecting = false;
    tb.isLive = true;
    tb.lastId = e.lastEventId;
    onStatus(JSON.parse(e.data));
    setConn('live', 'up');
  });
  es.addEventListener('batch', (e) => {
    const d = JSON.parse(e.data);
    tb.events += 1;
    if (tb.isLive) tb.delays.push(Date.now() - d.at); // not while catching up
    if (tb.delays.length > 2000) tb.delays.splice(0, tb.delays.length - 2000);
    for (const m of d.m) take(m);
    tb.lastId = e.lastEventId;
    $('cursor').textContent = e.lastEventId;
  });
  es.addEventListener('status', (e) => onStatus(JSON.parse(e.data)));
  es.addEventListener('notice', (e) => console.warn('notice', e.data));
  es.addEventListener('error', (e) => { if (e.data) console.warn('server error event', e.data); });
}

// Drops this page's connection and resumes from the last id, as a browser
// does after a network cut (used by the browser test too).
tb.kill = function () {
  tb.es.close();
  tb.reconnecting = true;
  setConn('reconnecting…', 'down');
  setTimeout(connect, 500);
};

function take(m) {
  const want = tb.expected[m.p];
  if (want === undefined) tb.expected[m.p] = m.o + 1;
  else if (m.o === want) tb.expected[m.p] = want + 1;
  else if (m.o < want) { tb.dups += 1; return; }
  else { tb.gaps += m.o - want; tb.expected[m.p] = m.o + 1; }
  tb.messages += 1;
  if (m.k === 't') {
    const s = tb.prices[m.s] || (tb.prices[m.s] = { text: '', points: [], dir: '' });
    const v = Number(m.px);
    const last = s.points.length ? s.points[s.points.length - 1] : v;
    s.dir = v > last ? 'up' : v < last ? 'down' : s.dir;
    s.text = m.px;
    s.source = m.x;
    s.points.push(v);
    if (s.points.length > PRICE_POINTS) s.points.shift();
  }
}

function setConn(text, cls) {
  $('conn-text').textContent = text;
  $('dot').className = 'dot ' + cls;
}

// ---------- status: scraped processes and the dashboard's own numbers

function onStatus(st) {
  tb.status = st;
  tb.hist.push({ t: st.at / 1000, dash: st.dash, targets: st.targets });
  while (tb.hist.length && tb.hist[0].t < st.at / 1000 - MAX_WINDOW_S - 5) tb.hist.shift();
  WINDOW_S = Math.min(MAX_WINDOW_S, Math.max(30, Math.ceil((st.at / 1000 - tb.hist[0].t) / 10) * 10));
  $('topic').textContent = st.dash.topic;
  $('group').textContent = st.dash.group;
  render();
}

function targets(kind) {
  return (tb.status ? tb.status.targets : []).filter((t) => kind === undefined || t.kind === kind);
}

// Per-second rate of f(target) between consecutive status events.
function rates(name, f) {
  const out = [];
  for (let i = 1; i < tb.hist.length; i++) {
    const a = tb.hist[i - 1], b = tb.hist[i];
    const ta = name === null ? a.dash : a.targets.find((x) => x.name === name);
    const tb_ = name === null ? b.dash : b.targets.find((x) => x.name === name);
    if (!ta || !tb_ || b.t <= a.t) continue;
    out.push([b.t, Math.max(0, (f(tb_) - f(ta)) / (b.t - a.t))]);
  }
  return out;
}

const handled = (t) => t.ticks + t.gap_notices;
function published(kind) {
  // What the producers report having put on a sink, or what the dashboard
  // read from the topic, whichever is larger: a producer updates its
  // counters once per stats interval and may exit before its last update
  // is scraped, while every message on the topic reaches the dashboard.
  let n = 0;
  for (const p of targets('producer')) n += p.published[kind] || 0;
  return Math.max(n, tb.status ? tb.status.dash.messages : 0);
}

function render() {
  renderPrices();
  renderSplit();
  renderBroadcast();
  renderLag();
  renderLatency();
  renderArrival();
  renderTimeline();
  renderIntegrity();
}

// ---------- SVG helpers

function el(tag, attrs, parent) {
  const e = document.createElementNS(SVGNS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}

function frame(svg) {
  svg.replaceChildren();
  const vb = svg.viewBox.baseVal;
  return { w: vb.width, h: vb.height, pad: { l: 44, r: 8, t: 8, b: 18 } };
}

// Draws time series: [{name, color, points:[[t,v]], dashed, area}] over the
// last WINDOW_S seconds. `stack` stacks the area series.
function timeChart(svg, series, opts = {}) {
  const f = frame(svg);
  const now = tb.status ? tb.status.at / 1000 : Date.now() / 1000;
  const t0 = now - WINDOW_S;
  let max = opts.min || 1;
  const stacked = [];
  if (opts.stack) {
    const base = {};
    for (const s of series.filter((s) => s.area)) {
      const pts = s.points.map(([t, v]) => { const b = base[t] || 0; base[t] = b + v; return [t, b, b + v]; });
      stacked.push({ ...s, pts });
      for (const p of pts) max = Math.max(max, p[2]);
    }
  }
  for (const s of series.filter((s) => !s.area || !opts.stack)) for (const [, v] of s.points) max = Math.max(max, v);
  max *= 1.1;
  const X = (t) => f.pad.l + ((t - t0) / WINDOW_S) * (f.w - f.pad.l - f.pad.r);
  const Y = (v) => f.h - f.pad.b - (v / max) * (f.h - f.pad.t - f.pad.b);
  for (let i = 0; i <= 4; i++) {
    const v = (max / 4) * i;
    el('line', { x1: f.pad.l, x2: f.w - f.pad.r, y1: Y(v), y2: Y(v), class: 'grid' }, svg);
    el('text', { x: f.pad.l - 4, y: Y(v) + 4, 'text-anchor': 'end' }, svg).textContent = fmt(v);
  }
  for (let i = 0; i <= 3; i++) {
    const s = Math.round((WINDOW_S / 3) * i);
    el('text', { x: X(now - s), y: f.h - 4, 'text-anchor': s === 0 ? 'end' : i === 3 ? 'start' : 'middle' }, svg).textContent = s === 0 ? 'now' : `-${s}s`;
  }
  for (const s of stacked) {
    const pts = s.pts.filter(([t]) => t >= t0);
    if (pts.length < 2) continue;
    const top = pts.map(([t, , v]) => `${X(t)},${Y(v)}`);
    const bottom = pts.slice().reverse().map(([t, b]) => `${X(t)},${Y(b)}`);
    el('polygon', { points: top.concat(bottom).join(' '), fill: s.color, 'fill-opacity': 0.55, stroke: s.color, 'stroke-width': 1 }, svg);
  }
  for (const s of series.filter((s) => !s.area || !opts.stack)) {
    const pts = s.points.filter(([t]) => t >= t0);
    if (pts.length < 2) continue;
    el('polyline', {
      points: pts.map(([t, v]) => `${X(t)},${Y(v)}`).join(' '), fill: 'none', stroke: s.color,
      'stroke-width': s.width || 2, 'stroke-dasharray': s.dashed ? '5 4' : '',
    }, svg);
  }
}

function legend(div, items) {
  div.replaceChildren(...items.map(([name, c, value]) => {
    const span = document.createElement('span');
    span.innerHTML = `<i style="background:${c}"></i>${name} <b>${value}</b>`;
    return span;
  }));
}

// ---------- panels

function renderPrices() {
  const div = $('prices');
  for (const sym of Object.keys(tb.prices).sort()) {
    const s = tb.prices[sym];
    let card = div.querySelector(`[data-sym="${sym}"]`);
    if (!card) {
      card = document.createElement('div');
      card.className = 'price';
      card.dataset.sym = sym;
      card.innerHTML = `<div class="sym"></div><div class="px"></div><svg viewBox="0 0 300 40" preserveAspectRatio="none"></svg>`;
      div.appendChild(card);
    }
    card.querySelector('.sym').textContent = `${sym} · ${s.source || ''}`;
    const px = card.querySelector('.px');
    px.textContent = s.text;
    px.className = 'px ' + s.dir;
    const svg = card.querySelector('svg');
    svg.replaceChildren();
    if (s.points.length > 1) {
      const lo = Math.min(...s.points), hi = Math.max(...s.points), span = hi - lo || 1;
      const pts = s.points.map((v, i) => `${(i / (PRICE_POINTS - 1)) * 300},${38 - ((v - lo) / span) * 36}`);
      el('polyline', { points: pts.join(' '), fill: 'none', stroke: color(sym), 'stroke-width': 1.5 }, svg);
    }
  }
}

function renderSplit() {
  const workers = targets('worker');
  const series = workers.map((w) => ({ name: w.name, color: color(w.name), area: true, points: rates(w.name, handled) }));
  // Published per second, as it arrives on the topic (the producer's own
  // counters move in steps of its stats interval).
  const pubPts = rates(null, (d) => d.messages);
  series.push({ name: 'published', color: '#e6edf3', points: pubPts, dashed: true, width: 2 });
  timeChart($('split-chart'), series, { stack: true });
  const last = (pts) => (pts.length ? pts[pts.length - 1][1] : 0);
  legend($('split-legend'), workers.map((w) => [w.name, color(w.name), `${fmt(last(rates(w.name, handled)))}/s`])
    .concat([['published', '#e6edf3', `${fmt(last(pubPts))}/s`]]));
  const total = workers.reduce((a, w) => a + handled(w), 0);
  const dlq = workers.reduce((a, w) => a + Object.values(w.dead_letters).reduce((x, y) => x + y, 0), 0);
  const pub = published('rabbitmq');
  const parts = workers.map((w) => `${w.name} <b data-worker="${w.name}" data-count="${handled(w)}">${fmt(handled(w))}</b>`).join(' + ');
  const ok = workers.length > 0 && total + dlq === pub;
  $('split-sum').innerHTML = workers.length
    ? `${parts} + dead letters <b id="split-dlq" data-count="${dlq}">${fmt(dlq)}</b> = <b id="split-total" data-count="${total + dlq}">${fmt(total + dlq)}</b> of <b id="split-published" data-count="${pub}">${fmt(pub)}</b> published `
      + `<span class="${ok ? 'ok' : 'dim'}">${ok ? '✔ each message went to exactly one worker' : '(in flight)'}</span>`
    : '<span class="dim">no worker scraped (--scrape worker-1=http://…/metrics)</span>';
}

function renderBroadcast() {
  const pub = published('kafka');
  const rows = targets().filter((t) => t.kind === 'group' || t.kind === 'stream')
    .map((t) => [t.name, t.kind === 'stream' ? 'RabbitMQ stream' : 'Kafka group', handled(t) - (t.duplicates || 0)]);
  if (tb.status) rows.push(['dashboard', 'Kafka group (this page)', tb.status.dash.messages]);
  const div = $('broadcast');
  div.replaceChildren(...rows.map(([name, kind, n]) => {
    const r = document.createElement('div');
    r.className = 'bar-row';
    r.dataset.reader = name;
    r.dataset.count = n;
    const pct = pub > 0 ? Math.min(100, (100 * n) / pub) : 0;
    const full = n === pub && pub > 0;
    r.innerHTML = `<span title="${kind}">${name}</span><div class="bar"><div style="width:${pct}%;background:${full ? 'var(--ok)' : color(name)}"></div></div>`
      + `<span class="n">${fmt(n)} / ${fmt(pub)} ${full ? '<span class="ok">✔</span>' : ''}</span>`;
    return r;
  }));
}

function renderLag() {
  const series = targets().filter((t) => t.lag !== null && t.lag !== undefined)
    .map((t) => ({ name: t.name, color: color(t.name), points: tb.hist.map((h) => [h.t, (h.targets.find((x) => x.name === t.name) || {}).lag || 0]) }));
  series.push({ name: 'dashboard', color: color('dashboard'), points: tb.hist.map((h) => [h.t, Object.values(h.dash.lag || {}).reduce((a, b) => a + b, 0)]) });
  timeChart($('lag-chart'), series, { min: 10 });
  legend($('lag-legend'), series.map((s) => [s.name, s.color, fmt(s.points.length ? s.points[s.points.length - 1][1] : 0)]));
}

function renderLatency() {
  const series = [];
  const items = [];
  for (const t of targets().filter((t) => t.latency_p50_ms !== null && t.latency_p50_ms !== undefined)) {
    const pick = (k) => tb.hist.map((h) => [h.t, (h.targets.find((x) => x.name === t.name) || {})[k]]).filter(([, v]) => v !== undefined && v !== null);
    series.push({ name: t.name, color: color(t.name), points: pick('latency_p50_ms') });
    series.push({ name: t.name, color: color(t.name), points: pick('latency_p99_ms'), dashed: true, width: 1.5 });
    items.push([`${t.name} (${t.kind})`, color(t.name), `${fmt(t.latency_p50_ms)} / ${fmt(t.latency_p99_ms)} ms`]);
  }
  const d = (k) => tb.hist.map((h) => [h.t, h.dash[k]]);
  series.push({ name: 'dashboard', color: color('dashboard'), points: d('latency_p50_ms') });
  series.push({ name: 'dashboard', color: color('dashboard'), points: d('latency_p99_ms'), dashed: true, width: 1.5 });
  if (tb.status) items.push(['dashboard (Kafka)', color('dashboard'), `${fmt(tb.status.dash.latency_p50_ms)} / ${fmt(tb.status.dash.latency_p99_ms)} ms`]);
  timeChart($('lat-chart'), series, { min: 5 });
  legend($('lat-legend'), items);
}

function renderArrival() {
  const prods = targets('producer');
  const div = $('arrival');
  if (!prods.length) {
    div.innerHTML = '<span class="dim">no producer scraped (--scrape producer-ws=…, --scrape producer-poll=…)</span>';
    return;
  }
  div.replaceChildren(...prods.map((p) => {
    const lane = document.createElement('div');
    lane.className = 'lane';
    const pts = rates(p.name, (t) => t.ticks).slice(-60);
    const max = Math.max(1, ...pts.map(([, v]) => v));
    const svg = document.createElementNS(SVGNS, 'svg');
    svg.setAttribute('viewBox', '0 0 300 46');
    svg.setAttribute('preserveAspectRatio', 'none');
    pts.forEach(([, v], i) => {
      const h = (v / max) * 42;
      el('rect', { x: i * 5, y: 44 - h, width: 4, height: Math.max(h, 0.5), fill: color(p.name) }, svg);
    });
    const label = document.createElement('span');
    label.textContent = p.name;
    const n = document.createElement('span');
    n.className = 'n';
    n.textContent = `${fmt(p.ticks)} ticks`;
    lane.append(label, svg, n);
    return lane;
  }));
}

function renderTimeline() {
  const svg = $('timeline');
  const f = frame(svg);
  const now = tb.status ? tb.status.at : Date.now();
  const t0 = now - WINDOW_S * 1000;
  const X = (t) => f.pad.l + ((t - t0) / (WINDOW_S * 1000)) * (f.w - f.pad.l - f.pad.r);
  el('line', { x1: f.pad.l, x2: f.w - f.pad.r, y1: 40, y2: 40, class: 'grid' }, svg);
  el('text', { x: 4, y: 26 }, svg).textContent = 'gaps';
  el('text', { x: 4, y: 62 }, svg).textContent = 'DLQ';
  const marks = tb.status ? tb.status.dash.marks : [];
  for (const m of marks) {
    if (m.at < t0) continue;
    const gap = m.kind === 'gap';
    const g = el('g', {}, svg);
    el('rect', { x: X(m.at) - 2, y: gap ? 12 : 46, width: 4, height: 22, rx: 1, fill: gap ? '#d29922' : '#f85149' }, g);
    el('title', {}, g).textContent = `${gap ? 'gap notice' : 'dead letter'}: ${m.reason} · ${m.what}${m.count ? ' · ' + m.count : ''} · ${new Date(m.at).toLocaleTimeString()}`;
  }
  const ul = $('marks');
  ul.replaceChildren(...marks.slice(-40).reverse().map((m) => {
    const li = document.createElement('li');
    const gap = m.kind === 'gap';
    li.innerHTML = `<span class="k" style="color:${gap ? '#d29922' : '#f85149'}">${gap ? 'gap notice' : 'dead letter'}</span> `
      + `${new Date(m.at).toLocaleTimeString()} · <b>${m.reason}</b> · ${m.what}${m.count ? ` · ${m.count} ${gap ? 'missing' : 'letters'}` : ''}`;
    return li;
  }));
}

function pct(a, q) {
  if (!a.length) return null;
  const s = a.slice().sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((q / 100) * s.length))];
}

function renderIntegrity() {
  $('sse-messages').textContent = tb.messages;
  $('sse-events').textContent = tb.events;
  $('sse-gaps').textContent = tb.gaps;
  $('sse-dups').textContent = tb.dups;
  $('sse-resumes').textContent = tb.resumes;
  $('sse-gaps').className = tb.gaps ? 'bad' : 'ok';
  $('sse-dups').className = tb.dups ? 'bad' : 'ok';
  $('sse-delay').textContent = tb.delays.length ? `${fmt(pct(tb.delays, 50))} / ${fmt(pct(tb.delays, 99))} ms` : '–';
  if (tb.status) {
    const d = tb.status.dash;
    $('dash-counts').textContent = `${d.messages} / ${d.ticks} / ${d.gap_notices}`;
    $('dash-clients').textContent = d.clients;
  }
}

// ---------- replay button: a second, read-only stream from Kafka

function replay() {
  const from = $('replay-from').value.trim() || '0';
  const btn = $('replay-btn');
  btn.disabled = true;
  $('replay-card').hidden = false;
  const started = performance.now();
  let total = 0, done = 0, liveAt = null;
  const es = new EventSource('/events?from=' + encodeURIComponent(from));
  const text = $('replay-text');
  text.textContent = 'starting…';
  es.addEventListener('replay', (e) => {
    const d = JSON.parse(e.data);
    const a = parseCursor(d.from).next, b = parseCursor(d.live).next;
    total = Object.keys(b).reduce((s, p) => s + (b[p] - (a[p] || 0)), 0);
    liveAt = d.live;
  });
  es.addEventListener('batch', (e) => {
    done += JSON.parse(e.data).m.length;
    const p = total ? Math.min(100, (100 * done) / total) : 100;
    $('replay-bar').style.width = p + '%';
    text.textContent = `catching up: ${done.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} messages read back from Kafka `
      + `(${fmt(done / ((performance.now() - started) / 1000))} msg/s)`;
  });
  es.addEventListener('live', (e) => {
    $('replay-bar').style.width = '100%';
    const s = (performance.now() - started) / 1000;
    text.innerHTML = `<span class="ok">✔ caught up</span> with the live stream in ${fmt(s)} s: `
      + `${done.toLocaleString('en-US')} messages replayed from <code>${from}</code> to <code>${e.lastEventId}</code> (live position at the start: <code>${liveAt || '–'}</code>)`;
    es.close();
    btn.disabled = false;
  });
  es.addEventListener('error', (e) => {
    if (e.data) text.innerHTML = `<span class="bad">replay failed: ${JSON.parse(e.data).error}</span>`;
    else if (es.readyState === EventSource.CLOSED) text.innerHTML = '<span class="bad">replay refused (bad “from”?)</span>';
    else return;
    es.close();
    btn.disabled = false;
  });
}

$('replay-btn').addEventListener('click', replay);
connect();
setInterval(() => { renderIntegrity(); renderPrices(); }, 500);
