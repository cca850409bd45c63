"""Hostile read requests (the probe's exact repros): NUL in a parameter, a path segment or a
decoded cursor, windows too large for a timedelta, odd static paths. Each is a 400 or 404
with the JSON error shape, never a 500."""

from __future__ import annotations

import pytest

from tests.integration.reads_support import client, tenant

NUL_CURSOR = "WzAsImFcdTAwMDBiIl0"  # base64 of [0,"a\u0000b"]
CASES = [
    ("/api/jobs?q=%00", 400, "q"),
    ("/api/jobs?name=a%00b", 400, "name"),
    ("/api/jobs?queue=%00&worker=w", 400, "queue"),
    ("/api/jobs?id=%00", 400, "id"),
    ("/api/jobs?state=%00", 400, "state"),
    ("/api/jobs/%00", 400, "path"),
    (f"/api/jobs?cursor={NUL_CURSOR}", 400, "cursor"),
    ("/api/workers/%00", 400, "path"),
    ("/api/workers?x=%00", 400, "x"),
    ("/api/queues/%00", 400, "path"),
    ("/api/queues/%00/series", 400, "path"),
    ("/api/queues/q/series?window=%00", 400, "window"),
    ("/api/queues/q/series?window=9999999999d", 400, "window"),
    ("/api/queues/q/series?window=99999999999999999999999999999d", 400, "window"),
    ("/api/stats/overview?window=9999999999d", 400, "window"),
    ("/static/app.js%00.png", 400, "path"),
]


@pytest.mark.parametrize(("path", "status", "field"), CASES)
def test_hostile_reads_are_client_errors(fresh_db_url: str, path: str, status: int,
                                         field: str) -> None:
    _, headers = tenant(fresh_db_url, "a")
    with client(fresh_db_url) as c:
        r = c.get(path, headers=headers)
    assert r.status_code == status, (path, r.status_code, r.text)
    body = r.json()
    assert body["error"] == "bad_request" and body["field"] == field and body["detail"]


@pytest.mark.parametrize("path", ["/static/" + "a" * 5000, "/static/" + "a/" * 700 + "x.js",
                                  "/static/%ff.js", "/static/..%2f..%2fetc%2fpasswd"])
def test_static_paths_that_cannot_be_files_are_404(fresh_db_url: str, path: str) -> None:
    with client(fresh_db_url) as c:
        r = c.get(path)
        assert r.status_code == 404, (path[:40], r.status_code, r.text[:200])
        assert r.json()["error"] == "not_found"
        assert c.get("/static/app.js").status_code == 200
