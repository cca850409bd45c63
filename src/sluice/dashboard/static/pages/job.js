// Task detail: state, timing breakdown, timeline, traceback (failing line highlighted),
// args/kwargs/result when captured, retry/revoke following the state rules, links to parent,
// root, children, and the whole workflow as a tree.
import { api, can, optional } from "../js/api.js";
import { $, badge, esc, jobHref, queueHref, secs, throttle, time, workerHref } from "../js/util.js";
import { confirmDialog } from "./jobs.js";

// domain/actions.py's ALLOWED_STATES: the server checks again (400 invalid_state)
export const ALLOWED = { retry: ["failed", "cancelled"], revoke: ["active", "queued", "scheduled", "retrying", "unknown"] };

// The frame where it failed: the last `File "...", line N` of the (last) traceback, with the
// source line under it, and the exception line at the end.
export function tracebackHtml(text) {
  const lines = text.replace(/\s+$/, "").split("\n");
  let frame = -1;
  lines.forEach((l, i) => { if (/^\s*File "[^"]*", line \d+/.test(l)) frame = i; });
  const mark = new Set();
  if (frame >= 0) {
    mark.add(frame);
    if (frame + 1 < lines.length && /^\s{4,}\S/.test(lines[frame + 1]) && !/^\s*File "/.test(lines[frame + 1])) mark.add(frame + 1);
  }
  mark.add(lines.length - 1);
  return lines.map((l, i) => `<span class="line${mark.has(i) ? " failing" : ""}">${esc(l) || " "}</span>`).join("");
}

const ref = (r) => (r ? `<a href="${jobHref(r.id)}">${esc(r.name || r.id)}</a> ${badge(r.state)} <span class="mono muted">${esc(r.id.slice(0, 8))}</span>` : "");

function treeHtml(nodes, here) {
  const kids = new Map();
  const ids = new Set(nodes.map((n) => n.id));
  for (const n of nodes) {
    const p = n.parent_id && ids.has(n.parent_id) && n.parent_id !== n.id ? n.parent_id : null;
    if (!kids.has(p)) kids.set(p, []);
    kids.get(p).push(n);
  }
  const item = (n, depth) => {
    const children = depth < 50 ? kids.get(n.id) || [] : [];
    return `<li class="${n.id === here ? "here" : ""}"><a href="${jobHref(n.id)}">${esc(n.name || n.id)}</a> ${badge(n.state)}${n.group_id ? ` <span class="muted" title="group ${esc(n.group_id)}">group</span>` : ""}${
      children.length ? `<ul>${children.map((c) => item(c, depth + 1)).join("")}</ul>` : ""}</li>`;
  };
  return `<ul class="tree">${(kids.get(null) || []).map((n) => item(n, 0)).join("")}</ul>`;
}

export async function mount(ctx) {
  const id = ctx.params[0];
  const commands = can("operate") ? await optional("/api/commands?limit=1").catch(() => null) : null;
  ctx.el.innerHTML = `<p class="muted">Loading ${esc(id)}…</p>`;
  let message = "";

  async function refresh() {
    const [j, flow] = await Promise.all([
      api(`/api/jobs/${encodeURIComponent(id)}`), optional(`/api/jobs/${encodeURIComponent(id)}/workflow`)]);
    const t = j.timing || {};
    const total = t.total || 0;
    const wait = (t.queued || 0) + (t.scheduled || 0);
    const actionButtons = commands === null ? (can("operate") ? '<span class="muted">Retry and revoke are not offered by this server.</span>' : "")
      : ["retry", "revoke"].map((a) => `<button type="button" data-action="${a}" ${ALLOWED[a].includes(j.state) ? "" : "disabled"}
          title="${ALLOWED[a].includes(j.state) ? "" : `only for ${ALLOWED[a].join(", ")}`}" class="${a === "revoke" ? "danger" : ""}">${a === "retry" ? "Retry" : "Revoke"}</button>`).join(" ");
    ctx.el.innerHTML = `
      <p class="muted"><a href="/jobs">Tasks</a> ›</p>
      <div class="row"><h1>${esc(j.name || "(unknown task)")}</h1> ${badge(j.state)}<span class="spacer"></span>
        <span id="actions">${actionButtons}</span></div>
      <p class="mono">${esc(j.id)}</p>
      <p id="action-result" role="status">${message}</p>
      ${j.state === "unknown" && !j.first_seen_at ? '<p class="notice">Sluice has never seen this task: its state is unknown.</p>' : ""}
      <div class="grid">
        <section class="panel"><h2>Details</h2><dl class="kv">
          <dt>queue</dt><dd>${j.queue ? `<a href="${queueHref(j.queue)}">${esc(j.queue)}</a>` : "–"}</dd>
          <dt>worker</dt><dd>${j.worker ? `<a href="${workerHref(j.worker)}">${esc(j.worker)}</a>` : "–"}</dd>
          <dt>retries</dt><dd>${j.retries}</dd>
          <dt>sent</dt><dd>${time(j.sent_at) || "–"}</dd>
          <dt>received</dt><dd>${time(j.received_at) || "–"}</dd>
          <dt>started</dt><dd>${time(j.started_at) || "–"}</dd>
          <dt>finished</dt><dd>${time(j.finished_at) || "–"}</dd>
          ${j.eta ? `<dt>eta</dt><dd>${esc(j.eta)}</dd>` : ""}${j.expires ? `<dt>expires</dt><dd>${esc(j.expires)}</dd>` : ""}
          ${j.parent ? `<dt>parent</dt><dd>${ref(j.parent)}</dd>` : ""}
          ${j.root && j.root.id !== j.id ? `<dt>root</dt><dd>${ref(j.root)}</dd>` : ""}
          ${j.retried_from ? `<dt>retry of</dt><dd><a href="${jobHref(j.retried_from)}">${esc(j.retried_from)}</a></dd>` : ""}
          ${j.retried_as ? `<dt>retried as</dt><dd><a href="${jobHref(j.retried_as)}" id="retried-as">${esc(j.retried_as)}</a></dd>` : ""}
        </dl></section>
        <section class="panel"><h2>Timing</h2>
          ${total ? `<div class="timing-bar" role="img" aria-label="waited ${secs(wait)}, ran ${secs(t.runtime)}">
            <span class="wait" data-w="${wait / total}"></span><span class="run" data-w="${(t.runtime || 0) / total}"></span></div>` : ""}
          <dl class="kv"><dt>queued</dt><dd>${secs(t.queued) || "–"}</dd><dt>scheduled</dt><dd>${secs(t.scheduled) || "–"}</dd>
          <dt>runtime</dt><dd>${secs(t.runtime) || "–"}</dd><dt>total</dt><dd>${secs(t.total) || "–"}</dd></dl></section>
      </div>
      ${j.exception || j.traceback ? `<h2>Error</h2><p class="error mono">${esc(j.exception || "")}</p>
        ${j.traceback ? `<pre class="block traceback" id="traceback">${tracebackHtml(j.traceback)}</pre>` : ""}` : ""}
      <div class="grid">
        <section class="panel"><h2>Timeline</h2><ol class="timeline" id="timeline">${(j.history || []).map((h) =>
          `<li class="${esc(h.kind && h.kind.startsWith("command.") ? "command" : h.state)}">${badge(h.state)} ${time(h.at)} <span class="muted">${esc(h.kind)}${h.hostname ? ` · ${esc(h.hostname)}` : ""}${h.attempt ? ` · attempt ${h.attempt + 1}` : ""}</span></li>`).join("") || '<li class="muted">no events</li>'}</ol></section>
        <section class="panel"><h2>Arguments and result</h2>
          ${j.args == null && j.kwargs == null && j.result == null ? '<p class="muted">Not captured (the SDK\'s capture_args / the agent\'s --capture-args, and the connection\'s setting).</p>' : `
          <dl class="kv"><dt>args</dt><dd><pre class="block">${esc(j.args ?? "–")}</pre></dd><dt>kwargs</dt><dd><pre class="block">${esc(j.kwargs ?? "–")}</pre></dd>
          <dt>result</dt><dd><pre class="block">${esc(j.result ?? "–")}</pre></dd></dl>`}</section>
      </div>
      ${(j.children || []).length ? `<h2>Children</h2><ul>${j.children.map((c) => `<li>${ref(c)}</li>`).join("")}</ul>` : ""}
      ${(j.group || []).length ? `<h2>Group</h2><ul>${j.group.map((c) => `<li>${ref(c)}</li>`).join("")}</ul>` : ""}
      ${flow && flow.nodes.length > 1 ? `<h2>Workflow</h2><div class="panel">${treeHtml(flow.nodes, j.id)}${flow.truncated ? '<p class="muted">Only the first 500 tasks are shown.</p>' : ""}</div>` : ""}`;
    // widths from data attributes (no inline style: the page's CSP allows none)
    ctx.el.querySelectorAll(".timing-bar span").forEach((s) => { s.style.width = `${Math.round(Number(s.dataset.w) * 1000) / 10}%`; });
  }

  ctx.el.addEventListener("click", async (e) => {
    const action = e.target.dataset && e.target.dataset.action;
    if (!action) return;
    const ok = await confirmDialog(action === "retry" ? `Retry task ${id}? A new task is sent with the same arguments.`
      : `Revoke task ${id}? A running task is not stopped unless terminated.`);
    if (!ok) return;
    try {
      const res = await api(`/api/jobs/${encodeURIComponent(id)}/${action}`, { method: "POST", json: action === "revoke" ? { terminate: false } : {} });
      message = `${action} requested (command ${esc(res.command_id)})`;
      $("#action-result").innerHTML = message;
      follow(res.command_id);
    } catch (err) {
      $("#action-result").textContent = `Not done: ${err.message}`;
    }
  });

  async function follow(commandId) {
    for (let i = 0; i < 60; i += 1) {
      const c = await optional(`/api/commands/${encodeURIComponent(commandId)}`).catch(() => null);
      if (!c) return;
      message = `${esc(c.action)}: ${badge(c.status)} ${c.reason ? esc(c.reason) : ""}${c.new_job_id ? ` → <a href="${jobHref(c.new_job_id)}" id="new-job">new task ${esc(c.new_job_id.slice(0, 8))}</a>` : ""}`;
      const box = $("#action-result");
      if (box) box.innerHTML = message;
      if (c.status === "succeeded" || c.status === "failed") { refresh(); return; }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  await refresh();
  const soon = throttle(() => refresh().catch(() => {}), 500);
  return {
    refresh: soon,
    onEvents(batch) { if (batch.some((e) => e.job_id === id || e.parent_id === id || e.root_id === id)) soon(); },
  };
}
