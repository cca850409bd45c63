// Tasks: the filtered list (the address holds the list endpoint's parameters), facets per
// state, search with field:value terms, time range, sorting, multi-select and
// select-all-matching for bulk retry/revoke (dry run, then confirmation), CSV/JSON export.
import { ApiError, api, can, optional } from "../js/api.js";
import { format, parse } from "../js/search.js";
import { $, $$, STATES, ago, badge, download, emptyRow, enc, esc, jobHref, num, patchRows, queueHref, secs, throttle, workerHref } from "../js/util.js";

const FILTERS = ["state", "queue", "worker", "name", "id", "q", "since", "until"];
const RANGES = [["15m", 900], ["1h", 3600], ["24h", 86400], ["7d", 604800]];
const COLUMNS = [
  ["state", "state"], ["name", "task"], ["id", "id"], ["queue", "queue"], ["worker", "worker"],
  ["retries", "retries"], ["sent_at", "sent"], ["runtime", "runtime"], ["exception", "exception"]];
const EXPORT_MAX = 10_000;
const ACTIONS = { retry: ["failed", "cancelled"], revoke: ["active", "queued", "scheduled", "retrying", "unknown"] };

export function filterParams(query) {
  const out = new URLSearchParams();
  for (const f of FILTERS) for (const v of query.getAll(f)) if (v) out.append(f, v);
  return out;
}

function filterObject(params) {  // the same filter as the bulk action's body
  const out = {};
  for (const f of FILTERS) {
    const vals = params.getAll(f);
    if (vals.length) out[f] = f === "state" ? vals : vals[vals.length - 1];
  }
  return out;
}

const isoAgo = (s) => new Date(Date.now() - s * 1000).toISOString().replace(/\.\d+Z$/, "Z");

export async function mount(ctx) {
  const filters = filterParams(ctx.query);
  const sort = ctx.query.get("sort") || "";
  const states = filters.getAll("state").flatMap((s) => s.split(","));
  const selected = new Set();
  let allMatching = false;
  let items = [];
  let cursor = null;
  let bulkAvailable = false;

  ctx.el.innerHTML = `
    <div class="row"><h1>Tasks</h1><span class="spacer"></span>
      <span class="muted">First seen</span>
      <span class="segmented" role="group" aria-label="time range" id="ranges"></span>
      <button type="button" id="export-csv">Export CSV</button>
      <button type="button" id="export-json">Export JSON</button></div>
    <form class="search" id="search" role="search">
      <input type="search" name="text" aria-label="Search tasks" placeholder='free text, or state:failed queue:emails name:charge worker:shop1@host id:3f2a'>
      <button class="primary">Search</button> <a href="/jobs">Clear</a>
    </form>
    <p class="muted" id="search-note" hidden></p>
    <div class="facets" id="facets" aria-label="states"></div>
    <div class="bulk" id="bulk" hidden></div>
    <div class="table-wrap"><table id="jobs">
      <thead><tr><th><input type="checkbox" id="select-page" aria-label="select every task on this page"></th>
        ${COLUMNS.map(([k, label]) => `<th><button type="button" class="sort" data-sort="${k}"
          aria-sort="${sort === k ? "ascending" : sort === `-${k}` ? "descending" : "none"}">${label}</button></th>`).join("")}</tr></thead>
      <tbody></tbody></table></div>
    <div class="row"><button type="button" id="more" hidden>Load more</button><span class="muted" id="shown"></span></div>`;

  const form = $("#search");
  form.text.value = format(filters);
  const since = filters.get("since");
  $("#ranges").innerHTML = RANGES.map(([label, s]) => {
    const p = new URLSearchParams(filters);
    p.set("since", isoAgo(s));
    return `<a href="/jobs?${p}" data-range="${label}">${label}</a>`;
  }).join("") + (() => { const p = new URLSearchParams(filters); p.delete("since"); return `<a href="/jobs?${p}" aria-current="${!since}">all</a>`; })();

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const { params } = parse(form.text.value);
    for (const f of ["since", "until"]) if (filters.get(f)) params.set(f, filters.get(f));
    if (sort) params.set("sort", sort);
    ctx.setQuery(params);
  });
  const unknown = parse(form.text.value).unknown;
  if (unknown.length) { $("#search-note").hidden = false; $("#search-note").textContent = `Not a field: ${unknown.join(", ")} (searched as text)`; }

  $$("th button.sort", ctx.el).forEach((b) => b.addEventListener("click", () => {
    const p = new URLSearchParams(ctx.query);
    const k = b.dataset.sort;
    p.set("sort", sort === k ? `-${k}` : sort === `-${k}` ? "" : k);
    if (!p.get("sort")) p.delete("sort");
    ctx.setQuery(p);
  }));

  function sorted(list) {
    if (!sort) return list;
    const key = sort.replace(/^-/, "");
    const dir = sort.startsWith("-") ? -1 : 1;
    return [...list].sort((a, b) => {
      const x = a[key] ?? "";
      const y = b[key] ?? "";
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    });
  }

  const rowHtml = (j) => `
    <td><input type="checkbox" class="pick" value="${esc(j.id)}" aria-label="select ${esc(j.id)}"${selected.has(j.id) || allMatching ? " checked" : ""}></td>
    <td>${badge(j.state)}</td>
    <td>${j.name ? `<a href="/jobs?name=${enc(j.name)}" title="only ${esc(j.name)}">${esc(j.name)}</a>` : ""}</td>
    <td class="mono"><a href="${jobHref(j.id)}" title="${esc(j.id)}">${esc(j.id.slice(0, 8))}</a></td>
    <td>${j.queue ? `<a href="/jobs?queue=${enc(j.queue)}">${esc(j.queue)}</a>` : ""}</td>
    <td>${j.worker ? `<a href="/jobs?worker=${enc(j.worker)}">${esc(j.worker)}</a>` : ""}</td>
    <td class="num">${j.retries || ""}</td>
    <td>${ago(j.sent_at || j.first_seen_at)}</td>
    <td class="num">${secs(j.runtime)}</td>
    <td class="exc" title="${esc(j.exception)}">${esc(j.exception)}</td>`;

  function draw() {
    const tbody = $("#jobs tbody");
    patchRows(tbody, sorted(items), (j) => j.id, rowHtml, (tr, j) => {
      tr.classList.toggle("selected", allMatching || selected.has(j.id));
      tr.dataset.state = j.state;
    });
    emptyRow(tbody, COLUMNS.length + 1, "no tasks match");
    $("#more").hidden = !cursor;
    $("#shown").textContent = `${num(items.length)} shown`;
  }

  function drawFacets(facets, cap) {
    const base = new URLSearchParams(ctx.query);
    $("#facets").innerHTML = STATES.map((s) => {
      const p = new URLSearchParams(base);
      const on = states.includes(s);
      p.delete("state");
      const next = on ? states.filter((x) => x !== s) : [...states, s];
      next.forEach((x) => p.append("state", x));
      const n = facets ? facets[s] ?? 0 : null;
      const label = n == null ? "" : n >= cap ? `${num(cap)}+` : num(n);
      return `<a class="facet" href="/jobs?${p}" aria-pressed="${on}" data-state="${s}" title="${on ? "remove" : "add"} state ${s}">${badge(s)}<span class="n">${label}</span></a>`;
    }).join("");
  }

  async function load(more) {
    const p = new URLSearchParams(filters);
    p.set("limit", "100");
    p.set("facets", "true");
    if (more && cursor) p.set("cursor", cursor);
    const page = await api(`/api/jobs?${p}`);
    items = more ? [...items, ...page.items] : page.items;
    cursor = page.next_cursor;
    drawFacets(page.facets, page.facets_cap || 10000);
    draw();
    if (allMatching) bulkBar();
  }

  // live: the first page again, merged in place (new rows on top, changed rows in place)
  async function refreshTop() {
    const p = new URLSearchParams(filters);
    p.set("limit", String(Math.max(100, Math.min(500, items.length))));
    p.set("facets", "true");
    const page = await api(`/api/jobs?${p}`);
    const fresh = new Set(page.items.map((j) => j.id));
    const edge = page.items.length ? page.items[page.items.length - 1].first_seen_at : null;
    // rows loaded with "Load more" beyond the fresh page stay (they are older than its edge)
    const older = page.next_cursor && edge ? items.filter((j) => !fresh.has(j.id) && j.first_seen_at < edge) : [];
    items = [...page.items, ...older];
    if (!page.next_cursor) cursor = null;
    else if (!older.length) cursor = page.next_cursor;
    drawFacets(page.facets, page.facets_cap || 10000);
    draw();
  }

  ctx.el.addEventListener("change", (e) => {
    const box = e.target;
    if (box.id === "select-page") {
      allMatching = false;
      items.forEach((j) => (box.checked ? selected.add(j.id) : selected.delete(j.id)));
      draw();
      bulkBar();
    } else if (box.classList.contains("pick")) {
      allMatching = false;
      if (box.checked) selected.add(box.value); else selected.delete(box.value);
      box.closest("tr").classList.toggle("selected", box.checked);
      bulkBar();
    }
  });

  function bulkBar() {
    const bar = $("#bulk");
    const count = allMatching ? "every task matching this filter" : `${num(selected.size)} selected`;
    if (!allMatching && !selected.size) { bar.hidden = true; return; }
    bar.hidden = false;
    const pageAll = items.length && items.every((j) => selected.has(j.id));
    bar.innerHTML = `<span>${count}</span>
      ${pageAll && !allMatching && cursor ? '<button type="button" id="all-matching">Select all matching</button>' : ""}
      ${bulkAvailable ? '<button type="button" data-bulk="retry">Retry…</button> <button type="button" class="danger" data-bulk="revoke">Revoke…</button>'
        : `<span class="muted">${can("operate") ? "Bulk actions are not offered by this server." : "Bulk actions need a key with the operate scope."}</span>`}
      <button type="button" id="clear-selection">Clear selection</button>
      <span id="bulk-result" role="status"></span>`;
  }

  $("#bulk").addEventListener("click", async (e) => {
    const t = e.target;
    if (t.id === "all-matching") { allMatching = true; draw(); bulkBar(); }
    else if (t.id === "clear-selection") { allMatching = false; selected.clear(); $("#select-page").checked = false; draw(); bulkBar(); }
    else if (t.dataset.bulk) await bulk(t.dataset.bulk);
  });

  async function bulk(action) {
    const target = allMatching ? { filter: filterObject(filters) } : { ids: [...selected] };
    const result = $("#bulk-result");
    try {
      const dry = await api("/api/jobs/actions", { method: "POST", json: { action, ...target, dry_run: true } });
      const sample = (dry.sample || []).slice(0, 5).map((s) => (typeof s === "string" ? s : s.id)).join(", ");
      const ok = await confirmDialog(`${action === "retry" ? "Retry" : "Revoke"} ${num(dry.count)} task(s)? ` +
        `Only tasks in ${ACTIONS[action].join(", ")} are ${action === "retry" ? "retried" : "revoked"}.` +
        (sample ? ` For example: ${sample}` : ""));
      if (!ok) { result.textContent = "Cancelled: nothing was sent."; return; }
      const done = await api("/api/jobs/actions", { method: "POST", json: { action, ...target, dry_run: false } });
      result.textContent = `Requested: command ${done.command_id || done.id || ""}`;
      result.dataset.command = done.command_id || done.id || "";
    } catch (err) {
      result.textContent = `Not done: ${err.message}`;
    }
  }

  async function exportRows(kind) {
    const rows = [];
    let next = null;
    do {
      const p = new URLSearchParams(filters);
      p.set("limit", "500");
      if (next) p.set("cursor", next);
      const page = await api(`/api/jobs?${p}`);
      rows.push(...page.items);
      next = page.next_cursor;
    } while (next && rows.length < EXPORT_MAX);
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    if (kind === "json") {
      download(`sluice-tasks-${stamp}.json`, "application/json", JSON.stringify(rows, null, 2));
      return;
    }
    const cols = ["id", "name", "state", "queue", "worker", "retries", "sent_at", "received_at", "started_at",
      "finished_at", "runtime", "exception", "parent_id", "root_id", "group_id", "first_seen_at"];
    const cell = (v) => (v == null ? "" : /[",\n\r]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));
    download(`sluice-tasks-${stamp}.csv`, "text/csv", [cols.join(","), ...rows.map((r) => cols.map((c) => cell(r[c])).join(","))].join("\r\n"));
  }
  $("#export-csv").addEventListener("click", () => exportRows("csv"));
  $("#export-json").addEventListener("click", () => exportRows("json"));
  $("#more").addEventListener("click", () => load(true));

  await load(false);
  if (can("operate")) {
    try {  // a dry run answers whether this server offers bulk actions (404/405: it does not)
      bulkAvailable = (await optional("/api/jobs/actions", { method: "POST",
        json: { action: "revoke", ids: [], dry_run: true } })) !== null;
    } catch (e) { bulkAvailable = !(e instanceof ApiError) || e.status !== 404; }
  }
  const soon = throttle(() => refreshTop().catch(() => {}), 400);
  return {
    refresh: soon,
    onEvents(batch) { if (batch.some((e) => e.job_id)) soon(); },
  };
}

export function confirmDialog(text) {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = text;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true }));
}
