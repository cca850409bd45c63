// Queues: depth, consumers, throughput, wait p50/p95; each row leads to its charts.
import { api } from "../js/api.js";
import { $, ago, emptyRow, esc, num, patchRows, queueHref, secs, throttle } from "../js/util.js";

export async function mount(ctx) {
  ctx.el.innerHTML = `<h1>Queues</h1><div class="table-wrap"><table id="queues"><thead><tr><th>queue</th>
    <th class="num">depth</th><th class="num">consumers</th><th class="num">finished/min</th><th class="num">wait p50</th>
    <th class="num">wait p95</th><th>sampled</th></tr></thead><tbody></tbody></table></div>
    <p class="muted">Depth comes from the agent's broker samples; without the agent it is unknown (–).</p>`;
  async function refresh() {
    const { items } = await api("/api/queues");
    patchRows($("#queues tbody"), items, (q) => q.name, (q) => `
      <td><a href="${queueHref(q.name)}">${esc(q.name)}</a></td><td class="num">${num(q.depth)}</td>
      <td class="num">${num(q.consumers)}</td><td class="num">${q.throughput}</td><td class="num">${secs(q.wait_p50)}</td>
      <td class="num">${secs(q.wait_p95)}</td><td>${ago(q.sampled_at)}</td>`);
    emptyRow($("#queues tbody"), 7, "no queue seen yet");
  }
  await refresh();
  const soon = throttle(() => refresh().catch(() => {}), 2000);
  return { refresh: soon, onEvents(b) { if (b.some((e) => e.queue)) soon(); } };
}
