// One worker: status, software, load (live from its heartbeats) and throughput charts,
// active tasks, recent tasks, pool controls (when the server offers commands).
import { api, can, optional } from "../js/api.js";
import { Chart, epoch } from "../js/charts.js";
import { $, ago, badge, emptyRow, enc, esc, jobHref, num, patchRows, queueHref, secs, throttle, time } from "../js/util.js";

const WINDOWS = ["1h", "24h", "7d"];

export async function mount(ctx) {
  const host = ctx.params[0];
  const win = WINDOWS.includes(ctx.query.get("window")) ? ctx.query.get("window") : "1h";
  const commands = can("operate") ? await optional("/api/commands?limit=1").catch(() => null) : null;
  ctx.el.innerHTML = `
    <p class="muted"><a href="/workers">Workers</a> ›</p>
    <div class="row"><h1>${esc(host)}</h1> <span id="status"></span><span class="spacer"></span>
      <span class="segmented" role="group" aria-label="chart window">${WINDOWS.map((w) =>
        `<a href="?window=${w}" aria-current="${w === win}">${w}</a>`).join("")}</span></div>
    <div class="grid">
      <section class="panel"><h2>Worker</h2><dl class="kv" id="facts"></dl>
        <div id="pool" ${commands === null ? "hidden" : ""}><h2>Pool</h2><div class="row">
          <button type="button" data-pool="grow">Grow by 1</button> <button type="button" data-pool="shrink">Shrink by 1</button>
          <span id="pool-result" role="status"></span></div></div></section>
      <section class="panel"><h2>Finished per bucket</h2><div class="chart" id="throughput"></div></section>
      <section class="panel"><h2>Load average (live, from heartbeats)</h2><div class="chart" id="load"></div></section>
    </div>
    <h2>Active tasks</h2><div class="table-wrap"><table id="active"><thead><tr><th>task</th><th>id</th><th>started</th></tr></thead><tbody></tbody></table></div>
    <h2>Recent tasks <a class="muted" href="/jobs?worker=${enc(host)}">all</a></h2>
    <div class="table-wrap"><table id="recent"><thead><tr><th>state</th><th>task</th><th>id</th><th class="num">runtime</th><th>finished</th></tr></thead><tbody></tbody></table></div>`;
  const throughput = new Chart($("#throughput"), [{ label: "completed", color: "--completed" }, { label: "failed", color: "--failed" }]);
  const load = new Chart($("#load"), [{ label: "1 min", color: "--active", points: true }, { label: "5 min", color: "--queued", points: true }, { label: "15 min", color: "--scheduled", points: true }]);
  const loads = [[], [], [], []];
  const addLoad = (at, l) => {
    if (!l || l.length < 3) return;
    loads[0].push(at); loads[1].push(l[0]); loads[2].push(l[1]); loads[3].push(l[2]);
    if (loads[0].length > 2000) loads.forEach((a) => a.shift());
    load.set(loads[0], loads.slice(1));
  };

  async function refresh() {
    const [w, series, active, recent] = await Promise.all([
      optional(`/api/workers/${enc(host)}`), api(`/api/workers/${enc(host)}/series?window=${win}`),
      api(`/api/jobs?worker=${enc(host)}&state=active&limit=100`), api(`/api/jobs?worker=${enc(host)}&limit=20`)]);
    if (!w) { $("#facts").innerHTML = '<dd class="muted">This worker has not reported.</dd>'; return; }
    $("#status").innerHTML = badge(w.status);
    $("#facts").innerHTML = `
      <dt>status</dt><dd>${badge(w.status)}${w.status === "lost" ? " heartbeats stopped without worker-offline" : ""}</dd>
      <dt>last heartbeat</dt><dd>${ago(w.last_heartbeat)}</dd><dt>active</dt><dd>${num(w.active)}</dd>
      <dt>processed</dt><dd>${num(w.processed)}</dd><dt>per minute</dt><dd>${w.tasks_per_minute}</dd>
      <dt>load</dt><dd>${(w.loadavg || []).map((l) => l.toFixed(2)).join(" ")}</dd>
      <dt>queues</dt><dd>${w.queues.map((q) => `<a href="${queueHref(q)}">${esc(q)}</a>`).join(", ") || "–"}</dd>
      <dt>software</dt><dd>${esc([w.software.ident, w.software.version, w.software.system].filter(Boolean).join(" · ")) || "–"}</dd>
      <dt>pid</dt><dd>${w.pid ?? "–"}</dd><dt>first seen</dt><dd>${time(w.first_seen_at)}</dd>`;
    if (!loads[0].length && w.loadavg && w.last_heartbeat) {
      // the last reported load, held until now: a line from the start, not a lone dot
      addLoad(epoch(w.last_heartbeat), w.loadavg);
      addLoad(Math.max(epoch(w.last_heartbeat) + 1, Date.now() / 1000), w.loadavg);
    }
    const xs = series.points.map((p) => epoch(p.at));
    throughput.set(xs, [series.points.map((p) => p.completed), series.points.map((p) => p.failed)]);
    const row = (j) => `<td><a href="/jobs?name=${enc(j.name || "")}">${esc(j.name)}</a></td><td class="mono"><a href="${jobHref(j.id)}">${esc(j.id.slice(0, 8))}</a></td>`;
    patchRows($("#active tbody"), active.items, (j) => j.id, (j) => `${row(j)}<td>${ago(j.started_at)}</td>`);
    emptyRow($("#active tbody"), 3, "idle");
    patchRows($("#recent tbody"), recent.items, (j) => j.id, (j) => `<td>${badge(j.state)}</td>${row(j)}<td class="num">${secs(j.runtime)}</td><td>${ago(j.finished_at)}</td>`);
    emptyRow($("#recent tbody"), 5, "no tasks yet");
  }

  ctx.el.addEventListener("click", async (e) => {
    const op = e.target.dataset && e.target.dataset.pool;
    if (!op) return;
    try {
      const res = await api(`/api/workers/${enc(host)}/pool`, { method: "POST", json: { action: op, n: 1 } });
      $("#pool-result").textContent = `${op} requested (command ${res.command_id || ""})`;
    } catch (err) {
      $("#pool-result").textContent = `Not done: ${err.message}`;
    }
  });

  await refresh();
  const soon = throttle(() => refresh().catch(() => {}), 1000);
  const timer = setInterval(soon, 10_000);
  return {
    refresh: soon,
    onEvents(batch) {
      let mine = false;
      for (const e of batch) {
        if (e.hostname !== host && e.worker !== host) continue;
        mine = true;
        if (e.kind === "worker.heartbeat") addLoad(e.timestamp, e.loadavg || (e.extensions && e.extensions.loadavg));
      }
      if (mine) soon();
    },
    dispose() { clearInterval(timer); throughput.destroy(); load.destroy(); },
  };
}
