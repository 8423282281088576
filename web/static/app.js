// DBMigrate status page: configure, follow one migration live (server-sent events), read reports, decide.
"use strict";

const $ = (id) => document.getElementById(id);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));

const state = {
  token: sessionStorage.getItem("dbmigrate-token") || "",
  tokenRequired: false,
  id: null,            // the migration on screen
  migration: null,
  reports: {},
  reportTab: null,
  events: null,        // EventSource
  lastSeq: 0,
  seenSeq: new Set(),
  history: [],
};

// ---------- formatting ----------
function fmtInt(n) { return Number(n || 0).toLocaleString("en-US"); }
function fmtBytes(n) {
  n = Number(n || 0);
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i === 0 ? `${n} B` : `${n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}
function fmtSeconds(s) {
  s = Number(s || 0);
  if (s <= 0) return "—";
  if (s < 1) return "<1s";
  if (s < 60) return `${Math.round(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${Math.round(s % 60)}s`;
  return `${Math.floor(s / 3600)}h ${Math.round((s % 3600) / 60)}m`;
}
function fmtTime(iso) { return iso ? new Date(iso).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", second: "2-digit"}) : ""; }
function fmtWhen(iso) {
  if (!iso) return "";
  const d = new Date(iso), secs = (Date.now() - d.getTime()) / 1000;
  if (secs < 60) return "just now";
  if (secs < 3600) return `${Math.floor(secs / 60)} min ago`;
  if (secs < 86400) return `${Math.floor(secs / 3600)} h ago`;
  return d.toLocaleDateString();
}
const nice = (s) => String(s || "").replace(/^RISK_/, "").replace(/_/g, " ").toLowerCase();
function phaseClass(phase) {
  if (["DISCOVERING", "VALIDATING", "PLANNING", "EXECUTING", "SYNCING", "ROLLING_BACK"].includes(phase)) return "ph-running";
  if (phase === "AWAITING_APPROVAL") return "ph-waiting";
  if (phase === "COMPLETED") return "ph-ok";
  if (["FAILED", "DENIED", "CANCELLED", "ROLLED_BACK"].includes(phase)) return "ph-bad";
  return "";
}
const PHASE_TEXT = {
  CREATED: "Created", DISCOVERING: "Discovering", VALIDATING: "Validating", PLANNING: "Planning",
  AWAITING_APPROVAL: "Awaiting approval", EXECUTING: "Executing", COMPLETED: "Completed", DENIED: "Denied",
  FAILED: "Failed", CANCELLED: "Cancelled", ROLLED_BACK: "Rolled back", ROLLING_BACK: "Rolling back",
  SYNCING: "Syncing (streaming changes)",
};
const phaseText = (p) => PHASE_TEXT[p] || p;

// ---------- API ----------
async function api(path, options = {}) {
  const headers = {"Accept": "application/json"};
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  if (state.token) headers["Authorization"] = `Bearer ${state.token}`;
  let resp;
  try {
    resp = await fetch(path, {method: options.method || "GET", headers,
      body: options.body !== undefined ? JSON.stringify(options.body) : undefined});
  } catch (e) {
    throw Object.assign(new Error("The web server cannot be reached; is `python -m web` running?"), {status: 0});
  }
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (!resp.ok) {
    const message = (data && data.error) || `${resp.status} ${resp.statusText}`;
    if (resp.status === 401) showLogin(true);
    throw Object.assign(new Error(message), {status: resp.status});
  }
  return data;
}

function notice(text, kind = "") {
  const n = $("notice");
  if (!text) { n.hidden = true; return; }
  n.className = `banner ${kind}`;
  n.textContent = text;
  n.hidden = false;
}

// ---------- health and token ----------
async function checkHealth() {
  const el = $("health");
  try {
    const resp = await fetch("/api/health", {headers: {"Accept": "application/json"}});
    const data = await resp.json();
    state.tokenRequired = !!data.token_required;
    showLogin(state.tokenRequired);
    if (resp.ok) { el.className = "health ok"; el.textContent = "coordinator connected"; el.title = data.coordinator.address; }
    else { el.className = "health bad"; el.textContent = "coordinator unavailable"; el.title = data.error || ""; }
    return resp.ok;
  } catch (e) {
    el.className = "health bad"; el.textContent = "web server unreachable";
    return false;
  }
}

function showLogin(required) {
  $("login").hidden = !required;
  if (required) {
    $("token").value = state.token;
    $("login-state").textContent = state.token ? "" : "needed to make changes";
  }
}

$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  state.token = $("token").value.trim();
  sessionStorage.setItem("dbmigrate-token", state.token);
  try {
    const r = await api("/api/auth");
    $("login-state").textContent = r.authorized ? "✓ token accepted" : "✗ wrong token";
  } catch (e) { $("login-state").textContent = e.message; }
});

// ---------- history ----------
async function loadHistory() {
  try {
    const data = await api("/api/migrations?limit=50");
    state.history = data.migrations;
    state.historyError = null;
  } catch (e) {
    state.historyError = e.message;
  }
  renderHistory();
}

function renderHistory() {
  const list = $("history-list");
  if (state.historyError) { list.innerHTML = `<li class="banner error">${esc(state.historyError)}</li>`; return; }
  if (!state.history.length) { list.innerHTML = `<li class="muted">No migrations yet.</li>`; return; }
  list.innerHTML = state.history.map((m) => `
    <li><a href="#/m/${encodeURIComponent(m.id)}" data-id="${esc(m.id)}" class="${m.id === state.id ? "current" : ""}">
      <div class="h-name" title="${esc(m.name)}">${esc(m.name || m.id)}</div>
      <div class="h-meta"><span class="chip ${phaseClass(m.phase)}">${esc(phaseText(m.phase))}</span>
        <span>${esc(fmtWhen(m.created_at))}</span></div>
    </a></li>`).join("");
}

function updateHistoryEntry(m) {
  const entry = state.history.find((h) => h.id === m.id);
  if (!entry) { loadHistory(); return; }
  if (entry.phase !== m.phase) { entry.phase = m.phase; renderHistory(); }
}

// ---------- configuration form ----------
function parseUrl(value) {
  const v = value.trim();
  if (!v) return "Enter a connection URL, e.g. postgresql://user@host:5432/dbname";
  if (!/^postgres(ql)?:\/\//.test(v)) return "The URL must start with postgresql://";
  let u;
  try { u = new URL(v.replace(/^postgres(ql)?:/, "http:")); } catch (e) { return "This is not a valid URL"; }
  if (!u.hostname) return "The host is missing (postgresql://user@HOST:5432/dbname)";
  if (!u.username) return "The user is missing (postgresql://USER@host:5432/dbname)";
  if (!u.pathname || u.pathname === "/") return "The database name is missing (…:5432/DBNAME)";
  if (u.port && (Number(u.port) < 1 || Number(u.port) > 65535)) return "The port must be between 1 and 65535";
  return null;
}

function urlKey(value) {
  try {
    const u = new URL(value.trim().replace(/^postgres(ql)?:/, "http:"));
    return `${u.hostname}:${u.port || 5432}${u.pathname}`;
  } catch (e) { return null; }
}

function fieldError(inputId, errorId, message) {
  $(errorId).textContent = message || "";
  $(inputId).classList.toggle("invalid", !!message);
  $(inputId).setAttribute("aria-invalid", message ? "true" : "false");
  return !message;
}

function validateForm(all = true) {
  let ok = true;
  const src = $("f-source").value, dst = $("f-target").value;
  if (all || src) ok = fieldError("f-source", "e-source", parseUrl(src)) && ok;
  let targetMsg = (all || dst) ? parseUrl(dst) : null;
  if (!targetMsg && src && dst && urlKey(src) && urlKey(src) === urlKey(dst)) targetMsg = "The target is the same database as the source";
  ok = fieldError("f-target", "e-target", targetMsg) && ok;
  const jobs = Number($("f-jobs").value || 0);
  const jobsOk = fieldError("f-jobs", "e-jobs", Number.isInteger(jobs) && jobs >= 0 && jobs <= 64 ? null : "Between 0 and 64");
  if (!jobsOk) document.querySelector("details.advanced").open = true;  // never hide an error in a closed section
  ok = jobsOk && ok;
  if ($("f-advisor").value === "h2ogpte") {
    const addr = $("f-advisor-address").value.trim();
    ok = fieldError("f-advisor-address", "e-advisor-address",
      /^https?:\/\/.+/.test(addr) ? null : "Give the address as https://host (without /api)") && ok;
    ok = fieldError("f-advisor-key", "e-advisor-key", $("f-advisor-key").value ? null : "The API key is required") && ok;
  }
  return ok;
}

["f-source", "f-target"].forEach((id) => {
  $(id).addEventListener("blur", () => { if ($(id).value) validateForm(false); });
  $(id).addEventListener("input", () => { if ($(id).classList.contains("invalid")) validateForm(false); });
});
$("f-jobs").addEventListener("input", () => validateForm(false));
$("f-advisor").addEventListener("change", () => { $("h2ogpte-fields").hidden = $("f-advisor").value !== "h2ogpte"; });

function splitPatterns(v) { return v.split(",").map((s) => s.trim()).filter(Boolean); }

async function submitConfig(start) {
  $("config-error").hidden = true;
  if (!validateForm(true)) { $("config-error").textContent = "Fix the fields marked in red."; $("config-error").hidden = false; return; }
  const body = {
    name: $("f-name").value.trim() || undefined,
    source: connectionFrom($("f-source").value, $("f-source-password").value),
    target: connectionFrom($("f-target").value, $("f-target-password").value),
    advisor: {kind: $("f-advisor").value},
    options: {
      jobs: Number($("f-jobs").value || 0),
      include: splitPatterns($("f-include").value),
      exclude: splitPatterns($("f-exclude").value),
      on_target_not_empty: $("f-nonempty").value,
      keep_target_on_failure: $("f-keep").checked,
      create_roles: $("f-create-roles").checked,
      no_owner: $("f-no-owner").checked,
      no_privileges: $("f-no-privileges").checked,
      online: $("f-online").checked,
    },
    start,
  };
  if (body.advisor.kind === "h2ogpte") {
    body.advisor.address = $("f-advisor-address").value.trim();
    body.advisor.api_key = $("f-advisor-key").value;
    if ($("f-advisor-model").value.trim()) body.advisor.model = $("f-advisor-model").value.trim();
  }
  const buttons = [$("create-start"), $("create-only")];
  buttons.forEach((b) => b.disabled = true);
  try {
    const m = await api("/api/configure", {method: "POST", body});
    $("config-form").reset();  // passwords and keys leave the page once the coordinator has them
    $("h2ogpte-fields").hidden = true;
    state.justCreated = m;  // drawn at once, before the first status read
    await loadHistory();
    location.hash = `#/m/${encodeURIComponent(m.id)}`;
  } catch (e) {
    $("config-error").innerHTML = `<strong>The migration was not created</strong>${esc(e.message)}`;
    $("config-error").hidden = false;
  } finally {
    buttons.forEach((b) => b.disabled = false);
  }
}

function connectionFrom(url, password) {
  // A URL plus a separate password becomes the fields form, so the password never sits in a URL.
  const u = new URL(url.trim().replace(/^postgres(ql)?:/, "http:"));
  const params = {};
  let sslmode;
  u.searchParams.forEach((v, k) => { if (k === "sslmode") sslmode = v; else params[k] = v; });
  const conn = {host: u.hostname, port: Number(u.port || 5432), dbname: decodeURIComponent(u.pathname.slice(1)),
    user: decodeURIComponent(u.username)};
  const pw = password || decodeURIComponent(u.password || "");
  if (pw) conn.password = pw;
  if (sslmode) conn.sslmode = sslmode;
  if (Object.keys(params).length) conn.params = params;
  return conn;
}

$("config-form").addEventListener("submit", (ev) => { ev.preventDefault(); submitConfig(true); });
$("create-only").addEventListener("click", () => submitConfig(false));

// ---------- one migration ----------
function closeEvents() {
  if (state.events) { state.events.close(); state.events = null; }
  $("live").className = "live"; $("live").textContent = "not live";
}

async function showMigration(id) {
  closeEvents();
  state.id = id; state.migration = null; state.reports = {}; state.reportTab = null; state.seenSeq = new Set();
  $("configure").hidden = true; $("migration").hidden = false; notice("");
  $("log").innerHTML = "";
  renderHistory();
  if (state.justCreated && state.justCreated.id === id) renderMigration(state.justCreated);
  state.justCreated = null;
  let m;
  try {
    m = await api(`/api/workflow/status?id=${encodeURIComponent(id)}&${tableQuery()}`);
  } catch (e) {
    $("migration").hidden = true;
    notice(e.status === 404 ? `Migration ${id} does not exist (any more). Pick one on the left or create a new one.` : e.message, "error");
    return;
  }
  if (state.id !== id) return;
  renderMigration(m);
  try {
    const logs = await api(`/api/logs?id=${encodeURIComponent(id)}&limit=2000`);
    if (state.id !== id) return;
    logs.lines.forEach(appendLog);
    state.lastSeq = logs.last_seq;
  } catch (e) { appendLog({level: "error", service: "web", message: e.message}); }
  await loadReports(id);
  openEvents(id);
}

function openEvents(id) {
  closeEvents();
  const es = new EventSource(`/api/events?id=${encodeURIComponent(id)}&from_seq=${state.lastSeq}&${tableQuery()}`);
  state.events = es;
  es.addEventListener("open", () => { $("live").className = "live on"; $("live").textContent = "live"; });
  es.addEventListener("status", (e) => { if (state.id === id) renderMigration(JSON.parse(e.data)); });
  es.addEventListener("workflow_event", (e) => {
    if (state.id !== id) return;
    const ev = JSON.parse(e.data);
    if (state.seenSeq.has(ev.seq)) return;
    state.seenSeq.add(ev.seq);
    state.lastSeq = Math.max(state.lastSeq, ev.seq);
    if (ev.log) appendLog(ev.log);
    if (ev.report) loadReport(id, ev.report);
  });
  // The web server lost its stream to the coordinator and opens it again from the last event.
  es.addEventListener("reconnecting", () => { $("live").className = "live"; $("live").textContent = "reconnecting…"; });
  es.addEventListener("resumed", () => { $("live").className = "live on"; $("live").textContent = "live"; });
  es.addEventListener("error", (e) => {
    $("live").className = "live"; $("live").textContent = "reconnecting…";
    if (e.data) { try { appendLog({level: "error", service: "web", message: JSON.parse(e.data).error}); } catch (x) { /* not ours */ } }
    // The browser retries by itself after a dropped connection, but not after an error answer
    // (coordinator down when it reconnected): try again a little later, from the last event seen.
    if (es.readyState === EventSource.CLOSED) {
      setTimeout(() => { if (state.id === id && state.events === es) openEvents(id); }, 3000);
    }
  });
}

function appendLog(line) {
  const box = $("log");
  const stick = box.scrollTop + box.clientHeight >= box.scrollHeight - 30;
  const div = document.createElement("div");
  div.className = line.level || "info";
  if (line.time) div.dataset.time = line.time;
  if (line.event) div.dataset.event = line.event;
  div.innerHTML = `<span class="l-time">${esc(fmtTime(line.time))}</span> <span class="l-svc">${esc(line.service || "")}</span> ${esc(line.message)}`;
  box.appendChild(div);
  while (box.childNodes.length > 3000) box.removeChild(box.firstChild);
  if (stick) box.scrollTop = box.scrollHeight;
}

function renderMigration(m) {
  const before = state.migration;
  state.migration = m;
  $("m-name").textContent = m.name || m.id;
  $("m-source").textContent = m.source_url;
  $("m-target").textContent = m.target_url;
  const took = m.ended && m.updated_at ? ` · took ${fmtSeconds((Date.parse(m.updated_at) - Date.parse(m.created_at)) / 1000)}` : "";
  $("m-meta").textContent = `id ${m.id} · created ${new Date(m.created_at).toLocaleString()}${took} · advisor ${nice(m.advisor)}`;
  const ph = $("m-phase");
  ph.textContent = phaseText(m.phase);
  ph.className = `phase ${phaseClass(m.phase)}`;
  ph.dataset.phase = m.phase;
  document.title = `${phaseText(m.phase)} · ${m.name || m.id} — DBMigrate`;

  // the error, or the end state in words
  const err = $("m-error");
  if (m.phase === "FAILED" || (m.error && ["CANCELLED", "ROLLED_BACK"].includes(m.phase))) {
    err.className = "banner error";
    err.innerHTML = `<strong>${m.phase === "FAILED" ? "The migration failed" : phaseText(m.phase)}</strong>${esc(m.error)}`;
    err.hidden = false;
  } else if (m.phase === "DENIED") {
    err.className = "banner warn";
    err.innerHTML = `<strong>Denied</strong>${esc(m.deny_reason)} — the target was not touched.`;
    err.hidden = false;
  } else if (m.phase === "COMPLETED") {
    err.className = "banner ok";
    err.innerHTML = `<strong>Migration completed</strong>${fmtInt(m.progress.rows)} rows in ${m.progress.tables} tables copied and verified.`;
    err.hidden = false;
  } else if (m.secrets_missing) {
    err.className = "banner warn";
    err.innerHTML = "<strong>Waiting for passwords</strong>The coordinator lost this migration's passwords (restart without its secret store); give them again with <code>dbmigrate supply-secrets</code>.";
    err.hidden = false;
  } else {
    err.hidden = true;
  }

  $("m-steps").innerHTML = m.steps.map((s, i) => `
    <li class="${esc(s.state)}" data-step="${esc(s.id)}" data-state="${esc(s.state)}">
      <span class="s-num">${s.state === "done" ? "✓" : (["failed", "denied", "cancelled", "rolled_back"].includes(s.state) ? "✕" : i + 1)}</span>
      <span class="s-label">${esc(s.label)}</span>
      <div class="s-state">${esc(nice(s.state))}</div>
    </li>`).join("");

  renderApproval(m);
  renderProgress(m);

  $("start-btn").hidden = !m.actions.start;
  $("cancel-btn").hidden = !m.actions.cancel;
  $("cutover-btn").hidden = !m.actions.cutover;
  renderSync(m);
  $("rollback-btn").hidden = !m.actions.rollback;
  updateHistoryEntry(m);
  if (before && before.phase !== m.phase && m.phase === "AWAITING_APPROVAL") selectTab("generation");
}

function renderSync(m) {
  // The coordinator's sampled stream state and cutover progress, shown as they are.
  const s = m.sync;
  $("sync-card").hidden = !(m.options && m.options.online && (s && s.sampled_at || m.cutover));
  if (s && s.sampled_at) {
    $("sync-line").textContent = `lag ${fmtBytes(Number(s.lag_bytes))} (${Number(s.lag_seconds).toFixed(1)} s) · ` +
      `${Number(s.changes_applied).toLocaleString()} changes applied (${Math.round(s.apply_rate)}/s) · ` +
      (s.streaming ? "streaming" : "NOT streaming") + (Number(s.apply_errors) ? ` · ${s.apply_errors} apply errors` : "");
    $("sync-problems").innerHTML = (s.problems || []).map((p) => `<li>${esc(p)}</li>`).join("");
  }
  $("cutover-state").textContent = m.cutover ? `Cutover: ${m.cutover}` : "";
  const moved = m.source_moved || [];
  $("m-moved").hidden = !moved.length;
  $("m-moved").textContent = moved.length ? `The target equals the source's snapshot, but the source moved on after it: ${moved.slice(0, 5).join("; ")}. Migrate again online to carry those writes, or roll back.` : "";
}

function renderApproval(m) {
  const box = $("approval");
  box.hidden = !m.awaiting_approval;
  if (!m.awaiting_approval) return;
  const risk = $("a-risk");
  risk.textContent = nice(m.risk) || "unknown";
  risk.className = `risk ${m.risk}`;
  $("a-rec").textContent = m.recommendation === "APPROVE" ? "approve" : (m.recommendation === "DENY" ? "deny" : "—");
  const gen = state.reports.generation;
  $("a-summary").textContent = gen ? gen.summary : "";
  $("a-reasons").innerHTML = gen ? gen.reasons.map((r) => `<li>${esc(r)}</li>`).join("") : "";
  const blockers = $("a-blockers");
  if (m.blockers.length) {
    blockers.innerHTML = `<strong>Approval is blocked</strong>${m.blockers.map(esc).join("<br>")}<br>Deny this migration, fix the cause and create a new one.`;
    blockers.hidden = false;
  } else blockers.hidden = true;
  $("approve-btn").disabled = !m.actions.approve;
}

function tableRow(t) {
  const finished = ["copied", "verified"].includes(t.status);
  const total = Math.max(t.total_rows, t.rows);
  const pct = finished ? 100 : (total ? Math.min(99, 100 * t.rows / total) : 0);
  const rate = t.rows_per_second ? `${fmtInt(Math.round(t.rows_per_second))} rows/s` : "";
  const eta = !finished && t.eta_seconds ? `ETA ${fmtSeconds(t.eta_seconds)}` : "";
  const bytes = t.bytes ? fmtBytes(t.bytes) + (t.total_bytes > t.bytes && !finished ? ` of ${fmtBytes(t.total_bytes)}` : "") : "";
  const parts = t.parts > 1 ? `parts ${t.parts_done}/${t.parts}` : "";
  const nums = [`${fmtInt(t.rows)}${total ? " / " + fmtInt(total) : ""} rows`, bytes, rate, eta, parts].filter(Boolean).join(" · ");
  return `<div class="trow" data-table="${esc(t.table)}" data-status="${esc(t.status)}">
      <span class="t-name" title="${esc(t.table)}">${esc(t.table)}</span>
      <span><span class="chip st-${esc(t.status)}">${esc(t.status)}</span></span>
      <div class="bar" role="progressbar" aria-valuenow="${Math.round(pct)}" aria-valuemin="0" aria-valuemax="100">
        <div class="fill ${t.status === "verified" ? "ok" : (t.status === "failed" ? "bad" : "")}" style="width:${pct.toFixed(1)}%"></div></div>
      <span class="t-nums">${esc(nums)}</span>
      ${t.error ? `<span class="t-err">${esc(t.error)}</span>` : ""}
    </div>`;
}

function renderProgress(m) {
  const p = m.progress;
  const card = $("progress-card");
  card.hidden = !m.progress.tables;
  if (!m.progress.tables) return;
  $("p-bar").style.width = `${p.percent}%`;
  $("p-bar").className = `fill ${m.phase === "COMPLETED" ? "ok" : (m.phase === "FAILED" ? "bad" : "")}`;
  $("p-bar-wrap").setAttribute("aria-valuenow", String(Math.round(p.percent)));
  $("p-percent").textContent = `${p.percent.toFixed(p.percent % 1 ? 1 : 0)} %`;
  $("p-percent").dataset.percent = p.percent;
  const etas = m.tables.filter((t) => t.status === "copying" && t.eta_seconds > 0).map((t) => t.eta_seconds);
  const eta = m.phase === "EXECUTING" && etas.length ? ` · about ${fmtSeconds(Math.max(...etas))} left` : "";
  $("p-summary").textContent = `${p.tables_done} of ${p.tables} tables copied · ${p.tables_verified} verified · `
    + `${fmtInt(p.rows)} of ${fmtInt(p.total_rows)} rows · ${fmtBytes(p.bytes)}${eta}`;
  const steps = m.steps_done.filter((s) => !s.includes(":"));
  $("p-steps").textContent = steps.length ? `Steps done: ${steps.join(" · ")}` : "";
  renderTables(m);
  renderTimings(m);
}

// With thousands of tables, one row each is no view: the coordinator lists what runs and what failed
// (all when few), or what the select and the filter ask for; the summary above counts them all.
const MAX_ROWS = 200;
function tableQuery() {
  const filter = $("p-filter").value.trim();
  return `tables=${encodeURIComponent($("p-show").value)}&table_limit=${MAX_ROWS}`
    + (filter ? `&filter=${encodeURIComponent(filter)}` : "");
}
function renderTables(m) {
  const total = m.progress.tables;
  $("p-tables").innerHTML = m.tables.map(tableRow).join("");
  const more = m.tables_matched > m.tables.length ? ` (the first ${MAX_ROWS} of ${fmtInt(m.tables_matched)}: narrow the filter)` : "";
  $("p-shown").textContent = `showing ${fmtInt(m.tables.length)} of ${fmtInt(total)} tables${more}`;
}
// Another view: the status at once, then the live stream asks for the same (from the last event seen).
let viewTimer = null;
function viewChanged() {
  clearTimeout(viewTimer);
  viewTimer = setTimeout(async () => {
    const id = state.id;
    if (!id) return;
    try {
      const m = await api(`/api/workflow/status?id=${encodeURIComponent(id)}&${tableQuery()}`);
      if (state.id === id) renderMigration(m);
    } catch (e) { /* the stream shows the coordinator's state */ }
    if (state.id === id && state.events) openEvents(id);
  }, 250);
}
$("p-filter").addEventListener("input", viewChanged);
$("p-show").addEventListener("change", viewChanged);

function renderTimings(m) {
  const rows = m.timings || [];
  $("timings-card").hidden = !rows.length;
  if (!rows.length) return;
  const longest = Math.max(...rows.filter((t) => !t.phase.startsWith("total")).map((t) => t.seconds), 0.001);
  const total = rows.find((t) => t.phase.startsWith("total"));
  $("t-total").textContent = total ? `${fmtSeconds(total.seconds)} in all, without the approval wait` : "";
  $("t-rows").innerHTML = rows.filter((t) => !t.phase.startsWith("total")).map((t) => {
    const sub = t.phase.startsWith("execution: ");
    return `<span class="${sub ? "t-sub" : ""}" data-phase="${esc(t.phase)}">${esc(sub ? t.phase.slice(11) : t.phase)}</span>
      <span class="t-sec">${t.seconds.toFixed(2)} s</span>
      <div><div class="t-bar" style="width:${(100 * t.seconds / longest).toFixed(1)}%"></div></div>`;
  }).join("");
}

// ---------- decisions ----------
async function decide(action) {
  const comment = $("decision-comment").value.trim();
  $("decision-error").textContent = "";
  if (action === "deny" && !comment) { $("decision-error").textContent = "Write why you deny it; the reason is kept with the migration."; return; }
  const body = action === "approve" ? {id: state.id, comment} : {id: state.id, reason: comment};
  [$("approve-btn"), $("deny-btn")].forEach((b) => b.disabled = true);
  try {
    const m = await api(`/api/workflow/${action}`, {method: "POST", body});
    $("decision-comment").value = "";
    renderMigration(m);
  } catch (e) {
    $("decision-error").textContent = e.message;
  } finally {
    $("deny-btn").disabled = false;
    if (state.migration) $("approve-btn").disabled = !state.migration.actions.approve;
  }
}
$("approve-btn").addEventListener("click", () => decide("approve"));
$("deny-btn").addEventListener("click", () => decide("deny"));

async function command(action, confirmText) {
  if (confirmText && !confirm(confirmText)) return;
  try {
    renderMigration(await api(`/api/workflow/${action}`, {method: "POST", body: {id: state.id}}));
  } catch (e) { notice(e.message, "error"); }
}
$("start-btn").addEventListener("click", () => command("start"));
$("cutover-btn").addEventListener("click", () => command("cutover", "Cut over now? Stop the application's writes first: DBMigrate waits for the last change, sets the sequences, verifies everything and completes (it refuses if writes still arrive)."));
$("cancel-btn").addEventListener("click", () => command("cancel", "Cancel this migration? A target already being written is rolled back."));
$("rollback-btn").addEventListener("click", () => command("rollback", "Drop everything this migration created in the target?"));

// ---------- reports ----------
const TABS = [["discovery", "Discovery"], ["validation", "Validation"], ["generation", "Risk & plan"],
  ["execution", "Execution"], ["verification", "Verification"]];

async function loadReports(id) {
  try {
    const r = await api(`/api/reports?id=${encodeURIComponent(id)}`);
    if (state.id !== id) return;
    TABS.forEach(([k]) => { if (r[k]) state.reports[k] = r[k]; });
  } catch (e) { /* the status already shows what is wrong */ }
  renderReports();
}

async function loadReport(id, agent) {
  try {
    const r = await api(`/api/reports/${agent}?id=${encodeURIComponent(id)}`);
    if (state.id !== id) return;
    state.reports[agent] = r.report;
    if (!state.reportTab || !state.reports[state.reportTab]) state.reportTab = agent;
    if (agent === "generation") state.reportTab = "generation";
    renderReports();
    if (state.migration) renderApproval(state.migration);
  } catch (e) { /* not there yet */ }
}

function selectTab(k) { if (state.reports[k]) { state.reportTab = k; renderReports(); } }

function renderReports() {
  const available = TABS.filter(([k]) => state.reports[k]);
  $("reports-card").hidden = !available.length;
  if (!available.length) return;
  if (!state.reportTab || !state.reports[state.reportTab]) state.reportTab = available[available.length - 1][0];
  $("report-tabs").innerHTML = TABS.map(([k, label]) =>
    `<button class="tab ${k === state.reportTab ? "sel" : ""}" role="tab" data-tab="${k}" ${state.reports[k] ? "" : "disabled"}>${label}</button>`).join("");
  $("report-body").innerHTML = RENDER[state.reportTab](state.reports[state.reportTab]);
}
$("report-tabs").addEventListener("click", (ev) => { const t = ev.target.closest(".tab"); if (t && !t.disabled) selectTab(t.dataset.tab); });

const kv = (pairs) => `<div class="kv">${pairs.filter(([, v]) => v !== undefined && v !== null && v !== "").map(([k, v]) =>
  `<div><span class="k">${esc(k)}</span><span class="v">${esc(v)}</span></div>`).join("")}</div>`;
const yesno = (b) => b ? `<span class="yes">✓ yes</span>` : `<span class="no">✕ no</span>`;
const table = (head, rows, empty) => rows.length
  ? `<div class="scroll"><table><thead><tr>${head.map((h) => `<th class="${h.startsWith("#") ? "num" : ""}">${esc(h.replace(/^#/, ""))}</th>`).join("")}</tr></thead><tbody>${rows.join("")}</tbody></table></div>`
  : `<p class="empty">${esc(empty)}</p>`;

function findingsTable(findings, empty = "No findings.") {
  const order = {BLOCKER: 0, HIGH: 1, MEDIUM: 2, LOW: 3, INFO: 4};
  const sorted = [...findings].sort((a, b) => (order[a.severity] ?? 9) - (order[b.severity] ?? 9));
  return table(["Severity", "Finding", "About", "What to do"], sorted.map((f) => `<tr data-severity="${esc(f.severity)}">
    <td><span class="chip sev sev-${esc(f.severity)}">${esc(nice(f.severity))}</span></td>
    <td><strong>${esc(f.code)}</strong><br>${esc(f.message)}</td><td class="mono">${esc(f.object)}</td><td>${esc(f.remedy)}</td></tr>`), empty);
}

const advisorLine = (r) => r.advisor ? `<p class="muted">Advisor: ${esc(r.advisor)}${r.advisor_note ? " — " + esc(r.advisor_note) : ""}</p>` : "";

const RENDER = {
  discovery(r) {
    const s = r.source || {}, t = r.target || {};
    const server = table(["", "Source", "Target"], [
      ["Version", s.version, t.version], ["Encoding", s.encoding, t.encoding], ["Collation", s.collation, t.collation],
      ["Size", fmtBytes(s.size_bytes), fmtBytes(t.size_bytes)], ["Time zone", s.timezone, t.timezone],
      ["Extensions", (s.extensions_installed || []).join(", ") || "—", (t.extensions_installed || []).join(", ") || "—"],
    ].map(([k, a, b]) => `<tr><th>${esc(k)}</th><td>${esc(a || "—")}</td><td>${esc(b || "—")}</td></tr>`), "");
    const tables = table(["Table", "#Rows (estimate)", "#Size", "Primary key", "#Rows already in target"], r.tables.map((x) =>
      `<tr><td class="mono">${esc(x.schema)}.${esc(x.name)}</td><td class="num">${fmtInt(x.row_estimate)}</td><td class="num">${fmtBytes(x.bytes)}</td>
       <td>${yesno(x.has_primary_key)}</td><td class="num">${x.target_rows < 0 ? "—" : fmtInt(x.target_rows)}</td></tr>`), "No tables found.");
    return `<p>${esc(r.summary)}</p>${advisorLine(r)}<h3>Findings</h3>${findingsTable(r.findings)}
      <h3>Servers</h3>${server}<h3>Tables (${r.tables.length})</h3>${tables}`;
  },
  validation(r) {
    const rows = r.tables.map((x) => `<tr><td class="mono">${esc(x.table)}</td><td class="num">${fmtInt(x.rows_sampled)}</td>
      <td>${yesno(x.passed)}</td><td>${esc(x.copy_format)}</td><td class="num">${x.rows_per_second ? fmtInt(Math.round(x.rows_per_second)) + "/s" : "—"}</td>
      <td>${esc(x.reason)}</td></tr>`);
    return `<div class="banner ${r.passed ? "ok" : "error"}"><strong>${r.passed ? "The sample test migration passed" : "The sample test migration failed"}</strong>${esc(r.summary)}</div>
      ${kv([["Rows per second", r.rows_per_second ? fmtInt(Math.round(r.rows_per_second)) : "—"], ["Throughput", r.bytes_per_second ? fmtBytes(r.bytes_per_second) + "/s" : "—"], ["Tables sampled", r.tables.length]])}
      <h3>Per table</h3>${table(["Table", "#Rows sampled", "Exact", "Format", "#Rate", "Note"], rows, "No tables were sampled.")}
      ${r.findings.length ? "<h3>Findings</h3>" + findingsTable(r.findings) : ""}`;
  },
  generation(r) {
    const plan = r.plan || {steps: [], tables: []};
    const steps = plan.steps.length ? `<ol>${[...plan.steps].sort((a, b) => a.order - b.order).map((s) => `<li><strong>${esc(s.name)}</strong>${s.description ? " — " + esc(s.description) : ""}</li>`).join("")}</ol>` : "";
    const tables = table(["#Order", "Table", "#Rows", "#Size", "#Parts"], [...plan.tables].sort((a, b) => a.order - b.order).map((t) =>
      `<tr><td class="num">${t.order}</td><td class="mono">${esc(t.schema)}.${esc(t.name)}</td><td class="num">${fmtInt(t.rows)}</td><td class="num">${fmtBytes(t.bytes)}</td><td class="num">${t.parts || 1}</td></tr>`), "No tables in the plan.");
    return `${kv([["Risk", nice(r.risk)], ["Recommendation", nice(r.recommendation)], ["Parallel jobs", plan.jobs || "—"],
        ["Estimated time", fmtSeconds(plan.estimated_seconds)], ["Target disk needed", plan.target_disk_bytes ? fmtBytes(plan.target_disk_bytes) : "—"]])}
      <p>${esc(r.summary)}</p>${advisorLine(r)}
      ${r.reasons.length ? `<h3>Why</h3><ul class="reasons">${r.reasons.map((x) => `<li>${esc(x)}</li>`).join("")}</ul>` : ""}
      <h3>Findings</h3>${findingsTable(r.findings)}
      ${steps ? `<h3>Plan</h3>${steps}` : ""}<h3>Tables in copy order</h3>${tables}`;
  },
  execution(r) {
    const rows = r.tables.map((t) => `<tr><td class="mono">${esc(t.table)}</td><td class="num">${fmtInt(t.source_rows)}</td><td class="num">${fmtInt(t.target_rows)}</td>
      <td>${yesno(t.verified)}</td><td class="num">${fmtBytes(t.bytes)}</td><td class="num">${t.seconds ? t.seconds.toFixed(1) + "s" : "—"}</td><td>${esc(t.error)}</td></tr>`);
    return `<p>${esc(r.summary)}</p>${kv([["Rows copied", fmtInt(r.rows)], ["Data", fmtBytes(r.bytes)], ["Time", fmtSeconds(r.seconds)], ["All tables verified", r.verified ? "yes" : "no"]])}
      <h3>Per table</h3>${table(["Table", "#Source rows", "#Target rows", "Checksums equal", "#Size", "#Time", "Error"], rows, "No per-table results.")}
      ${r.steps_done.length ? `<h3>Steps done</h3><p class="muted">${r.steps_done.map(esc).join(" · ")}</p>` : ""}`;
  },
  verification(r) {
    const objects = table(["Kind", "Name", "Difference", "Detail"], r.objects.map((o) =>
      `<tr><td>${esc(o.kind)}</td><td class="mono">${esc(o.name)}</td><td>${esc(nice(o.difference))}</td><td>${esc(o.detail)}</td></tr>`), "No object differences.");
    const tables = table(["Table", "#Source rows", "#Target rows", "Equal", "Note"], r.tables.map((t) =>
      `<tr><td class="mono">${esc(t.table)}</td><td class="num">${fmtInt(t.source_rows)}</td><td class="num">${fmtInt(t.target_rows)}</td><td>${yesno(t.equal)}</td><td>${esc(t.note)}</td></tr>`), "No tables compared.");
    return `<div class="banner ${r.equal ? "ok" : "error"}"><strong>${r.equal ? "Source and target are equal" : "Differences found"}</strong>${esc(r.summary)}</div>
      <h3>Objects</h3>${objects}<h3>Tables</h3>${tables}`;
  },
};

// ---------- routing ----------
function showConfigure() {
  closeEvents();
  state.id = null;
  renderHistory();
  $("migration").hidden = true; $("configure").hidden = false; notice("");
  document.title = "New migration — DBMigrate";
}

async function route() {
  const hash = location.hash;
  const m = hash.match(/^#\/m\/(.+)$/);
  if (m) return showMigration(decodeURIComponent(m[1]));
  if (hash === "#/new") return showConfigure();
  // No choice in the address: the most recent migration, or the form when there is none.
  if (!state.history.length) await loadHistory();
  if (state.history.length) location.replace(`#/m/${encodeURIComponent(state.history[0].id)}`);
  else showConfigure();
}

window.addEventListener("hashchange", route);
window.addEventListener("focus", () => { loadHistory(); checkHealth(); });

(async function init() {
  await checkHealth();
  await loadHistory();
  await route();
})();
