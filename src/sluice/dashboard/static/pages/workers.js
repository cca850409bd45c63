// Workers: status (lost ones stand out), heartbeat, load, throughput; each row leads to its page.
import { api } from "../js/api.js";
import { $, ago, badge, emptyRow, esc, num, patchRows, queueHref, throttle, workerHref } from "../js/util.js";

export async function mount(ctx) {
  ctx.el.innerHTML = `<h1>Workers</h1>
    <p class="muted" id="lost-note" hidden></p>
    <div class="table-wrap"><table id="workers"><thead><tr><th>worker</th><th>status</th><th>last heartbeat</th>
    <th class="num">active</th><th class="num">processed</th><th class="num">per min</th><th>load</th><th>queues</th><th class="hide-narrow">software</th></tr></thead>
    <tbody></tbody></table></div>`;
  async function refresh() {
    const { items } = await api("/api/workers");
    const order = { lost: 0, online: 1, offline: 2 };
    items.sort((a, b) => (order[a.status] ?? 3) - (order[b.status] ?? 3) || a.hostname.localeCompare(b.hostname));
    const tbody = $("#workers tbody");
    patchRows(tbody, items, (w) => w.hostname, (w) => `
      <td><a href="${workerHref(w.hostname)}">${esc(w.hostname)}</a></td><td>${badge(w.status)}</td>
      <td>${ago(w.last_heartbeat)}</td><td class="num">${num(w.active)}</td><td class="num">${num(w.processed)}</td>
      <td class="num">${w.tasks_per_minute}</td><td>${(w.loadavg || []).map((l) => l.toFixed(2)).join(" ")}</td>
      <td>${w.queues.map((q) => `<a href="${queueHref(q)}">${esc(q)}</a>`).join(", ")}</td>
      <td class="hide-narrow">${esc([w.software.ident, w.software.version].filter(Boolean).join(" "))}</td>`,
    (tr, w) => { tr.classList.toggle("lost", w.status === "lost"); tr.dataset.status = w.status; });
    emptyRow(tbody, 9, "no worker has reported yet");
    const lost = items.filter((w) => w.status === "lost").length;
    $("#lost-note").hidden = !lost;
    $("#lost-note").textContent = lost ? `${lost} worker(s) lost: heartbeats stopped without a goodbye (killed, or cut off).` : "";
  }
  await refresh();
  const soon = throttle(() => refresh().catch(() => {}), 1000);
  const timer = setInterval(soon, 5000);  // "lost" is decided by time passing, not by an event
  return { refresh: soon, onEvents(b) { if (b.some((e) => e.hostname)) soon(); }, dispose() { clearInterval(timer); } };
}
