// The API with the session cookie: the CSRF token on every state-changing request, sign-in
// page on a lost session, and `optional` reads that tell an endpoint this server lacks (404).
let session = null;

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

export function toLogin() {
  const here = location.pathname + location.search;
  location.assign(`/login?next=${encodeURIComponent(here)}`);
}

export async function loadSession() {
  const res = await fetch("/api/session", { credentials: "same-origin", cache: "no-store" });
  if (res.status === 401) { toLogin(); throw new ApiError(401, {}); }
  if (!res.ok) throw new ApiError(res.status, await body(res));
  session = await res.json();
  return session;
}

export const currentSession = () => session;
export const can = (scope) => !!session && (session.scopes.includes(scope) || session.scopes.includes("admin"));

async function body(res) {
  try { return await res.json(); } catch (e) { return null; }
}

export async function api(path, { method = "GET", json, signal } = {}) {
  const headers = {};
  if (json !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && session) headers["X-CSRF-Token"] = session.csrf_token;
  const res = await fetch(path, {
    method, headers, signal, credentials: "same-origin", cache: "no-store",
    body: json === undefined ? undefined : JSON.stringify(json),
  });
  if (res.status === 401) { toLogin(); throw new ApiError(401, await body(res)); }
  if (res.status === 204) return null;
  const data = await body(res);
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

// A read of an endpoint another part of Sluice may not have yet: null when it answers 404
// (or 405), so the page hides what depends on it.
export async function optional(path, options) {
  try {
    return await api(path, options);
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 405)) return null;
    throw e;
  }
}

export async function signOut() {
  try { await api("/api/session", { method: "DELETE" }); } finally { location.assign("/login"); }
}
