// The sign-in page: POST /api/session with a key, or with the one-time token of a link
// (`/login#token=...`, taken out of the address at once and used only when clicked).
const $ = (sel) => document.querySelector(sel);

export function safeNext(raw) {
  // only a path of this site (never //host or a scheme): no open redirect
  if (!raw || !raw.startsWith("/") || raw.startsWith("//") || raw.startsWith("/\\")) return "/";
  return raw;
}

async function signIn(body) {
  $("#login-error").textContent = "";
  let res;
  try {
    res = await fetch("/api/session", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
  } catch (e) {
    $("#login-error").textContent = "The server cannot be reached.";
    return;
  }
  if (res.ok) {
    location.assign(safeNext(new URLSearchParams(location.search).get("next")));
    return;
  }
  let detail = `${res.status}`;
  try { detail = (await res.json()).detail || detail; } catch (e) { /* not JSON */ }
  $("#login-error").textContent = `Not signed in: ${detail}`;
}

function takeToken() {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("token");
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  return token && /^lt_[A-Za-z0-9_-]{10,120}$/.test(token) ? token : null;
}

const token = takeToken();
if (token) {
  $("#by-link").hidden = false;
  fetch("/api/session", { credentials: "same-origin" })
    .then((r) => { $("#replace-note").hidden = !r.ok; }).catch(() => {});
  $("#use-link").addEventListener("click", () => signIn({ token }));
  $("#use-link").focus();
} else {
  $("#key").focus();
}
$("#login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  signIn({ key: $("#key").value.trim() });
});
