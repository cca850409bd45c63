// Overview: every state's figure over a range (1 h, 24 h, 7 d), throughput and failure
// charts, runtime and queue-wait p50/p95, top failing tasks, queues and workers at a glance.
import { api } from "../js/api.js";
import { Chart, epoch } from "../js/charts.js";
import { $, STATES, badge, enc, esc, num, patchRows, pct, queueHref, secs, throttle, workerHref } from "../js/util.js";

const RANGES = { "1h": 3600, "24h": 86400, "7d": 604800 };

export async function mount(ctx) {
  const range = RANGES[ctx.query.get("range")] ? ctx.query.get("range") : "1h";
  ctx.el.innerHTML = `
    <div class="row"><h1>Overview</h1><span class="spacer"></span>
      <span class="muted">Range</span>
      <span class="segmented" role="group" aria-label="time range">${Object.keys(RANGES).map((r) =>
        `<a href="/?range=${r}" aria-current="${r === range}">${r}</a>`).join("")}</span></div>
    <div class="cards" id="cards"></div>
    <div class="grid">
      <section class="panel"><h2>Finished per bucket</h2><div class="chart" id="throughput"></div></section>
      <section class="panel"><h2>Failures</h2><div class="chart" id="failures"></div></section>
    </div>
    <div class="grid">
      <section class="panel"><h2>Top failing tasks</h2><div class="table-wrap"><table id="failing">
        <thead><tr><th>task</th><th class="num">failed</th><th class="num">finished</th><th class="num">failure rate</th></tr></thead><tbody></tbody></table></div></section>
      <section class="panel"><h2>Queues</h2><div class="table-wrap"><table id="queues">
        <thead><tr><th>queue</th><th class="num">depth</th><th class="num">consumers</th><th class="num">per min</th><th class="num">wait p95</th></tr></thead><tbody></tbody></table></div></section>
      <section class="panel"><h2>Workers</h2><div class="table-wrap"><table id="workers">
        <thead><tr><th>worker</th><th>status</th><th class="num">active</th><th class="num">per min</th></tr></thead><tbody></tbody></table></div></section>
    </div>`;
  const since = () => new Date(Date.now() - RANGES[range] * 1000).toISOString().replace(/\.\d+Z$/, "Z");
  const throughput = new Chart($("#throughput"), [
    { label: "completed", color: "--completed" }, { label: "failed", color: "--failed" },
    { label: "retried", color: "--retrying" }, { label: "cancelled", color: "--cancelled" }]);
  const failures = new Chart($("#failures"), [
    { label: "failed", color: "--failed", bars: true },
    { label: "failure rate", color: "--retrying", scale: "%", fmt: (v) => `${(v * 100).toFixed(1)} %` }]);

  async function refresh() {
    const [s, q, w] = await Promise.all([
      api(`/api/stats/summary?range=${range}`), api("/api/queues"), api("/api/workers")]);
    const c = s.counts;
    const cards = STATES.map((st) => [st, num(c[st]), `/jobs?state=${st}&since=${since()}`,
      ["completed", "failed", "cancelled"].includes(st) ? `finished in ${range}` : `first seen in ${range}`]);
    cards.push(["failure rate", pct(s.failure_rate), `/jobs?state=failed&since=${since()}`, range]);
    cards.push(["retried", num(s.retried), `/jobs?state=retrying&since=${since()}`, `attempts in ${range}`]);
    cards.push(["runtime p50", secs(s.runtime.p50) || "–", null, `of ${num(s.runtime.sample)} completed`]);
    cards.push(["runtime p95", secs(s.runtime.p95) || "–", null, `of ${num(s.runtime.sample)} completed`]);
    cards.push(["wait p50", secs(s.wait.p50) || "–", null, "sent → started"]);
    cards.push(["wait p95", secs(s.wait.p95) || "–", null, "sent → started"]);
    $("#cards").innerHTML = cards.map(([label, value, href, note]) => {
      const inner = `<b data-figure="${esc(label)}">${esc(value)}</b><span>${esc(label)} · ${esc(note)}</span>`;
      return href ? `<a class="card" href="${esc(href)}">${inner}</a>` : `<div class="card">${inner}</div>`;
    }).join("");
    const xs = s.series.map((p) => epoch(p.at));
    throughput.set(xs, [s.series.map((p) => p.completed), s.series.map((p) => p.failed),
      s.series.map((p) => p.retried), s.series.map((p) => p.cancelled)]);
    failures.set(xs, [s.series.map((p) => p.failed), s.series.map((p) => {
      const done = p.completed + p.failed + p.cancelled;
      return done ? p.failed / done : null;
    })]);
    const failing = $("#failing tbody");
    patchRows(failing, s.top_failing, (t) => t.name, (t) => `
      <td><a href="/jobs?name=${enc(t.name)}&state=failed">${esc(t.name || "(unnamed)")}</a></td>
      <td class="num">${num(t.failed)}</td><td class="num">${num(t.finished)}</td><td class="num">${pct(t.failure_rate)}</td>`);
    if (!s.top_failing.length) failing.innerHTML = `<tr><td colspan="4" class="muted">no failures in ${range}</td></tr>`;
    patchRows($("#queues tbody"), q.items.slice(0, 10), (x) => x.name, (x) => `
      <td><a href="${queueHref(x.name)}">${esc(x.name)}</a></td><td class="num">${num(x.depth)}</td>
      <td class="num">${num(x.consumers)}</td><td class="num">${x.throughput}</td><td class="num">${secs(x.wait_p95)}</td>`);
    patchRows($("#workers tbody"), w.items.slice(0, 10), (x) => x.hostname, (x) => `
      <td><a href="${workerHref(x.hostname)}">${esc(x.hostname)}</a></td><td>${badge(x.status)}</td>
      <td class="num">${num(x.active)}</td><td class="num">${x.tasks_per_minute}</td>`,
      (tr, x) => tr.classList.toggle("lost", x.status === "lost"));
  }
  await refresh();
  const soon = throttle(() => refresh().catch(() => {}), 700);
  const timer = setInterval(soon, 15_000);  // times move on even when nothing happens
  return {
    refresh: soon,
    onEvents: () => soon(),
    dispose() { clearInterval(timer); throughput.destroy(); failures.destroy(); },
  };
}
