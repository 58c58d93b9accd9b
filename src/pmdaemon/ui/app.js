// pmdaemon dashboard: everything comes from the daemon's own API (REST + WebSocket) with
// the key the user typed, kept in sessionStorage for this tab only. No framework, no CDN.
"use strict";

const KEY_ITEM = "pmdaemon-api-key";
const HISTORY = 150; // samples kept per process (process_metrics every 2 s: 5 minutes)
const LOG_LINES = 500;

const state = {
  key: sessionStorage.getItem(KEY_ITEM) || "",
  access: "none",
  procs: new Map(),
  history: new Map(),
  selected: null,
  ws: null,
  retry: 0,
  refreshing: null,
};

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function headers(extra = {}) {
  return state.key ? { ...extra, "X-API-Key": state.key } : extra;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.headers) });
  if (response.status === 401) {
    showLogin("The key was refused.");
    throw new Error("unauthorized");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || `HTTP ${response.status}`);
  return body;
}

// -- formatting ------------------------------------------------------------------------

function bytes(n) {
  if (!n) return "0 B";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function uptime(seconds) {
  const s = Math.floor(seconds || 0);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

function notice(text) {
  $("notice").textContent = text || "";
}

// -- login -----------------------------------------------------------------------------

function showLogin(message) {
  if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
  $("main").hidden = true;
  $("login").hidden = false;
  $("logout").hidden = true;
  $("login-error").textContent = message || "";
  setConnection(false);
  $("key").focus();
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.key = $("key").value.trim();
  $("key").value = "";
  sessionStorage.setItem(KEY_ITEM, state.key);
  start();
});

$("logout").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_ITEM);
  state.key = "";
  showLogin("");
});

async function start() {
  let status;
  try {
    const response = await fetch("/api/status", { headers: headers() });
    if (response.status === 401) {
      showLogin(state.key ? "The key was refused." : "");
      return;
    }
    status = await response.json();
  } catch (error) {
    notice(`The daemon does not answer: ${error.message}`);
    setTimeout(start, 2000);
    return;
  }
  state.access = status.access;
  $("login").hidden = true;
  $("main").hidden = false;
  $("logout").hidden = !state.key;
  $("access").textContent = state.access === "read" ? "read-only key" : "";
  document.body.classList.toggle("read-only", state.access !== "full");
  await refresh();
  connect();
}

// -- processes -------------------------------------------------------------------------

async function refresh() {
  try {
    const [procs, system] = await Promise.all([api("/api/processes"), api("/api/system")]);
    state.procs = new Map(procs.map((p) => [p.id, p]));
    renderSystem(system);
    renderTable();
    notice("");
  } catch (error) {
    if (error.message !== "unauthorized") notice(`Could not load the processes: ${error.message}`);
  }
}

function refreshSoon() {
  if (!state.refreshing) {
    state.refreshing = setTimeout(() => { state.refreshing = null; refresh(); }, 150);
  }
}

function renderSystem(system) {
  const box = $("system");
  box.replaceChildren();
  const item = (label, value) => box.append(el("span", {}, `${label} `, el("b", { text: value })));
  item("host", system.hostname);
  item("cpu", `${system.cpu.usage.toFixed(1)}% of ${system.cpu.cores}`);
  item("memory", `${bytes(system.memory.used)} / ${bytes(system.memory.total)}`);
  item("load", system.cpu.load_average.join(" "));
  const counts = system.processes || {};
  item("processes", `${counts.online || 0} online / ${counts.total || 0}`);
}

const ACTIONS = ["stop", "restart", "reload", "delete"];

function actionButtons(proc) {
  if (state.access !== "full") return [];
  return ACTIONS.map((action) => el("button", {
    type: "button",
    class: action === "delete" ? "danger" : "",
    "data-action": action,
    text: action,
    onclick: (event) => { event.stopPropagation(); act(proc, action); },
  }));
}

function renderTable() {
  const body = $("processes").querySelector("tbody");
  body.replaceChildren();
  const procs = [...state.procs.values()].sort((a, b) => a.id - b.id);
  $("empty").hidden = procs.length > 0;
  $("processes").hidden = procs.length === 0;
  for (const p of procs) {
    const health = p.health_status || "";
    const row = el("tr", { "data-id": String(p.id), "data-name": p.name, onclick: () => select(p.id) },
      el("td", { class: "num", text: String(p.id) }),
      el("td", { text: p.name }),
      el("td", { class: `status status-${p.status}`, "data-field": "status", text: p.status }),
      el("td", { class: "num", "data-field": "pid", text: p.pid ? String(p.pid) : "-" }),
      el("td", { class: "num", text: p.port ? String(p.port) : "-" }),
      el("td", { class: "num", text: `${(p.cpu_usage || 0).toFixed(1)}%` }),
      el("td", { class: "num", text: bytes(p.memory_usage) }),
      el("td", { class: "num", text: p.uptime || "0s" }),
      el("td", { class: "num", "data-field": "restarts", text: String(p.restarts) }),
      el("td", { class: health ? `health-${health}` : "", text: health || "-" }),
      el("td", { class: "actions" }, ...actionButtons(p)));
    if (p.id === state.selected) row.classList.add("selected");
    body.append(row);
  }
  if (state.selected !== null) {
    if (!state.procs.has(state.selected)) closeDetail();
    else renderDetailHead(state.procs.get(state.selected));
  }
}

// Stream messages re-render the table at most once per frame: a burst (a restart of every
// process sends three status changes each) costs one render, not thousands.
let renderPending = false;
function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => { renderPending = false; renderTable(); });
}

async function act(proc, action) {
  if (action === "delete" && !window.confirm(`Delete ${proc.name} (id ${proc.id})? It is stopped and removed.`)) {
    return;
  }
  notice(`${action} ${proc.name}…`);
  try {
    const path = action === "delete" ? `/api/processes/${proc.id}` : `/api/processes/${proc.id}/${action}`;
    const result = await api(path, { method: action === "delete" ? "DELETE" : "POST" });
    notice(result.message || "");
  } catch (error) {
    if (error.message !== "unauthorized") notice(`${action} ${proc.name} failed: ${error.message}`);
  }
  refreshSoon();
}

// -- detail ----------------------------------------------------------------------------

function subscribe(kind, id) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify({ type: kind, logs: [String(id)] }));
  }
}

async function select(id) {
  if (state.selected !== null && state.selected !== id) subscribe("unsubscribe", state.selected);
  state.selected = id;
  $("detail").hidden = false;
  $("log").replaceChildren();
  renderTable();
  try {
    const [detail, logs] = await Promise.all([
      api(`/api/processes/${id}`),
      api(`/api/processes/${id}/logs?lines=100`),
    ]);
    if (state.selected !== id) return;
    renderInfo(detail);
    for (const line of logs.logs) appendLog(line);
  } catch (error) {
    if (error.message !== "unauthorized") notice(`Could not load process ${id}: ${error.message}`);
  }
  subscribe("subscribe", id);
  drawCharts();
}

function closeDetail() {
  if (state.selected !== null) subscribe("unsubscribe", state.selected);
  state.selected = null;
  $("detail").hidden = true;
}
$("detail-close").addEventListener("click", () => { closeDetail(); renderTable(); });

function renderDetailHead(proc) {
  $("detail-title").textContent = `${proc.name} (id ${proc.id}) — ${proc.status}`;
  $("detail-actions").replaceChildren(...actionButtons(proc));
}

function renderInfo(detail) {
  renderDetailHead(detail);
  const info = $("detail-info");
  info.replaceChildren();
  const row = (label, value) => info.append(el("dt", { text: label }), el("dd", { text: value }));
  const config = detail.config || {};
  row("script", [config.script, ...(config.args || [])].join(" "));
  row("directory", config.cwd || "");
  row("namespace", detail.namespace);
  row("restarts", `${detail.restarts}${detail.last_restart_reason ? ` (last: ${detail.last_restart_reason})` : ""}`);
  if (detail.health_check) {
    const h = detail.health_check;
    row("health check", `${h.check_type} ${h.url || h.script || ""}: ${h.status}${h.last_error ? ` (${h.last_error})` : ""}`);
  }
  if (detail.last_error) row("last error", detail.last_error);
  row("environment", Object.keys(config.env || {}).join(", ") || "-");
  row("logs", `${detail.logs.out_file}, ${detail.logs.error_file}`);
}

function appendLog(entry) {
  const log = $("log");
  const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  const text = entry.timestamp ? `${entry.timestamp}: ${entry.message}` : entry.message;
  log.append(el("div", { class: entry.type === "error" ? "err" : "", text }));
  while (log.childElementCount > LOG_LINES) log.firstElementChild.remove();
  if (stick) log.scrollTop = log.scrollHeight;
}

function drawChart(canvas, values, format) {
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const max = Math.max(1, ...values) * 1.1;
  ctx.strokeStyle = "#273039";
  ctx.beginPath();
  for (let i = 1; i < 4; i++) { ctx.moveTo(0, (height * i) / 4); ctx.lineTo(width, (height * i) / 4); }
  ctx.stroke();
  ctx.fillStyle = "#8b96a1";
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillText(format(max), 4, 12);
  if (values.length < 2) return;
  ctx.strokeStyle = "#58a6ff";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  values.forEach((v, i) => {
    const x = (width * i) / (HISTORY - 1);
    const y = height - (v / max) * height;
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
  ctx.fillText(format(values[values.length - 1]), width - 70, 12);
}

function drawCharts() {
  if (state.selected === null) return;
  const points = state.history.get(state.selected) || [];
  drawChart($("cpu-chart"), points.map((p) => p.cpu), (v) => `${v.toFixed(1)}%`);
  drawChart($("mem-chart"), points.map((p) => p.memory), bytes);
}

// -- live stream -----------------------------------------------------------------------

function setConnection(live) {
  const badge = $("connection");
  badge.textContent = live ? "live" : "offline";
  badge.className = `connection ${live ? "live" : "offline"}`;
}

// The key travels in the handshake as a subprotocol, pmdaemon.key.<base64url(key)>: a
// browser can set no header there, and a URL is no place for a key. Servers started with
// --ws-auth need it; the others take it as an auth message would.
function keyProtocols() {
  if (!state.key) return [];
  let binary = "";
  for (const byte of new TextEncoder().encode(state.key)) binary += String.fromCharCode(byte);
  const encoded = btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  return ["pmdaemon", `pmdaemon.key.${encoded}`];
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws`, keyProtocols());
  state.ws = ws;
  ws.onopen = () => {
    state.retry = 0;
    setConnection(true);
    if (state.key) ws.send(JSON.stringify({ type: "auth", api_key: state.key }));
  };
  ws.onmessage = (event) => handle(JSON.parse(event.data));
  ws.onclose = () => {
    setConnection(false);
    state.ws = null;
    state.retry = Math.min(state.retry + 1, 5);
    setTimeout(() => { if (!$("main").hidden) { refresh(); connect(); } }, 500 * state.retry);
  };
}

function handle(message) {
  const data = message.data || {};
  switch (message.type) {
    case "auth":
      if (data.authenticated && state.selected !== null) subscribe("subscribe", state.selected);
      break;
    case "process_list":
      state.procs = new Map(data.processes.map((p) => [p.id, p]));
      scheduleRender();
      break;
    case "process_status": {
      const proc = state.procs.get(data.id);
      if (!proc) { refreshSoon(); break; }
      Object.assign(proc, { status: data.status, pid: data.pid, port: data.port });
      if (data.status === "online" || data.status === "stopped") refreshSoon();
      scheduleRender();
      break;
    }
    case "process_deleted":
      state.procs.delete(data.id);
      state.history.delete(data.id);
      scheduleRender();
      break;
    case "health_update": {
      const proc = state.procs.get(data.id);
      if (proc) { proc.health_status = data.status; scheduleRender(); }
      break;
    }
    case "process_metrics":
      for (const m of data.processes) {
        const proc = state.procs.get(m.id);
        if (proc) {
          Object.assign(proc, { cpu_usage: m.cpu, memory_usage: m.memory, restarts: m.restarts });
          if (proc.status === "online") proc.uptime = uptime(Math.floor(m.uptime / 1000));
        }
        const points = state.history.get(m.id) || [];
        points.push({ cpu: m.cpu, memory: m.memory });
        if (points.length > HISTORY) points.shift();
        state.history.set(m.id, points);
      }
      scheduleRender();
      drawCharts();
      break;
    case "system_metrics":
      renderSystem(data);
      break;
    case "log_message":
      if (data.id === state.selected) appendLog(data);
      break;
    case "error":
      notice(data.message);
      break;
    default:
      break;
  }
}

start();
