// Commands: the audit list of every command (who, when, outcome), when the server has them.
import { optional } from "../js/api.js";
import { $, badge, emptyRow, esc, jobHref, patchRows, throttle, time } from "../js/util.js";

export async function mount(ctx) {
  ctx.el.innerHTML = `<h1>Commands</h1><div id="commands-body"></div>`;
  let items = [];
  let cursor = null;
  async function load(more) {
    const page = await optional(`/api/commands?limit=100${more && cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    const box = $("#commands-body");
    if (page === null) {
      box.innerHTML = '<p class="notice" id="no-commands">This server does not record commands (retry, revoke, worker controls) yet.</p>';
      return;
    }
    if (!box.querySelector("table")) {
      box.innerHTML = `<div class="table-wrap"><table id="commands"><thead><tr><th>requested</th><th>action</th><th>task</th>
        <th>status</th><th>reason</th><th>new task</th><th>by</th><th>finished</th></tr></thead><tbody></tbody></table></div>
        <button type="button" id="more" hidden>Load more</button>`;
      $("#more").addEventListener("click", () => load(true));
    }
    const got = page.items || [];
    items = more ? [...items, ...got] : got;
    cursor = page.next_cursor || null;
    patchRows($("#commands tbody"), items, (c) => c.id, (c) => `
      <td>${time(c.requested_at)}</td><td>${esc(c.action)}</td>
      <td class="mono">${c.job_id ? `<a href="${jobHref(c.job_id)}">${esc(c.job_id.slice(0, 8))}</a>` : "bulk"}</td>
      <td>${badge(c.status)}</td><td>${esc(c.reason || "")}</td>
      <td class="mono">${c.new_job_id ? `<a href="${jobHref(c.new_job_id)}">${esc(c.new_job_id.slice(0, 8))}</a>` : ""}</td>
      <td>${esc(c.requested_by || "")}</td><td>${time(c.finished_at)}</td>`);
    emptyRow($("#commands tbody"), 8, "no command yet");
    $("#more").hidden = !cursor;
  }
  await load(false);
  const soon = throttle(() => load(false).catch(() => {}), 1000);
  return { refresh: soon, onEvents(b) { if (b.some((e) => (e.kind || "").startsWith("command."))) soon(); } };
}
