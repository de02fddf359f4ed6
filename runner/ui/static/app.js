// The streamlets live view: draws /api/blueprint once, then applies each status that
// /api/events pushes (server-sent events). Plain JavaScript, no build step, no libraries.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const HEALTHS = ["running", "starting", "draining", "restarting", "failed", "unreachable",
  "done", "stopped"];

// What the page measures about itself (read by the tests).
const liveView = window.liveView = {
  updates: 0, lastApplyMs: 0, maxApplyMs: 0, totalApplyMs: 0, lastUpdateAt: 0,
  selected: null, ready: false,
};

const nodes = {streamlets: {}, topics: {}};
let lastStatus = null;
let panelKey = "";
let panelLoadedAt = 0;
const PANEL_MS = 2000;

function el(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function html(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function count(n) {
  if (n === null || n === undefined) return "-";
  if (n >= 1e9) return (n / 1e9).toFixed(1) + "G";
  if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (n >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return String(n);
}

function rate(r) {
  if (r === null || r === undefined) return "-";
  return r >= 100 ? count(Math.round(r)) : String(Math.round(r * 10) / 10);
}

function drawGraph(bp) {
  document.getElementById("app-name").textContent = bp.name;
  document.getElementById("mode").textContent = {
    local: "in-process", kafka: "Kafka", metrics: "/metrics"}[bp.mode] || bp.mode;
  document.title = bp.name + " · streamlets live view";
  const svg = document.getElementById("graph");
  svg.setAttribute("width", bp.width);
  svg.setAttribute("height", bp.height);
  svg.setAttribute("viewBox", `0 0 ${bp.width} ${bp.height}`);
  const defs = el("defs");
  const marker = el("marker", {id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5",
    markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse"});
  marker.appendChild(el("path", {d: "M 0 0 L 10 5 L 0 10 z", fill: "#8f97a5"}));
  defs.appendChild(marker);
  svg.appendChild(defs);
  const boxes = {};
  for (const s of bp.streamlets) boxes["streamlet:" + s.name] = s;
  for (const t of bp.topics) boxes["topic:" + t.key] = t;
  const edges = el("g", {class: "edges"});
  for (const e of bp.edges) {
    const a = boxes[e.from.kind + ":" + e.from.name];
    const b = boxes[e.to.kind + ":" + e.to.name];
    if (!a || !b) continue;
    let d;
    const x1 = a.x + a.w, y1 = a.y + a.h / 2, x2 = b.x, y2 = b.y + b.h / 2;
    if (x2 > x1) {
      const c = Math.max((x2 - x1) / 2, 20);
      d = `M ${x1} ${y1} C ${x1 + c} ${y1}, ${x2 - c} ${y2}, ${x2} ${y2}`;
    } else {  // an edge back to an earlier layer: round below both
      const low = Math.max(a.y + a.h, b.y + b.h) + 30;
      d = `M ${x1} ${y1} C ${x1 + 60} ${low}, ${x2 - 60} ${low}, ${x2} ${y2}`;
    }
    edges.appendChild(el("path", {class: "edge", d, "marker-end": "url(#arrow)"}));
    if (e.port) {
      const lx = (x1 + x2) / 2, ly = (y1 + y2) / 2 - 4;
      edges.appendChild(el("text", {class: "edge-label", x: lx, y: ly,
        "text-anchor": "middle"}, e.port));
    }
  }
  svg.appendChild(edges);
  for (const s of bp.streamlets) {
    const g = el("g", {class: "node streamlet health-starting", id: "streamlet-" + s.name,
      "data-name": s.name, "data-health": "starting", transform: `translate(${s.x},${s.y})`});
    g.appendChild(el("rect", {class: "body", width: s.w, height: s.h, rx: 8}));
    g.appendChild(el("rect", {class: "band", width: 7, height: s.h, rx: 3}));
    const title = s.name + (s.replicas > 1 ? `  ×${s.replicas}` : "");
    g.appendChild(el("text", {class: "name", x: 16, y: 20}, title));
    const health = el("text", {class: "health", x: s.w - 8, y: 20}, "starting");
    const rates = el("text", {class: "line rates", x: 16, y: 39}, "in - /s · out - /s");
    const totals = el("text", {class: "line totals", x: 16, y: 55}, "");
    const bad = el("text", {class: "line problems", x: 16, y: 71}, "");
    const extra = el("text", {class: "line extra", x: 16, y: 87}, "");
    for (const t of [health, rates, totals, bad, extra]) g.appendChild(t);
    const tip = el("title", {}, `${s.name}: ${s.class}` +
      (s.description ? "\n" + s.description : "") + "\nclick for details");
    g.appendChild(tip);
    g.addEventListener("click", () => select(s.name));
    svg.appendChild(g);
    nodes.streamlets[s.name] = {g, health, rates, totals, bad, extra, spec: s};
  }
  for (const t of bp.topics) {
    const g = el("g", {class: "node topic", id: "topic-" + t.key, "data-key": t.key,
      transform: `translate(${t.x},${t.y})`});
    g.appendChild(el("rect", {class: "body", width: t.w, height: t.h, rx: t.h / 2}));
    g.appendChild(el("text", {class: "name", x: t.w / 2, y: 19, "text-anchor": "middle"},
      t.name));
    const line = el("text", {class: "line", x: t.w / 2, y: 35, "text-anchor": "middle"},
      `- /s · ${t.partitions} partition${t.partitions === 1 ? "" : "s"}`);
    g.appendChild(line);
    g.appendChild(el("title", {}, `topic ${t.name} (${t.codec})`));
    svg.appendChild(g);
    nodes.topics[t.key] = {g, line, spec: t};
  }
  const legend = document.getElementById("legend");
  for (const h of HEALTHS) {
    const item = html("span", {});
    const swatch = html("i", {});
    swatch.style.background = `var(--${h})`;
    item.appendChild(swatch);
    item.appendChild(document.createTextNode(h));
    legend.appendChild(item);
  }
}

function applyStatus(status) {
  const start = performance.now();
  lastStatus = status;
  const runState = document.getElementById("run-state");
  runState.textContent = status.run;
  runState.className = "badge run-" + status.run;
  document.getElementById("run-seconds").textContent = `${Math.round(status.seconds)} s`;
  document.getElementById("run-error").textContent = status.error || "";
  document.getElementById("run-error").title = status.error || "";
  for (const [name, s] of Object.entries(status.streamlets)) {
    const n = nodes.streamlets[name];
    if (!n) continue;
    if (n.g.dataset.health !== s.health) {
      n.g.classList.remove("health-" + n.g.dataset.health);
      n.g.classList.add("health-" + s.health);
      n.g.dataset.health = s.health;
    }
    n.g.dataset.recordsIn = s.records_in;
    n.g.dataset.recordsOut = s.records_out;
    n.g.dataset.errors = s.errors;
    n.g.dataset.deadLetters = s.dead_letters;
    const replicas = s.replicas.length > 1 ? ` (${s.replicas.join(", ")})` : "";
    n.health.textContent = s.health;
    n.health.parentNode.querySelector("title").textContent =
      `${name}: ${n.spec.class}\nhealth: ${s.health}${replicas}\nclick for details`;
    n.rates.textContent = `in ${rate(s.in_per_second)}/s · out ${rate(s.out_per_second)}/s`;
    n.totals.textContent = `${count(s.records_in)} in · ${count(s.records_out)} out`;
    n.bad.textContent = `${count(s.errors)} errors · ${count(s.dead_letters)} dead letters`;
    n.bad.classList.toggle("bad", s.errors > 0 || s.dead_letters > 0);
    const extra = [];
    if (s.lag !== null && s.lag !== undefined) extra.push(`lag ${count(s.lag)}`);
    if (s.state_entries !== null && s.state_entries !== undefined)
      extra.push(`state ${count(s.state_entries)}`);
    if (s.open_windows !== null && s.open_windows !== undefined)
      extra.push(`windows ${count(s.open_windows)}`);
    n.extra.textContent = extra.join(" · ");
  }
  for (const [key, t] of Object.entries(status.topics)) {
    const n = nodes.topics[key];
    if (!n) continue;
    n.g.dataset.records = t.records === null ? "" : t.records;
    n.line.textContent = `${rate(t.per_second)}/s · ${t.partitions} ` +
      `partition${t.partitions === 1 ? "" : "s"}`;
  }
  if (liveView.selected) {
    // The panel is fetched again when what it lists has changed: at once when the health
    // did, else at most every PANEL_MS (a streamlet failing every record stays cheap).
    const s = status.streamlets[liveView.selected];
    const key = s ? `${s.health}|${s.errors}|${s.dead_letters}` : "";
    const healthChanged = s && !panelKey.startsWith(s.health + "|");
    const due = Date.now() - panelLoadedAt >= PANEL_MS;
    if (key !== panelKey && (healthChanged || due)) loadPanel(liveView.selected);
    else if (s) showSummary(s);
  }
  const took = performance.now() - start;
  liveView.updates += 1;
  liveView.lastApplyMs = took;
  liveView.maxApplyMs = Math.max(liveView.maxApplyMs, took);
  liveView.totalApplyMs += took;
  liveView.lastUpdateAt = Date.now();
  document.getElementById("connection").textContent = `${liveView.updates} updates`;
}

function select(name) {
  if (liveView.selected && nodes.streamlets[liveView.selected])
    nodes.streamlets[liveView.selected].g.classList.remove("selected");
  liveView.selected = name;
  nodes.streamlets[name].g.classList.add("selected");
  document.getElementById("panel").hidden = false;
  document.getElementById("panel-title").textContent = name;
  loadPanel(name);
}

function showSummary(s) {
  const parts = [`health ${s.health}`];
  if (s.replicas.length > 1) parts.push(`replicas: ${s.replicas.join(", ")}`);
  parts.push(`${s.records_in} in, ${s.records_out} out, ${s.errors} errors, ` +
    `${s.dead_letters} dead letters, ${s.skipped} skipped`);
  if (s.late) parts.push(`${s.late} late`);
  if (s.lag !== null && s.lag !== undefined) parts.push(`lag ${s.lag}`);
  if (s.state_entries !== null && s.state_entries !== undefined)
    parts.push(`state entries ${s.state_entries}`);
  if (s.open_windows !== null && s.open_windows !== undefined)
    parts.push(`open windows ${s.open_windows}`);
  document.getElementById("panel-summary").textContent = parts.join(" · ");
}

function entryHead(item, e, message) {
  item.appendChild(html("div", {class: "what"},
    `${e.stage}: ${e.error_class}` + (message ? `: ${message}` : "")));
  if (e.where) item.appendChild(html("div", {class: "where"}, "at " + e.where));
  if (e.topic) {
    item.appendChild(html("div", {class: "from"},
      `from ${e.topic} [${e.partition}] @ ${e.offset}` + (e.inlet ? `, inlet ${e.inlet}` : "")));
  }
}

async function loadPanel(name) {
  const s = lastStatus && lastStatus.streamlets[name];
  panelKey = s ? `${s.health}|${s.errors}|${s.dead_letters}` : "";
  panelLoadedAt = Date.now();
  const response = await fetch("/api/streamlets/" + encodeURIComponent(name));
  if (!response.ok || liveView.selected !== name) return;
  const data = await response.json();
  document.getElementById("panel-title").textContent =
    `${name}  ·  ${data.class}` + (data.replicas > 1 ? `  ×${data.replicas}` : "");
  if (data.status) showSummary(data.status);
  document.getElementById("panel-config").textContent = JSON.stringify(data.config, null, 2);
  const errors = document.getElementById("panel-errors");
  errors.replaceChildren();
  for (const e of data.errors) {
    const item = html("li", {class: "error"});
    entryHead(item, e, e.message);
    errors.appendChild(item);
  }
  if (!data.errors.length) errors.appendChild(html("li", {class: "empty"}, "none"));
  const dead = document.getElementById("panel-dead-letters");
  dead.replaceChildren();
  for (const d of data.dead_letters) {
    const item = html("li", {class: "dead-letter"});
    entryHead(item, d, d.error_message);
    if (d.key !== null) item.appendChild(html("div", {class: "from"}, "key " + d.key));
    if (Object.keys(d.headers).length)
      item.appendChild(html("div", {class: "from"}, "headers " + JSON.stringify(d.headers)));
    if (d.record !== null) {
      item.appendChild(html("pre", {class: "record"}, JSON.stringify(d.record, null, 2)));
    } else {
      item.appendChild(html("div", {class: "from"}, `value (${d.record_error}):`));
      item.appendChild(html("pre", {class: "record"}, d.value === null ? "null" : d.value));
    }
    dead.appendChild(item);
  }
  if (!data.dead_letters.length) dead.appendChild(html("li", {class: "empty"}, "none"));
}

function connect() {
  const events = new EventSource("/api/events");
  events.addEventListener("status", (event) => applyStatus(JSON.parse(event.data)));
  events.onerror = () => {
    document.getElementById("connection").textContent =
      `${liveView.updates} updates · disconnected (retrying)`;
  };
}

document.getElementById("panel-close").addEventListener("click", () => {
  if (liveView.selected && nodes.streamlets[liveView.selected])
    nodes.streamlets[liveView.selected].g.classList.remove("selected");
  liveView.selected = null;
  document.getElementById("panel").hidden = true;
});

fetch("/api/blueprint").then((r) => r.json()).then((bp) => {
  drawGraph(bp);
  liveView.ready = true;
  connect();
});
