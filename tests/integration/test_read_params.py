"""The read endpoints answer 400 naming the parameter for a query parameter they do not take
(a misspelt filter is not silently ignored) and for a number outside its range, saying what
is allowed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from tests.integration.reads_support import client, tenant


@pytest.fixture
def api(fresh_db_url: str) -> Iterator[tuple[TestClient[Litestar], dict[str, str]]]:
    with client(fresh_db_url) as c:
        _, headers = tenant(fresh_db_url, "a")
        yield c, headers


def _bad(c: TestClient[Litestar], headers: dict[str, str], path: str,
         params: Any) -> dict[str, Any]:
    r = c.get(path, params=params, headers=headers)
    assert r.status_code == 400, (path, params, r.status_code, r.text)
    body: dict[str, Any] = r.json()
    assert body["error"] == "bad_request"
    return body


@pytest.mark.parametrize(("path", "param", "known"), [
    ("/api/jobs", "stat", "state"),
    ("/api/jobs", "lmit", "limit"),
    ("/api/workers", "status", None),
    ("/api/workers/w1@h", "x", None),
    ("/api/queues", "name", None),
    ("/api/queues/default/series", "windw", "window"),
    ("/api/stats/overview", "since", "window"),
    ("/api/events/stream", "kinds", "kind"),
])
def test_unknown_parameters_are_named(api: Any, path: str, param: str,
                                      known: str | None) -> None:
    c, headers = api
    body = _bad(c, headers, path, {param: "1"})
    assert body["field"] == param
    assert f"unknown query parameter {param!r}" in body["detail"]
    if known:
        assert known in body["detail"]  # what the endpoint does take
    else:
        assert "no query parameters" in body["detail"]


@pytest.mark.parametrize(("value", "detail"), [
    ("0", "limit must be an integer from 1 to 500, not '0'"),
    ("501", "limit must be an integer from 1 to 500, not '501'"),
    ("ten", "limit must be an integer from 1 to 500, not 'ten'"),
    ("2.5", "limit must be an integer from 1 to 500, not '2.5'"),
])
def test_out_of_range_limit_names_the_range(api: Any, value: str, detail: str) -> None:
    c, headers = api
    body = _bad(c, headers, "/api/jobs", {"limit": value})
    assert body == {"error": "bad_request", "detail": detail, "field": "limit"}


def test_a_number_without_bounds_says_it_must_be_one(api: Any) -> None:
    c, headers = api
    body = _bad(c, headers, "/api/events/stream", {"last_event_id": "x"})
    assert body["field"] == "last_event_id"
    assert body["detail"] == "last_event_id must be an integer, not 'x'"


def test_what_the_endpoints_take_still_works(api: Any) -> None:
    c, headers = api
    ok = [("/api/jobs", [("state", "failed"), ("state", "queued,active"), ("limit", "500"),
                         ("facets", "true"), ("q", "x"), ("since", "0")]),
          ("/api/jobs", [("limit", "1")]), ("/api/workers", []), ("/api/queues", []),
          ("/api/stats/overview", [("window", "24h")])]
    for path, params in ok:
        r = c.get(path, params=params, headers=headers)
        assert r.status_code == 200, (path, params, r.text)
    assert c.get("/api/jobs", params={"limit": "5"}).status_code == 401  # no key: 401
