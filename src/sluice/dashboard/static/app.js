// Sluice dashboard: reads the REST API with the user's key; live updates from the SSE stream
// (read with fetch so the key travels in the Authorization header, never in a URL).
"use strict";

const KEY_STORE = "sluice.api_key";
const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
let apiKey = null;
let cursor = null;
let refreshTimer = null;

function takeKeyFromFragment() {
  const m = location.hash.match(/key=([^&]+)/);
  if (m) {
    localStorage.setItem(KEY_STORE, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + "#overview");
  }
  apiKey = localStorage.getItem(KEY_STORE);
}

async function api(path) {
  const res = await fetch(path, { headers: { Authorization: `Bearer ${apiKey}` } });
  if (res.status === 401 || res.status === 403) { showLogin("key refused: " + res.status); throw new Error("auth"); }
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
  return res.json();
}

function showLogin(message) {
  $("#login").hidden = false;
  document.querySelector("main").hidden = true;
  $("#login-error").textContent = message || "";
}

const ago = (iso) => {
  if (!iso) return "";
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (s < 60) return `${Math.max(0, s).toFixed(0)} s ago`;
  if (s < 3600) return `${(s / 60).toFixed(0)} min ago`;
  if (s < 86400) return `${(s / 3600).toFixed(1)} h ago`;
  return new Date(iso).toLocaleString();
};
const secs = (v) => (v == null ? "" : v < 1 ? `${(v * 1000).toFixed(1)} ms` : `${v.toFixed(2)} s`);
const badge = (state) => `<span class="state ${esc(state)}">${esc(state)}</span>`;

// --- tabs ------------------------------------------------------------------------------------
function currentTab() { return (location.hash.replace("#", "").split("&")[0]) || "overview"; }
function showTab() {
  const tab = currentTab();
  document.querySelectorAll(".tab").forEach((s) => (s.hidden = s.id !== tab));
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("on", a.dataset.tab === tab));
  refresh();
}

async function refresh() {
  const tab = currentTab();
  try {
    if (tab === "overview") await loadOverview();
    else if (tab === "jobs") await loadJobs(false);
    else if (tab === "workers") await loadWorkers();
    else if (tab === "queues") await loadQueues();
  } catch (e) { if (e.message !== "auth") console.error(e); }
}
function refreshSoon() { clearTimeout(refreshTimer); refreshTimer = setTimeout(refresh, 400); }

// --- overview --------------------------------------------------------------------------------
async function loadOverview() {
  const o = await api("/api/stats/overview");
  const c = o.last_1h.counts;
  const cards = [["active", c.active], ["queued", c.queued + c.scheduled], ["retrying", c.retrying],
    ["completed (1 h)", c.completed], ["failed (1 h)", c.failed],
    ["failure rate (1 h)", o.last_1h.failure_rate == null ? "-" : (o.last_1h.failure_rate * 100).toFixed(1) + " %"],
    ["completed (24 h)", o.last_24h.counts.completed], ["failed (24 h)", o.last_24h.counts.failed]];
  $("#cards").innerHTML = cards.map(([k, v]) => `<div class="card"><b>${esc(v)}</b><span>${esc(k)}</span></div>`).join("");
  drawChart(o.throughput);
  $("#failing tbody").innerHTML = o.top_failing.map((t) =>
    `<tr data-name="${esc(t.name)}"><td>${esc(t.name)}</td><td>${t.failed}</td><td>${t.finished}</td><td>${(t.failure_rate * 100).toFixed(1)} %</td></tr>`).join("")
    || `<tr><td colspan="4" class="muted">no failures</td></tr>`;
}

function drawChart(points) {
  const svg = $("#chart");
  if (!points.length) { svg.innerHTML = ""; return; }
  const max = Math.max(1, ...points.map((p) => p.completed + p.failed + p.retried));
  const w = 600 / points.length;
  svg.innerHTML = points.map((p, i) => {
    let y = 120; const parts = [];
    for (const [k, cls] of [["completed", "--completed"], ["failed", "--failed"], ["retried", "--retrying"]]) {
      const h = (p[k] / max) * 115; y -= h;
      if (h > 0) parts.push(`<rect x="${i * w}" y="${y}" width="${Math.max(1, w - 1)}" height="${h}" fill="var(${cls})"><title>${esc(p.minute)} ${k}: ${p[k]}</title></rect>`);
    }
    return parts.join("");
  }).join("");
}

// --- jobs ------------------------------------------------------------------------------------
function jobQuery() {
  const form = $("#filters");
  const params = new URLSearchParams();
  for (const opt of form.state.selectedOptions) params.append("state", opt.value);
  for (const f of ["name", "queue", "worker", "q"]) if (form[f].value.trim()) params.set(f, form[f].value.trim());
  params.set("limit", "50");
  params.set("facets", "true");
  return params;
}

async function loadJobs(more) {
  const params = jobQuery();
  if (more && cursor) params.set("cursor", cursor);
  const page = await api(`/api/jobs?${params}`);
  cursor = page.next_cursor;
  $("#more").hidden = !cursor;
  const rows = page.items.map((j) => `<tr data-id="${esc(j.id)}"><td>${badge(j.state)}</td><td>${esc(j.name)}</td>
    <td title="${esc(j.id)}">${esc(j.id.slice(0, 8))}</td><td>${esc(j.queue)}</td><td>${esc(j.worker)}</td>
    <td>${j.retries || ""}</td><td title="${esc(j.sent_at)}">${ago(j.sent_at || j.first_seen_at)}</td>
    <td>${secs(j.runtime)}</td><td class="exc" title="${esc(j.exception)}">${esc(j.exception)}</td></tr>`).join("");
  const body = $("#job-table tbody");
  body.innerHTML = (more ? body.innerHTML : "") + (rows || (more ? "" : `<tr><td colspan="9" class="muted">no jobs match</td></tr>`));
  if (page.facets) $("#facets").innerHTML = Object.entries(page.facets).filter(([, n]) => n)
    .map(([s, n]) => `<span>${badge(s)} ${n}</span>`).join("");
}

async function openJob(id) {
  const j = await api(`/api/jobs/${encodeURIComponent(id)}`);
  const ref = (r) => (r ? `<a class="ref" data-id="${esc(r.id)}">${esc(r.name || r.id)}</a> ${badge(r.state)}` : "");
  const t = j.timing || {};
  const rows = [["id", esc(j.id)], ["task", esc(j.name)], ["state", badge(j.state)], ["queue", esc(j.queue)],
    ["worker", esc(j.worker)], ["retries", j.retries], ["args", esc(j.args)], ["kwargs", esc(j.kwargs)],
    ["result", esc(j.result)], ["eta", esc(j.eta)], ["expires", esc(j.expires)],
    ["sent", esc(j.sent_at)], ["started", esc(j.started_at)], ["finished", esc(j.finished_at)],
    ["time queued", secs(t.queued)], ["time scheduled", secs(t.scheduled)], ["runtime", secs(t.runtime ?? j.runtime)],
    ["parent", ref(j.parent)], ["root", ref(j.root)],
    ["children", (j.children || []).map(ref).join("<br>")], ["group", (j.group || []).map(ref).join("<br>")]]
    .filter(([, v]) => v !== "" && v != null && v !== 0);
  $("#detail-body").innerHTML = `<h2>${esc(j.name || "job")} ${badge(j.state)}</h2>
    <dl>${rows.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("")}</dl>
    ${j.exception ? `<h3>Exception</h3><pre>${esc(j.exception)}</pre>` : ""}
    ${j.traceback ? `<h3>Traceback</h3><pre>${esc(j.traceback)}</pre>` : ""}
    <h3>History</h3><table><thead><tr><th>at</th><th>state</th><th>event</th><th>host</th><th>attempt</th></tr></thead><tbody>
    ${(j.history || []).map((h) => `<tr><td>${esc(h.at)}</td><td>${badge(h.state)}</td><td>${esc(h.kind)}</td><td>${esc(h.hostname)}</td><td>${h.attempt}</td></tr>`).join("")
      || `<tr><td colspan="5" class="muted">Sluice has never seen this job</td></tr>`}
    </tbody></table>`;
  $("#detail").hidden = false;
}

// --- workers and queues ------------------------------------------------------------------------
async function loadWorkers() {
  const { items } = await api("/api/workers");
  $("#worker-table tbody").innerHTML = items.map((w) => `<tr><td>${esc(w.hostname)}</td><td>${badge(w.status)}</td>
    <td title="${esc(w.last_heartbeat)}">${ago(w.last_heartbeat)}</td><td>${w.active ?? ""}</td><td>${w.processed ?? ""}</td>
    <td>${w.tasks_per_minute.toFixed(1)}</td><td>${(w.loadavg || []).map((x) => x.toFixed(2)).join(" ")}</td>
    <td>${esc((w.queues || []).join(", "))}</td><td>${esc([w.software.ident, w.software.version].filter(Boolean).join(" "))}</td></tr>`).join("")
    || `<tr><td colspan="9" class="muted">no workers seen yet</td></tr>`;
}

async function loadQueues() {
  const { items } = await api("/api/queues");
  $("#queue-table tbody").innerHTML = items.map((q) => `<tr><td>${esc(q.name)}</td><td>${q.depth ?? "-"}</td>
    <td>${q.consumers ?? "-"}</td><td>${q.throughput.toFixed(1)}</td><td>${secs(q.wait_p50)}</td><td>${secs(q.wait_p95)}</td>
    <td>${ago(q.sampled_at)}</td></tr>`).join("") || `<tr><td colspan="7" class="muted">no queues seen yet</td></tr>`;
}

// --- live stream -------------------------------------------------------------------------------
async function follow() {
  let lastId = null;
  for (;;) {
    try {
      const headers = { Authorization: `Bearer ${apiKey}`, Accept: "text/event-stream" };
      if (lastId) headers["Last-Event-ID"] = lastId;
      const res = await fetch("/api/events/stream", { headers });
      if (!res.ok || !res.body) throw new Error(`stream ${res.status}`);
      setLive(true);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut); buf = buf.slice(cut + 2);
          const id = block.match(/^id: ?(.*)$/m);
          if (id) lastId = id[1];
          if (/^data:/m.test(block)) refreshSoon();  // an event or a reset: refetch the view
        }
      }
    } catch (e) { console.warn(e); }
    setLive(false);
    await new Promise((r) => setTimeout(r, 3000));
  }
}
function setLive(on) { const el = $("#live"); el.className = `live ${on ? "on" : "off"}`; el.textContent = on ? "live" : "offline"; }

// --- wiring ------------------------------------------------------------------------------------
function wire() {
  window.addEventListener("hashchange", showTab);
  $("#filters").addEventListener("submit", (e) => { e.preventDefault(); loadJobs(false); });
  $("#filters").addEventListener("reset", () => setTimeout(() => loadJobs(false), 0));
  $("#more").addEventListener("click", () => loadJobs(true));
  $("#close").addEventListener("click", () => ($("#detail").hidden = true));
  document.body.addEventListener("click", (e) => {
    const row = e.target.closest("[data-id]");
    if (row) { openJob(row.dataset.id); return; }
    const failing = e.target.closest("tr[data-name]");
    if (failing) { location.hash = "jobs"; $("#filters").name.value = failing.dataset.name; }
  });
  $("#login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    localStorage.setItem(KEY_STORE, $("#key").value.trim());
    location.reload();
  });
}

takeKeyFromFragment();
wire();
if (!apiKey) showLogin();
else { showTab(); follow(); setInterval(refresh, 10000); }
