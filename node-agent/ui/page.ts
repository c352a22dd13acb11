// `bpfnet ui`'s page: plain HTML, CSS and a script, no framework. The script listens to the
// server's event stream (/events: "snapshot" every poll, "flow" per monitor event) and renders
// with textContent only: endpoint ids and labels come from the hosts and are never parsed as HTML.

export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>bpfnet</title>
<link rel="stylesheet" href="/app.css">
</head>
<body>
<header><h1>bpfnet</h1><span id="conn">connecting…</span> <span id="updated"></span></header>
<section><h2>Hosts</h2><table id="hosts"><thead><tr><th>host</th><th>state</th><th>mode</th><th>underlay</th><th>pod CIDR</th><th>health endpoint</th></tr></thead><tbody></tbody></table></section>
<section><h2>Health matrix <small>(row probes column)</small></h2><table id="matrix"></table><p id="matrix-summary"></p></section>
<section><h2>Endpoints</h2><table id="endpoints"><thead><tr><th>host</th><th>id</th><th>address</th><th>labels</th><th>identity</th><th>status</th></tr></thead><tbody></tbody></table></section>
<section><h2>Drops by reason</h2><table id="counters"><thead><tr><th>reason</th><th>seen live</th><th>datapath total</th></tr></thead><tbody></tbody></table></section>
<section><h2>Flows and drops <small>(live, newest first)</small></h2><p id="streams"></p><table id="flows"><thead><tr><th>time</th><th>host</th><th>type</th><th>reason</th><th>source</th><th>destination</th><th>proto</th><th>endpoint</th></tr></thead><tbody></tbody></table></section>
<script src="/app.js"></script>
</body>
</html>
`;

export const PAGE_CSS = `body{font:14px system-ui,sans-serif;margin:1em 2em;color:#222}
header{display:flex;gap:1em;align-items:baseline}h1{margin:0}
table{border-collapse:collapse;margin:.3em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}
.ok{background:#dfd}.down{background:#fdd}.unknown{background:#eee}tr.drop td{background:#fee}
#conn.live{color:green}#conn.lost{color:#b00}small{font-weight:normal;color:#666}
`;

export const PAGE_JS = `"use strict";
const MAX_FLOWS = 200;
const live = {};
let datapath = {};
const $ = (id) => document.getElementById(id);
function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}
function rows(table, items, fill) {
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const it of items) {
    const tr = document.createElement("tr");
    fill(tr, it);
    body.appendChild(tr);
  }
}
function renderCounters() {
  const reasons = [...new Set([...Object.keys(live), ...Object.keys(datapath)])].sort();
  rows($("counters"), reasons, (tr, r) => {
    tr.dataset.reason = r;
    cell(tr, r);
    cell(tr, live[r] || 0);
    cell(tr, datapath[r] || 0);
  });
}
function renderSnapshot(s) {
  $("updated").textContent = "updated " + s.at;
  rows($("hosts"), s.hosts, (tr, h) => {
    tr.dataset.host = h.host;
    cell(tr, h.host);
    cell(tr, h.state, h.ok ? "ok" : "down");
    cell(tr, h.mode);
    cell(tr, h.underlayIp);
    cell(tr, h.podCidr);
    cell(tr, h.healthIp);
  });
  const names = s.hosts.map((h) => h.host);
  const m = $("matrix");
  m.replaceChildren();
  const head = document.createElement("tr");
  cell(head, "from \\\\ to");
  for (const n of names) cell(head, n);
  m.appendChild(head);
  for (const from of names) {
    const tr = document.createElement("tr");
    cell(tr, from);
    for (const to of names) {
      if (to === from) { cell(tr, "–"); continue; }
      const c = s.matrix.cells.find((x) => x.from === from && x.to === to);
      const td = cell(tr, c ? c.state : "unknown", c ? c.state : "unknown");
      td.title = c ? c.detail : "";
      td.dataset.path = from + "→" + to;
    }
    m.appendChild(tr);
  }
  $("matrix-summary").textContent = s.matrix.allOk ? "all paths ok" : s.matrix.cells.filter((c) => c.state !== "ok").length + " paths not ok";
  const eps = s.hosts.flatMap((h) => h.endpoints.map((e) => Object.assign({ host: h.host }, e)));
  rows($("endpoints"), eps, (tr, e) => {
    tr.dataset.endpoint = e.host + "/" + e.id;
    cell(tr, e.host);
    cell(tr, e.id);
    cell(tr, e.ip);
    cell(tr, Object.entries(e.labels).map(([k, v]) => k + "=" + v).join(", "));
    cell(tr, e.identity);
    cell(tr, e.status, e.status === "ready" ? "ok" : "down");
  });
  datapath = s.drops;
  renderCounters();
}
function addFlow(e) {
  const body = $("flows").tBodies[0];
  const tr = document.createElement("tr");
  tr.className = e.type;
  cell(tr, e.time);
  cell(tr, e.host);
  cell(tr, e.type);
  cell(tr, e.reasonName || e.verdict || "");
  // Ports only for TCP and UDP (ICMP's "port" is its echo id).
  const port = (p) => (e.proto === 6 || e.proto === 17) && p ? ":" + p : "";
  cell(tr, e.source.ip + port(e.source.port));
  cell(tr, e.destination.ip + port(e.destination.port));
  cell(tr, e.proto);
  cell(tr, e.endpoint || e.endpointId || "");
  body.insertBefore(tr, body.firstChild);
  while (body.rows.length > MAX_FLOWS) body.deleteRow(body.rows.length - 1);
  if (e.type === "drop") {
    const r = e.reasonName || String(e.reason);
    live[r] = (live[r] || 0) + 1;
    renderCounters();
  }
}
const es = new EventSource("/events");
es.onopen = () => { $("conn").textContent = "live"; $("conn").className = "live"; };
es.onerror = () => { $("conn").textContent = "reconnecting…"; $("conn").className = "lost"; };
es.addEventListener("snapshot", (m) => renderSnapshot(JSON.parse(m.data)));
es.addEventListener("flow", (m) => addFlow(JSON.parse(m.data)));
es.addEventListener("streams", (m) => { $("streams").textContent = JSON.parse(m.data).text; });
`;
