// trove dashboard: vanilla JS, no dependencies. Each page polls its /api/
// endpoint while it is shown; plots are SVG drawn here.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const k of kids) e.append(k);
  return e;
};

function bytes(n) {
  if (n == null) return "-";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0, x = n;
  while (x >= 1024 && i < u.length - 1) { x /= 1024; i++; }
  return (i === 0 ? x.toFixed(0) : x.toFixed(x < 10 ? 2 : 1)) + " " + u[i];
}
// compact is an axis label: 3 significant figures at most, no unit suffix.
function compact(n, isBytes) {
  const k = isBytes ? 1024 : 1000, u = isBytes ? ["B", "K", "M", "G", "T"] : ["", "k", "M", "G", "T"];
  if (n === 0) return "0";
  let i = 0;
  while (n >= k && i < u.length - 1) { n /= k; i++; }
  return (n >= 100 || n === 0 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2)).replace(/\.?0+$/, "") + u[i];
}
function num(n) { return n == null ? "-" : Math.round(n).toLocaleString("en-US"); }
function rate(n) { return n < 10 ? n.toFixed(1) : num(n); }
function shortID(id) { return id.slice(0, 8) + "…" + id.slice(-6); }
function cell(text, cls = "", field = "") {
  const td = el("td", { class: cls, text: String(text) });
  if (field) td.setAttribute("data-field", field);
  return td;
}

async function api(path) {
  const r = await fetch(path, { cache: "no-store" });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

const status = (msg, err) => { const s = $("#status"); s.textContent = msg; s.classList.toggle("err", !!err); };

// The router: #page or #page?k=v, #object/ID.
function route() {
  const h = location.hash.slice(1) || "nodes";
  const [path, qs] = h.split("?");
  const [page, arg] = path.split("/");
  return { page, arg, params: new URLSearchParams(qs || "") };
}

let timer = null, generation = 0;
function show() {
  const r = route();
  const known = ["nodes", "memory", "object", "activity", "calls"];
  const page = known.includes(r.page) ? r.page : "nodes";
  for (const s of document.querySelectorAll(".page")) s.classList.toggle("active", s.id === "page-" + page);
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === (page === "object" ? "memory" : page));
  clearTimeout(timer);
  const gen = ++generation;
  const every = { nodes: 2000, memory: 2000, object: 3000, activity: 1000, calls: 2000 }[page];
  const tick = async () => {
    try {
      await pages[page](r);
      status("updated " + new Date().toLocaleTimeString("en-GB"));
      document.body.dataset.rendered = page + ":" + (Number(document.body.dataset.renders || 0) + 1);
      document.body.dataset.renders = Number(document.body.dataset.renders || 0) + 1;
    } catch (e) {
      status(e.message, true);
      document.body.dataset.error = e.message;
    }
    if (gen === generation) timer = setTimeout(tick, every);
  };
  tick();
}

// Nodes ------------------------------------------------------------------

let members = [];
async function loadNodes() {
  const d = await api("/api/nodes");
  members = d.nodes;
  $("#self").textContent = "on " + d.self;
  return d;
}

function card(label, value, field) {
  const v = el("div", { class: "value", text: value });
  if (field) v.setAttribute("data-field", field);
  return el("div", { class: "card" }, el("div", { class: "label", text: label }), v);
}

async function nodesPage() {
  const d = await loadNodes();
  const t = d.totals;
  $("#node-cards").replaceChildren(
    card("Nodes alive", num(t.alive), "alive"),
    card("Capacity", bytes(t.capacity), "capacity"),
    card("Used", bytes(t.used), "used"),
    card("Objects", num(t.objects), "objects"));
  const rows = d.nodes.map(n => {
    const pct = n.capacity ? Math.min(100, 100 * n.used / n.capacity) : 0;
    const bar = el("span", { class: "bar" }, el("span", { class: pct > 80 ? "high" : "" }));
    bar.firstChild.style.width = pct.toFixed(1) + "%";
    const name = el("td", {}, el("strong", { text: n.name }), n.self ? el("span", { class: "muted", text: " (this node)" }) : "");
    const tr = el("tr", { "data-node": n.name }, name,
      el("td", {}, el("span", { class: "badge " + n.state, text: n.state, "data-field": "state" })),
      cell(bytes(n.capacity), "num", "capacity"), cell(bytes(n.used), "num", "used"),
      el("td", {}, bar, el("span", { class: "muted", text: " " + pct.toFixed(0) + "%" })),
      cell(num(n.objects), "num", "objects"), cell(bytes(n.pinned_bytes), "num", "pinned"), cell(bytes(n.spilled_bytes), "num", "spilled"),
      cell(n.slots ? n.slots_busy + " / " + n.slots_free : "-", "num", "slots"),
      cell(bytes(n.bytes_in_per_sec) + "/s", "num", "in"), cell(bytes(n.bytes_out_per_sec) + "/s", "num", "out"),
      cell(n.addr || "-", "muted id"));
    if (n.error) tr.title = n.error;
    return tr;
  });
  $("#nodes-table tbody").replaceChildren(...rows);
}

// Memory -----------------------------------------------------------------

const mem = { sort: "size", order: "desc", offset: 0 };

function fillSelect(sel, names, keep) {
  const cur = keep ?? sel.value;
  const first = sel.options[0];
  sel.replaceChildren(first, ...names.map(n => el("option", { value: n, text: n })));
  sel.value = names.includes(cur) ? cur : "";
}

async function memoryPage() {
  if (!members.length) await loadNodes();
  const f = $("#memory-filter");
  const names = members.map(m => m.name);
  fillSelect(f.node, names);
  fillSelect(f.owner, names);
  const q = new URLSearchParams({ sort: mem.sort, order: mem.order, offset: mem.offset, limit: f.limit.value });
  for (const k of ["node", "owner", "kind"]) if (f[k].value) q.set(k, f[k].value);
  const d = await api("/api/objects?" + q);
  const t = d.totals;
  $("#memory-totals").replaceChildren(
    card("Rows", num(t.rows), "rows"), card("Bytes", bytes(t.bytes), "bytes"),
    card("In memory", bytes(t.in_memory), "in_memory"), card("Spilled", bytes(t.spilled), "spilled"),
    card("Pinned", bytes(t.pinned), "pinned"));
  const rows = d.rows.map(r => {
    const tr = el("tr", { class: "clickable", "data-id": r.id, "data-node": r.node, title: "open " + r.id },
      el("td", { class: "id", text: shortID(r.id), "data-field": "id" }), cell(r.node, "", "node"), cell(r.owner, "", "owner"),
      cell(r.role, "", "role"), cell(bytes(r.size), "num", "size"), cell(r.where, "", "where"),
      cell(r.local_refs, "num", "local_refs"), cell(r.views, "num", "views"), cell(r.captured_in, "num", "captured_in"),
      cell(r.borrowers, "num", "borrowers"),
      el("td", {}, ...r.held_by.map(k => el("span", { class: "badge", "data-kind": k,
        text: k === "call_arg" ? `pending call ${r.call_function}` + (r.calls > 1 ? ` (+${r.calls - 1})` : "") : k.replace("_", " ") }))));
    tr.dataset.size = r.size;
    tr.onclick = () => { location.hash = "#object/" + r.id; };
    return tr;
  });
  if (!rows.length) rows.push(el("tr", {}, el("td", { class: "empty", colSpan: 11, text: "No objects match." })));
  $("#objects-table tbody").replaceChildren(...rows);
  for (const th of document.querySelectorAll("#objects-table th[data-sort]")) {
    th.classList.toggle("sorted-desc", th.dataset.sort === mem.sort && mem.order === "desc");
    th.classList.toggle("sorted-asc", th.dataset.sort === mem.sort && mem.order === "asc");
  }
  const last = Math.min(d.offset + d.rows.length, t.rows);
  $("#page-info").textContent = t.rows ? `${num(d.offset + 1)}–${num(last)} of ${num(t.rows)}` : "";
  $("#prev").disabled = d.offset === 0;
  $("#next").disabled = last >= t.rows || d.offset + 2 * d.limit > 10000;
  $("#memory-errors").textContent = d.nodes.filter(n => n.error).map(n => n.node + ": " + n.error).join("\n");
}

function refreshMemory() { if (route().page === "memory") show(); }
$("#memory-filter").addEventListener("change", () => { mem.offset = 0; refreshMemory(); });
for (const th of document.querySelectorAll("#objects-table th[data-sort]")) {
  th.addEventListener("click", () => {
    const k = th.dataset.sort;
    if (mem.sort === k) mem.order = mem.order === "desc" ? "asc" : "desc";
    else { mem.sort = k; mem.order = ["size", "local_refs", "views", "captured_in", "borrowers"].includes(k) ? "desc" : "asc"; }
    mem.offset = 0;
    refreshMemory();
  });
}
$("#prev").addEventListener("click", () => { mem.offset = Math.max(0, mem.offset - Number($("#memory-filter").limit.value)); refreshMemory(); });
$("#next").addEventListener("click", () => { mem.offset += Number($("#memory-filter").limit.value); refreshMemory(); });

// Object -------------------------------------------------------------------

function idList(ul, items, count) {
  const lis = items.map(x => {
    const id = typeof x === "string" ? x : x.id;
    const a = el("a", { href: "#object/" + id, text: id });
    return el("li", {}, a, typeof x === "string" ? "" : el("span", { class: "muted", text: "  on " + x.node }));
  });
  if (count > items.length) lis.push(el("li", { class: "none", text: `… and ${count - items.length} more` }));
  if (!lis.length) lis.push(el("li", { class: "none", text: "none" }));
  ul.replaceChildren(...lis);
}

async function objectPage(r) {
  $("#object-id").textContent = r.arg;
  let d;
  try {
    d = await api("/api/objects/" + encodeURIComponent(r.arg));
  } catch (e) {
    $("#object-cards").replaceChildren();
    $("#object-errors").textContent = e.message;
    for (const id of ["#object-copies", "#object-holders", "#object-borrowers"]) $(id + " tbody").replaceChildren();
    idList($("#object-contains"), [], 0); idList($("#object-contained-by"), [], 0);
    return;
  }
  $("#object-cards").replaceChildren(card("Size", bytes(d.size), "size"), card("Owner", d.owner, "owner"),
    card("Nodes with an entry", num(d.copies.length), "copies"), card("Borrowing nodes", num(d.borrowers.length), "borrowers"));
  $("#object-copies tbody").replaceChildren(...d.copies.map(c => el("tr", { "data-node": c.node },
    cell(c.node), cell(c.role, "", "role"), cell(c.state), cell(c.where), cell(bytes(c.size), "num"),
    cell(c.local_refs, "num"), cell(c.views, "num"), cell(c.captured_in, "num"),
    cell(c.calls ? `${c.calls}: ${c.call_function}` : "-", "", "calls"))));
  const holders = d.holders.map(h => el("tr", {}, cell(h.node), cell(h.full ? "sealed" : "partial"),
    cell(h.full ? "-" : `${h.chunks} of ${h.of} chunks held`)));
  if (!holders.length) holders.push(el("tr", {}, el("td", { class: "empty", colSpan: 3, text: "none known" })));
  $("#object-holders tbody").replaceChildren(...holders);
  const bs = d.borrowers.map(b => el("tr", {}, cell(b.node), cell(b.registrations, "num"), cell(b.copy ? "yes" : "no")));
  if (!bs.length) bs.push(el("tr", {}, el("td", { class: "empty", colSpan: 3, text: "no other node borrows it" })));
  $("#object-borrowers tbody").replaceChildren(...bs);
  idList($("#object-contains"), d.contains, d.contains_count);
  idList($("#object-contained-by"), d.contained_by, d.contained_by_count);
  $("#object-errors").textContent = (d.errors || []).join("\n");
}

// Activity -----------------------------------------------------------------

const series = [
  ["puts_per_sec", "Puts /s", rate], ["gets_per_sec", "Gets /s", rate], ["pulls_per_sec", "Pulls /s", rate],
  ["bytes_in_per_sec", "Bytes pulled in /s", b => bytes(b) + "/s", true], ["bytes_out_per_sec", "Bytes served out /s", b => bytes(b) + "/s", true],
  ["spills_per_sec", "Spills /s", rate], ["restores_per_sec", "Restores /s", rate], ["evictions_per_sec", "Evictions /s", rate],
  ["used", "Memory used", bytes, true], ["objects", "Objects", num],
];
const act = { since: 0, nodes: {}, cluster: [], key: "" };
const keepMS = 5 * 60 * 1000;

function plot(key, title, fmt, isBytes, pts) {
  const W = 420, H = 150, L = 44, R = 8, T = 8, B = 20;
  const box = el("div", { class: "plot", "data-series": key });
  const last = pts.length ? pts[pts.length - 1][key] : 0;
  box.append(el("div", { class: "title" }, el("span", { text: title }), el("span", { class: "now", text: pts.length ? fmt(last) : "-", "data-field": "now" })));
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text != null) e.textContent = text;
    svg.append(e);
    return e;
  };
  const now = Date.now();
  const t0 = pts.length ? Math.min(pts[0].t, pts[pts.length - 1].t - 60000) : now - 60000;
  const t1 = pts.length ? pts[pts.length - 1].t : now;
  const ymax = Math.max(isBytes ? 1024 : 1, ...pts.map(p => p[key])) * 1.1;
  const x = t => L + (W - L - R) * (t - t0) / Math.max(1, t1 - t0);
  const y = v => T + (H - T - B) * (1 - v / ymax);
  for (const f of [0, 0.5, 1]) {
    add("line", { class: "axis", x1: L, x2: W - R, y1: y(ymax * f), y2: y(ymax * f) });
    add("text", { x: L - 4, y: y(ymax * f) + 3, "text-anchor": "end" }, compact(ymax * f, isBytes));
  }
  add("text", { x: L, y: H - 5 }, `${Math.round((t1 - t0) / 1000)} s ago`);
  add("text", { x: W - R, y: H - 5, "text-anchor": "end" }, "now");
  if (pts.length > 1) {
    const d = pts.map((p, i) => (i ? "L" : "M") + x(p.t).toFixed(1) + "," + y(p[key]).toFixed(1)).join("");
    add("path", { class: "area", d: d + `L${x(t1).toFixed(1)},${y(0)}L${x(pts[0].t).toFixed(1)},${y(0)}Z` });
    add("path", { class: "line", d });
  }
  box.append(svg);
  box.dataset.points = pts.length;
  box.dataset.last = last;
  return box;
}

async function activityPage() {
  if (!members.length) await loadNodes();
  const sel = $("#activity-node");
  fillSelect(sel, members.map(m => m.name));
  const d = await api("/api/activity" + (act.since ? "?since=" + act.since : ""));
  const cut = p => p.filter(x => x.t > d.now - keepMS);
  for (const s of d.nodes) {
    const have = act.nodes[s.node] || [];
    const after = have.length ? have[have.length - 1].t : 0;
    act.nodes[s.node] = cut(have.concat(s.points.filter(p => p.t > after)));
  }
  const lastCluster = act.cluster.length ? act.cluster[act.cluster.length - 1].t : 0;
  act.cluster = cut(act.cluster.concat(d.cluster.filter(p => p.t > lastCluster)));
  // The next poll asks from the earliest last point of any node, so no node's points are missed.
  const lasts = d.nodes.filter(s => s.points.length).map(s => s.points[s.points.length - 1].t);
  if (lasts.length) act.since = Math.min(...lasts);
  const pts = sel.value ? (act.nodes[sel.value] || []) : act.cluster;
  $("#plots").replaceChildren(...series.map(([k, title, fmt, isBytes]) => plot(k, title, fmt, !!isBytes, pts)));
  $("#activity-info").textContent = `${pts.length} points, one per ${d.interval_ms / 1000} s; the last 5 minutes`;
}
$("#activity-node").addEventListener("change", () => { if (route().page === "activity") show(); });

// Calls --------------------------------------------------------------------

async function callsPage() {
  const st = $("#calls-state").value;
  const d = await api("/api/calls?limit=200" + (st ? "&state=" + st : ""));
  $("#calls-counts").replaceChildren(...["queued", "running", "finished", "failed"].map(s => card(s[0].toUpperCase() + s.slice(1), num(d.counts[s]), s)));
  $("#calls-message").textContent = d.message || "";
  const fmtTime = s => s ? new Date(s).toLocaleTimeString("en-GB") : "-";
  const ran = c => {
    if (!c.started) return "-";
    const ms = (c.finished ? new Date(c.finished) : new Date()) - new Date(c.started);
    return ms < 1 ? "< 1 ms" : ms < 1000 ? ms.toFixed(0) + " ms" : (ms / 1000).toFixed(2) + " s";
  };
  const rows = d.calls.map(c => el("tr", { "data-id": c.id },
    cell(c.id, "id"), cell(c.function), el("td", {}, el("span", { class: "badge " + c.state, text: c.state })),
    cell(c.caller), cell(c.executor || "-"), cell(c.attempt, "num"), cell(fmtTime(c.submitted)), cell(ran(c), "num"),
    el("td", { class: "errors", text: c.error || "" })));
  if (!rows.length) rows.push(el("tr", {}, el("td", { class: "empty", colSpan: 9, text: d.enabled ? "No calls." : "No remote functions on this node." })));
  $("#calls-table tbody").replaceChildren(...rows);
}
$("#calls-state").addEventListener("change", () => { if (route().page === "calls") show(); });

const pages = { nodes: nodesPage, memory: memoryPage, object: objectPage, activity: activityPage, calls: callsPage };
window.addEventListener("hashchange", show);
show();
