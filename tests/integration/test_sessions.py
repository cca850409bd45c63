"""Browser sessions (POST/GET/PUT/DELETE /api/session): cookie flags, expiry, CSRF on every
state-changing request, the bearer key still works beside them, a revoked key ends its
sessions, sessions survive a server restart (stored in PostgreSQL), one-time sign-in links,
the pages' redirect to /login, and security headers on every response."""

from __future__ import annotations

import datetime as dt
from http.cookies import SimpleCookie

import psycopg
import pytest

from sluice.api.auth import SESSION_COOKIE
from sluice.store import connections, keys, sessions
from tests.integration.reads_support import client

JSON = {"Content-Type": "application/json"}


def _key(url: str, name: str, scopes: list[str]) -> tuple[str, str, str]:
    with psycopg.connect(url, autocommit=True) as conn:
        cid = connections.create_connection(conn, name)
        key = keys.create_key(conn, cid, scopes=scopes)
    return cid, key.api_key, key.id


def _set_cookie(headers: list[str]) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for h in headers:
        jar.load(h)
    return jar


def test_sign_in_cookie_flags_csrf_and_sign_out(fresh_db_url: str) -> None:
    cid, api_key, _ = _key(fresh_db_url, "shop", ["read", "operate"])
    with client(fresh_db_url) as c:
        assert c.get("/api/jobs").status_code == 401
        r = c.post("/api/session", json={"key": api_key})
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["connection_id"] == cid and body["connection_name"] == "shop"
        assert body["csrf_token"] and "api_key" not in r.text and api_key not in r.text
        raw = r.headers.get_list("set-cookie")
        morsel = _set_cookie(raw)[SESSION_COOKIE]
        assert morsel["httponly"] and morsel["samesite"].lower() == "strict"
        assert not morsel["secure"]  # plain http here
        assert 11 * 3600 < int(morsel["max-age"]) <= 12 * 3600
        # the cookie authenticates reads
        assert c.get("/api/jobs").status_code == 200
        assert c.get("/api/session").json()["connection_id"] == cid
        # a state-changing request without the CSRF token is refused, with it accepted
        assert c.delete("/api/session").status_code == 403
        bad = c.delete("/api/session", headers={"X-CSRF-Token": "nope"})
        assert bad.status_code == 403 and bad.json()["field"] == "X-CSRF-Token"
        cross = c.delete("/api/session", headers={"X-CSRF-Token": body["csrf_token"],
                                                  "Origin": "https://evil.example"})
        assert cross.status_code == 403 and cross.json()["field"] == "Origin"
        out = c.delete("/api/session", headers={"X-CSRF-Token": body["csrf_token"]})
        assert out.status_code == 204
        assert _set_cookie(out.headers.get_list("set-cookie"))[SESSION_COOKIE]["max-age"] == "0"
        c.cookies.clear()
        c.cookies.set(SESSION_COOKIE, morsel.value)  # the old cookie, replayed
        assert c.get("/api/jobs").status_code == 401


def test_secure_cookie_behind_https_proxy(fresh_db_url: str) -> None:
    _, api_key, _ = _key(fresh_db_url, "shop", ["read"])
    with client(fresh_db_url) as c:
        r = c.post("/api/session", json={"key": api_key},
                   headers={"X-Forwarded-Proto": "https"})
        assert r.status_code == 201
        assert _set_cookie(r.headers.get_list("set-cookie"))[SESSION_COOKIE]["secure"]
        assert r.headers["strict-transport-security"].startswith("max-age=")


@pytest.mark.parametrize(("scopes", "status"), [(["ingest"], 403), (["read"], 201)])
def test_sign_in_needs_read_scope(fresh_db_url: str, scopes: list[str], status: int) -> None:
    _, api_key, _ = _key(fresh_db_url, "shop", scopes)
    with client(fresh_db_url) as c:
        assert c.post("/api/session", json={"key": api_key}).status_code == status


def test_sign_in_refuses_bad_input_and_cross_site_forms(fresh_db_url: str) -> None:
    _, api_key, _ = _key(fresh_db_url, "shop", ["read"])
    with client(fresh_db_url) as c:
        unknown = c.post("/api/session", json={"key": "sk_live_nope"})
        assert unknown.status_code == 401 and unknown.json()["field"] == "key"
        assert c.post("/api/session", json={}).status_code == 400
        assert c.post("/api/session", json={"key": 5}).status_code == 400
        # a form post (what another site can make a browser send) is not taken
        form = c.post("/api/session", content=f'{{"key": "{api_key}"}}',
                      headers={"Content-Type": "text/plain"})
        assert form.status_code == 415
        cross = c.post("/api/session", json={"key": api_key},
                       headers={"Origin": "https://evil.example"})
        assert cross.status_code == 403
        assert not c.cookies.get(SESSION_COOKIE)


def test_every_state_changing_cookie_request_needs_the_csrf_token(fresh_db_url: str) -> None:
    _, api_key, _ = _key(fresh_db_url, "shop", ["ingest", "read"])
    with client(fresh_db_url) as c:
        csrf = c.post("/api/session", json={"key": api_key}).json()["csrf_token"]
        refused = c.post("/api/ingest", json={"events": []})
        assert refused.status_code == 403 and refused.json()["error"] == "csrf"
        assert c.post("/api/ingest", json={"events": []},
                      headers={"X-CSRF-Token": csrf}).status_code == 202


def test_bearer_key_still_works_and_needs_no_csrf(fresh_db_url: str) -> None:
    _, api_key, _ = _key(fresh_db_url, "shop", ["ingest", "read"])
    with client(fresh_db_url) as c:
        r = c.post("/api/ingest", json={"events": []},
                   headers={"Authorization": f"Bearer {api_key}"})
        assert r.status_code == 202
        assert c.get("/api/jobs", headers={"Authorization": f"Bearer {api_key}"}
                     ).status_code == 200


def test_revoked_key_ends_its_sessions(fresh_db_url: str) -> None:
    _, api_key, key_id = _key(fresh_db_url, "shop", ["read"])
    with client(fresh_db_url) as c:
        assert c.post("/api/session", json={"key": api_key}).status_code == 201
        assert c.get("/api/workers").status_code == 200
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            keys.revoke(conn, key_id)
        r = c.get("/api/workers")
        assert r.status_code == 401 and r.json()["error"] == "session_ended"
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            left = conn.execute("SELECT count(*) FROM sessions").fetchone()
        assert left == (0,)


def test_session_survives_restart_and_expires(fresh_db_url: str) -> None:
    _, api_key, _ = _key(fresh_db_url, "shop", ["read"])
    with client(fresh_db_url) as c:
        c.post("/api/session", json={"key": api_key})
        token = c.cookies.get(SESSION_COOKIE)
    assert token
    with client(fresh_db_url) as c:  # a new app and pool: the session is in PostgreSQL
        c.cookies.set(SESSION_COOKIE, token)
        assert c.get("/api/jobs").status_code == 200
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            conn.execute("UPDATE sessions SET expires_at = now() - interval '1 second'")
        assert c.get("/api/jobs").status_code == 401
        page = c.get("/jobs?state=failed", follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=%2Fjobs%3Fstate%3Dfailed"


def test_one_time_sign_in_link(fresh_db_url: str) -> None:
    cid, _, key_id = _key(fresh_db_url, "demo", ["read"])
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        token = sessions.create_login_token(conn, key_id)
        late = sessions.create_login_token(conn, key_id, ttl=dt.timedelta(seconds=-1))
    with client(fresh_db_url) as c:
        r = c.post("/api/session", json={"token": token})
        assert r.status_code == 201 and r.json()["connection_id"] == cid
    with client(fresh_db_url) as c:
        again = c.post("/api/session", json={"token": token})
        assert again.status_code == 401 and again.json()["field"] == "token"
        assert c.post("/api/session", json={"token": late}).status_code == 401


def test_connection_switcher(fresh_db_url: str) -> None:
    a, key_a, _ = _key(fresh_db_url, "alpha", ["read"])
    b, key_b, _ = _key(fresh_db_url, "beta", ["read"])
    with client(fresh_db_url) as c:
        csrf = c.post("/api/session", json={"key": key_a}).json()["csrf_token"]
        added = c.post("/api/session", json={"key": key_b}, headers={"X-CSRF-Token": csrf})
        info = added.json()
        assert info["connection_id"] == b
        assert {x["connection_id"] for x in info["connections"]} == {a, b}
        assert c.put("/api/session", json={"connection_id": a}).status_code == 403  # no CSRF
        back = c.put("/api/session", json={"connection_id": a},
                     headers={"X-CSRF-Token": info["csrf_token"]})
        assert back.status_code == 200 and back.json()["connection_id"] == a
        other = c.put("/api/session", json={"connection_id": "not-a-uuid"},
                      headers={"X-CSRF-Token": info["csrf_token"]})
        assert other.status_code == 404


def test_pages_and_security_headers(fresh_db_url: str) -> None:
    _, api_key, _ = _key(fresh_db_url, "shop", ["read"])
    with client(fresh_db_url) as c:
        assert c.get("/workers", follow_redirects=False).status_code == 303
        login = c.get("/login")
        assert login.status_code == 200 and "<script" in login.text
        c.post("/api/session", json={"key": api_key})
        for path in ("/", "/jobs", "/jobs/abc", "/workers", "/workers/w1@host", "/queues",
                     "/queues/emails", "/commands"):
            r = c.get(path, follow_redirects=False)
            assert r.status_code == 200 and "/static/app.js" in r.text, path
        for path in ("/", "/login", "/api/jobs", "/static/app.js", "/no/such/page",
                     "/schema", "/api/jobs/x/nope"):
            h = c.get(path, follow_redirects=False).headers
            csp = h["content-security-policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
            assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
            assert h["x-content-type-options"] == "nosniff", path
            assert h["referrer-policy"] == "no-referrer", path
        docs = c.get("/schema").text
        assert "<script src=\"/static/docs.js\"></script>" in docs
        assert "SwaggerUIBundle(" not in docs  # the start-up is a file, not inline
