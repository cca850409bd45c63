// One queue: depth, throughput and runtime charts (/api/queues/{name}/series), consumers.
import { api, optional } from "../js/api.js";
import { Chart, epoch } from "../js/charts.js";
import { $, badge, enc, esc, num, secs, throttle, workerHref } from "../js/util.js";

const WINDOWS = ["1h", "24h", "7d"];

export async function mount(ctx) {
  const name = ctx.params[0];
  const win = WINDOWS.includes(ctx.query.get("window")) ? ctx.query.get("window") : "1h";
  ctx.el.innerHTML = `
    <p class="muted"><a href="/queues">Queues</a> ›</p>
    <div class="row"><h1>${esc(name)}</h1><span class="spacer"></span>
      <a href="/jobs?queue=${enc(name)}">Tasks of this queue</a>
      <span class="segmented" role="group" aria-label="chart window">${WINDOWS.map((w) =>
        `<a href="?window=${w}" aria-current="${w === win}">${w}</a>`).join("")}</span></div>
    <div class="cards" id="cards"></div>
    <div class="grid">
      <section class="panel"><h2>Depth</h2><div class="chart" id="depth"></div></section>
      <section class="panel"><h2>Finished per bucket</h2><div class="chart" id="throughput"></div></section>
      <section class="panel"><h2>Wait (sent → started)</h2><div class="chart" id="wait"></div></section>
      <section class="panel"><h2>Mean runtime</h2><div class="chart" id="runtime"></div></section>
    </div>
    <h2>Consumers</h2><ul id="consumers"></ul>`;
  const depth = new Chart($("#depth"), [{ label: "depth", color: "--queued" }]);
  const throughput = new Chart($("#throughput"), [{ label: "completed", color: "--completed" }, { label: "failed", color: "--failed" }, { label: "retried", color: "--retrying" }]);
  const wait = new Chart($("#wait"), [{ label: "p50", color: "--queued", fmt: (v) => secs(v) }, { label: "p95", color: "--retrying", fmt: (v) => secs(v) }]);
  const runtime = new Chart($("#runtime"), [{ label: "runtime (s)", color: "--active", fmt: (v) => secs(v) }]);

  async function refresh() {
    const [q, s, w, wt] = await Promise.all([optional(`/api/queues/${enc(name)}`),
      api(`/api/queues/${enc(name)}/series?window=${win}`), api("/api/workers"),
      api(`/api/queues/${enc(name)}/wait?window=${win}`)]);
    $("#cards").innerHTML = q ? [["depth", num(q.depth)], ["consumers", num(q.consumers)], ["finished/min", q.throughput],
      ["wait p50", secs(q.wait_p50) || "–"], ["wait p95", secs(q.wait_p95) || "–"]]
      .map(([k, v]) => `<div class="card"><b>${esc(v)}</b><span>${esc(k)}</span></div>`).join("") : '<p class="muted">This queue has not been seen.</p>';
    const xs = s.points.map((p) => epoch(p.at));
    depth.set(xs, [s.points.map((p) => p.depth)]);
    throughput.set(xs, [s.points.map((p) => p.completed), s.points.map((p) => p.failed), s.points.map((p) => p.retried)]);
    runtime.set(xs, [s.points.map((p) => p.runtime_avg)]);
    const byAt = new Map(wt.points.map((p) => [epoch(p.at), p]));
    wait.set(xs, [xs.map((x) => (byAt.get(x) || {}).p50 ?? null), xs.map((x) => (byAt.get(x) || {}).p95 ?? null)]);
    const consumers = w.items.filter((x) => x.queues.includes(name));
    $("#consumers").innerHTML = consumers.map((x) => `<li><a href="${workerHref(x.hostname)}">${esc(x.hostname)}</a> ${badge(x.status)}</li>`).join("")
      || '<li class="muted">no worker seen consuming it lately</li>';
  }
  await refresh();
  const soon = throttle(() => refresh().catch(() => {}), 2000);
  return {
    refresh: soon,
    onEvents(b) { if (b.some((e) => e.queue === name)) soon(); },
    dispose() { depth.destroy(); throughput.destroy(); wait.destroy(); runtime.destroy(); },
  };
}
