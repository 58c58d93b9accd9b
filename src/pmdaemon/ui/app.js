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
  connection: "connecting",
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

// A request that cannot reach the web API at all (the daemon or `pmdaemon web` is gone).
class Offline extends Error {}
class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, headers: headers(options.headers) });
  } catch (error) {
    offline(error);
    throw new Offline(error.message);
  }
  if (response.status === 401) {
    showLogin(state.key ? "The key was refused." : "");
    throw new Error("unauthorized");
  }
  const body = await response.json().catch(() => ({}));
  // 403: signed in with a read-only key, asking for more than it grants.
  if (response.status === 403) throw new ApiError("this key may only read", 403);
  if (!response.ok) throw new ApiError(body.message || `HTTP ${response.status}`, response.status);
  return body;
}

function offline(error) {
  setConnection("offline");
  notice(`The daemon's web API does not answer (${error.message}); trying again…`);
}

// -- formatting ------------------------------------------------------------------------

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

function bytes(n) {
  if (!n) return "0 B";
  let i = 0;
  while (n >= 1024 && i < UNITS.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${UNITS[i]}`;
}

// CPU, memory and uptime belong to a running process; for the others the table shows "-",
// as `pmdaemon list` does.
function running(proc) {
  return proc.pid !== null && proc.pid !== undefined && proc.pid !== 0;
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
  notice("");
  setConnection("signed-out");
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
    status = await api("/api/status");
  } catch (error) {
    if (error.status === 429) showLogin(error.message); // too many refused keys
    else if (error.message !== "unauthorized") {
      if (!(error instanceof Offline)) notice(`The web API failed: ${error.message}; trying again…`);
      setTimeout(start, 2000);
    }
    return;
  }
  notice("");
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
    if (!(error instanceof Offline) && error.message !== "unauthorized") {
      notice(`Could not load the processes: ${error.message}`);
    }
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
  const item = (label, value) => box.append(el("span", { "data-item": label }, `${label} `, el("b", { text: value })));
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
    const live = running(p);
    const row = el("tr", { "data-id": String(p.id), "data-name": p.name, onclick: () => select(p.id) },
      el("td", { class: "num", text: String(p.id) }),
      el("td", { text: p.name }),
      el("td", { class: `status status-${p.status}`, "data-field": "status", text: p.status }),
      el("td", { class: "num", "data-field": "pid", text: p.pid ? String(p.pid) : "-" }),
      el("td", { class: "num", text: p.port ? String(p.port) : "-" }),
      el("td", { class: "num", "data-field": "cpu", text: live ? `${(p.cpu_usage || 0).toFixed(1)}%` : "-" }),
      el("td", { class: "num", "data-field": "memory", text: live ? bytes(p.memory_usage) : "-" }),
      el("td", { class: "num", "data-field": "uptime", text: live ? p.uptime || "0s" : "-" }),
      el("td", { class: "num", "data-field": "restarts", text: String(p.restarts) }),
      el("td", { class: health ? `health-${health}` : "", text: health || "-" }),
      el("td", {}, el("div", { class: "actions" }, ...actionButtons(p))));
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
    if (!(error instanceof Offline) && error.message !== "unauthorized") {
      notice(`${action} ${proc.name} failed: ${error.message}`);
    }
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
    if (!(error instanceof Offline) && error.message !== "unauthorized") {
      notice(`Could not load process ${id}: ${error.message}`);
    }
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

// The top of a chart's scale: the smallest 1, 2 or 5 times a power of ten at or above
// ``value`` (so the labels stay round).
function niceCeil(value) {
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].find((step) => step * power >= value * (1 - 1e-9)) * power;
}

function trimmed(n) {
  return Number.isInteger(n) ? String(n) : n.toFixed(1).replace(/\.0$/, "");
}

// CPU in % of one core, from 1% up; memory in the binary unit of its largest value.
const SCALES = {
  cpu: (max) => {
    const top = niceCeil(Math.max(max, 1));
    return { top, label: (v) => `${trimmed(v)}%`, now: (v) => `${v.toFixed(1)}%` };
  },
  memory: (max) => {
    let unit = 1024 ** 2; // 1 MiB at least
    let i = 2;
    while (max >= unit * 1024 && i < UNITS.length - 1) { unit *= 1024; i++; }
    while (max > 0 && max < unit && i > 0) { unit /= 1024; i--; }
    let mantissa = niceCeil(Math.max(max / unit, 1));
    // Past 1000 of a unit, the round number is 1 of the next: 1 MiB, not 2000 KiB.
    if (mantissa >= 1024 && i < UNITS.length - 1) { mantissa = 1; unit *= 1024; i++; }
    const top = mantissa * unit;
    return { top, label: (v) => `${trimmed(v / unit)} ${UNITS[i]}`, now: bytes };
  },
};

function drawChart(figure, kind, values, now) {
  const canvas = figure.querySelector("canvas");
  // Drawn at the size it is shown, in device pixels, so lines stay sharp at any width.
  const ratio = window.devicePixelRatio || 1;
  const shownWidth = Math.round(canvas.clientWidth * ratio);
  const shownHeight = Math.round(canvas.clientHeight * ratio);
  if (shownWidth && (canvas.width !== shownWidth || canvas.height !== shownHeight)) {
    canvas.width = shownWidth;
    canvas.height = shownHeight;
  }
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  const scale = SCALES[kind](Math.max(0, ...values));
  const axis = (name) => figure.querySelector(`[data-axis=${name}]`);
  axis("max").textContent = scale.label(scale.top);
  axis("mid").textContent = scale.label(scale.top / 2);
  axis("zero").textContent = scale.label(0);
  const current = now === null ? "-" : scale.now(now);
  axis("now").textContent = `now ${current}`;
  canvas.setAttribute(
    "aria-label",
    `${kind} over the last 5 minutes, scale 0 to ${scale.label(scale.top)}, now ${current}`,
  );
  ctx.clearRect(0, 0, width, height);
  ctx.strokeStyle = "#273039";
  ctx.lineWidth = ratio;
  ctx.beginPath();
  for (const y of [ratio / 2, height / 2, height - ratio / 2]) { ctx.moveTo(0, y); ctx.lineTo(width, y); }
  ctx.stroke();
  if (values.length < 2) return;
  ctx.strokeStyle = "#58a6ff";
  ctx.lineWidth = 1.5 * ratio;
  ctx.beginPath();
  // The newest sample sits at the right edge ("now"), older ones to its left.
  const offset = HISTORY - values.length;
  values.forEach((v, i) => {
    const x = (width * (offset + i)) / (HISTORY - 1);
    const y = height - ratio / 2 - (v / scale.top) * (height - ratio);
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
}

function drawCharts() {
  if (state.selected === null) return;
  const points = state.history.get(state.selected) || [];
  const proc = state.procs.get(state.selected);
  const live = proc && running(proc);
  const last = points[points.length - 1];
  drawChart($("cpu"), "cpu", points.map((p) => p.cpu), live && last ? last.cpu : null);
  drawChart($("memory"), "memory", points.map((p) => p.memory), live && last ? last.memory : null);
}

// -- live stream -----------------------------------------------------------------------

// The badge: "live" (the stream is open), "connecting…", "offline" (the web API does not
// answer) or "not signed in" (it wants a key, or refused the one given).
const CONNECTION = {
  live: "live",
  connecting: "connecting…",
  offline: "offline",
  "signed-out": "not signed in",
};

function setConnection(name) {
  state.connection = name;
  const badge = $("connection");
  badge.textContent = CONNECTION[name];
  badge.className = `connection ${name}`;
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
    setConnection("live");
    notice("");
    if (state.key) ws.send(JSON.stringify({ type: "auth", api_key: state.key }));
  };
  ws.onmessage = (event) => handle(JSON.parse(event.data));
  ws.onclose = () => {
    // Until the next try says why: a refused key, an API gone, or a stream that broke.
    if (state.connection === "live") setConnection("connecting");
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
