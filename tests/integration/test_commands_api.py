"""Commands through the API (in-process app, its executor running): the connection's broker
settings, the state rule of retry and revoke, scopes, no broker, a broker that is down,
reads of commands, and bulk actions (dry run, per-job outcomes) on a real Redis broker."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis
from litestar import Litestar
from litestar.testing import TestClient

from sluice.cli import main as cli_main
from sluice.domain.actions import ALLOWED_STATES, Action
from sluice.domain.commands import new_job_id
from sluice.domain.states import State
from sluice.store import connections
from tests.integration.agent_support import free_port
from tests.integration.commands_support import (
    job_in_state,
    key_headers,
    operator,
    redis_broker,
    wait_for,
)
from tests.integration.reads_support import client, ingest, job

DEAD_BROKER = "redis://:s3cret-pw@127.0.0.1:{port}/0"


@pytest.fixture
def api(fresh_db_url: str) -> Iterator[TestClient[Litestar]]:
    with client(fresh_db_url) as c:
        yield c


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    with redis_broker() as url:
        yield url


def _command(c: TestClient[Litestar], h: dict[str, str], command_id: str) -> dict[str, Any]:
    r = c.get(f"/api/commands/{command_id}", headers=h)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _finished(c: TestClient[Litestar], h: dict[str, str], command_id: str,
              timeout: float = 20.0) -> dict[str, Any]:
    found: dict[str, Any] = wait_for(lambda: _command(c, h, command_id),
                                     lambda b: b["status"] in ("succeeded", "failed"),
                                     timeout)
    return found


# the connection's broker ------------------------------------------------------------------

def test_broker_settings_are_admin_only_and_never_shown_with_their_password(
        api: TestClient[Litestar], fresh_db_url: str,
        caplog: pytest.LogCaptureFixture) -> None:
    cid, admin = operator(fresh_db_url, scopes=("admin",))
    operate = key_headers(fresh_db_url, cid, "read", "operate")
    secret = "redis://:hunter2-very-secret@broker.internal:6379/3"
    backend = "redis://user:backend-pw@backend.internal:6379/4?password=also-secret"

    assert api.get("/api/connection", headers=admin).json()["broker_url"] is None
    r = api.patch("/api/connection", headers=operate, json={"broker_url": secret})
    assert r.status_code == 403
    r = api.patch("/api/connection", headers=admin,
                  json={"broker_url": secret, "result_backend_url": backend})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["broker_url"] == "redis://:***@broker.internal:6379/3"
    assert body["result_backend_url"].startswith("redis://user:***@backend.internal:6379/4?")
    assert body["executor"] == "server"
    for answer in (r.text, api.get("/api/connection", headers=operate).text):
        assert "hunter2" not in answer and "backend-pw" not in answer
        assert "also-secret" not in answer
    assert all("hunter2" not in rec.getMessage() for rec in caplog.records)
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        stored = connections.broker_of(conn, cid)
    assert stored is not None and stored.broker_url == secret
    assert stored.result_backend_url == backend

    # bad values name the field and never echo the URL
    r = api.patch("/api/connection", headers=admin, json={"broker_url": "not a url pw"})
    assert r.status_code == 400 and r.json()["field"] == "broker_url"
    assert "pw" not in r.json()["detail"]
    r = api.patch("/api/connection", headers=admin, json={"broker_url": 5})
    assert r.status_code == 400 and r.json()["field"] == "broker_url"
    r = api.patch("/api/connection", headers=admin, json={"other": "x"})
    assert r.status_code == 400
    r = api.patch("/api/connection", headers=admin, content=b"{nope",
                  )
    assert r.status_code == 400
    # null clears one, leaving the other
    r = api.patch("/api/connection", headers=admin, json={"result_backend_url": None})
    assert r.status_code == 200
    assert r.json()["result_backend_url"] is None and r.json()["broker_url"] is not None


def test_cli_sets_the_broker_without_printing_it(
        fresh_db_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SLUICE_DATABASE_URL", fresh_db_url)
    assert cli_main(["connections", "create", "prod", "--json", "--broker",
                     "redis://:cli-secret@127.0.0.1:6379/0"]) == 0
    out = capsys.readouterr()
    cid = json.loads(out.out)["connection_id"]
    assert "cli-secret" not in out.out + out.err
    assert cli_main(["connections", "set", cid, "--result-backend",
                     "redis://:backend-secret@127.0.0.1:6379/1"]) == 0
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        found = connections.broker_of(conn, cid)
        assert found is not None
        assert found.broker_url == "redis://:cli-secret@127.0.0.1:6379/0"
        assert found.result_backend_url == "redis://:backend-secret@127.0.0.1:6379/1"
    assert cli_main(["connections", "set", cid, "--broker", "none"]) == 0
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        found = connections.broker_of(conn, cid)
        assert found is not None and found.broker_url is None
    out = capsys.readouterr()
    assert "secret" not in out.out + out.err
    with pytest.raises(SystemExit):  # argparse refuses it, without quoting it
        cli_main(["connections", "set", cid, "--broker", "no-scheme-pw"])
    assert "no-scheme-pw" not in capsys.readouterr().err


# single commands ---------------------------------------------------------------------------

def test_every_state_allows_exactly_its_actions(api: TestClient[Litestar],
                                                fresh_db_url: str) -> None:
    dead = DEAD_BROKER.format(port=free_port())
    _cid, h = operator(fresh_db_url, broker_url=dead)
    for state in State:
        job_id, events = job_in_state(state.value)
        if events:
            ingest(api, h, events)
        assert api.get(f"/api/jobs/{job_id}", headers=h).json()["state"] == state.value
        for action in Action:
            body = {"terminate": False} if action is Action.REVOKE else None
            r = api.post(f"/api/jobs/{job_id}/{action.value}", headers=h, json=body)
            if state in ALLOWED_STATES[action]:
                assert r.status_code == 202, (state, action, r.text)
                answer = r.json()
                assert answer["status"] == "requested" and uuid.UUID(answer["command_id"])
            else:
                assert r.status_code == 400, (state, action, r.text)
                error = r.json()
                assert error["error"] == "invalid_state" and error["field"] == "state"
                assert f"'{state.value}'" in error["detail"]
                for allowed in ALLOWED_STATES[action]:
                    assert allowed.value in error["detail"]


def test_scopes_no_broker_and_bad_bodies(api: TestClient[Litestar], fresh_db_url: str) -> None:
    cid, h = operator(fresh_db_url)  # no broker, no agent executor
    reader = key_headers(fresh_db_url, cid, "read", "ingest")
    job_id, events = job_in_state("failed")
    ingest(api, h, events)
    r = api.post(f"/api/jobs/{job_id}/retry", headers=reader)
    assert r.status_code == 403
    r = api.post("/api/jobs/actions", headers=reader, json={"action": "retry", "ids": [job_id]})
    assert r.status_code == 403
    r = api.post(f"/api/jobs/{job_id}/retry", headers=h)
    assert r.status_code == 409 and r.json()["error"] == "no_broker"
    # the state is checked first: a disallowed one is a 400 even without a broker
    r = api.post(f"/api/jobs/{job_id}/revoke", headers=h)
    assert r.status_code == 400 and r.json()["error"] == "invalid_state"
    queued, events = job_in_state("queued")
    ingest(api, h, events)
    for body, field in (({"signal": "SIGNOPE"}, "signal"), ({"terminate": "yes"}, "terminate"),
                        ({"extra": 1}, None)):
        r = api.post(f"/api/jobs/{queued}/revoke", headers=h, json=body)
        assert r.status_code == 400, body
        assert r.json().get("field") == field
    r = api.get("/api/commands/nope", headers=h)
    assert r.status_code == 404
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM system_events").fetchone() == (0,)


def test_a_broker_that_is_down_fails_the_command_with_the_reason(
        api: TestClient[Litestar], fresh_db_url: str) -> None:
    dead = DEAD_BROKER.format(port=free_port())
    cid, h = operator(fresh_db_url, broker_url=dead)
    job_id, events = job_in_state("queued")
    ingest(api, h, events)
    r = api.post(f"/api/jobs/{job_id}/revoke", headers=h, json={"terminate": True})
    command_id = r.json()["command_id"]
    done = _finished(api, h, command_id)
    assert done["status"] == "failed" and done["action"] == "revoke"
    assert "broker unreachable" in done["reason"] and "s3cret" not in done["reason"]
    assert done["job_id"] == job_id and done["requested_by"].startswith("key:")
    assert done["params"] == {"terminate": True, "signal": "SIGTERM"}
    assert done["finished_at"] >= done["requested_at"]
    # the job's history shows the command, with its outcome
    detail = api.get(f"/api/jobs/{job_id}", headers=h).json()
    entries = [t for t in detail["history"] if t["kind"].startswith("command.")]
    assert entries == [{"state": "failed", "at": done["requested_at"], "kind": "command.revoke",
                        "hostname": None, "attempt": 0, "command_id": command_id,
                        "requested_by": done["requested_by"], "reason": done["reason"]}]
    # the log holds the request and one outcome, in the system stream
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        kinds = [k for (k,) in conn.execute(
            "SELECT kind FROM system_events WHERE connection_id = %s ORDER BY position",
            (cid,))]
        logged = conn.execute("SELECT payload::text FROM system_events").fetchall()
    assert kinds == ["command.requested", "command.failed"]
    assert all("s3cret" not in p for (p,) in logged)


def test_command_list_filters_and_cursor(api: TestClient[Litestar], fresh_db_url: str) -> None:
    dead = DEAD_BROKER.format(port=free_port())
    _cid, h = operator(fresh_db_url, broker_url=dead)
    ids = []
    for _ in range(5):
        job_id, events = job_in_state("queued")
        ingest(api, h, events)
        ids.append((job_id, api.post(f"/api/jobs/{job_id}/revoke", headers=h).json()[
            "command_id"]))
    failed, events = job_in_state("failed")
    ingest(api, h, events)
    retry_id = api.post(f"/api/jobs/{failed}/retry", headers=h).json()["command_id"]
    for _, command_id in ids:
        _finished(api, h, command_id)
    _finished(api, h, retry_id)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/api/commands", headers=h, params=params).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted([c for _, c in ids] + [retry_id]) and len(seen) == 6
    page = api.get("/api/commands", headers=h, params={"action": "retry"}).json()
    assert [i["id"] for i in page["items"]] == [retry_id]
    page = api.get("/api/commands", headers=h, params={"job_id": ids[2][0]}).json()
    assert [i["id"] for i in page["items"]] == [ids[2][1]]
    page = api.get("/api/commands", headers=h, params={"status": "succeeded"}).json()
    assert page["items"] == []
    for params in ({"status": "done"}, {"cursor": "garbage"}, {"since": "yesterday"},
                   {"limit": 0}):
        r = api.get("/api/commands", headers=h, params=params)
        assert r.status_code == 400, params
    # another connection sees none of them
    _, other = operator(fresh_db_url, "other")
    assert api.get("/api/commands", headers=other).json()["items"] == []
    assert api.get(f"/api/commands/{retry_id}", headers=other).status_code == 404


# on a real broker --------------------------------------------------------------------------

def _queue_of(prefix: str) -> str:
    return f"{prefix}default"


def test_bulk_dry_run_and_a_mix_of_outcomes_on_a_real_broker(
        api: TestClient[Litestar], fresh_db_url: str, broker: str) -> None:
    prefix = f"cmdtest-{uuid.uuid4().hex[:8]}-"
    queue = _queue_of(prefix)
    _cid, h = operator(fresh_db_url, broker_url=broker)
    t0 = time.time() - 60
    failed_known = [f"fk-{i}-{uuid.uuid4()}" for i in range(3)]
    events = []
    for job_id in failed_known:  # arguments captured complete
        events += job(job_id, t0, outcome="job.failed", queue=queue, name="tests.add",
                      args="(2, 3)", kwargs="{'z': 1}")
    failed_unknown, more = job_in_state("failed", queue=queue, name="tests.add")
    events += more
    completed, more = job_in_state("completed", queue=queue)
    events += more
    ingest(api, h, events)
    ids = [*failed_known, failed_unknown, completed, "never-seen-id"]

    r = api.post("/api/jobs/actions", headers=h,
                 json={"action": "retry", "ids": ids, "dry_run": True})
    assert r.status_code == 200, r.text
    dry = r.json()
    assert dry["count"] == 6 and dry["allowed"] == 4
    assert {j["id"]: j["state"] for j in dry["sample"]}["never-seen-id"] == "unknown"
    r = api.post("/api/jobs/actions", headers=h,
                 json={"action": "retry", "filter": {"state": ["failed"], "queue": queue},
                       "dry_run": True})
    assert r.json()["count"] == 4 and r.json()["allowed"] == 4
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:  # a dry run logs nothing
        assert conn.execute("SELECT count(*) FROM system_events").fetchone() == (0,)

    r = api.post("/api/jobs/actions", headers=h, json={"action": "retry", "ids": ids})
    assert r.status_code == 202, r.text
    bulk_id = r.json()["command_id"]
    bulk = _finished(api, h, bulk_id)
    assert bulk["status"] == "failed" and bulk["reason"] == "3 of 6 jobs failed"
    assert bulk["progress"] == {"total": 6, "done": 6, "succeeded": 3, "failed": 3,
                                "running": 0}
    items = api.get("/api/commands", headers=h, params={"bulk_id": bulk_id,
                                                        "limit": 100}).json()["items"]
    by_job = {i["job_id"]: i for i in items}
    assert set(by_job) == set(ids)
    for job_id in failed_known:
        assert by_job[job_id]["status"] == "succeeded"
        assert by_job[job_id]["new_job_id"] == new_job_id(by_job[job_id]["id"])
    assert "result_extended" in by_job[failed_unknown]["reason"]
    assert "'completed'" in by_job[completed]["reason"]
    assert "'unknown'" in by_job["never-seen-id"]["reason"]
    # the retries are on the broker, with their arguments and derived ids
    messages = [json.loads(m) for m in redis.Redis.from_url(broker).lrange(queue, 0, -1)]
    sent = {m["headers"]["id"]: m for m in messages}
    assert set(sent) == {by_job[j]["new_job_id"] for j in failed_known}
    assert all(m["headers"]["task"] == "tests.add" for m in messages)
    # links both ways
    old = api.get(f"/api/jobs/{failed_known[0]}", headers=h).json()
    new = api.get(f"/api/jobs/{old['retried_as']}", headers=h).json()
    assert old["retried_as"] == by_job[failed_known[0]]["new_job_id"]
    assert new["state"] == "unknown" and new["retried_from"] == failed_known[0]
    assert [t["command_id"] for t in new["history"]] == [by_job[failed_known[0]]["id"]]
    listed = api.get("/api/jobs", headers=h, params={"queue": queue, "state": "failed"}).json()
    assert {j["id"]: j["retried_as"] for j in listed["items"]}[failed_known[1]] == \
        by_job[failed_known[1]]["new_job_id"]
    redis.Redis.from_url(broker).delete(queue)


def test_bulk_revoke_by_filter_is_one_broadcast_per_batch(
        api: TestClient[Litestar], fresh_db_url: str, broker: str) -> None:
    prefix = f"cmdtest-{uuid.uuid4().hex[:8]}-"
    _cid, h = operator(fresh_db_url, broker_url=broker)
    events = []
    for _ in range(30):
        events += job_in_state("queued", queue=_queue_of(prefix))[1]
    ingest(api, h, events)
    client_ = redis.Redis.from_url(broker)
    pubsub = client_.pubsub()
    pubsub.psubscribe("*pidbox*")  # kombu's fanout of control commands on Redis
    r = api.post("/api/jobs/actions", headers=h,
                 json={"action": "revoke", "filter": {"queue": _queue_of(prefix)},
                       "terminate": True, "signal": "SIGKILL"})
    bulk = _finished(api, h, r.json()["command_id"])
    assert bulk["status"] == "succeeded" and bulk["progress"]["succeeded"] == 30
    assert bulk["params"]["filter"] == {"queue": _queue_of(prefix)}
    broadcasts = []
    while (msg := pubsub.get_message(timeout=1.0)) is not None:
        if msg["type"] == "pmessage":
            envelope = json.loads(msg["data"])
            broadcasts.append(json.loads(base64.b64decode(envelope["body"])))
    pubsub.close()
    revokes = [b for b in broadcasts if b["method"] == "revoke"]
    assert len(revokes) == 1  # one call with the 30 ids
    assert len(revokes[0]["arguments"]["task_id"]) == 30
    assert revokes[0]["arguments"]["signal"] == "SIGKILL"
    assert revokes[0]["arguments"]["terminate"] is True
    r = api.post("/api/jobs/actions", headers=h,
                 json={"action": "revoke", "filter": {"state": "nope"}})
    assert r.status_code == 400 and r.json()["field"] == "filter.state"
    r = api.post("/api/jobs/actions", headers=h, json={"action": "purge", "ids": ["a"]})
    assert r.status_code == 400 and r.json()["field"] == "action"
    r = api.post("/api/jobs/actions", headers=h, json={"action": "retry"})
    assert r.status_code == 400 and r.json()["field"] == "ids"
