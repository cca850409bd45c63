"""POST /api/ingest through Litestar's test client against a fresh database."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator

import msgspec
import psycopg
import pytest
from litestar.testing import TestClient

from sluice.api.app import create_app
from sluice.api.body import MAX_BYTES, MAX_EVENTS, MISMATCH
from sluice.service import ingest as quotas
from sluice.service.ingest import QUOTA_EXCEEDED
from sluice.store import keys, usage
from tests.integration.api_support import auth, count_events, job_events, new_connection

Client = TestClient  # type: ignore[type-arg]


@pytest.fixture
def client(fresh_db_url: str) -> Iterator[Client]:
    app = create_app(database_url=fresh_db_url, include_reads=False, maintenance_interval_s=None)
    with TestClient(app) as c:
        yield c


def post(client: Client, key: str, body: object, **headers: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = client.post("/api/ingest", content=content, headers=auth(key, **headers))
    assert r.headers["content-type"].startswith("application/json"), r.text
    return r.status_code, r.json()


def test_accepts_json_gzip_and_msgpack_and_counts_duplicates(
        client: Client, fresh_db_url: str) -> None:
    cid, key, _ = new_connection(fresh_db_url)
    events = job_events(9)
    assert post(client, key, {"events": events}) == (
        202, {"accepted": 9, "duplicates": 0, "rejected": []})
    # the same batch resent (a timeout on the sender's side): stored once
    assert post(client, key, {"events": events})[1]["duplicates"] == 9
    more = job_events(6)
    gz = gzip.compress(json.dumps({"events": more[:3]}).encode())
    assert post(client, key, gz, **{"Content-Encoding": "gzip"})[1]["accepted"] == 3
    packed = msgspec.msgpack.encode({"events": more[3:]})
    status, answer = post(client, key, packed, **{"Content-Type": "application/msgpack"})
    assert (status, answer["accepted"]) == (202, 3)
    assert count_events(fresh_db_url, cid) == 15


def test_invalid_events_are_rejected_by_index_and_the_rest_stored(
        client: Client, fresh_db_url: str) -> None:
    cid, key, _ = new_connection(fresh_db_url)
    good = job_events(2)
    batch = [good[0], {"kind": "job.sent"}, "not an object", {**good[1], "kind": "nope"},
             good[1]]
    status, answer = post(client, key, {"events": batch})
    assert status == 202
    assert answer["accepted"] == 2
    rejected = {r["index"]: r for r in answer["rejected"]}
    assert sorted(rejected) == [1, 2, 3]
    assert rejected[1]["field"] == "timestamp"
    assert rejected[3]["field"] == "kind"
    assert count_events(fresh_db_url, cid) == 2


def test_kinds_only_the_server_writes_are_refused_by_index(
        client: Client, fresh_db_url: str) -> None:
    """Even with every scope, a key cannot write the server's own events (commands today):
    each is rejected naming `kind`, in JSON and MessagePack alike; the rest is stored."""
    cid, key, _ = new_connection(fresh_db_url, scopes=["admin"])
    good = job_events(2)
    forged = {"kind": "command.retry", "timestamp": time.time(), "job_id": "j1"}
    for content_type, encode in (("application/json", json.dumps),
                                 ("application/msgpack", msgspec.msgpack.encode)):
        raw = encode({"events": [good[0], forged, good[1]]})
        body = raw if isinstance(raw, bytes) else raw.encode()
        status, answer = post(client, key, body, **{"Content-Type": content_type})
        assert status == 202, answer
        [rejected] = answer["rejected"]
        assert (rejected["index"], rejected["field"]) == (1, "kind")
        assert "server" in rejected["reason"]
    assert count_events(fresh_db_url, cid) == 2
    with psycopg.connect(fresh_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM system_events").fetchone() == (0,)


def test_source_dropped_is_a_normal_event(client: Client, fresh_db_url: str) -> None:
    _cid, key, _ = new_connection(fresh_db_url)
    dropped = {"kind": "source.dropped", "timestamp": time.time(), "count": 12,
               "hostname": "worker1@host"}
    assert post(client, key, {"events": [dropped]})[1]["accepted"] == 1


BAD_BODIES: list[tuple[bytes, dict[str, str], int, str | None]] = [
    (b"{not json", {}, 400, None),
    (b"", {}, 400, None),
    (b"[" * 100_000, {}, 400, None),
    (b"\x1f\x8b\x08garbage", {"Content-Encoding": "gzip"}, 400, None),
    (gzip.compress(b'{"events": []}')[:-6], {"Content-Encoding": "gzip"}, 400, None),
    (b"\xc1", {"Content-Type": "application/msgpack"}, 400, None),
    (b'{"events": []}', {"Content-Type": "text/plain"}, 415, None),
    (b'{"events": []}', {"Content-Encoding": "br"}, 415, None),
    (b"[]", {}, 422, None),
    (b'{"evts": []}', {}, 422, "events"),
    (b'{"events": {"a": 1}}', {}, 422, "events"),
]


def test_bad_bodies(client: Client, fresh_db_url: str) -> None:
    _, key, _ = new_connection(fresh_db_url)
    for body, headers, status, field in BAD_BODIES:
        got, answer = post(client, key, body, **headers)
        assert got == status, (body[:30], answer)
        assert set(answer) <= {"error", "detail", "field"} and answer["error"]
        assert answer["detail"] and answer.get("field") == field


def test_too_large(client: Client, fresh_db_url: str) -> None:
    _, key, _ = new_connection(fresh_db_url)
    event = job_events(1)[0]
    assert post(client, key, {"events": [event] * (MAX_EVENTS + 1)})[0] == 413
    big = {"events": [{**event, "extensions": {"pad": "x" * 1000}}] * 5000}
    assert len(json.dumps(big)) > MAX_BYTES
    assert post(client, key, big)[0] == 413
    # a zip bomb: 50 MiB of spaces in 50 KiB; inflation stops one byte past the limit
    bomb = gzip.compress(b'{"events": [' + b" " * (50 * 1024 * 1024) + b"]}", 9)
    assert len(bomb) < 100_000
    assert post(client, key, bomb, **{"Content-Encoding": "gzip"})[0] == 413
    # exactly at the limits is fine
    assert post(client, key, {"events": job_events(MAX_EVENTS)})[1]["accepted"] == MAX_EVENTS


def test_authentication(client: Client, fresh_db_url: str) -> None:
    cid, key, key_id = new_connection(fresh_db_url)
    body = json.dumps({"events": job_events(1)}).encode()
    r = client.post("/api/ingest", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    for bad in ("Bearer", "Basic abc", "Bearer sk_live_nope", "Bearer " + key + "x"):
        r = client.post("/api/ingest", content=body,
                        headers={"Authorization": bad, "Content-Type": "application/json"})
        assert r.status_code == 401, bad
        assert r.json()["error"] == "unauthorized"
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        reader = keys.create_key(conn, cid, ["read"])
        admin = keys.create_key(conn, cid, ["admin"])
    assert post(client, reader.api_key, {"events": []}) == (
        403, {"error": "forbidden", "detail": "this API key lacks the 'ingest' scope"})
    assert post(client, admin.api_key, {"events": job_events(1)})[0] == 202
    assert post(client, key, {"events": job_events(1)})[0] == 202
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        assert keys.revoke(conn, key_id)
    status, answer = post(client, key, {"events": job_events(1)})
    assert (status, answer["error"]) == (403, "key_revoked")


def test_a_key_of_a_cannot_write_into_b(client: Client, fresh_db_url: str) -> None:
    a, key_a, _ = new_connection(fresh_db_url, "a")
    b, _, _ = new_connection(fresh_db_url, "b")
    events = job_events(4)
    batch = [{**e, "connection_id": b} for e in events[:2]] + [
        {**events[2], "connection_id": a}, events[3]]
    status, answer = post(client, key_a, {"events": batch})
    assert status == 202 and answer["accepted"] == 2
    assert answer["rejected"] == [
        {"index": 0, "reason": MISMATCH, "field": "connection_id"},
        {"index": 1, "reason": MISMATCH, "field": "connection_id"},
    ]
    assert (count_events(fresh_db_url, a), count_events(fresh_db_url, b)) == (2, 0)


def test_quota_crossing_then_429(client: Client, fresh_db_url: str) -> None:
    cid, key, _ = new_connection(fresh_db_url, daily_limit=10)
    first = job_events(6)
    assert post(client, key, {"events": first})[1]["accepted"] == 6
    # duplicates never count: 6 resent + 6 new against the 4 left
    status, answer = post(client, key, {"events": first + job_events(6)})
    assert status == 202
    assert (answer["accepted"], answer["duplicates"]) == (4, 6)
    assert answer["rejected"] == [{"index": 10, "reason": QUOTA_EXCEEDED},
                                  {"index": 11, "reason": QUOTA_EXCEEDED}]
    r = client.post("/api/ingest", content=json.dumps({"events": job_events(1)}),
                    headers=auth(key))
    assert r.status_code == 429 and r.json()["error"] == "quota_exceeded"
    assert 0 < int(r.headers["retry-after"]) <= quotas.seconds_to_next_utc_day() + 1
    assert count_events(fresh_db_url, cid) == 10
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        assert usage.used(conn, cid, quotas.utc_day()) == 10


def test_quota_is_exact_under_concurrency(client: Client, fresh_db_url: str) -> None:
    cid, key, _ = new_connection(fresh_db_url, daily_limit=100)
    results: list[tuple[int, dict]] = []  # type: ignore[type-arg]

    def send(i: int) -> None:
        results.append(post(client, key, {"events": job_events(30, prefix=f"t{i}-")}))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accepted = sum(a["accepted"] for s, a in results if s == 202)
    assert accepted == 100
    assert count_events(fresh_db_url, cid) == 100


def test_health_schema_and_json_errors(client: Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    schema = client.get("/schema/openapi.json").json()
    assert "/api/ingest" in schema["paths"]
    r = client.get("/no/such/thing")
    assert (r.status_code, r.json()["error"]) == (404, "not_found")
    r = client.get("/api/ingest")
    assert (r.status_code, r.json()["error"]) == (405, "method_not_allowed")
