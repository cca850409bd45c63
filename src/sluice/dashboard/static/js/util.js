// Small helpers: escaping, times (viewer's zone, UTC on hover), durations, badges, keyed
// in-place row updates, throttling.
export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export const STATES = ["queued", "scheduled", "active", "retrying", "completed", "failed",
  "cancelled", "unknown"];

const TIME = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
});

// a time in the viewer's zone, with its UTC form on hover
export function time(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return esc(iso);
  return `<time datetime="${esc(d.toISOString())}" title="${esc(d.toISOString().replace(".000Z", "Z"))} UTC">${esc(TIME.format(d))}</time>`;
}

export function ago(iso) {
  if (!iso) return "";
  const s = (Date.now() - Date.parse(iso)) / 1000;
  let text;
  if (s < 60) text = `${Math.max(0, s).toFixed(0)} s ago`;
  else if (s < 3600) text = `${(s / 60).toFixed(0)} min ago`;
  else if (s < 86400) text = `${(s / 3600).toFixed(1)} h ago`;
  else return time(iso);
  const d = new Date(iso);
  return `<time datetime="${esc(d.toISOString())}" title="${esc(TIME.format(d))} (${esc(d.toISOString())} UTC)">${text}</time>`;
}

export function secs(v) {
  if (v == null) return "";
  if (v < 1) return `${(v * 1000).toFixed(1)} ms`;
  if (v < 120) return `${v.toFixed(2)} s`;
  if (v < 7200) return `${(v / 60).toFixed(1)} min`;
  return `${(v / 3600).toFixed(1)} h`;
}

export const pct = (v) => (v == null ? "–" : `${(v * 100).toFixed(1)} %`);
export const num = (v) => (v == null ? "–" : Number(v).toLocaleString());

export function badge(state, href) {
  const cls = `badge ${esc(state)}`;
  return href ? `<a class="${cls}" href="${esc(href)}">${esc(state)}</a>` : `<span class="${cls}">${esc(state)}</span>`;
}

export const enc = encodeURIComponent;
export const jobHref = (id) => `/jobs/${enc(id)}`;
export const workerHref = (h) => `/workers/${enc(h)}`;
export const queueHref = (q) => `/queues/${enc(q)}`;

// Rows keyed by data-key, updated in place: unchanged rows keep their nodes (and focus,
// selection), changed ones get new cells, new ones are inserted where they belong, gone
// ones removed. `html(item)` gives the row's inner HTML; `decorate(tr, item)` sets classes.
export function patchRows(tbody, items, key, html, decorate) {
  const existing = new Map($$(":scope > tr[data-key]", tbody).map((tr) => [tr.dataset.key, tr]));
  $$(":scope > tr:not([data-key])", tbody).forEach((tr) => tr.remove());
  let before = tbody.firstElementChild;
  const keep = new Set();
  for (const item of items) {
    const k = String(key(item));
    keep.add(k);
    const inner = html(item);
    let tr = existing.get(k);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.key = k;
    }
    if (tr.dataset.html !== inner) {
      tr.innerHTML = inner;
      tr.dataset.html = inner;
    }
    if (decorate) decorate(tr, item);
    if (tr !== before) tbody.insertBefore(tr, before);
    else before = before.nextElementSibling;
  }
  for (const [k, tr] of existing) if (!keep.has(k)) tr.remove();
}

export function emptyRow(tbody, cols, text) {
  if (!tbody.querySelector("tr[data-key]")) {
    tbody.innerHTML = `<tr><td colspan="${cols}" class="muted">${esc(text)}</td></tr>`;
  }
}

// Calls fn at most once per `ms`, and once more after the last call in a burst.
export function throttle(fn, ms) {
  let last = 0;
  let timer = null;
  return (...args) => {
    const wait = last + ms - Date.now();
    if (wait <= 0 && !timer) {
      last = Date.now();
      fn(...args);
    } else if (!timer) {
      timer = setTimeout(() => { timer = null; last = Date.now(); fn(...args); }, Math.max(0, wait));
    }
  };
}

export function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
