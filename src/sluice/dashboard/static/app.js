// Sluice dashboard: one URL per page (history API), data from the API with the session
// cookie, live updates from the event stream (EventSource), throttled re-renders.
import { api, loadSession, optional, signOut, currentSession } from "./js/api.js";
import { restyleAll } from "./js/charts.js";
import { Live } from "./js/live.js";
import { $, $$, esc } from "./js/util.js";
import * as overview from "./pages/overview.js";
import * as jobs from "./pages/jobs.js";
import * as job from "./pages/job.js";
import * as workers from "./pages/workers.js";
import * as worker from "./pages/worker.js";
import * as queues from "./pages/queues.js";
import * as queue from "./pages/queue.js";
import * as commands from "./pages/commands.js";

const ROUTES = [
  [/^\/$/, overview, "overview"],
  [/^\/jobs$/, jobs, "jobs"],
  [/^\/jobs\/([^/]+)$/, job, "jobs"],
  [/^\/workers$/, workers, "workers"],
  [/^\/workers\/([^/]+)$/, worker, "workers"],
  [/^\/queues$/, queues, "queues"],
  [/^\/queues\/([^/]+)$/, queue, "queues"],
  [/^\/commands$/, commands, "commands"],
];

let current = null;  // the page on screen: {refresh, onEvents, dispose}

function route(path) {
  for (const [re, page, nav] of ROUTES) {
    const m = path.match(re);
    if (m) return { page, nav, params: m.slice(1).map(decodeURIComponent) };
  }
  return null;
}

export function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  render();
}

async function render() {
  if (current && current.dispose) current.dispose();
  current = null;
  const view = $("#view");
  const found = route(location.pathname);
  $$("header.top nav a").forEach((a) => a.toggleAttribute("aria-current", false));
  if (!found) {
    view.innerHTML = `<h1>Not found</h1><p>No page at <code>${esc(location.pathname)}</code>. <a href="/">Overview</a></p>`;
    return;
  }
  const link = $(`header.top nav a[data-nav="${found.nav}"]`);
  if (link) link.setAttribute("aria-current", "page");
  view.textContent = "";
  const ctx = {
    el: view,
    params: found.params,
    query: new URLSearchParams(location.search),
    navigate,
    setQuery(params) {  // a view's state in the address, so a link reproduces it
      const qs = params.toString();
      navigate(location.pathname + (qs ? `?${qs}` : ""), { replace: false });
    },
  };
  try {
    current = await found.page.mount(ctx);
  } catch (e) {
    view.innerHTML = `<p class="error">Could not load this page: ${esc(e.message)}</p>`;
  }
}

function interceptLinks() {
  document.addEventListener("click", (e) => {
    const a = e.target.closest("a[href]");
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    if (a.target || a.hasAttribute("download")) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || !route(url.pathname)) return;
    e.preventDefault();
    navigate(url.pathname + url.search);
    $("#view").focus({ preventScroll: true });
  });
  window.addEventListener("popstate", render);
}

function setupTheme() {
  $("#theme").addEventListener("click", () => {
    const root = document.documentElement;
    const dark = root.dataset.theme ? root.dataset.theme === "dark"
      : matchMedia("(prefers-color-scheme: dark)").matches;
    root.dataset.theme = dark ? "light" : "dark";
    try { localStorage.setItem("sluice.theme", root.dataset.theme); } catch (e) { /* ignore */ }
    restyleAll();
  });
}

function setupConnections(session) {
  const select = $("#connection");
  const options = session.connections.map((c) =>
    `<option value="${esc(c.connection_id)}"${c.active ? " selected" : ""}>${esc(c.name)}</option>`);
  options.push('<option value="+">Add a connection…</option>');
  select.innerHTML = options.join("");
  select.addEventListener("change", async () => {
    if (select.value === "+") {
      select.value = session.connection_id;
      $("#add-connection").showModal();
      return;
    }
    await api("/api/session", { method: "PUT", json: { connection_id: select.value } });
    location.reload();
  });
  $("#add-connection-cancel").addEventListener("click", () => $("#add-connection").close());
  $("#add-connection-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const key = e.target.key.value.trim();
    try {
      await api("/api/session", { method: "POST", json: { key } });
      location.reload();
    } catch (err) {
      $("#add-connection-error").textContent = err.message;
    }
  });
}

async function healthBanner() {
  const box = $("#health");
  let report = null;
  try { report = await optional("/api/connection/health"); } catch (e) { report = null; }
  const findings = report ? (Array.isArray(report) ? report : report.findings || []) : [];
  if (!findings.length) { box.hidden = true; return; }
  box.innerHTML = `<strong>Setup:</strong> Sluice sees something missing in this connection's setup.<ul>${
    findings.map((f) => {
      const text = f.message || f.detail || f.title || f.code || "";
      const fix = f.fix || f.setting || f.remedy || "";
      return `<li>${esc(text)}${fix ? ` — <em>fix:</em> <code>${esc(fix)}</code>` : ""}</li>`;
    }).join("")}</ul>`;
  box.hidden = false;
}

async function main() {
  setupTheme();
  const session = await loadSession();
  setupConnections(session);
  $("#logout").addEventListener("click", signOut);
  interceptLinks();
  const live = new Live($("#live"), (batch) => { if (current && current.onEvents) current.onEvents(batch); });
  live.onReset = () => { if (current && current.refresh) current.refresh(); };
  window.sluiceLive = live;  // for the browser tests: the stream's state
  await render();
  live.start();
  healthBanner();
  setInterval(healthBanner, 60_000);
  document.documentElement.dataset.connection = currentSession().connection_id;
}

main().catch((e) => { if (!(e && e.status === 401)) console.error(e); });
